"""The fold: how one event changes the dispatch picture.

Server and client apply events with this same code, so a client that has seen the same
events holds exactly the server's state. It does no I/O and reads no clock: every time
it records comes from the event. `apply` changes the state in place (a live board folds
thousands of events a second, and copying the picture each time would cost more than
the event) and returns what it touched, so a view can repaint only that.

Errors::

    FoldError              the event does not fit this state
    ├── SequenceError      its seq is not exactly one past the state's seq
    └── InconsistentEvent  it names an incident or unit the state does not hold
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from .domain import (
    AVAILABLE_STATES,
    ChronologyEntry,
    Incident,
    IncidentLink,
    IncidentStatus,
    LinkRelation,
    Position,
    Report,
    Risk,
    SourceChannel,
    TriageOutcome,
    Unit,
    UnitState,
)
from .events import (
    EmergencyAcknowledged,
    Event,
    EventBase,
    IncidentClosed,
    IncidentCreated,
    IncidentGraded,
    IncidentLinked,
    IncidentRelocated,
    IncidentReopened,
    IncidentRetyped,
    IncidentsArchived,
    NoteAdded,
    ReferencesReserved,
    ReportReceived,
    ReportTriaged,
    RiskAssessed,
    UnitAssigned,
    UnitBookedOff,
    UnitBookedOn,
    UnitCheckedIn,
    UnitLocated,
    UnitStateChanged,
    UnitUnassigned,
)

__all__ = [
    "Changes",
    "DispatchState",
    "FoldError",
    "InconsistentEvent",
    "SequenceError",
    "apply",
    "fold",
    "share_field_sets",
]


_M = TypeVar("_M", bound=BaseModel)


class FoldError(Exception):
    """The event cannot be applied to this state."""


class SequenceError(FoldError):
    """The event's seq is not the next one: an event was missed or repeated."""

    def __init__(self, expected: int, got: int) -> None:
        self.expected = expected
        self.got = got
        kind = "gap" if got > expected else "duplicate"
        super().__init__(f"sequence {kind}: expected seq {expected}, got {got}")


class InconsistentEvent(FoldError):
    """The event refers to something the state does not hold."""


class DispatchState(BaseModel):
    """The whole dispatch picture after applying every event up to `seq`."""

    model_config = ConfigDict(extra="forbid")

    seq: StrictInt = Field(default=0, ge=0, description="Seq of the last event applied.")
    incidents: dict[str, Incident] = Field(default_factory=dict)
    units: dict[str, Unit] = Field(default_factory=dict)
    log_day: date | None = Field(default=None, description="Day of the last log reference.")
    log_number: StrictInt = Field(default=0, description="Last log number issued on `log_day`.")
    reserved: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Incident references reserved for each workstation (by id) and not "
        "used yet, for incidents opened while no backend answers.",
    )
    reports: dict[str, Report] = Field(
        default_factory=dict,
        description="Online reports waiting in the triage queue, by id; a report leaves "
        "it when triaged (report_triaged).",
    )


@dataclass
class Changes:
    """What an event touched: incident references, unit callsigns and online reports.

    `replaced` says a snapshot replaced the whole picture: a view must then re-read all
    of it (the sets still name what the old and the new picture held).
    """

    incidents: set[str] = field(default_factory=set)
    units: set[str] = field(default_factory=set)
    replaced: bool = False
    reports: set[str] = field(default_factory=set)

    def update(self, other: Changes) -> None:
        """Merge another set of changes into this one."""
        self.incidents |= other.incidents
        self.units |= other.units
        self.reports |= other.reports
        self.replaced = self.replaced or other.replaced

    def __bool__(self) -> bool:
        return bool(self.incidents or self.units or self.reports or self.replaced)


def fold(events: Iterable[Event], state: DispatchState | None = None) -> DispatchState:
    """Apply events in order to `state` (or to an empty picture) and return it."""
    state = state if state is not None else DispatchState()
    for event in events:
        apply(state, event)
    return state


def apply(state: DispatchState, event: Event, changes: Changes | None = None) -> Changes:
    """Apply one event to `state` in place and return what it changed.

    Pass `changes` to add what this event touched to an existing set (a consumer that
    batches changes between repaints saves building one per event). Raises
    `SequenceError` unless ``event.seq == state.seq + 1``, and `InconsistentEvent` if the
    event names something the state does not hold. On error the state is left exactly
    as it was (though `changes` may name what the event would have touched).
    """
    seq = event.seq
    if seq != state.seq + 1:
        raise SequenceError(state.seq + 1, seq)
    if changes is None:
        changes = Changes()
    _HANDLERS[type(event)](state, event, changes)
    state.__dict__["seq"] = seq
    return changes


# --- helpers -------------------------------------------------------------------------
#
# The hot paths write fields through the model's ``__dict__``: these models never
# validate on assignment, and pydantic's ``__setattr__`` costs ~0.4 us a call, several
# times per event -- a fifth of a live client's ingest budget (bench/bench_ingest.py).
# For the same reason they name enum members through module constants and take a
# state's words from a table: in Python 3.11 reading a member off its class costs
# ~0.1 us, and ``.label`` (built from ``.name``) several times that.

_OPEN = IncidentStatus.OPEN
_RESOURCED = IncidentStatus.RESOURCED
_STATUS_AT_SCENE = IncidentStatus.AT_SCENE
_CLOSED = IncidentStatus.CLOSED
_EMERGENCY = UnitState.EMERGENCY
_EN_ROUTE = UnitState.EN_ROUTE
_AT_SCENE = UnitState.AT_SCENE
_AVAILABLE_ON_PATROL = UnitState.AVAILABLE_ON_PATROL
_OFF_DUTY = UnitState.OFF_DUTY
#: Each state's words, as ``UnitState.label`` and in lower case, for chronology lines.
_STATE_LABEL = {state: state.label for state in UnitState}
_STATE_LOWER = {state: state.label.lower() for state in UnitState}
_SOURCE_WORD = {source: source.value for source in SourceChannel}

# Setting pydantic's own slots through their descriptors: a third faster than
# ``object.__setattr__`` by name.
_new = object.__new__
_set_dict = object.__setattr__
_set_fields_set = BaseModel.__dict__["__pydantic_fields_set__"].__set__
_set_extra = BaseModel.__dict__["__pydantic_extra__"].__set__
_set_private = BaseModel.__dict__["__pydantic_private__"].__set__


def _incident(state: DispatchState, reference: str) -> Incident:
    try:
        return state.incidents[reference]
    except KeyError:
        raise InconsistentEvent(f"unknown incident {reference}") from None


def _unit(state: DispatchState, callsign: str) -> Unit:
    try:
        return state.units[callsign]
    except KeyError:
        raise InconsistentEvent(f"unknown unit {callsign}") from None


def _record(incident: Incident, event: EventBase, kind: str, text: str) -> None:
    """Bump the incident's version and write who did what to its chronology."""
    fields = incident.__dict__
    version = fields["version"] + 1
    fields["version"] = version
    at = event.at
    fields["updated_at"] = at
    # `_trusted(ChronologyEntry, ...)` written out: half of all events write a line.
    entry = _new(ChronologyEntry)
    _set_dict(
        entry,
        "__dict__",
        {
            "at": at,
            "seq": event.seq,
            "version": version,
            "operator": event.operator,
            "workstation": event.workstation,
            "kind": kind,
            "text": text,
            "taken_at": event.taken_at,
        },
    )
    _set_fields_set(entry, _CHRONOLOGY_FIELDS)
    _set_extra(entry, None)
    _set_private(entry, None)
    fields["chronology"].append(entry)


_ALL_FIELDS: dict[type, set[str]] = {}


def _all_fields(cls: type[BaseModel]) -> set[str]:
    """The one set naming every field of `cls` that instances may share."""
    fields = _ALL_FIELDS.get(cls)
    if fields is None:
        fields = _ALL_FIELDS[cls] = set(cls.model_fields)
    return fields


_CHRONOLOGY_FIELDS = _all_fields(ChronologyEntry)
_SHARED: dict[tuple[type, frozenset[str]], set[str]] = {}


def _share(model: BaseModel) -> None:
    names = model.__pydantic_fields_set__
    key = (type(model), frozenset(names))
    shared = _SHARED.get(key)
    if shared is None:
        shared = _SHARED[key] = set(names)
    object.__setattr__(model, "__pydantic_fields_set__", shared)


def share_field_sets(state: DispatchState) -> None:
    """Let the models a picture holds that nothing changes in place (chronology lines,
    locations, positions, callers, risk assessments, links) share their sets of field
    names, one per kind and content, instead of holding one each.

    For a picture read from JSON (a snapshot, a saved picture): each of those sets is an
    object the garbage collector walks in every full collection for as long as the
    picture is held, a third of all it walks in a busy shift's picture. They are equal
    sets, never added to (the fold replaces these models, never assigns to them).
    """
    for incident in state.incidents.values():
        location = incident.location
        _share(location)
        if location.position is not None:
            _share(location.position)
        if incident.caller is not None:
            _share(incident.caller)
        _share(incident.risk)
        for entry in incident.chronology:
            _share(entry)
        for link in incident.links:
            _share(link)
    for unit in state.units.values():
        if unit.position is not None:
            _share(unit.position)


def _kept(model: _M) -> _M:
    """`model`, about to be kept in the picture, sharing its set of field names.

    A validated model has a set of the fields its input named; when that is every
    field the shared set says the same, and the model's own set is freed while it is
    young instead of being walked by every full collection for as long as it is kept.
    """
    cls = type(model)
    shared = _ALL_FIELDS.get(cls) or _all_fields(cls)
    if model.__pydantic_fields_set__ == shared:
        _set_fields_set(model, shared)
    return model


def _trusted(cls: type[_M], values: dict) -> _M:
    """An instance of `cls` from values that are already valid, without validating.

    Every value here comes from an event that was validated when it was decoded or
    built, so validating again would only cost time: this is pydantic's
    ``model_construct`` without its per-call bookkeeping, at a third of its cost.
    `values` must name every field, in the model's order (a dump follows it);
    tests/test_fold.py checks the result equals the validated model.
    """
    instance = _new(cls)
    _set_dict(instance, "__dict__", values)
    # One set of field names shared by every instance of `cls` made here: each names
    # every field, so nothing could add to it, and a set per chronology line was a
    # third of all the objects the garbage collector walks in a full picture.
    _set_fields_set(instance, _ALL_FIELDS.get(cls) or _all_fields(cls))
    _set_extra(instance, None)
    _set_private(instance, None)
    return instance


def _touch_unit(unit: Unit, event: EventBase) -> None:
    unit.__dict__["version"] += 1


def _set_state(unit: Unit, state: UnitState, event: EventBase) -> None:
    fields = unit.__dict__
    if fields["state"] != state:
        fields["state"] = state
        fields["state_since"] = event.at
        # An acknowledgement belongs to one state-0 alarm: entering or leaving state 0
        # clears it.
        fields["emergency_acknowledged_by"] = None


def _refresh_status(state: DispatchState, incident: Incident) -> None:
    """Derive open / resourced / at scene from the units on the incident."""
    fields = incident.__dict__
    if fields["status"] == _CLOSED:
        return
    assigned = fields["assigned"]
    if not assigned:
        fields["status"] = _OPEN
        return
    units = state.units
    for callsign in assigned:
        if units[callsign].state == _AT_SCENE:
            fields["status"] = _STATUS_AT_SCENE
            return
    fields["status"] = _RESOURCED


def _release(state: DispatchState, incident: Incident, callsign: str, changes: Changes) -> Unit:
    """Take a unit off an incident, leaving its state to the caller."""
    unit = _unit(state, callsign)
    assigned = incident.assigned
    if callsign in assigned:
        assigned.remove(callsign)
    fields = unit.__dict__
    if fields["incident"] == incident.reference:
        fields["incident"] = None
    changes.units.add(callsign)
    return unit


# --- one handler per event type --------------------------------------------------------


def _incident_created(state: DispatchState, e: IncidentCreated, changes: Changes) -> None:
    if e.reference in state.incidents:
        raise InconsistentEvent(f"incident {e.reference} already exists")
    location = _kept(e.location)
    if location.position is not None:
        _kept(location.position)
    at = e.at
    # Every value comes from the validated event: built as `Incident(...)` would, with
    # its defaults, in its fields' order, without validating it all again (a tenth of
    # the whole fold went on this 5 % of events).
    incident = _trusted(
        Incident,
        {
            "reference": e.reference,
            "grade": e.grade,
            "incident_type": e.incident_type,
            "status": _OPEN,
            "description": e.description,
            "location": location,
            "caller": None if e.caller is None else _kept(e.caller),
            "source": e.source,
            "risk": _no_risk() if e.risk is None else _kept(e.risk),
            "assigned": [],
            "chronology": [],
            "closing_code": None,
            "links": [],
            "created_at": at,
            "updated_at": at,
            "closed_at": None,
            "version": 0,
        },
    )
    state.incidents[e.reference] = incident
    if e.reserved:
        # Counted when it was reserved; now it is used.
        _use_reserved(state, e.workstation, e.reference)
    else:
        _count_references(state, e.log_day or e.at.date(), 1)
    _record(
        incident,
        e,
        e.type,
        f"Opened grade {int(e.grade)} {e.incident_type} at {location.address} "
        f"(source {_SOURCE_WORD[e.source]}){_guidance(e)}",
    )
    changes.incidents.add(e.reference)


def _no_risk() -> Risk:
    """An assessment with nothing recorded under any heading (`Risk()`)."""
    return _trusted(Risk, dict.fromkeys(_RISK_HEADINGS))


_RISK_HEADINGS = tuple(Risk.model_fields)


def _guidance(e: IncidentCreated) -> str:
    """What the chronology says of the grading guidance and the assessment at opening."""
    said = ""
    if e.suggested_grade is not None:
        if e.suggested_grade == e.grade:
            said += f"; grade as suggested ({int(e.suggested_grade)})"
        else:
            said += f"; suggested grade {int(e.suggested_grade)} overridden"
        if e.grade_reason:
            said += f": {e.grade_reason}"
    if e.risk is not None:
        headings = [name for name, value in e.risk.model_dump().items() if value]
        if headings:
            said += "; THRIVE: " + ", ".join(headings)
    return said


def _count_references(state: DispatchState, day: date, count: int) -> None:
    fields = state.__dict__
    if fields["log_day"] == day:
        fields["log_number"] += count
    else:
        fields["log_day"], fields["log_number"] = day, count


def _use_reserved(state: DispatchState, workstation: str, reference: str) -> None:
    # New lists, never changed in place: a draft of the picture shares the old ones.
    left = [r for r in state.reserved.get(workstation, ()) if r != reference]
    if left:
        state.reserved = {**state.reserved, workstation: left}
    else:
        state.reserved = {k: v for k, v in state.reserved.items() if k != workstation}


def _references_reserved(state: DispatchState, e: ReferencesReserved, changes: Changes) -> None:
    _count_references(state, e.log_day, len(e.references))
    held = state.reserved.get(e.workstation, [])
    state.reserved = {**state.reserved, e.workstation: [*held, *e.references]}


def _incident_graded(state: DispatchState, e: IncidentGraded, changes: Changes) -> None:
    incident = _incident(state, e.reference)
    old = incident.grade
    incident.__dict__["grade"] = e.grade
    why = f": {e.reason}" if e.reason else ""
    _record(incident, e, e.type, f"Grade {int(old)} -> {int(e.grade)}{why}")
    changes.incidents.add(e.reference)


def _incident_retyped(state: DispatchState, e: IncidentRetyped, changes: Changes) -> None:
    incident = _incident(state, e.reference)
    old = incident.incident_type
    incident.incident_type = e.incident_type
    _record(incident, e, e.type, f"Type {old} -> {e.incident_type}")
    changes.incidents.add(e.reference)


def _incident_relocated(state: DispatchState, e: IncidentRelocated, changes: Changes) -> None:
    incident = _incident(state, e.reference)
    incident.location = e.location
    _record(incident, e, e.type, f"Location now {e.location.address}")
    changes.incidents.add(e.reference)


def _risk_assessed(state: DispatchState, e: RiskAssessed, changes: Changes) -> None:
    incident = _incident(state, e.reference)
    incident.risk = e.risk
    headings = [name for name, value in e.risk.model_dump().items() if value]
    _record(incident, e, e.type, "THRIVE assessment: " + (", ".join(headings) or "cleared"))
    changes.incidents.add(e.reference)


def _note_added(state: DispatchState, e: NoteAdded, changes: Changes) -> None:
    incident = _incident(state, e.reference)
    _record(incident, e, e.type, e.text)
    changes.incidents.add(e.reference)


def _unit_assigned(state: DispatchState, e: UnitAssigned, changes: Changes) -> None:
    incident = _incident(state, e.reference)
    unit = _unit(state, e.callsign)
    # A unit is on one incident at a time: taking it to this one takes it off the last,
    # even if the event does not name it; left listed there, closing that incident
    # would make the unit available while it is en route here.
    previous_reference = e.diverted_from or unit.incident
    if previous_reference and previous_reference != e.reference:
        previous = _incident(state, previous_reference)
        _release(state, previous, e.callsign, changes)
        _record(previous, e, e.type, f"{e.callsign} diverted to {e.reference}")
        _refresh_status(state, previous)
        changes.incidents.add(previous.reference)
    callsign = e.callsign
    assigned = incident.assigned
    if callsign not in assigned:
        assigned.append(callsign)
    unit.__dict__["incident"] = e.reference
    _set_state(unit, _EN_ROUTE, e)
    _touch_unit(unit, e)
    _record(incident, e, e.type, f"{callsign} assigned, en route")
    _refresh_status(state, incident)
    changes.incidents.add(e.reference)
    changes.units.add(callsign)


def _unit_unassigned(state: DispatchState, e: UnitUnassigned, changes: Changes) -> None:
    incident = _incident(state, e.reference)
    unit = _release(state, incident, e.callsign, changes)
    if unit.state not in AVAILABLE_STATES and unit.state != UnitState.EMERGENCY:
        _set_state(unit, UnitState.AVAILABLE_ON_PATROL, e)
    _touch_unit(unit, e)
    why = f": {e.reason}" if e.reason else ""
    _record(incident, e, e.type, f"{e.callsign} stood down{why}")
    _refresh_status(state, incident)
    changes.incidents.add(e.reference)


def _unit_state_changed(state: DispatchState, e: UnitStateChanged, changes: Changes) -> None:
    callsign = e.callsign
    unit = _unit(state, callsign)
    cleared = _incident(state, e.cleared_from) if e.cleared_from else None
    fields = unit.__dict__
    old = fields["state"]
    new = e.state
    if old != new:  # `_set_state`, written out
        fields["state"] = new
        fields["state_since"] = e.at
        fields["emergency_acknowledged_by"] = None
    fields["on_duty"] = new != _OFF_DUTY
    fields["version"] += 1
    changes.units.add(callsign)
    if cleared is not None:
        incident = cleared
        _release(state, incident, callsign, changes)
        _record(incident, e, e.type, f"{callsign} cleared ({_STATE_LABEL[new]})")
        _refresh_status(state, incident)
        changes.incidents.add(incident.reference)
    elif fields["incident"] is not None and old != new:
        incident = _incident(state, fields["incident"])
        _record(incident, e, e.type, f"{callsign} {_STATE_LOWER[new]}")
        _refresh_status(state, incident)
        changes.incidents.add(incident.reference)


def _unit_located(state: DispatchState, e: UnitLocated, changes: Changes) -> None:
    callsign = e.callsign
    fields = _unit(state, callsign).__dict__
    position = e.position
    # `_kept`, written out: two events in five are fixes, and a position names both
    # its fields whenever it is valid.
    if position.__pydantic_fields_set__ == _POSITION_FIELDS:
        _set_fields_set(position, _POSITION_FIELDS)
    fields["position"] = position
    fields["position_at"] = e.fixed_at
    fields["version"] += 1
    changes.units.add(callsign)


_POSITION_FIELDS = _all_fields(Position)


def _emergency_acknowledged(
    state: DispatchState, e: EmergencyAcknowledged, changes: Changes
) -> None:
    unit = _unit(state, e.callsign)
    unit.emergency_acknowledged_by = e.operator
    _touch_unit(unit, e)
    changes.units.add(e.callsign)
    if unit.incident is not None:
        incident = _incident(state, unit.incident)
        _record(incident, e, e.type, f"{e.callsign} emergency acknowledged by {e.operator}")
        changes.incidents.add(incident.reference)


def _unit_checked_in(state: DispatchState, e: UnitCheckedIn, changes: Changes) -> None:
    unit = _unit(state, e.callsign)
    # The incident is checked before anything changes: on error the state stays as it was.
    incident = _incident(state, e.reference) if e.reference is not None else None
    unit.__dict__["checked_in_at"] = e.at
    _touch_unit(unit, e)
    changes.units.add(e.callsign)
    if incident is not None:
        said = f": {e.note}" if e.note else ""
        _record(incident, e, e.type, f"{e.callsign} checked in safe{said}")
        changes.incidents.add(incident.reference)


def _incident_closed(state: DispatchState, e: IncidentClosed, changes: Changes) -> None:
    incident = _incident(state, e.reference)
    for callsign in list(incident.assigned):
        unit = _release(state, incident, callsign, changes)
        if unit.state != _EMERGENCY:
            _set_state(unit, _AVAILABLE_ON_PATROL, e)
        _touch_unit(unit, e)
    fields = incident.__dict__
    fields["status"] = _CLOSED
    fields["closing_code"] = e.closing_code
    fields["closed_at"] = e.at
    summary = f": {e.summary}" if e.summary else ""
    _record(incident, e, e.type, f"Closed {e.closing_code}{summary}")
    changes.incidents.add(e.reference)


def _incident_reopened(state: DispatchState, e: IncidentReopened, changes: Changes) -> None:
    if e.archived is not None:
        _restore(state, e.reference, e.archived)
    incident = _incident(state, e.reference)
    incident.status = IncidentStatus.OPEN
    incident.closing_code = None
    incident.closed_at = None
    _record(incident, e, e.type, f"Reopened: {e.reason}")
    _refresh_status(state, incident)
    changes.incidents.add(e.reference)


def _restore(state: DispatchState, reference: str, archived: Incident) -> None:
    """Put an archived incident back into the picture, as the reopen event carries it."""
    if reference in state.incidents:
        raise InconsistentEvent(f"incident {reference} is in the picture; it was not archived")
    if archived.reference != reference or archived.status != IncidentStatus.CLOSED:
        raise InconsistentEvent(
            f"the archived incident carried is {archived.reference} ({archived.status.value}),"
            f" not closed incident {reference}"
        )
    # A copy: the event is shared (a console keeps it in a chronology view, the server
    # fans it out), the picture's incident changes from here on.
    state.incidents[reference] = archived.model_copy(deep=True)


def _incident_linked(state: DispatchState, e: IncidentLinked, changes: Changes) -> None:
    incident = _incident(state, e.reference)
    other = _incident(state, e.other)
    back = (
        LinkRelation.DUPLICATED_BY
        if e.relation == LinkRelation.DUPLICATE_OF
        else LinkRelation.DUPLICATE_OF
        if e.relation == LinkRelation.DUPLICATED_BY
        else LinkRelation.RELATED
    )
    incident.links.append(IncidentLink(reference=e.other, relation=e.relation))
    other.links.append(IncidentLink(reference=e.reference, relation=back))
    words = e.relation.value.replace("_", " ")
    _record(incident, e, e.type, f"Linked: {words} {e.other}")
    _record(other, e, e.type, f"Linked: {back.value.replace('_', ' ')} {e.reference}")
    changes.incidents.update({e.reference, e.other})


def _unit_booked_on(state: DispatchState, e: UnitBookedOn, changes: Changes) -> None:
    unit = state.units.get(e.callsign)
    if unit is None:
        state.units[e.callsign] = Unit(
            callsign=e.callsign,
            unit_type=e.unit_type,
            capabilities=list(e.capabilities),
            state=e.state,
            state_since=e.at,
            position=e.position,
            position_at=e.at if e.position else None,
            home_sector=e.home_sector,
        )
    else:
        unit.unit_type = e.unit_type
        unit.capabilities = list(e.capabilities)
        unit.home_sector = e.home_sector
        unit.on_duty = True
        _set_state(unit, e.state, e)
        if e.position is not None:
            unit.position, unit.position_at = e.position, e.at
        _touch_unit(unit, e)
    changes.units.add(e.callsign)


def _unit_booked_off(state: DispatchState, e: UnitBookedOff, changes: Changes) -> None:
    unit = _unit(state, e.callsign)
    if unit.incident is not None:
        incident = _incident(state, unit.incident)
        _release(state, incident, e.callsign, changes)
        _record(incident, e, e.type, f"{e.callsign} booked off duty")
        _refresh_status(state, incident)
        changes.incidents.add(incident.reference)
    unit.on_duty = False
    _set_state(unit, UnitState.OFF_DUTY, e)
    _touch_unit(unit, e)
    changes.units.add(e.callsign)


def _incidents_archived(state: DispatchState, e: IncidentsArchived, changes: Changes) -> None:
    # Check them all before dropping any: on error the state stays exactly as it was.
    for reference in e.references:
        if _incident(state, reference).status != IncidentStatus.CLOSED:
            raise InconsistentEvent(f"incident {reference} is not closed; it cannot be archived")
    for reference in e.references:
        del state.incidents[reference]
    changes.incidents.update(e.references)


def _report_received(state: DispatchState, e: ReportReceived, changes: Changes) -> None:
    if e.report in state.reports:
        raise InconsistentEvent(f"report {e.report} is already in the triage queue")
    report = Report(
        id=e.report,
        channel=e.channel,
        received_at=e.at,
        text=e.text,
        transcript=e.transcript,
        reporter=e.reporter,
        location=e.location,
        website_reference=e.website_reference,
        operator=e.operator,
    )
    # A new mapping, never changed in place: a draft of the picture shares the old one.
    state.reports = {**state.reports, e.report: report}
    changes.reports.add(e.report)


def _report_triaged(state: DispatchState, e: ReportTriaged, changes: Changes) -> None:
    report = state.reports.get(e.report)
    if report is None:
        raise InconsistentEvent(f"report {e.report} is not in the triage queue")
    if e.outcome == TriageOutcome.CREATED_INCIDENT:
        if e.reference is None or e.grade is None or e.incident_type is None or e.location is None:
            raise InconsistentEvent(f"report {e.report} triaged to an incident without one")
        if e.reference in state.incidents:
            raise InconsistentEvent(f"incident {e.reference} already exists")
        incident = Incident(
            reference=e.reference,
            grade=e.grade,
            incident_type=e.incident_type,
            description=report.words(),
            location=e.location,
            caller=report.reporter,
            source=SourceChannel.ONLINE,
            created_at=e.at,
            updated_at=e.at,
            version=0,
        )
        state.incidents[e.reference] = incident
        _count_references(state, e.log_day or e.at.date(), 1)
        _record(
            incident,
            e,
            e.type,
            f"Opened grade {int(e.grade)} {e.incident_type} at {e.location.address} "
            f"(source online) from report {e.report} ({report.channel.value})",
        )
        changes.incidents.add(e.reference)
    state.reports = {key: value for key, value in state.reports.items() if key != e.report}
    changes.reports.add(e.report)


_HANDLERS = {
    IncidentCreated: _incident_created,
    IncidentGraded: _incident_graded,
    IncidentRetyped: _incident_retyped,
    IncidentRelocated: _incident_relocated,
    RiskAssessed: _risk_assessed,
    NoteAdded: _note_added,
    UnitAssigned: _unit_assigned,
    UnitUnassigned: _unit_unassigned,
    UnitStateChanged: _unit_state_changed,
    UnitLocated: _unit_located,
    EmergencyAcknowledged: _emergency_acknowledged,
    UnitCheckedIn: _unit_checked_in,
    IncidentClosed: _incident_closed,
    IncidentReopened: _incident_reopened,
    IncidentLinked: _incident_linked,
    UnitBookedOn: _unit_booked_on,
    UnitBookedOff: _unit_booked_off,
    IncidentsArchived: _incidents_archived,
    ReferencesReserved: _references_reserved,
    ReportReceived: _report_received,
    ReportTriaged: _report_triaged,
}
