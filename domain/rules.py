"""Dispatch rules: whether a command may happen, and the event it produces.

`decide` is pure: given the picture, a command, who issued it and the time, it returns
the one event to record or raises `Refused` with a problem document saying what was
wrong. It never changes the picture; the fold does that once the event is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from cadterm.protocol.commands import (
    MAX_REPORT_CHARACTERS,
    MAX_RESERVED_REFERENCES,
    AcknowledgeEmergency,
    AddNote,
    AssessRisk,
    AssignUnit,
    BookOff,
    BookOn,
    CheckInUnit,
    CloseIncident,
    Command,
    CreateIncident,
    GradeIncident,
    LinkIncidents,
    LocateUnit,
    RelocateIncident,
    ReopenIncident,
    ReserveReferences,
    RetypeIncident,
    SetUnitState,
    SubmitReport,
    TriageReport,
    UnassignUnit,
)
from cadterm.protocol.domain import (
    AVAILABLE_STATES,
    COMMITTED_STATES,
    DEPLOYABLE_STATES,
    Incident,
    IncidentStatus,
    Operator,
    ReportChannel,
    TriageOutcome,
    Unit,
    UnitState,
)
from cadterm.protocol.events import (
    EmergencyAcknowledged,
    Event,
    IncidentClosed,
    IncidentCreated,
    IncidentGraded,
    IncidentLinked,
    IncidentRelocated,
    IncidentReopened,
    IncidentRetyped,
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
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.problems import Problem, ProblemCode
from cadterm.protocol.types import known_time

__all__ = ["MAX_WAITING_REPORTS", "Codes", "Refused", "decide", "next_reference"]

#: Online reports the triage queue holds at most; past that a website's are refused.
MAX_WAITING_REPORTS = 1000


class Refused(Exception):
    """The command breaks a rule; `problem` says which and why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


class Codes:
    """The opening and closing codes this server accepts, and the control room's clock.

    Log references count per local day (`timezone`, Europe/London by default), so an
    incident raised at 00:30 BST belongs to the new day, as the control room sees it.
    """

    def __init__(
        self,
        incident_types: Mapping[str, str],
        closing_codes: Mapping[str, str],
        timezone: str = "Europe/London",
        back_entry_after: timedelta | None = None,
    ):
        self.incident_types = {code.upper(): text for code, text in incident_types.items()}
        self.closing_codes = {code.upper(): text for code, text in closing_codes.items()}
        self.timezone = ZoneInfo(timezone)
        #: An action recorded more than this after it was taken is back-entered.
        self.back_entry_after = back_entry_after or BACK_ENTRY_AFTER

    def log_day(self, at: datetime) -> date:
        """The control room's calendar day at instant `at`."""
        return at.astimezone(self.timezone).date()


def _refuse(code: ProblemCode, detail: str, **extra: Any) -> Refused:
    return Refused(Problem.of(code, detail, **extra))


def next_reference(state: DispatchState, day: date) -> str:
    """The next log reference for `day`, e.g. ``0042-27NOV26``: number first, as said."""
    number = state.log_number + 1 if state.log_day == day else 1
    return f"{number:04d}-{day.strftime('%d%b%y').upper()}"


def _incident(state: DispatchState, reference: str) -> Incident:
    incident = state.incidents.get(reference)
    if incident is None:
        incident = state.incidents.get(reference.upper())
    if incident is None:
        raise _refuse(ProblemCode.UNKNOWN_INCIDENT, f"no incident {reference!r}", field="reference")
    return incident


def _unit(state: DispatchState, callsign: str, field: str = "callsign") -> Unit:
    unit = state.units.get(callsign)
    if unit is None:
        unit = state.units.get(callsign.upper())
    if unit is None:
        raise _refuse(
            ProblemCode.UNKNOWN_CALLSIGN, f"no unit with callsign {callsign!r}", field=field
        )
    return unit


def _open(incident: Incident) -> None:
    if incident.status == IncidentStatus.CLOSED:
        raise _refuse(
            ProblemCode.INCIDENT_CLOSED,
            f"incident {incident.reference} is closed ({incident.closing_code}); reopen it first",
            field="reference",
        )


def _on_duty(unit: Unit) -> None:
    if not unit.on_duty:
        raise _refuse(
            ProblemCode.UNIT_OFF_DUTY, f"{unit.callsign} is booked off duty", field="callsign"
        )


def _check_incident_version(incident: Incident, expected: int | None) -> None:
    if expected is None or expected == incident.version:
        return
    changes = [
        f"v{entry.version} {entry.at:%H:%M:%S} {entry.operator}: {entry.text}"
        for entry in incident.chronology
        if entry.version > expected
    ]
    if expected > incident.version:
        since = "; that version does not exist yet"
    elif len(changes) == 1:
        since = f"; since then: {changes[0]}"
    else:
        since = f"; {len(changes)} changes since then, latest: {changes[-1]}"
    raise _refuse(
        ProblemCode.VERSION_CONFLICT,
        f"incident {incident.reference} is at version {incident.version}, "
        f"you expected {expected}{since}",
        field="expected_version",
        current=incident.model_dump(mode="json", exclude={"chronology"}),
        changes=changes,
    )


def _check_unit_version(unit: Unit, expected: int | None) -> None:
    if expected is None or expected == unit.version:
        return
    raise _refuse(
        ProblemCode.VERSION_CONFLICT,
        f"{unit.callsign} is at version {unit.version}, you expected {expected}; "
        f"it is now {unit.state.label.lower()}" + (f" on {unit.incident}" if unit.incident else ""),
        field="expected_version",
        current=unit.model_dump(mode="json"),
        changes=[],
    )


def _targeted(
    state: DispatchState, command: Command, archived: Incident | None
) -> tuple[Incident | None, Unit | None]:
    """Look up what the command names, checking the version it expected."""
    # A new incident's reference (from a reserved block) names nothing yet.
    reference = None if command.type == "create_incident" else getattr(command, "reference", None)
    callsign = getattr(command, "callsign", None)
    if (
        archived is not None
        and command.type == "reopen_incident"
        and reference is not None
        and archived.reference in (reference, reference.upper())
        and archived.reference not in state.incidents
    ):
        incident: Incident | None = archived  # closed long ago: out of the picture
    else:
        incident = _incident(state, reference) if reference is not None else None
    unit = _unit(state, callsign) if callsign is not None and command.type != "book_on" else None
    if incident is not None:
        _check_incident_version(incident, command.expected_version)
    elif unit is not None:
        _check_unit_version(unit, command.expected_version)
    return incident, unit


def decide(
    state: DispatchState,
    command: Command,
    operator: Operator,
    now: datetime,
    codes: Codes,
    *,
    archived: Incident | None = None,
) -> Event:
    """Check `command` against the rules and return the event it produces.

    Raises `Refused` with a problem document when a rule forbids it. Role checks happen
    before this (see `cadterm.protocol.commands.may_issue`). `archived` is the
    incident a `reopen_incident` names as the server's history holds it, when it is no
    longer in the picture: the reopen then carries it back.
    """
    incident, unit = _targeted(state, command, archived)
    base = {
        "seq": state.seq + 1,
        "at": now,
        "operator": operator.id,
        "workstation": command.workstation,
        **_when_taken(command, now, codes.back_entry_after),
    }
    if incident is not None:
        base["reference"] = incident.reference
    if unit is not None:
        base["callsign"] = unit.callsign
    return _DECIDERS[type(command)](state, command, incident, unit, base, codes)


#: An action recorded more than this after it was taken is back-entered (flagged, with
#: both times): a command sent from an offline journal, or a paper log typed in. The
#: default; a server's config may set its own (`back_entry_after`).
BACK_ENTRY_AFTER = timedelta(seconds=60)
#: How far ahead of the server's clock a console's may run before its times are refused.
CLOCK_SKEW = timedelta(seconds=60)
#: The oldest action that may be entered after the fact.
OLDEST_BACK_ENTRY = timedelta(days=7)


def _when_taken(
    command: Command, now: datetime, back_entry_after: timedelta = BACK_ENTRY_AFTER
) -> dict[str, Any]:
    """The event's `taken_at` and `back_entered`, from the command's `taken_at`."""
    taken = command.taken_at
    if taken is None:
        return {}
    if taken > now + CLOCK_SKEW:
        raise _refuse(
            ProblemCode.TAKEN_AT_OUT_OF_RANGE,
            f"taken_at {taken.isoformat()} is in the future (the server's time is "
            f"{now.isoformat()}): check this workstation's clock",
            field="taken_at",
        )
    if taken < now - OLDEST_BACK_ENTRY:
        raise _refuse(
            ProblemCode.TAKEN_AT_OUT_OF_RANGE,
            f"taken_at {taken.isoformat()} is more than "
            f"{OLDEST_BACK_ENTRY.days} days ago: enter it as a note instead",
            field="taken_at",
        )
    if now - taken <= back_entry_after:
        return {}  # recorded as it was taken: `at` says when
    return {"taken_at": taken, "back_entered": True}


# --- one decider per command -------------------------------------------------------------

_Decider = Callable[..., Event]


def _incident_type(codes: Codes, value: str) -> str:
    code = value.strip().upper()
    if code not in codes.incident_types:
        known = ", ".join(sorted(codes.incident_types))
        raise _refuse(
            ProblemCode.UNKNOWN_INCIDENT_TYPE,
            f"unknown incident type {value!r}; known types: {known}",
            field="incident_type",
        )
    return code


def _grade_override(c: CreateIncident) -> dict[str, Any]:
    """The grading guidance to record: an override of the suggestion must give a reason."""
    if c.suggested_grade is None:
        if c.grade_reason is not None:
            raise _refuse(
                ProblemCode.GRADE_REASON_REQUIRED,
                "grade_reason explains an override of suggested_grade: give suggested_grade "
                "too, or leave grade_reason out",
                field="grade_reason",
            )
        return {}
    if c.grade != c.suggested_grade and not (c.grade_reason or "").strip():
        raise _refuse(
            ProblemCode.GRADE_REASON_REQUIRED,
            f"grade {int(c.grade)} overrides the suggested grade {int(c.suggested_grade)}: "
            "say why in grade_reason",
            field="grade_reason",
        )
    return {"suggested_grade": c.suggested_grade, "grade_reason": c.grade_reason}


def _create_incident(state, c: CreateIncident, incident, unit, base, codes) -> Event:
    guidance = _grade_override(c)
    day = codes.log_day(base["at"])
    reference, reserved = next_reference(state, day), False
    if c.reference is not None:
        reference, day, reserved = _reserved_reference(state, c), _day_of(c.reference), True
    return IncidentCreated(
        **base,
        reference=reference,
        reserved=reserved,
        log_day=day,
        grade=c.grade,
        incident_type=_incident_type(codes, c.incident_type),
        description=c.description,
        location=c.location,
        caller=c.caller,
        source=c.source,
        risk=c.risk,
        **guidance,
    )


def _reserved_reference(state: DispatchState, c: CreateIncident) -> str:
    reference = c.reference or ""
    if reference not in state.reserved.get(c.workstation, ()):
        raise _refuse(
            ProblemCode.REFERENCE_NOT_RESERVED,
            f"{reference} is not a reference reserved for workstation {c.workstation} "
            "(or it has been used): leave reference out to be given the next one",
            field="reference",
        )
    return reference


def _day_of(reference: str) -> date:
    """The day a reference counts in, from its own text (``0042-27NOV26``)."""
    return datetime.strptime(reference.partition("-")[2], "%d%b%y").date()


def _reserve_references(state, c: ReserveReferences, incident, unit, base, codes) -> Event:
    held = len(state.reserved.get(c.workstation, ()))
    if held + c.count > MAX_RESERVED_REFERENCES:
        raise _refuse(
            ProblemCode.TOO_MANY_RESERVED,
            f"workstation {c.workstation} already holds {held} unused references; it may "
            f"hold {MAX_RESERVED_REFERENCES} at most",
            field="count",
        )
    day = codes.log_day(base["at"])
    first = int(next_reference(state, day)[:4])
    suffix = day.strftime("%d%b%y").upper()
    references = [f"{n:04d}-{suffix}" for n in range(first, first + c.count)]
    return ReferencesReserved(**base, log_day=day, references=references)


def _grade_incident(state, c: GradeIncident, incident: Incident, unit, base, codes) -> Event:
    _open(incident)
    if c.grade == incident.grade:
        raise _refuse(
            ProblemCode.NO_CHANGE,
            f"{incident.reference} is already grade {int(c.grade)}",
            field="grade",
        )
    return IncidentGraded(**base, grade=c.grade, reason=c.reason)


def _retype_incident(state, c: RetypeIncident, incident: Incident, unit, base, codes) -> Event:
    _open(incident)
    code = _incident_type(codes, c.incident_type)
    if code == incident.incident_type:
        raise _refuse(
            ProblemCode.NO_CHANGE, f"{incident.reference} is already {code}", field="incident_type"
        )
    return IncidentRetyped(**base, incident_type=code)


def _relocate_incident(state, c: RelocateIncident, incident: Incident, unit, base, codes) -> Event:
    _open(incident)
    return IncidentRelocated(**base, location=c.location)


def _assess_risk(state, c: AssessRisk, incident: Incident, unit, base, codes) -> Event:
    _open(incident)
    return RiskAssessed(**base, risk=c.risk)


def _add_note(state, c: AddNote, incident: Incident, unit, base, codes) -> Event:
    # Notes may be added to closed incidents: late information must still be recorded.
    return NoteAdded(**base, text=c.text)


def _assign_unit(state, c: AssignUnit, incident: Incident, unit: Unit, base, codes) -> Event:
    _open(incident)
    _on_duty(unit)
    if unit.incident == incident.reference:
        raise _refuse(
            ProblemCode.UNIT_ALREADY_ASSIGNED,
            f"{unit.callsign} is already assigned to {incident.reference}",
            field="callsign",
        )
    diverted_from = None
    if unit.incident is not None:
        if not c.divert:
            raise _refuse(
                ProblemCode.UNIT_COMMITTED,
                f"{unit.callsign} is committed to {unit.incident} "
                f"({unit.state.label.lower()}); divert it to take it off that incident",
                field="callsign",
                current=unit.model_dump(mode="json"),
            )
        diverted_from = unit.incident
    elif unit.state not in DEPLOYABLE_STATES:
        raise _refuse(
            ProblemCode.UNIT_NOT_DEPLOYABLE,
            f"{unit.callsign} is not deployable: state {int(unit.state)} {unit.state.label}",
            field="callsign",
            current=unit.model_dump(mode="json"),
        )
    if unit.state == UnitState.EMERGENCY:
        raise _refuse(
            ProblemCode.UNIT_NOT_DEPLOYABLE,
            f"{unit.callsign} has an emergency (state 0) and cannot be deployed",
            field="callsign",
        )
    return UnitAssigned(**base, diverted_from=diverted_from)


def _unassign_unit(state, c: UnassignUnit, incident: Incident, unit: Unit, base, codes) -> Event:
    if unit.callsign not in incident.assigned:
        raise _refuse(
            ProblemCode.UNIT_NOT_ASSIGNED,
            f"{unit.callsign} is not assigned to {incident.reference}",
            field="callsign",
        )
    return UnitUnassigned(**base, reason=c.reason)


def _set_unit_state(state, c: SetUnitState, incident, unit: Unit, base, codes) -> Event:
    if c.state == UnitState.OFF_DUTY:
        raise _refuse(
            ProblemCode.INVALID_COMMAND,
            f"book {unit.callsign} off duty with book_off, not a state change",
            field="state",
        )
    _on_duty(unit)
    if c.state == unit.state:
        raise _refuse(
            ProblemCode.NO_CHANGE,
            f"{unit.callsign} is already {int(c.state)} {c.state.label}",
            field="state",
        )
    cleared_from = unit.incident if c.state in AVAILABLE_STATES else None
    return UnitStateChanged(**base, state=c.state, cleared_from=cleared_from)


def _locate_unit(state, c: LocateUnit, incident, unit: Unit, base, codes) -> Event:
    now: datetime = base["at"]
    fixed = c.fixed_at or now
    if fixed > now + CLOCK_SKEW or fixed < now - OLDEST_BACK_ENTRY:
        # A fix from the future would hold off the unit's officer-safety check for as
        # long as it is ahead; one over a week old says nothing about where it is.
        raise _refuse(
            ProblemCode.FIX_TIME_OUT_OF_RANGE,
            f"fixed_at {fixed.isoformat()} is "
            + ("in the future" if fixed > now else f"more than {OLDEST_BACK_ENTRY.days} days ago")
            + f" (the server's time is {now.isoformat()}): check the device's clock",
            field="fixed_at",
        )
    held = known_time(unit.position_at)
    if held is not None and fixed < held:
        raise _refuse(
            ProblemCode.STALE_FIX,
            f"{unit.callsign} already has a fix from {held.isoformat()}, after this one "
            f"({fixed.isoformat()}): the position is kept",
            field="fixed_at",
        )
    return UnitLocated(**base, position=c.position, fixed_at=fixed)


def _acknowledge_emergency(state, c: AcknowledgeEmergency, incident, unit: Unit, base, codes):
    if unit.state != UnitState.EMERGENCY:
        raise _refuse(
            ProblemCode.NO_EMERGENCY,
            f"{unit.callsign} is not in state 0 (it is {unit.state.label.lower()})",
            field="callsign",
        )
    if unit.emergency_acknowledged_by is not None:
        raise _refuse(
            ProblemCode.NO_CHANGE,
            f"{unit.callsign}'s emergency was already acknowledged by "
            f"{unit.emergency_acknowledged_by}",
            field="callsign",
        )
    return EmergencyAcknowledged(**base)


#: States in which a unit is out on work, so a check-in means something: committed to an
#: incident, escorting a prisoner or at court.
CHECK_IN_STATES = COMMITTED_STATES | {UnitState.PRISONER_ESCORT, UnitState.AT_COURT}


def _check_in_unit(state, c: CheckInUnit, incident, unit: Unit, base, codes) -> Event:
    _on_duty(unit)
    if unit.state == UnitState.EMERGENCY:
        raise _refuse(
            ProblemCode.INVALID_COMMAND,
            f"{unit.callsign} is in state 0 (emergency): a check-in does not clear it; "
            "acknowledge the emergency and set the unit's state",
            field="callsign",
        )
    if unit.incident is None and unit.state not in CHECK_IN_STATES:
        raise _refuse(
            ProblemCode.UNIT_NOT_ASSIGNED,
            f"{unit.callsign} is {int(unit.state)} {unit.state.label.lower()} and on no "
            "incident: a check-in is for a unit committed to work",
            field="callsign",
        )
    return UnitCheckedIn(**base, reference=unit.incident, note=c.note)


def _close_incident(state, c: CloseIncident, incident: Incident, unit, base, codes) -> Event:
    _open(incident)
    code = c.closing_code.strip().upper()
    if code not in codes.closing_codes:
        known = ", ".join(sorted(codes.closing_codes))
        raise _refuse(
            ProblemCode.UNKNOWN_CLOSING_CODE,
            f"unknown closing code {c.closing_code!r}; known codes: {known}",
            field="closing_code",
        )
    return IncidentClosed(**base, closing_code=code, summary=c.summary)


def _reopen_incident(state, c: ReopenIncident, incident: Incident, unit, base, codes) -> Event:
    if incident.status != IncidentStatus.CLOSED:
        raise _refuse(
            ProblemCode.INCIDENT_NOT_CLOSED,
            f"incident {incident.reference} is not closed",
            field="reference",
        )
    if incident.reference not in state.incidents:  # archived: it comes back with the event
        return IncidentReopened(**base, reason=c.reason, archived=incident)
    return IncidentReopened(**base, reason=c.reason)


def _link_incidents(state, c: LinkIncidents, incident: Incident, unit, base, codes) -> Event:
    other = state.incidents.get(c.other) or state.incidents.get(c.other.upper())
    if other is None:
        raise _refuse(ProblemCode.UNKNOWN_INCIDENT, f"no incident {c.other!r}", field="other")
    if other.reference == incident.reference:
        raise _refuse(
            ProblemCode.SELF_LINK, "an incident cannot be linked to itself", field="other"
        )
    if any(link.reference == other.reference for link in incident.links):
        raise _refuse(
            ProblemCode.ALREADY_LINKED,
            f"{incident.reference} is already linked to {other.reference}",
            field="other",
        )
    return IncidentLinked(**base, other=other.reference, relation=c.relation)


def _book_on(state, c: BookOn, incident, unit, base, codes) -> Event:
    # Callsigns are upper case on the board, whatever case the operator typed.
    callsign = " ".join(c.callsign.split()).upper()
    existing = state.units.get(callsign)
    if existing is not None:
        if existing.on_duty:
            raise _refuse(
                ProblemCode.UNIT_ON_DUTY,
                f"{existing.callsign} is already on duty",
                field="callsign",
            )
        _check_unit_version(existing, c.expected_version)
    if c.state not in AVAILABLE_STATES | {UnitState.REFRESHMENTS}:
        raise _refuse(
            ProblemCode.INVALID_COMMAND,
            f"a unit books on as on duty or available, not {int(c.state)} {c.state.label}",
            field="state",
        )
    return UnitBookedOn(
        **base,
        callsign=callsign,
        unit_type=c.unit_type,
        capabilities=list(dict.fromkeys(c.capabilities)),
        home_sector=c.home_sector,
        state=c.state,
        position=c.position,
    )


def _book_off(state, c: BookOff, incident, unit: Unit, base, codes) -> Event:
    _on_duty(unit)
    return UnitBookedOff(**base)


def _report_words(c: SubmitReport) -> None:
    """A web form has its text, a chat its transcript, and not the other; bounded in all."""
    if c.channel == ReportChannel.WEB_FORM:
        if not c.text.strip():
            raise _refuse(
                ProblemCode.REPORT_INCOMPLETE, "a web_form report needs its text", field="text"
            )
        if c.transcript:
            raise _refuse(
                ProblemCode.REPORT_INCOMPLETE,
                "a web_form report has text, not a transcript",
                field="transcript",
            )
    else:
        if not c.transcript:
            raise _refuse(
                ProblemCode.REPORT_INCOMPLETE,
                "a chat report needs its transcript (at least one line)",
                field="transcript",
            )
        if c.text:
            raise _refuse(
                ProblemCode.REPORT_INCOMPLETE,
                "a chat report has a transcript, not text",
                field="text",
            )
    total = len(c.text) + sum(len(line.text) + len(line.sender) for line in c.transcript)
    if total > MAX_REPORT_CHARACTERS:
        raise _refuse(
            ProblemCode.REPORT_TOO_LONG,
            f"the report holds {total} characters; at most {MAX_REPORT_CHARACTERS} are allowed",
        )


def _triage_fields(c: TriageReport) -> None:
    """Each outcome takes its own fields: a reason to close, what to open an incident as."""
    incident_fields = ("grade", "incident_type", "location")
    if c.outcome == TriageOutcome.CLOSED:
        if not (c.reason or "").strip():
            raise _refuse(
                ProblemCode.TRIAGE_INCOMPLETE, "closing a report needs a reason", field="reason"
            )
        given = [name for name in incident_fields if getattr(c, name) is not None]
        if given:
            raise _refuse(
                ProblemCode.TRIAGE_INCOMPLETE,
                f"a closed report opens no incident: drop {', '.join(given)}",
                field=given[0],
            )
    else:
        missing = [name for name in incident_fields if getattr(c, name) is None]
        if missing:
            raise _refuse(
                ProblemCode.TRIAGE_INCOMPLETE,
                f"creating an incident needs {', '.join(missing)}",
                field=missing[0],
            )


def _submit_report(state, c: SubmitReport, incident, unit, base, codes) -> Event:
    _report_words(c)
    if len(state.reports) >= MAX_WAITING_REPORTS:
        raise _refuse(
            ProblemCode.TRIAGE_QUEUE_FULL,
            f"the triage queue already holds {len(state.reports)} reports waiting; keep "
            "this one and send it again later",
        )
    reporter = c.reporter.model_dump(exclude_none=True) if c.reporter is not None else None
    return ReportReceived(
        **base,
        # The event's own seq: unique for ever, and nothing to keep count of.
        report=f"R{base['seq']}",
        channel=c.channel,
        text=c.text,
        transcript=[line.model_dump() for line in c.transcript],
        reporter=reporter or None,
        location=c.location,
        website_reference=c.website_reference,
    )


def _triage_report(state, c: TriageReport, incident, unit, base, codes) -> Event:
    _triage_fields(c)
    report = state.reports.get(c.report)
    if report is None:
        raise _refuse(
            ProblemCode.UNKNOWN_REPORT,
            f"no report {c.report} waiting in the triage queue (it may have been dealt "
            "with already)",
            field="report",
        )
    if c.outcome == TriageOutcome.CLOSED:
        return ReportTriaged(**base, report=report.id, outcome=c.outcome, reason=c.reason)
    day = codes.log_day(base["at"])
    return ReportTriaged(
        **base,
        report=report.id,
        outcome=c.outcome,
        reason=c.reason,
        reference=next_reference(state, day),
        log_day=day,
        grade=c.grade,
        incident_type=_incident_type(codes, c.incident_type or ""),
        location=c.location,
    )


_DECIDERS: dict[type, _Decider] = {
    CreateIncident: _create_incident,
    GradeIncident: _grade_incident,
    RetypeIncident: _retype_incident,
    RelocateIncident: _relocate_incident,
    AssessRisk: _assess_risk,
    AddNote: _add_note,
    AssignUnit: _assign_unit,
    UnassignUnit: _unassign_unit,
    SetUnitState: _set_unit_state,
    LocateUnit: _locate_unit,
    AcknowledgeEmergency: _acknowledge_emergency,
    CheckInUnit: _check_in_unit,
    CloseIncident: _close_incident,
    ReopenIncident: _reopen_incident,
    LinkIncidents: _link_incidents,
    BookOn: _book_on,
    BookOff: _book_off,
    ReserveReferences: _reserve_references,
    SubmitReport: _submit_report,
    TriageReport: _triage_report,
}
