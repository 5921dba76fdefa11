"""Commands: what an operator asks the server to do.

A command is posted as JSON to ``POST /v1/commands``. Every command carries a
client-generated `idempotency_key` (a retry with the same key returns the first result
and changes nothing) and the `workstation` it came from; commands aimed at one incident
or unit may carry `expected_version`, and a stale one is refused as a conflict rather
than overwriting what someone else did. The operator is never in the body: the server
takes it from the bearer token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator

from .domain import (
    Caller,
    Capability,
    Grade,
    LinkRelation,
    Location,
    Position,
    Risk,
    Role,
    SourceChannel,
    UnitState,
    UnitType,
)
from .events import Event

__all__ = [
    "COMMAND_ADAPTER",
    "COMMAND_TYPES",
    "SUPERVISOR_ONLY",
    "AcknowledgeEmergency",
    "AddNote",
    "AssessRisk",
    "AssignUnit",
    "BookOff",
    "BookOn",
    "CloseIncident",
    "Command",
    "CommandBase",
    "CommandResult",
    "CreateIncident",
    "GradeIncident",
    "LinkIncidents",
    "LocateUnit",
    "RelocateIncident",
    "ReopenIncident",
    "RetypeIncident",
    "SetUnitState",
    "UnassignUnit",
    "may_issue",
    "parse_command",
]

_Callsign = Annotated[
    str, Field(min_length=1, max_length=40, description="Unit callsign, e.g. 'AB12' or 'ARV 1'.")
]
_Reference = Annotated[str, Field(min_length=1, max_length=40, description="Incident log ref.")]
_Text = Annotated[str, Field(min_length=1, max_length=4000)]


class CommandBase(BaseModel):
    """Fields every command carries."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str = Field(
        min_length=8,
        max_length=128,
        description="Client-generated unique key; a retry with the same key returns the "
        "first result.",
    )
    workstation: str = Field(
        min_length=1,
        max_length=64,
        description="The workstation the command came from, as registered with the server "
        "(its [[workstations]] config). An unknown one is refused as unknown_workstation; "
        "one the operator may not use as workstation_not_allowed.",
    )
    expected_version: int | None = Field(
        default=None,
        ge=0,
        description="Version of the target incident (or unit, for unit commands) the "
        "operator saw; a stale one is refused with a conflict.",
    )


class CreateIncident(CommandBase):
    """Open a new incident. The server assigns its log reference."""

    type: Literal["create_incident"] = "create_incident"
    grade: Grade
    incident_type: str = Field(min_length=1, max_length=40)
    location: Location
    description: str = Field(default="", max_length=4000)
    caller: Caller | None = None
    source: SourceChannel = SourceChannel.EMERGENCY_999
    risk: Risk | None = None


class GradeIncident(CommandBase):
    """Change an incident's grade."""

    type: Literal["grade_incident"] = "grade_incident"
    reference: _Reference
    grade: Grade
    reason: str | None = Field(default=None, max_length=1000)


class RetypeIncident(CommandBase):
    """Change an incident's type (opening code)."""

    type: Literal["retype_incident"] = "retype_incident"
    reference: _Reference
    incident_type: str = Field(min_length=1, max_length=40)


class RelocateIncident(CommandBase):
    """Correct or refine where an incident is."""

    type: Literal["relocate_incident"] = "relocate_incident"
    reference: _Reference
    location: Location


class AssessRisk(CommandBase):
    """Record the THRIVE risk assessment (replaces the previous one)."""

    type: Literal["assess_risk"] = "assess_risk"
    reference: _Reference
    risk: Risk


class AddNote(CommandBase):
    """Add a free-text entry to an incident's chronology."""

    type: Literal["add_note"] = "add_note"
    reference: _Reference
    text: _Text


class AssignUnit(CommandBase):
    """Send a unit to an incident; it goes en route.

    A unit already committed elsewhere is refused unless `divert` is true, in which
    case it is taken off its current incident. `expected_version` is the incident's.
    """

    type: Literal["assign_unit"] = "assign_unit"
    reference: _Reference
    callsign: _Callsign
    divert: bool = False


class UnassignUnit(CommandBase):
    """Stand a unit down from an incident."""

    type: Literal["unassign_unit"] = "unassign_unit"
    reference: _Reference
    callsign: _Callsign
    reason: str | None = Field(default=None, max_length=1000)


class SetUnitState(CommandBase):
    """Set a unit's Airwave state, given as a number (6) or words ("at scene")."""

    type: Literal["set_unit_state"] = "set_unit_state"
    callsign: _Callsign
    state: UnitState

    @field_validator("state", mode="before")
    @classmethod
    def _number_or_word(cls, value: object) -> UnitState:
        if isinstance(value, UnitState):
            return value
        if isinstance(value, int | str):
            return UnitState.parse(value)
        raise ValueError("unit state must be a number 0-11 or a state name")


class LocateUnit(CommandBase):
    """Record a position fix for a unit."""

    type: Literal["locate_unit"] = "locate_unit"
    callsign: _Callsign
    position: Position
    fixed_at: datetime | None = Field(
        default=None, description="When the fix was taken; the server's time if omitted."
    )


class AcknowledgeEmergency(CommandBase):
    """Acknowledge a unit's state-0 emergency alarm."""

    type: Literal["acknowledge_emergency"] = "acknowledge_emergency"
    callsign: _Callsign


class CloseIncident(CommandBase):
    """Close an incident with a closing code. Units still on it are cleared."""

    type: Literal["close_incident"] = "close_incident"
    reference: _Reference
    closing_code: str = Field(min_length=1, max_length=40)
    summary: str | None = Field(default=None, max_length=4000)


class ReopenIncident(CommandBase):
    """Reopen a closed incident (supervisors only)."""

    type: Literal["reopen_incident"] = "reopen_incident"
    reference: _Reference
    reason: _Text


class LinkIncidents(CommandBase):
    """Link `reference` to `other`; with `duplicate_of`, `reference` is the duplicate."""

    type: Literal["link_incidents"] = "link_incidents"
    reference: _Reference
    other: _Reference
    relation: LinkRelation = LinkRelation.DUPLICATE_OF


class BookOn(CommandBase):
    """Book a unit on duty, creating the callsign if it is new."""

    type: Literal["book_on"] = "book_on"
    callsign: _Callsign
    unit_type: UnitType
    capabilities: list[Capability] = Field(default_factory=list, max_length=20)
    home_sector: str | None = Field(default=None, max_length=40)
    state: UnitState = UnitState.AVAILABLE_ON_PATROL
    position: Position | None = None

    @field_validator("state", mode="before")
    @classmethod
    def _number_or_word(cls, value: object) -> UnitState:
        return SetUnitState._number_or_word(value)


class BookOff(CommandBase):
    """Book a unit off duty."""

    type: Literal["book_off"] = "book_off"
    callsign: _Callsign


Command = Annotated[
    CreateIncident
    | GradeIncident
    | RetypeIncident
    | RelocateIncident
    | AssessRisk
    | AddNote
    | AssignUnit
    | UnassignUnit
    | SetUnitState
    | LocateUnit
    | AcknowledgeEmergency
    | CloseIncident
    | ReopenIncident
    | LinkIncidents
    | BookOn
    | BookOff,
    Field(discriminator="type"),
]
"""Any command, told apart by its `type` field."""

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)

COMMAND_TYPES: dict[str, type[CommandBase]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        CreateIncident,
        GradeIncident,
        RetypeIncident,
        RelocateIncident,
        AssessRisk,
        AddNote,
        AssignUnit,
        UnassignUnit,
        SetUnitState,
        LocateUnit,
        AcknowledgeEmergency,
        CloseIncident,
        ReopenIncident,
        LinkIncidents,
        BookOn,
        BookOff,
    )
}

#: Command types only a supervisor may issue.
SUPERVISOR_ONLY = frozenset({"reopen_incident"})


def may_issue(role: Role, command_type: str) -> bool:
    """Whether an operator with `role` may issue a command of `command_type`."""
    if role == Role.READ_ONLY:
        return False
    if command_type in SUPERVISOR_ONLY:
        return role == Role.SUPERVISOR
    return True


def parse_command(data: str | bytes | dict) -> Command:
    """Decode and validate one command from JSON text or a plain dict."""
    if isinstance(data, dict):
        return COMMAND_ADAPTER.validate_python(data)
    return COMMAND_ADAPTER.validate_json(data)


class CommandResult(BaseModel):
    """The server's answer to an accepted command."""

    model_config = ConfigDict(extra="forbid")

    idempotency_key: str
    seq: int = Field(description="Seq of the event the command caused; wait for it.")
    event: Event
    replayed: bool = Field(
        default=False, description="True when this is the stored result of an earlier try."
    )
