"""What a scenario is, once read: its steps, its expectations and its settings.

Plain frozen dataclasses; `format` builds them from a TOML file (checking
every field), `run` plays them and `checks` judges them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cadterm.protocol.domain import Grade, IncidentStatus, SourceChannel, UnitState

__all__ = [
    "TARGETS",
    "AssignStep",
    "CallStep",
    "CommandConflicts",
    "CommandStep",
    "Expectation",
    "IncidentStatusIs",
    "NoEventLost",
    "OutageStep",
    "Recommended",
    "ResourcedWithinTarget",
    "Scenario",
    "SimulatorPart",
    "Step",
    "UnitStateStep",
]

#: Attendance targets in simulated seconds by grade (grades 4 and 5 have none).
TARGETS: Mapping[int, float] = {1: 15 * 60, 2: 60 * 60, 3: 48 * 3600}


# --- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Step:
    at: float
    index: int
    id: str | None

    @property
    def label(self) -> str:
        """How the report names the step: its id, else its place in the file."""
        return self.id or f"steps[{self.index}]"


@dataclass(frozen=True)
class CallStep(_Step):
    """A call comes in: an incident is created and known as `alias` from then on."""

    alias: str
    grade: Grade
    incident_type: str
    place: str
    house: int | None
    description: str
    source: SourceChannel
    expect: str | None = None

    @property
    def label(self) -> str:
        """How the report names the step: its id, else its alias."""
        return self.id or self.alias


@dataclass(frozen=True)
class UnitStateStep(_Step):
    """A unit reports a state (number or words)."""

    callsign: str
    state: UnitState
    expect: str | None = None


@dataclass(frozen=True)
class AssignStep(_Step):
    """The dispatcher sends `callsign` (or the recommended unit) to the incident `incident`."""

    incident: str
    callsign: str  # a callsign, or "recommended"
    divert: bool
    expect: str | None = None


@dataclass(frozen=True)
class OutageStep(_Step):
    """The backend goes down for `seconds` simulated seconds, then comes back (same db)."""

    seconds: float


@dataclass(frozen=True)
class CommandStep(_Step):
    """A raw command; strings "@alias" in it stand for that incident's reference."""

    command: Mapping[str, Any]
    expect: str | None = None


Step = CallStep | UnitStateStep | AssignStep | OutageStep | CommandStep

# --- expectations ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Expectation:
    index: int


@dataclass(frozen=True)
class ResourcedWithinTarget(_Expectation):
    """The incident got its first unit within its grade's target (or `target` seconds)."""

    incident: str
    target: float | None


@dataclass(frozen=True)
class Recommended(_Expectation):
    """At time `at`, the first recommended unit for the incident is `callsign`."""

    incident: str
    at: float
    callsign: str


@dataclass(frozen=True)
class NoEventLost(_Expectation):
    """A client subscribed throughout holds the server's state; every ack'd event is stored."""


@dataclass(frozen=True)
class CommandConflicts(_Expectation):
    """Steps with an `expect` got what they expected (one step by id, or all of them)."""

    step: str | None


@dataclass(frozen=True)
class IncidentStatusIs(_Expectation):
    """At the end the incident has `status` (and `closing_code`, if given)."""

    incident: str
    status: IncidentStatus
    closing_code: str | None


Expectation = (
    ResourcedWithinTarget | Recommended | NoEventLost | CommandConflicts | IncidentStatusIs
)


@dataclass(frozen=True)
class SimulatorPart:
    """The `[simulator]` table: background calls and playing units during the run."""

    seed: int | str = 1
    rate: float = 0.0
    auto_dispatch: bool = False
    play_units: bool = True
    avl_every: float = 30.0
    scene_time_factor: float = 1.0
    emergency_chance: float = 0.0
    hands_off: tuple[str, ...] = ()

    @property
    def enabled(self) -> bool:
        """Whether a simulator runs at all."""
        return self.play_units or self.rate > 0 or self.auto_dispatch


@dataclass(frozen=True)
class Scenario:
    """A checked scenario, ready to run."""

    name: str
    description: str
    speed: float
    duration: float
    force: bool
    simulator: SimulatorPart
    steps: tuple[Step, ...]
    expectations: tuple[Expectation, ...]
    source: str = "<scenario>"
    calls: Mapping[str, CallStep] = field(default_factory=dict)
