"""Commands: what an operator asks the server to do.

A command is posted as JSON to ``POST /v1/commands``. Every command carries a
client-generated `idempotency_key` (a retry with the same key returns the first result
and changes nothing) and the `workstation` it came from; commands aimed at one incident
or unit may carry `expected_version`, and a stale one is refused as a conflict rather
than overwriting what someone else did. The operator is never in the body: the server
takes it from the bearer token.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    TypeAdapter,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from .domain import (
    AVAILABLE_STATES,
    STATE_WORDS,
    Caller,
    Capability,
    Grade,
    LinkRelation,
    Location,
    Position,
    ReportChannel,
    Risk,
    Role,
    SourceChannel,
    TriageOutcome,
    UnitState,
    UnitType,
)
from .events import Event
from .problems import Problem
from .types import (
    Callsign,
    Code,
    Note,
    Reference,
    ReportId,
    RequiredNote,
    RequiredText,
    Sector,
    Text,
    UtcTime,
    Version,
    WorkstationId,
    integer_only,
    reject_non_integer,
    type_required,
)

__all__ = [
    "COMMAND_ADAPTER",
    "COMMAND_TYPES",
    "INTAKE_ONLY",
    "MAX_BATCH_COMMANDS",
    "MAX_REPORT_CHARACTERS",
    "MAX_RESERVED_REFERENCES",
    "SUPERVISOR_ONLY",
    "AcknowledgeEmergency",
    "AddNote",
    "AssessRisk",
    "AssignUnit",
    "BatchAnswer",
    "BatchResult",
    "BookOff",
    "BookOn",
    "CallerInput",
    "ChatLineInput",
    "CheckInUnit",
    "CloseIncident",
    "Command",
    "CommandBase",
    "CommandBatch",
    "CommandResult",
    "CreateIncident",
    "GradeIncident",
    "LinkIncidents",
    "LocateUnit",
    "LocationInput",
    "RelocateIncident",
    "ReopenIncident",
    "ReserveReferences",
    "RetypeIncident",
    "RiskInput",
    "SetUnitState",
    "SubmitReport",
    "TriageReport",
    "UnassignUnit",
    "may_issue",
    "parse_command",
]

_Callsign = Annotated[Callsign, Field(description="Unit callsign, e.g. 'AB12' or 'ARV 1'.")]
_Reference = Annotated[Reference, Field(description="Incident log reference.")]
_Text = Annotated[RequiredNote, Field(min_length=1, max_length=4000)]
# A reason may be left out; one that is given must say something.
_Reason = Annotated[RequiredText, Field(max_length=1000)]
# A reason whose absence has a problem code of its own, given when it is blank too.
_NeededReason = Annotated[Text, Field(max_length=1000)]
_Grade = Annotated[Grade, BeforeValidator(integer_only)]


class LocationInput(Location):
    """Where an incident is, as a command gives it: printable address, typeable sector."""

    address: RequiredText = Field(min_length=1, max_length=500)
    position: Position | None = None
    sector: Sector | None = None


class CallerInput(Caller):
    """The person who reported the incident, as a command gives it: printable text."""

    name: Text | None = Field(default=None, max_length=200)
    phone: Text | None = Field(default=None, max_length=40)
    relationship: Text | None = Field(
        default=None, max_length=200, description="e.g. victim, witness, neighbour"
    )


_Heading = Annotated[Note, Field(max_length=2000)]


def _fields_of(value: object) -> object:
    # A `Location` (or `Caller`, `Risk`) built in code is checked like one sent as JSON.
    return value.model_dump(exclude_unset=True) if isinstance(value, BaseModel) else value


class RiskInput(Risk):
    """A THRIVE assessment as a command gives it: each heading printable text."""

    threat: _Heading | None = None
    harm: _Heading | None = None
    risk: _Heading | None = None
    investigation: _Heading | None = None
    vulnerability: _Heading | None = None
    engagement: _Heading | None = None


_Location = Annotated[LocationInput, BeforeValidator(_fields_of)]
_Caller = Annotated[CallerInput, BeforeValidator(_fields_of)]
_Risk = Annotated[RiskInput, BeforeValidator(_fields_of)]


class CommandBase(BaseModel):
    """Fields every command carries."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=type_required)

    idempotency_key: str = Field(
        min_length=8,
        max_length=128,
        pattern=r"^[!-~]+$",  # printable ASCII, no spaces: safe to log and to echo
        description="Client-generated unique key; a retry with the same key returns the "
        "first result.",
    )
    workstation: WorkstationId = Field(
        description="The workstation the command came from, as registered with the server "
        "(its [[workstations]] config). An unknown one is refused as unknown_workstation; "
        "one the operator may not use as workstation_not_allowed.",
    )
    expected_version: Version | None = Field(
        default=None,
        description="Version of the target incident (or unit, for unit commands) the "
        "operator saw; a stale one is refused with a conflict.",
    )
    taken_at: UtcTime | None = Field(
        default=None,
        description="When the operator took the action: typed it (a console stamps every "
        "command as it is typed, so one sent late from its offline journal keeps its "
        "time), or did it on paper while CAD was down and types it in afterwards. Taken "
        "more than a minute before the server records it, the event keeps it as "
        "taken_at and is flagged back_entered. Refused when over a minute in the future "
        "(clock skew) or over 7 days old. Absent: now.",
    )


class CreateIncident(CommandBase):
    """Open a new incident. The server assigns its log reference."""

    type: Literal["create_incident"] = "create_incident"
    grade: _Grade
    incident_type: Code
    location: _Location
    description: Note = Field(default="", max_length=4000)
    caller: _Caller | None = None
    source: SourceChannel = SourceChannel.EMERGENCY_999
    risk: _Risk | None = None
    suggested_grade: _Grade | None = Field(
        default=None,
        description="The grade the force's grading rules suggest for the call as recorded "
        "(the console's call form sends it). When `grade` differs, `grade_reason` is "
        "required: a call handler may override the guidance, but says why.",
    )
    grade_reason: _NeededReason | None = Field(
        default=None,
        description="Why the incident is graded otherwise than `suggested_grade`; kept in "
        "the chronology.",
    )
    reference: Reference | None = Field(
        default=None,
        description="A reference from this workstation's reserved block (see "
        "reserve_references), for an incident opened while no backend answered, so it "
        "keeps the reference the dispatcher was shown. Absent: the next reference.",
    )


class GradeIncident(CommandBase):
    """Change an incident's grade."""

    type: Literal["grade_incident"] = "grade_incident"
    reference: _Reference
    grade: _Grade
    reason: _Reason | None = None


class RetypeIncident(CommandBase):
    """Change an incident's type (opening code)."""

    type: Literal["retype_incident"] = "retype_incident"
    reference: _Reference
    incident_type: Code


class RelocateIncident(CommandBase):
    """Correct or refine where an incident is."""

    type: Literal["relocate_incident"] = "relocate_incident"
    reference: _Reference
    location: _Location


class AssessRisk(CommandBase):
    """Record the THRIVE risk assessment (replaces the previous one)."""

    type: Literal["assess_risk"] = "assess_risk"
    reference: _Reference
    risk: _Risk


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
    divert: StrictBool = False


class UnassignUnit(CommandBase):
    """Stand a unit down from an incident."""

    type: Literal["unassign_unit"] = "unassign_unit"
    reference: _Reference
    callsign: _Callsign
    reason: _Reason | None = None


def _state_among(allowed: frozenset[UnitState], refusal: str) -> Any:
    """A unit state given as a number or words, refused outside `allowed`.

    These refusals depend on no picture, so they are made at the door and the schema
    lists exactly what is accepted.
    """

    def validate(value: object) -> UnitState:
        if not isinstance(value, str):
            integer_only(value)  # 6.0 and true are refused; "6" is a state's words
        state = value if isinstance(value, UnitState) else UnitState.parse(value)  # type: ignore[arg-type]
        if state not in allowed:
            raise PydanticCustomError(
                "unit_state", refusal, {"state": f"{int(state)} {state.label}"}
            )
        return state

    schema = {
        "anyOf": [
            {"type": "integer", "enum": sorted(int(s) for s in allowed)},
            {"type": "string", "enum": sorted(w for w, s in STATE_WORDS.items() if s in allowed)},
        ],
        "description": "An Airwave state number, or its words (any case and spacing).",
    }
    return Annotated[UnitState, BeforeValidator(validate), WithJsonSchema(schema)]


_NewState = _state_among(
    frozenset(UnitState) - {UnitState.OFF_DUTY},
    "a unit goes off duty with book_off, not with a state change",
)
_BookOnState = _state_among(
    AVAILABLE_STATES | {UnitState.REFRESHMENTS},
    "a unit books on as on duty, available or at refreshments, not {state}",
)


class SetUnitState(CommandBase):
    """Set a unit's Airwave state, given as a number (6) or words ("at scene")."""

    type: Literal["set_unit_state"] = "set_unit_state"
    callsign: _Callsign
    state: _NewState


class LocateUnit(CommandBase):
    """Record a position fix for a unit."""

    type: Literal["locate_unit"] = "locate_unit"
    callsign: _Callsign
    position: Position
    fixed_at: UtcTime | None = Field(
        default=None, description="When the fix was taken; the server's time if omitted."
    )


class AcknowledgeEmergency(CommandBase):
    """Acknowledge a unit's state-0 emergency alarm."""

    type: Literal["acknowledge_emergency"] = "acknowledge_emergency"
    callsign: _Callsign


class CheckInUnit(CommandBase):
    """Record that a committed unit has checked in safe; it restarts its safety timer.

    Refused for a unit off duty, for one committed to nothing, and for one in state 0 (a
    check-in never stands in for dealing with an emergency).
    """

    type: Literal["check_in_unit"] = "check_in_unit"
    callsign: _Callsign
    note: _Reason | None = Field(
        default=None, description="What the officer said, kept in the chronology."
    )


class CloseIncident(CommandBase):
    """Close an incident with a closing code. Units still on it are cleared."""

    type: Literal["close_incident"] = "close_incident"
    reference: _Reference
    closing_code: Code
    summary: Note | None = Field(default=None, max_length=4000)


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
    home_sector: Sector | None = None
    state: _BookOnState = UnitState.AVAILABLE_ON_PATROL
    position: Position | None = None


class BookOff(CommandBase):
    """Book a unit off duty."""

    type: Literal["book_off"] = "book_off"
    callsign: _Callsign


#: The most unused references one workstation may hold.
MAX_RESERVED_REFERENCES = 200


class ReserveReferences(CommandBase):
    """Reserve a block of incident references for this workstation's offline use."""

    type: Literal["reserve_references"] = "reserve_references"
    count: Annotated[int, BeforeValidator(reject_non_integer)] = Field(
        ge=1,
        le=100,
        description="How many references to reserve (the workstation may hold at most "
        f"{MAX_RESERVED_REFERENCES} unused).",
    )


#: The most characters one online report may hold: its words, or its transcript's lines.
MAX_REPORT_CHARACTERS = 20_000

# Text from the public through a website is kept as given (evidence of what was said):
# only its length is bounded here. It is neutralised where it is shown.
_PublicText = Annotated[str, Field(max_length=MAX_REPORT_CHARACTERS)]


class ChatLineInput(BaseModel):
    """One line of a chat transcript as a website sends it."""

    model_config = ConfigDict(extra="forbid")

    at: UtcTime | None = Field(default=None, description="When it was written (with an offset).")
    sender: str = Field(
        min_length=1, max_length=80, description="Who wrote it: 'public', 'agent', a name."
    )
    text: str = Field(max_length=4000)


class ReporterInput(BaseModel):
    """The member of the public who made an online report, as the website took it down."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    relationship: str | None = Field(
        default=None, max_length=200, description="e.g. victim, witness, neighbour"
    )


class SubmitReport(CommandBase):
    """A report from a force's website (a web form or a chat), into the triage queue.

    Only an operator with the `intake` role may submit one, and that role may do nothing
    else. A web form report has `text`; a chat report has its `transcript`, and not the
    other (the server refuses a mismatch as report_incomplete, a rule across fields as
    self_link is). The text is stored exactly as sent (markup and control characters
    included) and neutralised where it is shown; its size is bounded
    (`MAX_REPORT_CHARACTERS` in all, else report_too_long).
    """

    type: Literal["submit_report"] = "submit_report"
    channel: ReportChannel
    text: _PublicText = ""
    transcript: list[ChatLineInput] = Field(default_factory=list, max_length=200)
    reporter: ReporterInput | None = None
    location: str | None = Field(
        default=None, max_length=500, description="Where the reporter said, as they said it."
    )
    website_reference: str | None = Field(
        default=None, max_length=100, description="The website's own reference for it."
    )


class TriageReport(CommandBase):
    """Deal with an online report: create an incident from it, or close it with a reason.

    With outcome `created_incident`, `grade`, `incident_type` and `location` are
    required and the server opens the incident (its description is the report's words,
    its caller the reporter, its source `online`). With outcome `closed`, `reason` is
    required, and the fields of the other outcome are refused (triage_incomplete, a rule
    across fields). Either way the report leaves the queue; a report already dealt with
    is refused as unknown_report.
    """

    type: Literal["triage_report"] = "triage_report"
    report: ReportId
    outcome: TriageOutcome
    reason: _NeededReason | None = None
    grade: _Grade | None = None
    incident_type: Code | None = None
    location: _Location | None = None


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
    | CheckInUnit
    | CloseIncident
    | ReopenIncident
    | LinkIncidents
    | BookOn
    | BookOff
    | ReserveReferences
    | SubmitReport
    | TriageReport,
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
        CheckInUnit,
        CloseIncident,
        ReopenIncident,
        LinkIncidents,
        BookOn,
        BookOff,
        ReserveReferences,
        SubmitReport,
        TriageReport,
    )
}

#: Command types only a supervisor may issue.
SUPERVISOR_ONLY = frozenset({"reopen_incident"})
#: Command types only an intake login (a force's website) may issue; it may issue no other.
INTAKE_ONLY = frozenset({"submit_report"})


def may_issue(role: Role, command_type: str) -> bool:
    """Whether an operator with `role` may issue a command of `command_type`."""
    if role == Role.READ_ONLY:
        return False
    if role == Role.INTAKE or command_type in INTAKE_ONLY:
        return role == Role.INTAKE and command_type in INTAKE_ONLY
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

    model_config = ConfigDict(extra="forbid", json_schema_extra=type_required)

    idempotency_key: str
    seq: StrictInt = Field(description="Seq of the event the command caused; wait for it.")
    event: Event
    replayed: bool = Field(
        default=False, description="True when this is the stored result of an earlier try."
    )


#: The most commands one `POST /v1/commands/batch` may carry.
MAX_BATCH_COMMANDS = 100


class CommandBatch(BaseModel):
    """Several commands in one request (`POST /v1/commands/batch`), decided in order.

    Not a transaction: each command is decided on its own, seeing the effect of those
    before it, and keeps its own idempotency key. A batch with any malformed command is
    refused whole, before anything is decided.
    """

    model_config = ConfigDict(extra="forbid")

    commands: list[Command] = Field(min_length=1, max_length=MAX_BATCH_COMMANDS)


class BatchAnswer(BaseModel):
    """One command's answer within a batch: the status it would have had on its own."""

    model_config = ConfigDict(extra="forbid")

    status: StrictInt = Field(description="200 with a command result, else the problem's.")
    body: CommandResult | Problem


class BatchResult(BaseModel):
    """The answer to a batch: one answer for each command, in the order they were sent."""

    model_config = ConfigDict(extra="forbid")

    answers: list[BatchAnswer]
