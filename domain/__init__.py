"""Pure dispatch rules over the picture, shared by the console, the simulator and the server.

- `geography`: distances and offsets on the ground;
- `recommend`: which units to suggest for an incident, and why;
- `timers`: the clocks a dispatcher watches (grade targets, officer-safety checks).

Everything here is a function of the picture (`cadterm.protocol`) and a time: no I/O, no
asyncio, no Textual, so each rule is tested in microseconds and reads the same wherever
it runs.
"""
