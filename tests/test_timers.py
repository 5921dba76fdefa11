"""Timers: attendance targets, officer safety, emergency alarms, compact ages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cadterm.domain.timers import (
    DEFAULT_POLICY,
    AgeingAlert,
    Level,
    TimerPolicy,
    arrived_at,
    attendance_alert,
    emergencies,
    format_age,
    incident_age,
    officer_safety,
    officer_safety_due,
)
from cadterm.protocol.domain import (
    ChronologyEntry,
    Grade,
    Incident,
    IncidentStatus,
    Location,
    Position,
    SourceChannel,
    Unit,
    UnitState,
    UnitType,
)
from cadterm.protocol.events import (
    IncidentClosed,
    IncidentCreated,
    UnitAssigned,
    UnitBookedOn,
    UnitStateChanged,
)
from cadterm.protocol.fold import DispatchState, fold

T0 = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def entry(at: datetime, kind: str, text: str, seq: int = 1) -> ChronologyEntry:
    return ChronologyEntry(
        at=at, seq=seq, version=seq, operator="disp1", workstation="ws1", kind=kind, text=text
    )


def make_incident(
    grade: Grade = Grade.EMERGENCY,
    *,
    status: IncidentStatus = IncidentStatus.OPEN,
    sector: str | None = None,
    chronology: list[ChronologyEntry] | None = None,
    assigned: list[str] | None = None,
    closed_at: datetime | None = None,
) -> Incident:
    return Incident(
        reference="0042-27NOV26",
        grade=grade,
        incident_type="ASSAULT",
        status=status,
        location=Location(address="High Street", sector=sector),
        source=SourceChannel.EMERGENCY_999,
        created_at=T0,
        updated_at=T0,
        chronology=chronology or [entry(T0, "incident_created", "Opened grade 1 ASSAULT")],
        assigned=assigned or [],
        closed_at=closed_at,
    )


def make_unit(
    callsign: str = "PC101",
    *,
    state: UnitState = UnitState.AT_SCENE,
    state_since: datetime = T0,
    position_at: datetime | None = None,
    on_duty: bool = True,
    acknowledged_by: str | None = None,
    incident: str | None = None,
) -> Unit:
    return Unit(
        callsign=callsign,
        unit_type=UnitType.PATROL_CAR,
        state=state,
        state_since=state_since,
        position=Position(lat=53.48, lon=-2.24) if position_at else None,
        position_at=position_at,
        on_duty=on_duty,
        emergency_acknowledged_by=acknowledged_by,
        incident=incident,
    )


def alert(incident: Incident, after: timedelta, policy: TimerPolicy = DEFAULT_POLICY):
    return attendance_alert(incident, DispatchState(), T0 + after, policy)


# --- attendance targets --------------------------------------------------------------


@pytest.mark.parametrize(
    ("grade", "target"),
    [
        (Grade.EMERGENCY, timedelta(minutes=15)),
        (Grade.PRIORITY, timedelta(minutes=60)),
        (Grade.SCHEDULED, timedelta(hours=48)),
    ],
)
def test_warn_and_breach_boundaries(grade: Grade, target: timedelta) -> None:
    incident = make_incident(grade)
    warn_at = target * 0.75
    tick = timedelta(seconds=1)
    assert alert(incident, timedelta(0)).level is Level.OK
    assert alert(incident, warn_at - tick).level is Level.OK
    assert alert(incident, warn_at).level is Level.WARN
    assert alert(incident, target - tick).level is Level.WARN
    at_target = alert(incident, target)
    assert at_target.level is Level.BREACH
    assert at_target.remaining == timedelta(0)
    late = alert(incident, target + 5 * MIN)
    assert late.level is Level.BREACH
    assert late.remaining == -5 * MIN
    assert late.target == target


def test_alert_carries_reference_age_and_remaining() -> None:
    result = alert(make_incident(), 4 * MIN)
    assert result == AgeingAlert(
        reference="0042-27NOV26",
        level=Level.OK,
        target=15 * MIN,
        remaining=11 * MIN,
        age=4 * MIN,
        arrived_at=None,
    )


@pytest.mark.parametrize("grade", [Grade.APPOINTMENT, Grade.RESOLVED_WITHOUT_DEPLOYMENT])
def test_grades_without_target_are_always_ok(grade: Grade) -> None:
    result = alert(make_incident(grade), timedelta(days=30))
    assert result.level is Level.OK
    assert result.target is None
    assert result.remaining is None
    assert result.age == timedelta(days=30)


def test_rural_sector_gets_the_rural_grade1_target() -> None:
    policy = TimerPolicy(rural_sectors=frozenset({"Moorside"}))
    rural = make_incident(sector="MOORSIDE")  # sectors match case-insensitively
    urban = make_incident(sector="City")
    assert alert(rural, 16 * MIN, policy).target == 20 * MIN
    assert alert(rural, 16 * MIN, policy).level is Level.WARN  # 16 >= 15 = 0.75 * 20
    assert alert(rural, 14 * MIN, policy).level is Level.OK
    assert alert(rural, 20 * MIN, policy).level is Level.BREACH
    assert alert(urban, 16 * MIN, policy).level is Level.BREACH
    # Without rural sectors configured, everywhere is urban.
    assert alert(rural, 16 * MIN).target == 15 * MIN
    # Grades with no rural override keep their usual target.
    assert alert(make_incident(Grade.PRIORITY, sector="moorside"), MIN, policy).target == (60 * MIN)


def test_policy_is_configurable() -> None:
    policy = TimerPolicy(
        targets={Grade.EMERGENCY: 10 * MIN, Grade.APPOINTMENT: timedelta(days=7)},
        warn_fraction=0.5,
    )
    incident = make_incident()
    assert alert(incident, 5 * MIN, policy).level is Level.WARN
    assert alert(incident, 10 * MIN, policy).level is Level.BREACH
    assert alert(make_incident(Grade.PRIORITY), timedelta(days=9), policy).target is None
    assert alert(make_incident(Grade.APPOINTMENT), timedelta(days=7), policy).level is (
        Level.BREACH
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"warn_fraction": 0},
        {"warn_fraction": 1.5},
        {"officer_safety_after": timedelta(0)},
        {"targets": {Grade.EMERGENCY: timedelta(minutes=-1)}},
    ],
)
def test_policy_rejects_nonsense(kwargs) -> None:
    with pytest.raises(ValueError):
        TimerPolicy(**kwargs)


def test_met_when_a_unit_arrived_in_time() -> None:
    arrived = T0 + 9 * MIN
    incident = make_incident(
        status=IncidentStatus.AT_SCENE,
        chronology=[
            entry(T0, "incident_created", "Opened"),
            entry(T0 + MIN, "unit_assigned", "PC101 assigned, en route", 2),
            entry(arrived, "unit_state_changed", "PC101 at scene", 3),
            entry(T0 + 12 * MIN, "unit_state_changed", "PC202 at scene", 4),
        ],
    )
    result = alert(incident, 30 * MIN)  # well past the target, but someone got there
    assert result.level is Level.MET
    assert result.arrived_at == arrived
    assert result.remaining == 6 * MIN
    assert result.age == 30 * MIN


def test_met_late_arrival_has_negative_remaining() -> None:
    incident = make_incident(
        status=IncidentStatus.AT_SCENE,
        chronology=[entry(T0 + 18 * MIN, "unit_state_changed", "PC101 at scene")],
    )
    result = alert(incident, 40 * MIN)
    assert result.level is Level.MET
    assert result.remaining == -3 * MIN


def test_other_chronology_entries_do_not_count_as_arrival() -> None:
    incident = make_incident(
        status=IncidentStatus.RESOURCED,
        chronology=[
            entry(T0 + MIN, "note_added", "caller says officers at scene already", 2),
            entry(T0 + 2 * MIN, "unit_state_changed", "PC101 en route", 3),
        ],
    )
    assert arrived_at(incident) is None
    assert alert(incident, 15 * MIN).level is Level.BREACH


def test_at_scene_without_chronology_entry_uses_units_in_state() -> None:
    incident = make_incident(status=IncidentStatus.AT_SCENE, assigned=["PC101", "PC202"])
    state = DispatchState(
        units={
            "PC101": make_unit("PC101", state_since=T0 + 11 * MIN, incident=incident.reference),
            "PC202": make_unit("PC202", state_since=T0 + 7 * MIN, incident=incident.reference),
        }
    )
    result = attendance_alert(incident, state, T0 + 20 * MIN)
    assert result.level is Level.MET
    assert result.arrived_at == T0 + 7 * MIN
    # Without the units, the incident's own status still says someone is there.
    assert attendance_alert(incident, None, T0 + 20 * MIN).level is Level.MET


def test_closed_incident_is_never_warn_or_breach() -> None:
    closed_at = T0 + 30 * MIN
    incident = make_incident(status=IncidentStatus.CLOSED, closed_at=closed_at)
    result = alert(incident, timedelta(hours=5))
    assert result.level is Level.OK
    assert result.age == 30 * MIN  # the clock stopped at closure
    assert result.remaining == -15 * MIN


def test_closed_incident_that_was_attended_is_met() -> None:
    incident = make_incident(
        status=IncidentStatus.CLOSED,
        closed_at=T0 + 40 * MIN,
        chronology=[entry(T0 + 10 * MIN, "unit_state_changed", "PC101 at scene")],
    )
    assert alert(incident, timedelta(hours=1)).level is Level.MET


def test_arrival_detected_from_real_fold() -> None:
    """The chronology text the fold writes is what `arrived_at` looks for."""
    common = {"operator": "disp1", "workstation": "ws1"}
    location = Location(address="High Street", position=Position(lat=53.48, lon=-2.24))
    state = fold(
        [
            UnitBookedOn(seq=1, at=T0, callsign="PC101", unit_type=UnitType.PATROL_CAR, **common),
            IncidentCreated(
                seq=2,
                at=T0,
                reference="0001-27NOV26",
                grade=Grade.EMERGENCY,
                incident_type="ASSAULT",
                location=location,
                source=SourceChannel.EMERGENCY_999,
                **common,
            ),
            UnitAssigned(seq=3, at=T0 + MIN, reference="0001-27NOV26", callsign="PC101", **common),
        ]
    )
    incident = state.incidents["0001-27NOV26"]
    assert attendance_alert(incident, state, T0 + 12 * MIN).level is Level.WARN
    fold(
        [
            UnitStateChanged(
                seq=4, at=T0 + 13 * MIN, callsign="PC101", state=UnitState.AT_SCENE, **common
            ),
        ],
        state,
    )
    result = attendance_alert(incident, state, T0 + 25 * MIN)
    assert result.level is Level.MET
    assert result.arrived_at == T0 + 13 * MIN
    fold(
        [
            IncidentClosed(
                seq=5, at=T0 + 50 * MIN, reference="0001-27NOV26", closing_code="NFA", **common
            )
        ],
        state,
    )
    assert attendance_alert(incident, state, T0 + 60 * MIN).level is Level.MET


# --- incident age --------------------------------------------------------------------


def test_incident_age() -> None:
    assert incident_age(make_incident(), T0 + 90 * MIN) == 90 * MIN
    assert incident_age(make_incident(), T0 - MIN) == timedelta(0)  # clock skew
    closed = make_incident(status=IncidentStatus.CLOSED, closed_at=T0 + 20 * MIN)
    assert incident_age(closed, T0 + timedelta(hours=3)) == 20 * MIN


# --- officer safety ------------------------------------------------------------------


def test_officer_safety_after_twenty_minutes_without_update() -> None:
    unit = make_unit(state_since=T0)
    assert officer_safety(unit, T0 + 19 * MIN) is False
    assert officer_safety(unit, T0 + 20 * MIN) is True
    assert officer_safety(unit, T0 + 45 * MIN) is True


def test_recent_position_fix_counts_as_an_update() -> None:
    unit = make_unit(state_since=T0, position_at=T0 + 15 * MIN)
    assert officer_safety(unit, T0 + 30 * MIN) is False
    assert officer_safety(unit, T0 + 35 * MIN) is True
    old_fix = make_unit(state_since=T0 + 10 * MIN, position_at=T0)
    assert officer_safety(old_fix, T0 + 29 * MIN) is False
    assert officer_safety(old_fix, T0 + 30 * MIN) is True


@pytest.mark.parametrize(
    "state",
    [s for s in UnitState if s != UnitState.AT_SCENE],
)
def test_officer_safety_only_for_units_at_scene(state: UnitState) -> None:
    assert officer_safety(make_unit(state=state), T0 + timedelta(hours=2)) is False


def test_officer_safety_ignores_off_duty_and_respects_policy() -> None:
    assert officer_safety(make_unit(on_duty=False), T0 + timedelta(hours=2)) is False
    policy = TimerPolicy(officer_safety_after=10 * MIN)
    assert officer_safety(make_unit(), T0 + 10 * MIN, policy) is True


def test_officer_safety_due_lists_longest_silent_first() -> None:
    state = DispatchState(
        units={
            "A": make_unit("A", state_since=T0 + 5 * MIN),
            "B": make_unit("B", state_since=T0),
            "C": make_unit("C", state_since=T0 + 30 * MIN),
            "D": make_unit("D", state=UnitState.EN_ROUTE),
        }
    )
    assert [u.callsign for u in officer_safety_due(state, T0 + 40 * MIN)] == ["B", "A"]


# --- emergencies ---------------------------------------------------------------------


def test_emergencies_lists_unacknowledged_state_zero_oldest_first() -> None:
    state = DispatchState(
        units={
            "NEW": make_unit("NEW", state=UnitState.EMERGENCY, state_since=T0 + 2 * MIN),
            "OLD": make_unit("OLD", state=UnitState.EMERGENCY, state_since=T0),
            "ACK": make_unit("ACK", state=UnitState.EMERGENCY, acknowledged_by="sup1"),
            "OK": make_unit("OK", state=UnitState.AVAILABLE_ON_PATROL),
            # Acknowledged earlier, now back to normal: no alarm either way.
            "WAS": make_unit("WAS", state=UnitState.AT_SCENE, acknowledged_by="sup1"),
        }
    )
    assert [u.callsign for u in emergencies(state)] == ["OLD", "NEW"]
    assert emergencies(DispatchState()) == []


def test_acknowledging_clears_the_alarm() -> None:
    unit = make_unit("PC1", state=UnitState.EMERGENCY)
    state = DispatchState(units={"PC1": unit})
    assert emergencies(state) == [unit]
    unit.emergency_acknowledged_by = "sup1"
    assert emergencies(state) == []


# --- format_age ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=59.9), "59s"),
        (timedelta(seconds=60), "1m"),
        (timedelta(minutes=12, seconds=59), "12m"),
        (timedelta(minutes=59, seconds=59), "59m"),
        (timedelta(hours=1), "1h00"),
        (timedelta(hours=1, minutes=5), "1h05"),
        (timedelta(hours=23, minutes=59), "23h59"),
        (timedelta(days=1), "1d00"),
        (timedelta(days=2, hours=3, minutes=40), "2d03"),
        (timedelta(days=120, hours=23), "120d23"),
        (timedelta(seconds=-30), "-30s"),
        (timedelta(minutes=-5), "-5m"),
        (timedelta(hours=-1, minutes=-5), "-1h05"),
    ],
)
def test_format_age(delta: timedelta, text: str) -> None:
    assert format_age(delta) == text


def test_format_age_fits_a_board_column() -> None:
    for minutes in range(0, 60 * 24 * 99, 7):
        assert len(format_age(timedelta(minutes=minutes))) <= 5
