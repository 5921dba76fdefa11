"""Events: the facts the server has recorded, in the order it recorded them.

Every event carries a global, gap-free `seq`, the server time `at`, the acting `operator`
and `workstation`, and a typed payload selected by `type`. `Event` is the discriminated
union of them all; `parse_event` and `EVENT_ADAPTER` decode one from JSON.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, TypeAdapter

from .domain import (
    Caller,
    Capability,
    ChatLine,
    Grade,
    Incident,
    LinkRelation,
    Location,
    Position,
    ReportChannel,
    Risk,
    SourceChannel,
    TriageOutcome,
    UnitState,
    UnitType,
)
from .types import type_required

__all__ = [
    "EVENT_ADAPTER",
    "EVENT_TYPES",
    "SERVER_EVENT_TYPES",
    "EmergencyAcknowledged",
    "Event",
    "EventBase",
    "IncidentClosed",
    "IncidentCreated",
    "IncidentGraded",
    "IncidentLinked",
    "IncidentRelocated",
    "IncidentReopened",
    "IncidentRetyped",
    "IncidentsArchived",
    "NoteAdded",
    "ReferencesReserved",
    "ReportReceived",
    "ReportTriaged",
    "RiskAssessed",
    "UnitAssigned",
    "UnitBookedOff",
    "UnitBookedOn",
    "UnitCheckedIn",
    "UnitLocated",
    "UnitStateChanged",
    "UnitUnassigned",
    "parse_event",
]


class EventBase(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=type_required)

    seq: StrictInt = Field(ge=1, description="Global, gap-free, increasing sequence number.")
    at: AwareDatetime = Field(description="Server time the event was recorded (UTC).")
    operator: str = Field(description="Id of the operator whose command caused it.")
    workstation: str = Field(description="Workstation the command came from.")
    amended: tuple[str, ...] = Field(
        default=(),
        exclude_if=lambda value: not value,
        description="What a storage migration changed in this event as first recorded, "
        "e.g. 'fixed_at: naive time read as UTC'. Absent when the event is as recorded.",
    )
    taken_at: AwareDatetime | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="When the operator took the action, if over a minute before `at` (a "
        "command sent late from an offline journal, or a paper log entry typed in "
        "afterwards). Absent when the action was recorded as it was taken.",
    )
    back_entered: bool = Field(
        default=False,
        exclude_if=lambda value: not value,
        description="True when the event was recorded after the fact: `taken_at` says "
        "when it happened. Absent (false) otherwise.",
    )


class IncidentCreated(EventBase):
    """A new incident was opened and given its log reference."""

    type: Literal["incident_created"] = "incident_created"
    reference: str
    reserved: bool = Field(
        default=False,
        exclude_if=lambda value: not value,
        description="True when `reference` came from the workstation's reserved block "
        "(opened while offline): the day's log counter does not move for it.",
    )
    log_day: date | None = Field(
        default=None,
        description="Control-room day the log number counts in (default: the UTC date of at).",
    )
    grade: Grade
    incident_type: str
    description: str = ""
    location: Location
    caller: Caller | None = None
    source: SourceChannel
    risk: Risk | None = None
    suggested_grade: Grade | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="The grade the force's grading rules suggested, when the call handler "
        "was shown one. Absent otherwise.",
    )
    grade_reason: str | None = Field(
        default=None,
        exclude_if=lambda value: value is None,
        description="Why the grade differs from `suggested_grade`. Absent when it does not.",
    )


class IncidentGraded(EventBase):
    """An incident's grade changed."""

    type: Literal["incident_graded"] = "incident_graded"
    reference: str
    grade: Grade
    reason: str | None = None


class IncidentRetyped(EventBase):
    """An incident's type (opening code) changed."""

    type: Literal["incident_retyped"] = "incident_retyped"
    reference: str
    incident_type: str


class IncidentRelocated(EventBase):
    """An incident's location was corrected or refined."""

    type: Literal["incident_relocated"] = "incident_relocated"
    reference: str
    location: Location


class RiskAssessed(EventBase):
    """The THRIVE risk assessment was recorded or revised (whole assessment replaced)."""

    type: Literal["risk_assessed"] = "risk_assessed"
    reference: str
    risk: Risk


class NoteAdded(EventBase):
    """A free-text entry was added to an incident's chronology."""

    type: Literal["note_added"] = "note_added"
    reference: str
    text: str


class UnitAssigned(EventBase):
    """A unit was sent to an incident; it is now en route."""

    type: Literal["unit_assigned"] = "unit_assigned"
    reference: str
    callsign: str
    diverted_from: str | None = Field(
        default=None, description="Incident the unit was taken off to answer this one."
    )


class UnitUnassigned(EventBase):
    """A unit was stood down from an incident and is available again."""

    type: Literal["unit_unassigned"] = "unit_unassigned"
    reference: str
    callsign: str
    reason: str | None = None


class UnitStateChanged(EventBase):
    """A unit's Airwave state changed.

    Moving an assigned unit to an available or off-duty state clears it from its incident
    (`cleared_from` names that incident).
    """

    type: Literal["unit_state_changed"] = "unit_state_changed"
    callsign: str
    state: UnitState
    cleared_from: str | None = None


class UnitLocated(EventBase):
    """A new position fix for a unit (AVL or reported)."""

    type: Literal["unit_located"] = "unit_located"
    callsign: str
    position: Position
    fixed_at: AwareDatetime = Field(description="When the fix was taken, which may be before `at`.")


class EmergencyAcknowledged(EventBase):
    """Someone in the control room acknowledged a unit's state-0 emergency."""

    type: Literal["emergency_acknowledged"] = "emergency_acknowledged"
    callsign: str


class UnitCheckedIn(EventBase):
    """A committed unit checked in safe: its officer-safety timer starts again."""

    type: Literal["unit_checked_in"] = "unit_checked_in"
    callsign: str
    reference: str | None = Field(
        default=None, description="The incident the unit was on, whose chronology records it."
    )
    note: str | None = None


class IncidentClosed(EventBase):
    """An incident was closed with a closing code; any units still on it were cleared."""

    type: Literal["incident_closed"] = "incident_closed"
    reference: str
    closing_code: str
    summary: str | None = None


class IncidentReopened(EventBase):
    """A closed incident was reopened.

    One closed so long ago that it had been archived (left the picture by an
    `incidents_archived` event) comes back whole in `archived`, as the server's history
    held it: every node and console puts it back into the picture at this seq, then
    reopens it.
    """

    type: Literal["incident_reopened"] = "incident_reopened"
    reference: str
    reason: str
    archived: Incident | None = Field(
        default=None,
        description="The incident as it was archived, when it was no longer in the "
        "picture; absent when it was.",
    )


class IncidentLinked(EventBase):
    """Two incidents were linked; a duplicate points at the incident it duplicates."""

    type: Literal["incident_linked"] = "incident_linked"
    reference: str
    other: str
    relation: LinkRelation


class IncidentsArchived(EventBase):
    """Incidents closed for longer than the server's window left the live picture.

    The server records this itself, never in answer to a command, so every node and
    console drops them at the same seq. They stay in the server's history: found by
    reference, by time and by text through the API (docs/protocol.md).
    """

    type: Literal["incidents_archived"] = "incidents_archived"
    references: list[str] = Field(
        min_length=1, description="The closed incidents that leave the picture."
    )


class UnitBookedOn(EventBase):
    """A unit came on duty (new callsign, or a known one returning)."""

    type: Literal["unit_booked_on"] = "unit_booked_on"
    callsign: str
    unit_type: UnitType
    capabilities: list[Capability] = Field(default_factory=list)
    home_sector: str | None = None
    state: UnitState = UnitState.AVAILABLE_ON_PATROL
    position: Position | None = None


class UnitBookedOff(EventBase):
    """A unit went off duty."""

    type: Literal["unit_booked_off"] = "unit_booked_off"
    callsign: str


class ReferencesReserved(EventBase):
    """A block of incident references was set aside for one workstation (`workstation`)."""

    type: Literal["references_reserved"] = "references_reserved"
    log_day: date = Field(description="Control-room day the references count in.")
    references: list[str] = Field(min_length=1, description="The references, in order.")


class ReportReceived(EventBase):
    """An online report (web form or chat) arrived and waits in the triage queue.

    Its text is as the website sent it: untrusted, never interpreted, neutralised where
    it is shown.
    """

    type: Literal["report_received"] = "report_received"
    report: str = Field(description="The report's id in the queue, e.g. R1042.")
    channel: ReportChannel
    text: str = ""
    transcript: list[ChatLine] = Field(default_factory=list)
    reporter: Caller | None = None
    location: str | None = None
    website_reference: str | None = None


class ReportTriaged(EventBase):
    """A call handler dealt with an online report: it left the triage queue.

    With outcome `created_incident` the incident `reference` was opened from it (grade,
    type and location as given here; description, caller and source from the report);
    with outcome `closed`, `reason` says why nothing was opened.
    """

    type: Literal["report_triaged"] = "report_triaged"
    report: str
    outcome: TriageOutcome
    reason: str | None = None
    reference: str | None = Field(default=None, description="The incident opened from it.")
    log_day: date | None = Field(
        default=None, description="Control-room day the incident's log number counts in."
    )
    grade: Grade | None = None
    incident_type: str | None = None
    location: Location | None = None


Event = Annotated[
    IncidentCreated
    | IncidentGraded
    | IncidentRetyped
    | IncidentRelocated
    | RiskAssessed
    | NoteAdded
    | UnitAssigned
    | UnitUnassigned
    | UnitStateChanged
    | UnitLocated
    | EmergencyAcknowledged
    | UnitCheckedIn
    | IncidentClosed
    | IncidentReopened
    | IncidentLinked
    | UnitBookedOn
    | UnitBookedOff
    | IncidentsArchived
    | ReferencesReserved
    | ReportReceived
    | ReportTriaged,
    Field(discriminator="type"),
]
"""Any event, told apart by its `type` field."""

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)

EVENT_TYPES: dict[str, type[EventBase]] = {
    cls.model_fields["type"].default: cls
    for cls in (
        IncidentCreated,
        IncidentGraded,
        IncidentRetyped,
        IncidentRelocated,
        RiskAssessed,
        NoteAdded,
        UnitAssigned,
        UnitUnassigned,
        UnitStateChanged,
        UnitLocated,
        EmergencyAcknowledged,
        UnitCheckedIn,
        IncidentClosed,
        IncidentReopened,
        IncidentLinked,
        UnitBookedOn,
        UnitBookedOff,
        IncidentsArchived,
        ReferencesReserved,
        ReportReceived,
        ReportTriaged,
    )
}

#: Events the server records on its own, never in answer to a command.
SERVER_EVENT_TYPES: frozenset[str] = frozenset({"incidents_archived"})


def parse_event(data: str | bytes | dict) -> Event:
    """Decode and validate one event from JSON text or a plain dict."""
    if isinstance(data, dict):
        return EVENT_ADAPTER.validate_python(data)
    return EVENT_ADAPTER.validate_json(data)
