"""Unit recommendation: who is offered, in what order, and the reason given."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadterm.domain.geography import haversine_km
from cadterm.domain.recommend import (
    BY_SECTOR,
    BY_TRAVEL_TIME,
    DEFAULT_NEEDS,
    UNRANKED,
    Recommendation,
    needs_for,
    parse_capability,
    recommend,
)
from cadterm.protocol.domain import (
    Capability,
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
from cadterm.protocol.fold import DispatchState

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
# The incident sits at a point in central Manchester; one degree of latitude is ~111.2 km.
SCENE = Position(lat=53.4800, lon=-2.2400)
KM_PER_DEG_LAT = math.pi * 6371.0088 / 180


def north(km: float) -> Position:
    """A point `km` due north of the scene."""
    return Position(lat=SCENE.lat + km / KM_PER_DEG_LAT, lon=SCENE.lon)


def make_incident(
    reference: str = "0042-27NOV26",
    grade: Grade = Grade.EMERGENCY,
    *,
    position: Position | None = SCENE,
    incident_type: str = "ASSAULT",
    assigned: list[str] | None = None,
    status: IncidentStatus = IncidentStatus.OPEN,
) -> Incident:
    return Incident(
        reference=reference,
        grade=grade,
        incident_type=incident_type,
        status=status,
        location=Location(address="1 Piccadilly, Manchester", position=position),
        source=SourceChannel.EMERGENCY_999,
        assigned=assigned or [],
        created_at=NOW - timedelta(minutes=3),
        updated_at=NOW - timedelta(minutes=3),
    )


def make_unit(
    callsign: str,
    *,
    km: float | None = 1.0,
    state: UnitState = UnitState.AVAILABLE_ON_PATROL,
    caps: tuple[Capability, ...] = (),
    fix_age: timedelta | None = timedelta(minutes=1),
    incident: str | None = None,
    on_duty: bool = True,
) -> Unit:
    return Unit(
        callsign=callsign,
        unit_type=UnitType.PATROL_CAR,
        capabilities=list(caps),
        state=state,
        state_since=NOW - timedelta(hours=1),
        incident=incident,
        position=None if km is None else north(km),
        position_at=None if km is None or fix_age is None else NOW - fix_age,
        on_duty=on_duty,
    )


def make_state(incidents: list[Incident], units: list[Unit]) -> DispatchState:
    return DispatchState(
        incidents={i.reference: i for i in incidents},
        units={u.callsign: u for u in units},
    )


def callsigns(recs: list[Recommendation]) -> list[str]:
    return [r.callsign for r in recs]


# --- distance ------------------------------------------------------------------------


def test_haversine_known_distance() -> None:
    # Manchester Piccadilly to Liverpool Lime Street is about 50 km in a straight line.
    manchester = Position(lat=53.4774, lon=-2.2309)
    liverpool = Position(lat=53.4074, lon=-2.9779)
    assert haversine_km(manchester, liverpool) == pytest.approx(50.0, abs=1.0)
    assert haversine_km(manchester, manchester) == 0.0
    assert haversine_km(manchester, liverpool) == pytest.approx(haversine_km(liverpool, manchester))


def test_haversine_antipodes_does_not_fail() -> None:
    d = haversine_km(Position(lat=0, lon=0), Position(lat=0, lon=180))
    assert d == pytest.approx(math.pi * 6371.0088)


# --- ranking -------------------------------------------------------------------------


def test_ranks_free_units_by_distance() -> None:
    incident = make_incident()
    units = [make_unit("C3", km=3.0), make_unit("A1", km=0.5), make_unit("B2", km=1.2)]
    recs = recommend(make_state([incident], units), incident, NOW)
    assert callsigns(recs) == ["A1", "B2", "C3"]
    assert [r.distance_km for r in recs] == pytest.approx([0.5, 1.2, 3.0], abs=0.01)
    assert all(r.diverts_from is None and not r.stale for r in recs)


def test_limit_truncates_and_zero_limit_is_empty() -> None:
    incident = make_incident()
    units = [make_unit(f"U{i}", km=float(i + 1)) for i in range(8)]
    state = make_state([incident], units)
    assert callsigns(recommend(state, incident, NOW)) == ["U0", "U1", "U2", "U3", "U4"]
    assert callsigns(recommend(state, incident, NOW, limit=2)) == ["U0", "U1"]
    assert recommend(state, incident, NOW, limit=0) == []


def test_equal_distance_prefers_available_then_callsign() -> None:
    incident = make_incident()
    units = [
        make_unit("A1", km=1.0, state=UnitState.REFRESHMENTS),
        make_unit("Z9", km=1.0, state=UnitState.AVAILABLE_ON_PATROL),
        make_unit("B2", km=1.0, state=UnitState.AVAILABLE_ON_PATROL),
    ]
    recs = recommend(make_state([incident], units), incident, NOW)
    assert callsigns(recs) == ["B2", "Z9", "A1"]


def test_every_deployable_state_is_offered_when_free() -> None:
    incident = make_incident()
    states = [
        UnitState.ON_DUTY,
        UnitState.AVAILABLE_ON_PATROL,
        UnitState.AVAILABLE_AT_STATION,
        UnitState.REFRESHMENTS,
        UnitState.COMMITTED_DEPLOYABLE,
    ]
    units = [make_unit(f"U{int(s)}", km=float(s), state=s) for s in states]
    recs = recommend(make_state([incident], units), incident, NOW, limit=10)
    assert [r.state for r in recs] == states


# --- exclusions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "state",
    [
        UnitState.EMERGENCY,
        UnitState.COMMITTED_NOT_DEPLOYABLE,
        UnitState.PRISONER_ESCORT,
        UnitState.AT_COURT,
        UnitState.OFF_DUTY,
    ],
)
def test_never_offers_emergency_or_non_deployable(state: UnitState) -> None:
    incident = make_incident()
    units = [make_unit("X1", km=0.1, state=state), make_unit("OK1", km=5.0)]
    assert callsigns(recommend(make_state([incident], units), incident, NOW)) == ["OK1"]


@pytest.mark.parametrize(
    "state",
    [UnitState.EMERGENCY, UnitState.COMMITTED_NOT_DEPLOYABLE, UnitState.PRISONER_ESCORT],
)
def test_never_diverts_emergency_or_non_deployable(state: UnitState) -> None:
    other = make_incident("0031-27NOV26", Grade.SCHEDULED)
    incident = make_incident()
    units = [make_unit("X1", km=0.1, state=state, incident=other.reference)]
    assert recommend(make_state([incident, other], units), incident, NOW) == []


def test_excludes_off_duty_flag_even_in_available_state() -> None:
    incident = make_incident()
    units = [make_unit("X1", km=0.1, on_duty=False), make_unit("OK1", km=5.0)]
    assert callsigns(recommend(make_state([incident], units), incident, NOW)) == ["OK1"]


def test_excludes_units_already_on_this_incident() -> None:
    incident = make_incident(assigned=["ON1"])
    units = [
        make_unit("ON1", km=0.1, state=UnitState.EN_ROUTE, incident=incident.reference),
        # Inconsistent but possible mid-update: the unit points here, the list does not.
        make_unit("ON2", km=0.2, state=UnitState.COMMITTED_DEPLOYABLE, incident="0042-27NOV26"),
        # In the list but its own record lags behind.
        make_unit("ON3", km=0.3),
        make_unit("OK1", km=5.0),
    ]
    incident.assigned.append("ON3")
    assert callsigns(recommend(make_state([incident], units), incident, NOW)) == ["OK1"]


def test_excludes_units_missing_a_needed_capability() -> None:
    incident = make_incident(incident_type="FIREARMS")
    units = [
        make_unit("P1", km=0.1),
        make_unit("AR1", km=3.0, caps=(Capability.FIREARMS, Capability.TASER)),
        make_unit("T1", km=0.5, caps=(Capability.TASER,)),
    ]
    state = make_state([incident], units)
    recs = recommend(state, incident, NOW, needs=[Capability.FIREARMS])
    assert callsigns(recs) == ["AR1"]
    assert recs[0].capabilities == ("firearms", "taser")
    assert recs[0].reason == "4 min (3.0 km), available on patrol, has firearms (the only one)"
    # Words work as well as the enum, and every need must be met.
    assert callsigns(recommend(state, incident, NOW, needs=["Firearms", "taser"])) == ["AR1"]
    assert recommend(state, incident, NOW, needs=["firearms", "dog"]) == []


def test_no_qualifying_unit_gives_empty_list() -> None:
    incident = make_incident()
    units = [make_unit("P1"), make_unit("P2", state=UnitState.OFF_DUTY)]
    assert recommend(make_state([incident], units), incident, NOW, needs=["dog"]) == []
    assert recommend(make_state([incident], []), incident, NOW) == []


def test_unknown_capability_word_is_an_error() -> None:
    incident = make_incident()
    with pytest.raises(ValueError, match="unknown capability 'firarms'"):
        recommend(make_state([incident], [make_unit("P1")]), incident, NOW, needs=["firarms"])


def test_parse_capability_words() -> None:
    assert parse_capability("first aid") is Capability.FIRST_AID
    assert parse_capability(" Public-Order ") is Capability.PUBLIC_ORDER
    assert parse_capability(Capability.DOG) is Capability.DOG


# --- diversions ----------------------------------------------------------------------


def test_grade1_offers_diversions_from_lower_priority_after_free_units() -> None:
    low = make_incident("0031-27NOV26", Grade.SCHEDULED)
    prio = make_incident("0035-27NOV26", Grade.PRIORITY)
    same = make_incident("0036-27NOV26", Grade.EMERGENCY)
    incident = make_incident()
    units = [
        make_unit("D1", km=0.2, state=UnitState.AT_SCENE, incident=low.reference),
        make_unit("D2", km=0.3, state=UnitState.EN_ROUTE, incident=prio.reference),
        make_unit("G1", km=0.1, state=UnitState.AT_SCENE, incident=same.reference),
        make_unit("F1", km=8.0),
    ]
    state = make_state([incident, low, prio, same], units)
    recs = recommend(state, incident, NOW)
    assert callsigns(recs) == ["F1", "D1", "D2"]  # free first, never another grade 1
    assert recs[0].diverts_from is None
    assert recs[1].diverts_from == "0031-27NOV26"
    assert recs[1].reason == "under 1 min (0.2 km), at scene, diverts from 0031-27NOV26 (grade 3)"
    assert recs[2].diverts_from == "0035-27NOV26"
    assert "diverts from 0035-27NOV26 (grade 2)" in recs[2].reason


@pytest.mark.parametrize("grade", [Grade.PRIORITY, Grade.SCHEDULED, Grade.APPOINTMENT])
def test_no_diversions_below_grade1(grade: Grade) -> None:
    low = make_incident("0031-27NOV26", Grade.RESOLVED_WITHOUT_DEPLOYMENT)
    incident = make_incident(grade=grade)
    units = [
        make_unit("D1", km=0.2, state=UnitState.AT_SCENE, incident=low.reference),
        make_unit("D2", km=0.2, state=UnitState.COMMITTED_DEPLOYABLE, incident=low.reference),
    ]
    assert recommend(make_state([incident, low], units), incident, NOW) == []


def test_unit_tied_to_closed_incident_counts_as_free() -> None:
    done = make_incident("0031-27NOV26", Grade.EMERGENCY, status=IncidentStatus.CLOSED)
    incident = make_incident(grade=Grade.PRIORITY)
    units = [make_unit("P1", km=0.5, incident=done.reference)]
    recs = recommend(make_state([incident, done], units), incident, NOW)
    assert callsigns(recs) == ["P1"]
    assert recs[0].diverts_from is None


def test_unit_tied_to_unknown_incident_in_committed_state_is_not_offered() -> None:
    incident = make_incident()
    units = [make_unit("X1", km=0.5, state=UnitState.AT_SCENE, incident="9999-27NOV26")]
    assert recommend(make_state([incident], units), incident, NOW) == []


# --- positions -----------------------------------------------------------------------


def test_units_without_fix_rank_after_positioned_ones() -> None:
    incident = make_incident()
    units = [make_unit("N1", km=None), make_unit("FAR", km=40.0), make_unit("N0", km=None)]
    recs = recommend(make_state([incident], units), incident, NOW)
    assert callsigns(recs) == ["FAR", "N0", "N1"]
    assert recs[1].distance_km is None
    assert recs[1].reason == "no location fix, available on patrol"
    assert recs[1].stale is False
    assert recs[0].reason == "52 min (40 km), available on patrol"


def test_incident_without_coordinates() -> None:
    incident = make_incident(position=None)
    units = [make_unit("B2", km=1.0), make_unit("A1", km=3.0)]
    recs = recommend(make_state([incident], units), incident, NOW)
    assert callsigns(recs) == ["A1", "B2"]  # no distance: by callsign
    assert all(r.distance_km is None for r in recs)
    assert recs[0].reason == "incident has no location or sector: not ranked, available on patrol"
    assert {r.basis for r in recs} == {UNRANKED}


def test_stale_fix_is_flagged_with_its_age() -> None:
    incident = make_incident()
    units = [
        make_unit("OLD", km=0.3, fix_age=timedelta(minutes=12, seconds=40)),
        make_unit("NEW", km=0.9, fix_age=timedelta(minutes=5)),  # exactly the limit: fresh
        make_unit("ANCIENT", km=2.0, fix_age=timedelta(hours=3, minutes=10)),
        make_unit("NOTIME", km=2.5, fix_age=None),
    ]
    recs = {r.callsign: r for r in recommend(make_state([incident], units), incident, NOW)}
    assert recs["OLD"].stale is True
    assert recs["OLD"].reason == "under 1 min (0.3 km), fix 12 min old, available on patrol"
    assert recs["NEW"].stale is False
    assert "fix" not in recs["NEW"].reason
    assert recs["ANCIENT"].stale is True
    assert "fix 3 h old" in recs["ANCIENT"].reason
    assert recs["NOTIME"].stale is True
    assert "fix time unknown" in recs["NOTIME"].reason


def test_stale_after_is_configurable_and_stale_units_still_rank_by_distance() -> None:
    incident = make_incident()
    units = [make_unit("A", km=0.5, fix_age=timedelta(minutes=3)), make_unit("B", km=1.0)]
    recs = recommend(make_state([incident], units), incident, NOW, stale_after=timedelta(minutes=2))
    assert callsigns(recs) == ["A", "B"]
    assert [r.stale for r in recs] == [True, False]


def test_future_fix_is_not_stale() -> None:
    incident = make_incident()
    units = [make_unit("A", km=0.5, fix_age=timedelta(minutes=-2))]
    assert recommend(make_state([incident], units), incident, NOW)[0].stale is False


# --- reasons -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "words"),
    [
        (UnitState.ON_DUTY, "on duty"),
        (UnitState.AVAILABLE_ON_PATROL, "available on patrol"),
        (UnitState.AVAILABLE_AT_STATION, "available at station"),
        (UnitState.REFRESHMENTS, "refreshments (deployable)"),
        (UnitState.COMMITTED_DEPLOYABLE, "committed (deployable)"),
    ],
)
def test_reason_names_the_state(state: UnitState, words: str) -> None:
    incident = make_incident()
    units = [make_unit("A", km=0.4, state=state)]
    assert recommend(make_state([incident], units), incident, NOW)[0].reason == (
        f"1 min (0.4 km), {words}"
    )


def test_reason_lists_several_needs() -> None:
    incident = make_incident()
    caps = (Capability.FIRST_AID, Capability.TRAFFIC, Capability.DOG)
    units = [make_unit("A", km=1.24, caps=caps)]
    rec = recommend(make_state([incident], units), incident, NOW, needs=caps)[0]
    assert rec.reason == (
        "2 min (1.2 km), available on patrol, has first aid, traffic and dog (the only one)"
    )


# --- travel time, sectors, and saying when there is no basis ---------------------------


def test_units_are_ranked_by_travel_time_not_distance() -> None:
    # An officer on foot 0.5 km away takes ~8 min; a car 1.5 km away takes ~3 min.
    incident = make_incident(grade=Grade.PRIORITY)
    foot = make_unit("FOOT1", km=0.5).model_copy(update={"unit_type": UnitType.FOOT})
    car = make_unit("CAR1", km=1.5)
    recs = recommend(make_state([incident], [foot, car]), incident, NOW)
    assert callsigns(recs) == ["CAR1", "FOOT1"]
    assert recs[0].travel_seconds == pytest.approx(1.5 * 1.3 / 40 * 3600, rel=0.01)
    assert recs[1].reason.startswith("8 min (0.5 km)")
    assert {r.basis for r in recs} == {BY_TRAVEL_TIME}


def test_a_grade_1_is_reckoned_on_blue_lights() -> None:
    units = [make_unit("CAR1", km=2.0)]
    emergency, routine = make_incident(grade=Grade.EMERGENCY), make_incident(grade=Grade.SCHEDULED)
    fast = recommend(make_state([emergency], units), emergency, NOW)[0].travel_seconds
    slow = recommend(make_state([routine], units), routine, NOW)[0].travel_seconds
    assert fast == pytest.approx(slow * 40 / 60)


def test_the_first_of_several_capable_units_says_it_is_the_nearest() -> None:
    incident = make_incident(incident_type="FIREARMS")
    armed = [make_unit(f"ARV{i}", km=float(i), caps=(Capability.FIREARMS,)) for i in (3, 1, 2)]
    recs = recommend(
        make_state([incident], [*armed, make_unit("CAR1", km=0.1)]),
        incident,
        NOW,
        needs=needs_for(incident.incident_type),
    )
    assert callsigns(recs) == ["ARV1", "ARV2", "ARV3"]
    assert recs[0].reason.endswith("has firearms (nearest of 3)")
    assert recs[1].reason.endswith("has firearms")


def test_without_coordinates_the_incidents_sector_comes_first_and_says_so() -> None:
    incident = make_incident(position=None)
    incident = incident.model_copy(
        update={"location": Location(address="Market Place", sector="North")}
    )
    units = [
        make_unit("A1").model_copy(update={"home_sector": "South"}),
        make_unit("Z9").model_copy(update={"home_sector": "North"}),
    ]
    recs = recommend(make_state([incident], units), incident, NOW)
    assert callsigns(recs) == ["Z9", "A1"]
    assert {r.basis for r in recs} == {BY_SECTOR}
    assert recs[0].reason.startswith("incident has no location; same sector (North)")
    assert recs[1].reason.startswith("incident has no location; sector South")


def test_needs_for_defaults() -> None:
    assert needs_for("FIREARMS") == (Capability.FIREARMS,)
    assert needs_for(" firearms ") == (Capability.FIREARMS,)
    assert needs_for("RTC") == ()  # the nearest patrol car goes; traffic is not required
    assert needs_for("BURGLARY") == ()
    assert needs_for("UNKNOWN") == ()
    assert needs_for("DOG", {"DOG": [Capability.DOG]}) == (Capability.DOG,)
    assert set(DEFAULT_NEEDS) == {"FIREARMS"}


def test_recommend_does_not_change_the_state() -> None:
    incident = make_incident()
    units = [make_unit("A", km=0.4), make_unit("B", km=None)]
    state = make_state([incident], units)
    before = state.model_dump()
    recommend(state, incident, NOW, needs=[])
    assert state.model_dump() == before


# --- property ------------------------------------------------------------------------

_REFS = ["0001-27NOV26", "0002-27NOV26", "0003-27NOV26"]
_positions = st.one_of(
    st.none(),
    st.builds(
        Position,
        lat=st.floats(min_value=-90, max_value=90, allow_nan=False),
        lon=st.floats(min_value=-180, max_value=180, allow_nan=False),
    ),
)

_fix_times = st.none() | st.integers(-5, 90).map(lambda m: NOW - timedelta(minutes=m))


@st.composite
def _scenarios(draw):
    grades = [draw(st.sampled_from(list(Grade))) for _ in _REFS]
    incidents = [
        make_incident(ref, grade, position=draw(_positions))
        for ref, grade in zip(_REFS, grades, strict=True)
    ]
    units = []
    for n in range(draw(st.integers(min_value=0, max_value=12))):
        position = draw(_positions)
        unit = Unit(
            callsign=f"U{n:02d}",
            unit_type=UnitType.PATROL_CAR,
            capabilities=draw(st.lists(st.sampled_from(list(Capability)), unique=True)),
            state=draw(st.sampled_from(list(UnitState))),
            state_since=NOW - timedelta(hours=1),
            incident=draw(st.sampled_from([None, *_REFS, "9999-27NOV26"])),
            position=position,
            position_at=None if position is None else draw(_fix_times),
            on_duty=draw(st.booleans()),
        )
        units.append(unit)
        if unit.incident in _REFS and draw(st.booleans()):
            incidents[_REFS.index(unit.incident)].assigned.append(unit.callsign)
    target = draw(st.sampled_from(incidents))
    needs = draw(st.lists(st.sampled_from(list(Capability)), max_size=2))
    limit = draw(st.integers(min_value=0, max_value=8))
    return make_state(incidents, units), target, needs, limit


@settings(max_examples=200, deadline=None)
@given(_scenarios())
def test_recommend_properties(scenario) -> None:
    state, incident, needs, limit = scenario
    recs = recommend(state, incident, NOW, needs=needs, limit=limit)
    assert len(recs) <= limit
    assert len({r.callsign for r in recs}) == len(recs)

    free = [r for r in recs if r.diverts_from is None]
    diverted = [r for r in recs if r.diverts_from is not None]
    assert recs == free + diverted  # free units always come first
    if incident.grade != Grade.EMERGENCY:
        assert diverted == []

    positioned = [r.distance_km for r in free if r.distance_km is not None]
    assert positioned == sorted(positioned)
    nones = [r.distance_km is None for r in free]
    assert nones == sorted(nones)  # unpositioned only after positioned ones

    for rec in recs:
        unit = state.units[rec.callsign]
        assert unit.on_duty
        assert rec.state not in {
            UnitState.EMERGENCY,
            UnitState.COMMITTED_NOT_DEPLOYABLE,
            UnitState.PRISONER_ESCORT,
            UnitState.AT_COURT,
            UnitState.OFF_DUTY,
        }
        assert rec.callsign not in incident.assigned
        assert unit.incident != incident.reference
        assert set(needs) <= set(unit.capabilities)
        assert rec.reason
        if rec.diverts_from is not None:
            assert state.incidents[rec.diverts_from].grade > incident.grade
