"""`Planned`: a command the simulator has decided to send, and the settings it decides by.

Decisions are data: the pure core returns `Planned` values and the driver turns each into
a real command (adding an idempotency key and the workstation) and sends it. Two runs
that plan the same commands at the same simulated times behaved the same.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cadterm.protocol.domain import Position

from .city import BRACKLEY, City

__all__ = ["Planned", "SimSettings", "position_fields"]


@dataclass(frozen=True)
class Planned:
    """One command to send at simulated time `at`, about `subject`, and why.

    `subject` is the callsign or incident reference the command acts on ("" for a new
    call); a refusal puts it on a short cooldown so the simulator does not retry at once.
    """

    at: float
    type: str
    fields: Mapping[str, Any]
    subject: str = ""
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The command as a plain dict: its `type` and fields, without key or workstation."""
        return {"type": self.type, **self.fields}


@dataclass(frozen=True)
class SimSettings:
    """What shapes a simulation, besides its seed.

    - `rate`: calls per simulated minute (0.2 quiet night, 1 busy evening, 20+ major incident);
    - `auto_dispatch`: act as a virtual dispatcher (assign, result, acknowledge alarms);
    - `avl_every`: simulated seconds between position fixes of a moving unit (0: none);
    - `scene_time_factor`: multiplies time at scene and on refreshments (short scenarios);
    - `emergency_chance`: chance a unit arriving at a violent incident presses state 0;
    - `refs_chance`: chance a unit goes on refreshments after clearing;
    - `hands_off`: callsigns the simulator must not play (a person plays them);
    - `play_units`: play units at all (off: only calls and the control room);
    - `repeat_share`: chance a call is rung in again (and again) by a further call
      (`cadterm.sim.calls.draw_repeat`), from its own random stream: 0 leaves a seed's
      calls exactly as they were.
    """

    rate: float = 1.0
    auto_dispatch: bool = False
    avl_every: float = 10.0
    scene_time_factor: float = 1.0
    emergency_chance: float = 0.03
    refs_chance: float = 0.1
    hands_off: frozenset[str] = field(default_factory=frozenset)
    play_units: bool = True
    repeat_share: float = 0.0
    city: City = BRACKLEY

    def __post_init__(self) -> None:
        if self.rate < 0:
            raise ValueError(f"rate must be 0 or more calls a minute, not {self.rate}")
        if self.avl_every < 0:
            raise ValueError(f"avl_every must be 0 (off) or more seconds, not {self.avl_every}")
        if not 0 <= self.repeat_share < 1:
            raise ValueError(f"repeat_share must be from 0 to below 1, not {self.repeat_share}")
        if self.scene_time_factor <= 0:
            raise ValueError(f"scene_time_factor must be positive, not {self.scene_time_factor}")


def position_fields(position: Position) -> dict[str, float]:
    """A position as command fields (JSON-ready)."""
    return {"lat": position.lat, "lon": position.lon}
