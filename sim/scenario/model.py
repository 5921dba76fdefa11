"""What a scenario is: its steps, its expectations and its settings, as the file gives them.

The steps, expectations and the ``[simulator]`` table are strict pydantic models of the
TOML tables (an unknown field or a wrong type is refused); a validator with words of its
own for a problem raises them with `bad`. `format` validates a file into them, checks what
spans tables (aliases, step ids, times) and builds the `Scenario`; `run` plays them and
`checks` judges them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    StringConstraints,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

from cadterm.protocol.codes import INCIDENT_TYPES
from cadterm.protocol.domain import Grade, IncidentStatus, SourceChannel, UnitState
from cadterm.protocol.problems import ProblemCode

from ..city import UnknownPlace

__all__ = [
    "ACTIONS",
    "CHECKS",
    "EXPECTATION_MODELS",
    "STEP_MODELS",
    "TARGETS",
    "AssignStep",
    "CadDownRecord",
    "CallStep",
    "CommandConflicts",
    "CommandStep",
    "Expectation",
    "IncidentStatusIs",
    "NoEventLost",
    "OutageStep",
    "Recommended",
    "ReconcileStep",
    "ResourcedWithinTarget",
    "Scenario",
    "SimulatorPart",
    "Step",
    "TomlTable",
    "UnitStateStep",
    "bad",
    "did_you_mean",
    "kind",
    "show",
]

#: Attendance targets in simulated seconds by grade (grades 4 and 5 have none).
TARGETS: Mapping[int, float] = {1: 15 * 60, 2: 60 * 60, 3: 48 * 3600}

#: What a step's `expect` may say besides a problem code.
_EXPECT_WORDS = {"ok", "conflict"}


def bad(message: str) -> PydanticCustomError:
    """A validation error whose message is `message`, word for word."""
    return PydanticCustomError("scenario", "{why}", {"why": message})


def kind(value: Any) -> str:
    """How an error names the TOML kind of `value`."""
    return {dict: "a table", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


def show(value: Any) -> str:
    """A value as an error quotes it (tables and arrays by their kind)."""
    return repr(value) if not isinstance(value, dict | list) else kind(value)


def did_you_mean(value: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` naming the choice nearest to `value`, or nothing."""
    close = difflib.get_close_matches(value, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --- field types ------------------------------------------------------------------------------

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
Upper = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, to_upper=True)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]


def _grade(value: Any) -> Grade:
    if isinstance(value, bool) or value not in (1, 2, 3, 4, 5):
        raise bad(f"must be an integer 1-5, not {show(value)}")
    return Grade(value)


def _incident_type(value: str) -> str:
    if value not in INCIDENT_TYPES:
        raise bad(f"unknown incident type {value!r}{did_you_mean(value, INCIDENT_TYPES)}")
    return value


def _place(value: str, info: ValidationInfo) -> str:
    city = (info.context or {}).get("city")
    if city is not None:
        try:
            city.find(value)
        except UnknownPlace as exc:
            raise bad(str(exc)) from None
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise bad(f"must be a non-empty string, not {show(value)}")
    return value.strip()


def _source(value: Any) -> SourceChannel:
    text = _text(value)
    try:
        return SourceChannel(text)
    except ValueError:
        known = ", ".join(s.value for s in SourceChannel)
        raise bad(f"unknown source {text!r}; one of {known}") from None


def _outcome(text: str) -> str:
    text = text.lower()
    words = {code.value for code in ProblemCode} | _EXPECT_WORDS
    if text not in words:
        raise bad(
            f"unknown outcome {text!r}{did_you_mean(text, sorted(words))}; give 'ok', "
            "'conflict' (any 409 refusal) or a problem code such as 'version_conflict' "
            "or 'unit_committed'"
        )
    return text


def _unit_state(value: Any) -> UnitState:
    try:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError(f"must be a number 0-10 or a state name, not {show(value)}")
        state = UnitState.parse(value)
    except ValueError as exc:
        raise bad(str(exc)) from None
    if state == UnitState.OFF_DUTY:
        raise bad("off duty (11) is not a state change: use a command step with type 'book_off'")
    return state


def _assignee(value: str) -> str:
    return "recommended" if value.lower() == "recommended" else value.upper()


def _seed(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad(f"must be an integer or a string, not {show(value)}")
    return value


def _callsigns(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad(f"must be a list of callsigns, not {show(value)}")
    return tuple(v.upper() for v in value)


def _status(value: Any) -> IncidentStatus:
    text = _text(value).lower()
    try:
        return IncidentStatus(text)
    except ValueError:
        known = ", ".join(s.value for s in IncidentStatus)
        raise bad(f"unknown status {text!r}; one of {known}") from None


Outcome = Annotated[Text, AfterValidator(_outcome)]


class TomlTable(BaseModel):
    """One TOML table: strict types, no field the format does not know."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class _Numbered(TomlTable):
    """A table of an array (``[[steps]]``, ``[[expect]]``) that knows its place in it."""

    _index: int = PrivateAttr(-1)

    @property
    def index(self) -> int:
        """Its place in the file's array (0-based)."""
        return self._index

    def number(self, index: int) -> None:
        """Record its place in the file's array (`format` does, once validated)."""
        self._index = index


# --- steps ---------------------------------------------------------------------------------


def _console(value: Any) -> str:
    text = _text(value)
    if not text.replace("-", "").replace("_", "").isalnum() or len(text) > 20:
        raise bad(f"a console is named with letters, digits, '-' or '_' (at most 20), not {text!r}")
    return text


#: A console of the scenario: its own client, offline journal and picture on disk.
ConsoleName = Annotated[str, PlainValidator(_console)]


class _Step(_Numbered):
    at: NonNegative
    id: Text | None = None
    #: Issue the step through this console (its journal): while the backend is down
    #: it waits there, applied to that console's picture as provisional.
    console: ConsoleName | None = None

    @property
    def label(self) -> str:
        """How the report names the step: its id, else its place in the file."""
        return self.id or f"steps[{self.index}]"


class CallStep(_Step):
    """A call comes in: an incident is created and known as `alias` from then on."""

    action: Literal["call"]
    alias: Text
    grade: Annotated[Grade, PlainValidator(_grade)]
    incident_type: Annotated[Upper, AfterValidator(_incident_type)] = Field(alias="type")
    place: Annotated[Text, AfterValidator(_place)]
    house: Annotated[int, Field(ge=1)] | None = None
    description: Text = ""
    channel: Annotated[SourceChannel, PlainValidator(_source)] | None = Field(None, alias="source")
    expect: Outcome | None = None

    @property
    def source(self) -> SourceChannel:
        """How the call came in: as given, else 999 for grades 1-2 and 101 otherwise."""
        if self.channel is not None:
            return self.channel
        return SourceChannel.EMERGENCY_999 if self.grade <= 2 else SourceChannel.NON_EMERGENCY_101

    @property
    def label(self) -> str:
        """How the report names the step: its id, else its alias."""
        return self.id or self.alias


class UnitStateStep(_Step):
    """A unit reports a state (number or words)."""

    action: Literal["unit_state"]
    callsign: Upper
    state: Annotated[UnitState, PlainValidator(_unit_state)]
    expect: Outcome | None = None


class AssignStep(_Step):
    """The dispatcher sends `callsign` (or the recommended unit) to the incident `incident`."""

    action: Literal["assign"]
    incident: Text
    callsign: Annotated[Text, AfterValidator(_assignee)]  # a callsign, or "recommended"
    divert: bool = False
    expect: Outcome | None = None


class OutageStep(_Step):
    """The backend goes down for `seconds` simulated seconds, then comes back (same db)."""

    action: Literal["outage"]
    seconds: Positive


class ReconcileStep(_Step):
    """After CAD was down: a console deals with every command the server refused.

    `choice` is ``withdraw`` (with a `reason`, noted in the chronology), ``apply_anyway``
    or ``set_aside``. Waits first (bounded) until the console's journal has replayed.
    """

    action: Literal["reconcile"]
    console: ConsoleName
    choice: Literal["withdraw", "apply_anyway", "set_aside"]
    reason: Text | None = None


class CommandStep(_Step):
    """A raw command; strings "@alias" in it stand for that incident's reference."""

    action: Literal["command"]
    command: dict[str, Any]  # checked as a command by `format`, which names its fields
    expect: Outcome | None = None


Step = CallStep | UnitStateStep | AssignStep | OutageStep | CommandStep | ReconcileStep

#: The step model for each `action`.
STEP_MODELS: Mapping[str, type[_Step]] = {
    "call": CallStep,
    "unit_state": UnitStateStep,
    "assign": AssignStep,
    "outage": OutageStep,
    "command": CommandStep,
    "reconcile": ReconcileStep,
}
ACTIONS = tuple(STEP_MODELS)

# --- expectations ----------------------------------------------------------------------------


class ResourcedWithinTarget(_Numbered):
    """The incident got its first unit within its grade's target (or `target` seconds)."""

    check: Literal["resourced_within_target"]
    incident: Text
    target: Positive | None = None


class Recommended(_Numbered):
    """At time `at`, the first recommended unit for the incident is `callsign`."""

    check: Literal["recommended"]
    incident: Text
    at: NonNegative
    callsign: Upper


class NoEventLost(_Numbered):
    """A client subscribed throughout holds the server's state; every ack'd event is stored."""

    check: Literal["no_event_lost"]


class CommandConflicts(_Numbered):
    """Steps with an `expect` got what they expected (one step by id, or all of them)."""

    check: Literal["command_conflicts"]
    step: Text | None = None


class IncidentStatusIs(_Numbered):
    """At the end the incident has `status` (and `closing_code`, if given)."""

    check: Literal["incident_status"]
    incident: Text
    status: Annotated[IncidentStatus, PlainValidator(_status)]
    closing_code: Upper | None = None


class CadDownRecord(_Numbered):
    """After CAD was down, the record is whole: every command a console typed offline is
    on the server with the time it was typed and the back-entered flag, or was refused
    and listed for reconciliation (`conflicts` of them); `duplicates` pairs of incidents
    opened offline on two consoles are offered for linking, if given."""

    check: Literal["cad_down_record"]
    conflicts: Annotated[int, Field(ge=0)] = 0
    duplicates: Annotated[int, Field(ge=0)] | None = None


Expectation = (
    ResourcedWithinTarget
    | Recommended
    | NoEventLost
    | CommandConflicts
    | IncidentStatusIs
    | CadDownRecord
)

#: The expectation model for each `check`.
EXPECTATION_MODELS: Mapping[str, type[_Numbered]] = {
    "resourced_within_target": ResourcedWithinTarget,
    "recommended": Recommended,
    "no_event_lost": NoEventLost,
    "command_conflicts": CommandConflicts,
    "incident_status": IncidentStatusIs,
    "cad_down_record": CadDownRecord,
}
CHECKS = tuple(EXPECTATION_MODELS)


class SimulatorPart(TomlTable):
    """The `[simulator]` table: background calls and playing units during the run."""

    seed: Annotated[int | str, PlainValidator(_seed)] = 1
    rate: NonNegative = 0.0
    auto_dispatch: bool = False
    play_units: bool = True
    avl_every: NonNegative = 30.0
    scene_time_factor: Positive = 1.0
    emergency_chance: Annotated[float, Field(ge=0, le=1)] = 0.0
    hands_off: Annotated[tuple[str, ...], PlainValidator(_callsigns)] = ()

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
    #: Real seconds late after which the backend flags an action back-entered.
    back_entry_after: float = 60.0
    #: References each console holds for incidents opened while the backend is down.
    reserve: int = 0

    @property
    def consoles(self) -> tuple[str, ...]:
        """The consoles the steps name, in the order they first appear."""
        return tuple(dict.fromkeys(s.console for s in self.steps if s.console is not None))
