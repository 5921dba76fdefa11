"""Hypothesis strategies for dispatch event sequences.

Import from tests with ``from dispatch_strategies import valid_event_sequences`` (pytest's
default "prepend" import mode puts ``tests/`` on ``sys.path``).

The main strategy, `valid_event_sequences`, builds a random but *valid* event log: it
keeps a shadow `DispatchState`, offers only the events that make sense in that state (as
a server enforcing its rules would emit them), and applies each one with the real fold
before choosing the next. Validity therefore holds by construction, and a sequence that
the fold rejects is a bug in the fold, not in the strategy.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.domain import (
    AVAILABLE_STATES,
    COMMITTED_STATES,
    DEPLOYABLE_STATES,
    Caller,
    Capability,
    Grade,
    IncidentStatus,
    LinkRelation,
    Location,
    Position,
    Risk,
    SourceChannel,
    UnitState,
    UnitType,
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
    RiskAssessed,
    UnitAssigned,
    UnitBookedOff,
    UnitBookedOn,
    UnitCheckedIn,
    UnitLocated,
    UnitStateChanged,
    UnitUnassigned,
)
from cadterm.protocol.fold import DispatchState, apply

__all__ = [
    "CALLSIGNS",
    "CONTROL_ROOM",
    "DISPATCHERS",
    "STARTS",
    "SUPERVISORS",
    "WORKSTATIONS",
    "log_reference",
    "valid_event_sequences",
]

#: Times a generated log may start: late evening, so logs soon cross midnight, once in
#: winter (GMT) and once in summer (BST, when the local day starts at 23:00 UTC).
STARTS = (datetime(2026, 11, 27, 21, 30, tzinfo=UTC), datetime(2026, 6, 26, 21, 30, tzinfo=UTC))
#: The control room's timezone: log numbers count per local day, as the server does.
CONTROL_ROOM = ZoneInfo("Europe/London")

#: Operator ids as the server knows them from their tokens.
DISPATCHERS = ("disp.okafor", "disp.hughes", "disp.nowak", "disp.campbell")
SUPERVISORS = ("sup.patel", "sup.macleod")
WORKSTATIONS = ("CR1-WS01", "CR1-WS04", "CR1-WS07", "CR2-WS02", "FALLBACK-01")

#: Callsigns a force might book on, with the kind of unit each is. Some hold spaces.
CALLSIGNS: dict[str, tuple[UnitType, tuple[Capability, ...]]] = {
    "AB12": (UnitType.PATROL_CAR, (Capability.FIRST_AID,)),
    "AB14": (UnitType.PATROL_CAR, (Capability.TASER, Capability.FIRST_AID)),
    "CD21": (UnitType.VAN, (Capability.PUBLIC_ORDER,)),
    "ARV 1": (UnitType.ARMED_RESPONSE, (Capability.FIREARMS, Capability.TASER)),
    "DOG 3": (UnitType.DOG, (Capability.DOG,)),
    "TR31": (UnitType.TRAFFIC, (Capability.TRAFFIC, Capability.FIRST_AID)),
    "FT 7": (UnitType.FOOT, ()),
    "SGT 40": (UnitType.SUPERVISOR, (Capability.TASER,)),
}
SECTORS = ("north", "south", "city", "east")

_ADDRESSES = (
    ("14 Corporation Street, Birmingham", Position(lat=52.4814, lon=-1.8946), "city"),
    ("Junction 6, M6 northbound", Position(lat=52.5077, lon=-1.8653), "north"),
    ("Co-op, 221 Soho Road, Handsworth", Position(lat=52.5005, lon=-1.9318), "north"),
    ("Flat 3, 9 Moseley Road", None, "south"),
    ("Rear of the Crown pub, High Street, Acocks Green", None, "east"),
    ("New Street station, taxi rank", Position(lat=52.4778, lon=-1.8989), "city"),
)
_CALLERS = (
    None,
    Caller(name="Mrs J Whitfield", phone="07700 900123", relationship="neighbour"),
    Caller(name="Anonymous", relationship="passer-by"),
    Caller(phone="0121 496 0000", relationship="store security"),
)
_NOTES = (
    "Caller states male now left on foot towards the park.",
    "PNC check: vehicle no insurance.",
    "Ambulance requested, ETA 12 minutes.",
    "Second caller reports the same: shouting heard.",
    "Informant called back: all quiet now.",
    "Intel: address has previous DV markers.",
)
_REASONS = (
    "Further information from caller",
    "Weapon mentioned",
    "Risk reduced after call back",
    None,
)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def log_reference(day: date, number: int) -> str:
    """The daily log reference a dispatcher says aloud, e.g. ``0042-27NOV26``."""
    return f"{number:04d}-{day.day:02d}{_MONTHS[day.month - 1]}{day.year % 100:02d}"


def _next_reference(state: DispatchState, day: date) -> str:
    number = state.log_number + 1 if state.log_day == day else 1
    return log_reference(day, number)


def _locations() -> st.SearchStrategy[Location]:
    return st.sampled_from(_ADDRESSES).map(
        lambda a: Location(address=a[0], position=a[1], sector=a[2])
    )


def _risks() -> st.SearchStrategy[Risk]:
    heading = st.sampled_from([None, "Low", "Medium: repeat victim", "High: weapon seen"])
    return st.builds(Risk, threat=heading, harm=heading, vulnerability=heading)


# Each action takes (draw, state, base fields) and returns an event, or is left out of
# the choice when the state offers nothing for it to act on.
_Action = Callable[[st.DrawFn, DispatchState, dict], Event]


def _open(state: DispatchState) -> list[str]:
    return [r for r, i in state.incidents.items() if i.status != IncidentStatus.CLOSED]


def _closed(state: DispatchState) -> list[str]:
    return [r for r, i in state.incidents.items() if i.status == IncidentStatus.CLOSED]


def _on_duty(state: DispatchState) -> list[str]:
    return [c for c, u in state.units.items() if u.on_duty]


def _book_on(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    choices = [c for c in CALLSIGNS if c not in state.units or not state.units[c].on_duty]
    callsign = draw(st.sampled_from(choices))
    unit_type, capabilities = CALLSIGNS[callsign]
    return UnitBookedOn(
        **base,
        callsign=callsign,
        unit_type=unit_type,
        capabilities=list(capabilities),
        home_sector=draw(st.sampled_from((None, *SECTORS))),
        state=draw(st.sampled_from(sorted(AVAILABLE_STATES))),
        position=draw(st.none() | st.sampled_from([a[1] for a in _ADDRESSES if a[1]])),
    )


def _create(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    incident_type = draw(st.sampled_from(sorted(INCIDENT_TYPES)))
    day = base["at"].astimezone(CONTROL_ROOM).date()
    return IncidentCreated(
        **base,
        reference=_next_reference(state, day),
        log_day=day,
        grade=draw(st.sampled_from(list(Grade))),
        incident_type=incident_type,
        description=draw(st.sampled_from(["", f"{INCIDENT_TYPES[incident_type]} reported"])),
        location=draw(_locations()),
        caller=draw(st.sampled_from(_CALLERS)),
        source=draw(st.sampled_from(list(SourceChannel))),
        risk=draw(st.none() | _risks()),
    )


def _grade(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    reference = draw(st.sampled_from(_open(state)))
    current = state.incidents[reference].grade
    grade = draw(st.sampled_from([g for g in Grade if g != current]))
    return IncidentGraded(
        **base, reference=reference, grade=grade, reason=draw(st.sampled_from(_REASONS))
    )


def _retype(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    reference = draw(st.sampled_from(_open(state)))
    current = state.incidents[reference].incident_type
    new = draw(st.sampled_from([t for t in sorted(INCIDENT_TYPES) if t != current]))
    return IncidentRetyped(**base, reference=reference, incident_type=new)


def _relocate(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    reference = draw(st.sampled_from(_open(state)))
    return IncidentRelocated(**base, reference=reference, location=draw(_locations()))


def _assess(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    reference = draw(st.sampled_from(_open(state)))
    return RiskAssessed(**base, reference=reference, risk=draw(_risks()))


def _note(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    # Late information is recorded on closed incidents too.
    reference = draw(st.sampled_from(sorted(state.incidents)))
    return NoteAdded(**base, reference=reference, text=draw(st.sampled_from(_NOTES)))


def _assignable(state: DispatchState) -> list[tuple[str, str]]:
    """(reference, callsign) pairs a server would accept, diverting committed units."""
    pairs = []
    for callsign, unit in state.units.items():
        if not unit.on_duty or unit.state == UnitState.EMERGENCY:
            continue
        if unit.incident is None and unit.state not in DEPLOYABLE_STATES:
            continue
        pairs += [(r, callsign) for r in _open(state) if r != unit.incident]
    return pairs


def _assign(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    reference, callsign = draw(st.sampled_from(_assignable(state)))
    # A unit on another incident can only be taken off it (divert), never shared.
    return UnitAssigned(
        **base,
        reference=reference,
        callsign=callsign,
        diverted_from=state.units[callsign].incident,
    )


def _assigned(state: DispatchState) -> list[str]:
    return [c for c, u in state.units.items() if u.incident is not None]


def _unassign(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    callsign = draw(st.sampled_from(_assigned(state)))
    return UnitUnassigned(
        **base,
        reference=state.units[callsign].incident,
        callsign=callsign,
        reason=draw(st.sampled_from([None, "Not required", "Higher priority call"])),
    )


_STATES_ON_INCIDENT = sorted(COMMITTED_STATES | {UnitState.EMERGENCY, UnitState.PRISONER_ESCORT})
_STATES_OFF_INCIDENT = sorted(
    AVAILABLE_STATES
    | {
        UnitState.EMERGENCY,
        UnitState.REFRESHMENTS,
        UnitState.PRISONER_ESCORT,
        UnitState.AT_COURT,
    }
)


def _change_state(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    callsign = draw(st.sampled_from(_on_duty(state)))
    unit = state.units[callsign]
    if unit.incident is None:
        choices = [s for s in _STATES_OFF_INCIDENT if s != unit.state]
        return UnitStateChanged(**base, callsign=callsign, state=draw(st.sampled_from(choices)))
    choices = [s for s in _STATES_ON_INCIDENT + sorted(AVAILABLE_STATES) if s != unit.state]
    new = draw(st.sampled_from(choices))
    # Going available clears the unit from its incident, and the event says which.
    cleared = unit.incident if new in AVAILABLE_STATES else None
    return UnitStateChanged(**base, callsign=callsign, state=new, cleared_from=cleared)


def _emergency(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    choices = [c for c in _on_duty(state) if state.units[c].state != UnitState.EMERGENCY]
    return UnitStateChanged(
        **base, callsign=draw(st.sampled_from(choices)), state=UnitState.EMERGENCY
    )


def _unacknowledged(state: DispatchState) -> list[str]:
    return [
        c
        for c, u in state.units.items()
        if u.state == UnitState.EMERGENCY and u.emergency_acknowledged_by is None
    ]


def _acknowledge(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    return EmergencyAcknowledged(**base, callsign=draw(st.sampled_from(_unacknowledged(state))))


def _check_in(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    callsign = draw(st.sampled_from(_assigned(state)))
    note = draw(st.none() | st.sampled_from(["all fine", "with the driver"]))
    return UnitCheckedIn(
        **base, callsign=callsign, reference=state.units[callsign].incident, note=note
    )


def _locate(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    callsign = draw(st.sampled_from(_on_duty(state)))
    lat = draw(st.floats(52.38, 52.60, allow_nan=False))
    lon = draw(st.floats(-2.05, -1.70, allow_nan=False))
    lag = draw(st.integers(0, 90))
    return UnitLocated(
        **base,
        callsign=callsign,
        position=Position(lat=round(lat, 5), lon=round(lon, 5)),
        fixed_at=base["at"] - timedelta(seconds=lag),
    )


def _close(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    return IncidentClosed(
        **base,
        reference=draw(st.sampled_from(_open(state))),
        closing_code=draw(st.sampled_from(sorted(CLOSING_CODES))),
        summary=draw(st.sampled_from([None, "Words of advice given", "Male arrested"])),
    )


def _reopen(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    return IncidentReopened(
        **{**base, "operator": draw(st.sampled_from(SUPERVISORS))},
        reference=draw(st.sampled_from(_closed(state))),
        reason=draw(st.sampled_from(["Caller rang back", "Closed in error", "New evidence"])),
    )


def _linkable(state: DispatchState) -> list[tuple[str, str]]:
    pairs = []
    for reference, incident in state.incidents.items():
        linked = {link.reference for link in incident.links}
        pairs += [(reference, o) for o in state.incidents if o != reference and o not in linked]
    return pairs


def _link(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    reference, other = draw(st.sampled_from(_linkable(state)))
    return IncidentLinked(
        **base, reference=reference, other=other, relation=draw(st.sampled_from(LinkRelation))
    )


def _book_off(draw: st.DrawFn, state: DispatchState, base: dict) -> Event:
    return UnitBookedOff(**base, callsign=draw(st.sampled_from(_on_duty(state))))


def _choices(state: DispatchState) -> list[_Action]:
    """The actions the state offers, simplest first (hypothesis shrinks towards them).

    An action listed twice is drawn twice as often: assignments and state changes are
    the daily bread of a control room, so they come up more than reopens.
    """
    has_open = bool(_open(state))
    on_duty = _on_duty(state)
    actions: list[_Action] = []
    if any(c not in state.units or not state.units[c].on_duty for c in CALLSIGNS):
        actions.append(_book_on)
    actions.append(_create)
    if state.incidents:
        actions.append(_note)
    if has_open:
        actions += [_grade, _retype, _relocate, _assess, _close]
    if _assignable(state):
        actions += [_assign] * 4
    if _assigned(state):
        actions += [_unassign, _check_in, *[_change_state] * 3]
    if on_duty:
        actions += [_change_state, _locate, _book_off]
        if any(state.units[c].state != UnitState.EMERGENCY for c in on_duty):
            actions.append(_emergency)
    if _unacknowledged(state):
        actions += [_acknowledge] * 2
    if _closed(state):
        actions.append(_reopen)
    if _linkable(state):
        actions.append(_link)
    return actions


@st.composite
def valid_event_sequences(
    draw: st.DrawFn, max_events: int = 60, min_events: int = 1
) -> list[Event]:
    """A random, valid dispatch event log: ``[event(seq=1), ..., event(seq=n)]``.

    ``min_events <= n <= max_events``. Every event applies cleanly to the state folded
    from the events before it, and makes domain sense the way a rule-enforcing server
    would emit it: units are booked on before use (callsigns from `CALLSIGNS`, a few with
    spaces) and booked off; incidents are created with daily log references
    (``0001-27NOV26``) and graded, retyped, relocated, risk assessed, noted, closed with
    a closing code and reopened by a supervisor; only on-duty, deployable units are
    assigned to open incidents, and a unit already on another incident is diverted
    (``diverted_from`` set), never shared; an assigned unit that goes available says
    which incident it cleared from (``cleared_from``); a state-0 emergency may be
    acknowledged once; units get position fixes; incidents are linked as duplicates or
    related, never to themselves or twice.

    Times are timezone-aware UTC, strictly increasing, starting in the late evening of
    27 November or 26 June 2026 and often crossing midnight. Log numbers count per
    control-room day (`CONTROL_ROOM`, Europe/London; ``log_day`` is set on every
    ``incident_created``), so numbering restarts at local midnight, which is 23:00 UTC
    in summer. Operators
    are ids like ``disp.okafor`` (reopens come from a ``sup.*`` supervisor) at
    workstations like ``CR1-WS04``.

    Built by applying each event to a shadow `DispatchState` with the real
    `cadterm.protocol.fold.apply`, so validity holds by construction; fold the result
    again yourself if you need the final state.
    """
    state = DispatchState()
    events: list[Event] = []
    count = draw(st.integers(min_events, max_events))
    at = draw(st.sampled_from(STARTS)) + timedelta(seconds=draw(st.integers(0, 3600)))
    for seq in range(1, count + 1):
        gap = draw(st.integers(1, 300) | st.integers(300, 4 * 3600))
        at += timedelta(seconds=gap)
        base = {
            "seq": seq,
            "at": at,
            "operator": draw(st.sampled_from(DISPATCHERS)),
            "workstation": draw(st.sampled_from(WORKSTATIONS)),
        }
        action = draw(st.sampled_from(_choices(state)))
        event = action(draw, state, base)
        apply(state, event)
        events.append(event)
    return events
