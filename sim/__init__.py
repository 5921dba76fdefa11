"""The simulator and scenario runner: a synthetic city and force, calls, AVL, scenarios.

Everything here drives a backend through `cadterm.client`, as any console would; only
`cadterm.server.embedded` imports the server, to start one in this process.

- the world, as data: `city` (Brackley, its sectors and places), `force` (36 units),
  `calls` (what the public reports), `movement` (speeds), `resulting` (how jobs end);
- the decisions, pure: `planned`, `units` (playing units), `control_room` (resulting,
  virtual dispatcher), `core` (`SimCore`, one step at a time);
- the driver: `clock` (`SimClock`, time scaling), `simulator` (`Simulator`),
  `background` (`simulation()`, for the demo console and load runs);
- `scenario` (scripted scenarios, with
  `scenario.model`, `scenario.format`, `scenario.run`, `scenario.checks`), `record`
  (record and replay event streams), `pytest_plugin` (fixtures). The GET queries
  (events, state, head) are the client library's, `cadterm.client.queries`.
"""

from .city import BRACKLEY, City
from .clock import SimClock
from .core import SimCore
from .force import FORCE, UnitSpec, seed_force
from .planned import Planned, SimSettings
from .simulator import Sent, Simulator, SimulatorError

__all__ = [
    "BRACKLEY",
    "FORCE",
    "City",
    "Planned",
    "Sent",
    "SimClock",
    "SimCore",
    "SimSettings",
    "Simulator",
    "SimulatorError",
    "UnitSpec",
    "seed_force",
]
