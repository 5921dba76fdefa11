"""The app shell: the ``cadterm`` command, which wires the server, the console, the
simulator and the scenarios together; the one package allowed to import them all.

- `main`: the argument parser and one handler per subcommand;
- `console`: starting the console (its log, the collector, its file locations);
- `demo`: the embedded backend, the simulator and the console in one process;
- `locations`: where cadterm keeps its files on this machine.
"""
