"""Unit tests of the pure fold: what each event does to the dispatch picture."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from cadterm.protocol.domain import (
    Caller,
    Capability,
    Grade,
    IncidentLink,
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
    EventBase,
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
    UnitLocated,
    UnitStateChanged,
    UnitUnassigned,
)
from cadterm.protocol.fold import (
    Changes,
    DispatchState,
    FoldError,
    InconsistentEvent,
    SequenceError,
    apply,
    fold,
)

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
REF = "0001-27NOV26"
OTHER = "0002-27NOV26"


class Log:
    """Builds events with the next seq and a clock that moves a minute per event."""

    def __init__(self) -> None:
        self.state = DispatchState()
        self.events: list[EventBase] = []
        self.at = T0

    def make(self, cls: type[EventBase], **fields: Any) -> EventBase:
        fields.setdefault("seq", self.state.seq + 1)
        fields.setdefault("at", self.at + timedelta(minutes=1))
        fields.setdefault("operator", "disp.okafor")
        fields.setdefault("workstation", "CR1-WS04")
        return cls(**fields)

    def add(self, cls: type[EventBase], **fields: Any) -> Changes:
        event = self.make(cls, **fields)
        changes = apply(self.state, event)
        self.events.append(event)
        self.at = event.at
        return changes

    def create(self, reference: str = REF, **fields: Any) -> Changes:
        fields.setdefault("grade", Grade.EMERGENCY)
        fields.setdefault("incident_type", "ASSAULT")
        fields.setdefault("location", Location(address="14 Corporation Street, Birmingham"))
        fields.setdefault("source", SourceChannel.EMERGENCY_999)
        return self.add(IncidentCreated, reference=reference, **fields)

    def book_on(self, callsign: str = "AB12", **fields: Any) -> Changes:
        fields.setdefault("unit_type", UnitType.PATROL_CAR)
        return self.add(UnitBookedOn, callsign=callsign, **fields)

    def assign(self, callsign: str = "AB12", reference: str = REF, **fields: Any) -> Changes:
        return self.add(UnitAssigned, reference=reference, callsign=callsign, **fields)

    def set_state(self, callsign: str, state: UnitState, **fields: Any) -> Changes:
        return self.add(UnitStateChanged, callsign=callsign, state=state, **fields)

    @property
    def incident(self):
        return self.state.incidents[REF]

    def unit(self, callsign: str = "AB12"):
        return self.state.units[callsign]


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def busy(log: Log) -> Log:
    """One grade-1 incident with AB12 assigned (en route) and CD21 free."""
    log.create()
    log.book_on("AB12")
    log.book_on("CD21", unit_type=UnitType.VAN)
    log.assign("AB12")
    return log


# --- incidents -----------------------------------------------------------------------


def test_incident_created(log: Log) -> None:
    caller = Caller(name="Mrs J Whitfield", phone="07700 900123", relationship="neighbour")
    changes = log.create(
        description="Two males fighting outside the shop",
        caller=caller,
        risk=Risk(threat="Bottle seen"),
    )
    incident = log.incident
    assert changes == Changes(incidents={REF})
    assert incident.reference == REF
    assert incident.version == 1
    assert incident.status == IncidentStatus.OPEN
    assert incident.grade == Grade.EMERGENCY
    assert incident.caller == caller
    assert incident.risk.threat == "Bottle seen"
    assert incident.created_at == incident.updated_at == T0 + timedelta(minutes=1)
    assert incident.assigned == [] and incident.links == []
    [entry] = incident.chronology
    assert entry.seq == 1
    assert entry.version == 1
    assert entry.kind == "incident_created"
    assert entry.operator == "disp.okafor"
    assert entry.workstation == "CR1-WS04"
    assert "ASSAULT" in entry.text and "14 Corporation Street" in entry.text
    assert log.state.seq == 1


def test_incident_created_without_risk_gets_an_empty_assessment(log: Log) -> None:
    log.create()
    assert log.incident.risk == Risk()


def test_incident_created_twice_is_inconsistent(log: Log) -> None:
    log.create()
    before = log.state.model_dump()
    with pytest.raises(InconsistentEvent, match="already exists"):
        log.create()
    assert log.state.model_dump() == before


def test_incident_graded(log: Log) -> None:
    log.create(grade=Grade.PRIORITY)
    changes = log.add(IncidentGraded, reference=REF, grade=Grade.EMERGENCY, reason="Knife seen")
    assert changes == Changes(incidents={REF})
    assert log.incident.grade == Grade.EMERGENCY
    assert log.incident.version == 2
    entry = log.incident.chronology[-1]
    assert entry.kind == "incident_graded"
    assert entry.version == 2
    assert entry.text == "Grade 2 -> 1: Knife seen"
    assert log.incident.updated_at == entry.at


def test_incident_retyped_relocated_and_risk_assessed(log: Log) -> None:
    log.create()
    log.add(IncidentRetyped, reference=REF, incident_type="ROBBERY")
    where = Location(address="Co-op, 221 Soho Road", position=Position(lat=52.5, lon=-1.93))
    log.add(IncidentRelocated, reference=REF, location=where)
    log.add(RiskAssessed, reference=REF, risk=Risk(threat="Knife", vulnerability="Elderly"))
    incident = log.incident
    assert incident.incident_type == "ROBBERY"
    assert incident.location == where
    assert incident.risk == Risk(threat="Knife", vulnerability="Elderly")
    assert incident.version == 4
    assert [e.kind for e in incident.chronology][1:] == [
        "incident_retyped",
        "incident_relocated",
        "risk_assessed",
    ]
    assert incident.chronology[-1].text == "THRIVE assessment: threat, vulnerability"


def test_note_added(log: Log) -> None:
    log.create()
    log.add(NoteAdded, reference=REF, text="Ambulance requested", operator="disp.hughes")
    entry = log.incident.chronology[-1]
    assert (entry.kind, entry.text, entry.operator) == (
        "note_added",
        "Ambulance requested",
        "disp.hughes",
    )


# --- assignment and unit states -------------------------------------------------------


def test_assign_puts_unit_en_route_and_resources_the_incident(log: Log) -> None:
    log.create()
    log.book_on("AB12")
    changes = log.assign("AB12")
    unit = log.unit("AB12")
    assert changes == Changes(incidents={REF}, units={"AB12"})
    assert unit.state == UnitState.EN_ROUTE == 5
    assert unit.state_since == log.at
    assert unit.incident == REF
    assert unit.version == 2
    assert log.incident.assigned == ["AB12"]
    assert log.incident.status == IncidentStatus.RESOURCED
    assert log.incident.chronology[-1].text == "AB12 assigned, en route"


def test_unit_at_scene_puts_incident_at_scene(busy: Log) -> None:
    changes = busy.set_state("AB12", UnitState.AT_SCENE)
    assert changes == Changes(incidents={REF}, units={"AB12"})
    assert busy.unit("AB12").state == 6
    assert busy.incident.status == IncidentStatus.AT_SCENE
    assert busy.incident.chronology[-1].text == "AB12 at scene"


def test_available_state_with_cleared_from_clears_the_unit(busy: Log) -> None:
    busy.set_state("AB12", UnitState.AT_SCENE)
    changes = busy.set_state("AB12", UnitState.AVAILABLE_ON_PATROL, cleared_from=REF)
    assert changes == Changes(incidents={REF}, units={"AB12"})
    assert busy.unit("AB12").incident is None
    assert busy.unit("AB12").state == UnitState.AVAILABLE_ON_PATROL
    assert busy.incident.assigned == []
    assert busy.incident.status == IncidentStatus.OPEN
    assert busy.incident.chronology[-1].text == "AB12 cleared (Available on patrol)"


def test_state_change_of_free_unit_touches_no_incident(busy: Log) -> None:
    changes = busy.set_state("CD21", UnitState.REFRESHMENTS)
    assert changes == Changes(units={"CD21"})
    assert busy.unit("CD21").state == UnitState.REFRESHMENTS


def test_same_state_again_keeps_state_since(busy: Log) -> None:
    since = busy.unit("AB12").state_since
    busy.set_state("AB12", UnitState.EN_ROUTE)
    assert busy.unit("AB12").state_since == since
    assert busy.unit("AB12").version == 3


def test_unassign_makes_unit_available(busy: Log) -> None:
    changes = busy.add(UnitUnassigned, reference=REF, callsign="AB12", reason="Not required")
    assert changes == Changes(incidents={REF}, units={"AB12"})
    assert busy.unit("AB12").incident is None
    assert busy.unit("AB12").state == UnitState.AVAILABLE_ON_PATROL
    assert busy.incident.assigned == []
    assert busy.incident.status == IncidentStatus.OPEN
    assert busy.incident.chronology[-1].text == "AB12 stood down: Not required"


def test_divert_moves_unit_between_incidents(busy: Log) -> None:
    busy.create(OTHER)
    changes = busy.assign("AB12", OTHER, diverted_from=REF)
    assert changes == Changes(incidents={REF, OTHER}, units={"AB12"})
    assert busy.unit("AB12").incident == OTHER
    assert busy.incident.assigned == []
    assert busy.incident.status == IncidentStatus.OPEN
    assert busy.incident.chronology[-1].text == f"AB12 diverted to {OTHER}"
    assert busy.state.incidents[OTHER].assigned == ["AB12"]
    assert busy.state.incidents[OTHER].status == IncidentStatus.RESOURCED


def test_assigning_a_committed_unit_elsewhere_takes_it_off_its_incident(busy: Log) -> None:
    """Regression: without `diverted_from` the unit stayed listed on its first incident,
    and closing that one later made the unit, en route to the second, available."""
    busy.set_state("AB12", UnitState.COMMITTED_DEPLOYABLE)
    busy.create(OTHER)
    busy.assign("AB12", OTHER)
    assert busy.incident.assigned == []
    assert busy.state.incidents[OTHER].assigned == ["AB12"]
    busy.add(IncidentClosed, reference=REF, closing_code="NFA")
    assert busy.unit("AB12").state == UnitState.EN_ROUTE
    assert busy.unit("AB12").incident == OTHER


# --- closing, reopening, linking -------------------------------------------------------


def test_close_releases_units_and_sets_closing_code(busy: Log) -> None:
    busy.assign("CD21")
    busy.set_state("AB12", UnitState.AT_SCENE)
    changes = busy.add(IncidentClosed, reference=REF, closing_code="ARREST", summary="One male")
    incident = busy.incident
    assert changes == Changes(incidents={REF}, units={"AB12", "CD21"})
    assert incident.status == IncidentStatus.CLOSED
    assert incident.closing_code == "ARREST"
    assert incident.closed_at == busy.at
    assert incident.assigned == []
    assert incident.chronology[-1].text == "Closed ARREST: One male"
    for callsign in ("AB12", "CD21"):
        assert busy.unit(callsign).state == UnitState.AVAILABLE_ON_PATROL == 2
        assert busy.unit(callsign).incident is None


def test_close_leaves_a_unit_in_emergency_in_state_0(busy: Log) -> None:
    busy.set_state("AB12", UnitState.EMERGENCY)
    busy.add(IncidentClosed, reference=REF, closing_code="NFA")
    assert busy.unit("AB12").state == UnitState.EMERGENCY
    assert busy.unit("AB12").incident is None


def test_reopen(busy: Log) -> None:
    busy.add(IncidentClosed, reference=REF, closing_code="NFA")
    changes = busy.add(
        IncidentReopened, reference=REF, reason="Caller rang back", operator="sup.patel"
    )
    assert changes == Changes(incidents={REF})
    incident = busy.incident
    assert incident.status == IncidentStatus.OPEN
    assert incident.closing_code is None
    assert incident.closed_at is None
    assert incident.chronology[-1].text == "Reopened: Caller rang back"
    assert incident.chronology[-1].operator == "sup.patel"


def test_link_writes_both_sides(log: Log) -> None:
    log.create(REF)
    log.create(OTHER)
    changes = log.add(
        IncidentLinked, reference=OTHER, other=REF, relation=LinkRelation.DUPLICATE_OF
    )
    assert changes == Changes(incidents={REF, OTHER})
    duplicate, original = log.state.incidents[OTHER], log.state.incidents[REF]
    assert duplicate.links == [IncidentLink(reference=REF, relation=LinkRelation.DUPLICATE_OF)]
    assert original.links == [IncidentLink(reference=OTHER, relation=LinkRelation.DUPLICATED_BY)]
    assert duplicate.chronology[-1].text == f"Linked: duplicate of {REF}"
    assert original.chronology[-1].text == f"Linked: duplicated by {OTHER}"
    assert duplicate.version == original.version == 2


@pytest.mark.parametrize(
    ("relation", "back"),
    [
        (LinkRelation.DUPLICATED_BY, LinkRelation.DUPLICATE_OF),
        (LinkRelation.RELATED, LinkRelation.RELATED),
    ],
)
def test_link_back_relation(log: Log, relation: LinkRelation, back: LinkRelation) -> None:
    log.create(REF)
    log.create(OTHER)
    log.add(IncidentLinked, reference=REF, other=OTHER, relation=relation)
    assert log.state.incidents[OTHER].links == [IncidentLink(reference=REF, relation=back)]


# --- booking on and off, emergencies, locations ----------------------------------------


def test_book_on_new_unit(log: Log) -> None:
    where = Position(lat=52.48, lon=-1.89)
    changes = log.book_on(
        "ARV 1",
        unit_type=UnitType.ARMED_RESPONSE,
        capabilities=[Capability.FIREARMS, Capability.TASER],
        home_sector="city",
        state=UnitState.AVAILABLE_AT_STATION,
        position=where,
    )
    unit = log.unit("ARV 1")
    assert changes == Changes(units={"ARV 1"})
    assert unit.on_duty
    assert unit.state == UnitState.AVAILABLE_AT_STATION
    assert unit.state_since == log.at
    assert unit.capabilities == [Capability.FIREARMS, Capability.TASER]
    assert unit.position == where and unit.position_at == log.at
    assert unit.version == 1
    assert unit.incident is None


def test_book_off_releases_and_book_on_again(busy: Log) -> None:
    changes = busy.add(UnitBookedOff, callsign="AB12")
    unit = busy.unit("AB12")
    assert changes == Changes(incidents={REF}, units={"AB12"})
    assert not unit.on_duty
    assert unit.state == UnitState.OFF_DUTY
    assert unit.incident is None
    assert busy.incident.assigned == []
    assert busy.incident.status == IncidentStatus.OPEN
    assert busy.incident.chronology[-1].text == "AB12 booked off duty"

    busy.book_on("AB12", unit_type=UnitType.VAN, home_sector="north")
    unit = busy.unit("AB12")
    assert unit.on_duty
    assert unit.state == UnitState.AVAILABLE_ON_PATROL
    assert unit.unit_type == UnitType.VAN
    assert unit.home_sector == "north"
    assert unit.version == 4


def test_book_off_free_unit_touches_no_incident(busy: Log) -> None:
    assert busy.add(UnitBookedOff, callsign="CD21") == Changes(units={"CD21"})


def test_emergency_then_acknowledged(busy: Log) -> None:
    busy.set_state("AB12", UnitState.EMERGENCY)
    unit = busy.unit("AB12")
    assert unit.state == 0
    assert unit.emergency_acknowledged_by is None
    assert busy.incident.chronology[-1].text == "AB12 emergency"

    changes = busy.add(EmergencyAcknowledged, callsign="AB12", operator="sup.macleod")
    assert changes == Changes(incidents={REF}, units={"AB12"})
    assert unit.emergency_acknowledged_by == "sup.macleod"
    assert unit.state == UnitState.EMERGENCY
    assert busy.incident.chronology[-1].text == "AB12 emergency acknowledged by sup.macleod"


def test_new_emergency_needs_a_new_acknowledgement(busy: Log) -> None:
    busy.set_state("CD21", UnitState.EMERGENCY)
    assert busy.add(EmergencyAcknowledged, callsign="CD21") == Changes(units={"CD21"})
    busy.set_state("CD21", UnitState.AVAILABLE_ON_PATROL)
    busy.set_state("CD21", UnitState.EMERGENCY)
    assert busy.unit("CD21").emergency_acknowledged_by is None


def test_leaving_state_0_clears_the_acknowledgement(busy: Log) -> None:
    busy.set_state("AB12", UnitState.EMERGENCY)
    busy.add(EmergencyAcknowledged, callsign="AB12", operator="sup.macleod")
    busy.set_state("AB12", UnitState.AT_SCENE)
    assert busy.unit("AB12").emergency_acknowledged_by is None


def test_unit_located(busy: Log) -> None:
    fix = Position(lat=52.5077, lon=-1.8653)
    fixed_at = busy.at + timedelta(seconds=20)
    changes = busy.add(UnitLocated, callsign="CD21", position=fix, fixed_at=fixed_at)
    assert changes == Changes(units={"CD21"})
    assert busy.unit("CD21").position == fix
    assert busy.unit("CD21").position_at == fixed_at


# --- errors leave the state alone -------------------------------------------------------


@pytest.mark.parametrize(("seq", "kind"), [(6, "gap"), (4, "duplicate"), (1, "duplicate")])
def test_sequence_error(busy: Log, seq: int, kind: str) -> None:
    before = busy.state.model_dump()
    with pytest.raises(SequenceError, match=kind) as caught:
        busy.add(NoteAdded, reference=REF, text="late", seq=seq)
    assert (caught.value.expected, caught.value.got) == (5, seq)
    assert isinstance(caught.value, FoldError)
    assert busy.state.model_dump() == before


_UNKNOWN = [
    (IncidentGraded, {"reference": "9999-27NOV26", "grade": 2}),
    (IncidentRetyped, {"reference": "9999-27NOV26", "incident_type": "RTC"}),
    (IncidentRelocated, {"reference": "9999-27NOV26", "location": {"address": "x"}}),
    (RiskAssessed, {"reference": "9999-27NOV26", "risk": {}}),
    (NoteAdded, {"reference": "9999-27NOV26", "text": "x"}),
    (UnitAssigned, {"reference": "9999-27NOV26", "callsign": "CD21"}),
    (UnitAssigned, {"reference": REF, "callsign": "ZZ99"}),
    (UnitAssigned, {"reference": REF, "callsign": "CD21", "diverted_from": "9999-27NOV26"}),
    (UnitUnassigned, {"reference": "9999-27NOV26", "callsign": "AB12"}),
    (UnitUnassigned, {"reference": REF, "callsign": "ZZ99"}),
    (UnitStateChanged, {"callsign": "ZZ99", "state": 6}),
    (UnitStateChanged, {"callsign": "AB12", "state": 2, "cleared_from": "9999-27NOV26"}),
    (UnitLocated, {"callsign": "ZZ99", "position": {"lat": 52, "lon": -1}, "fixed_at": T0}),
    (EmergencyAcknowledged, {"callsign": "ZZ99"}),
    (IncidentClosed, {"reference": "9999-27NOV26", "closing_code": "NFA"}),
    (IncidentReopened, {"reference": "9999-27NOV26", "reason": "x"}),
    (IncidentLinked, {"reference": "9999-27NOV26", "other": REF, "relation": "related"}),
    (IncidentLinked, {"reference": REF, "other": "9999-27NOV26", "relation": "related"}),
    (UnitBookedOff, {"callsign": "ZZ99"}),
]


@pytest.mark.parametrize(
    ("cls", "fields"), _UNKNOWN, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(_UNKNOWN)]
)
def test_unknown_incident_or_unit_is_inconsistent(
    busy: Log, cls: type[EventBase], fields: dict
) -> None:
    before = busy.state.model_dump()
    with pytest.raises(InconsistentEvent, match=r"unknown (incident|unit)"):
        busy.add(cls, **fields)
    assert busy.state.model_dump() == before


# --- log numbering -----------------------------------------------------------------------


def test_log_number_counts_within_a_day_and_restarts_the_next(log: Log) -> None:
    assert (log.state.log_day, log.state.log_number) == (None, 0)
    log.create("0001-27NOV26", at=datetime(2026, 11, 27, 0, 0, 1, tzinfo=UTC))
    log.create("0002-27NOV26", at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC))
    log.create("0003-27NOV26", at=datetime(2026, 11, 27, 23, 59, 59, tzinfo=UTC))
    assert (log.state.log_day, log.state.log_number) == (date(2026, 11, 27), 3)
    log.add(NoteAdded, reference="0001-27NOV26", text="x", at=datetime(2026, 11, 28, tzinfo=UTC))
    assert (log.state.log_day, log.state.log_number) == (date(2026, 11, 27), 3)
    log.create("0001-28NOV26", at=datetime(2026, 11, 28, 0, 5, tzinfo=UTC))
    assert (log.state.log_day, log.state.log_number) == (date(2026, 11, 28), 1)
    log.create("0001-30NOV26", at=datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    assert (log.state.log_day, log.state.log_number) == (date(2026, 11, 30), 1)
    log.create("0002-30NOV26", at=datetime(2026, 11, 30, 8, 1, tzinfo=UTC))
    assert (log.state.log_day, log.state.log_number) == (date(2026, 11, 30), 2)


def test_log_day_on_the_event_overrides_the_utc_date(log: Log) -> None:
    # 23:30 UTC on 26 June is 00:30 BST on the 27th: the control room's new day.
    late = datetime(2026, 6, 26, 23, 30, tzinfo=UTC)
    log.create("0001-26JUN26", at=late - timedelta(hours=1), log_day=date(2026, 6, 26))
    log.create("0001-27JUN26", at=late, log_day=date(2026, 6, 27))
    assert (log.state.log_day, log.state.log_number) == (date(2026, 6, 27), 1)
    log.create("0002-27JUN26", at=late + timedelta(minutes=5), log_day=date(2026, 6, 27))
    assert (log.state.log_day, log.state.log_number) == (date(2026, 6, 27), 2)


def test_fold_applies_in_order_from_empty_or_given_state(busy: Log) -> None:
    assert fold(busy.events).model_dump() == busy.state.model_dump()
    head = fold(busy.events[:2])
    assert fold(busy.events[2:], head).model_dump() == busy.state.model_dump()
    with pytest.raises(SequenceError):
        fold(busy.events[3:])


def test_trusted_construction_equals_validation() -> None:
    """The fold builds chronology lines without validating; they must equal validated ones."""
    from cadterm.protocol.domain import ChronologyEntry
    from cadterm.protocol.fold import _trusted

    values = {
        "at": datetime(2026, 11, 27, 9, 0, tzinfo=UTC),
        "seq": 7,
        "version": 3,
        "operator": "disp1",
        "workstation": "ws1",
        "kind": "note_added",
        "text": "caller rang back",
        "taken_at": None,
    }
    back_entered = {**values, "taken_at": datetime(2026, 11, 27, 8, 40, tzinfo=UTC)}
    for case in (values, back_entered):
        trusted = _trusted(ChronologyEntry, dict(case))
        validated = ChronologyEntry(**case)
        assert trusted == validated
        assert trusted.model_dump() == validated.model_dump()
        assert trusted.model_dump_json() == validated.model_dump_json()
        assert trusted.model_fields_set == validated.model_fields_set
        assert ChronologyEntry.model_validate_json(trusted.model_dump_json()) == validated
    # Recorded as it was taken: no taken_at on the wire at all.
    assert "taken_at" not in _trusted(ChronologyEntry, dict(values)).model_dump_json()


@pytest.mark.parametrize("given", ["bare", "full"])
def test_opened_incident_equals_the_validated_one(log: Log, given: str) -> None:
    """The fold builds an opened incident without validating it again; it must be the
    `Incident` that validating the same values gives, field for field and dump for dump."""
    from cadterm.protocol.domain import Incident

    extra: dict[str, Any] = {}
    if given == "full":
        extra = {
            "description": "Two males fighting",
            "caller": Caller(name="Mrs J Whitfield", phone="07700 900123"),
            "risk": Risk(threat="Bottle seen"),
            "location": Location(address="1 High St", position=Position(lat=52.5, lon=-1.9)),
        }
    log.create(**extra)
    event = log.events[-1]
    folded = log.incident
    validated = Incident(
        reference=event.reference,
        grade=event.grade,
        incident_type=event.incident_type,
        description=event.description,
        location=event.location,
        caller=event.caller,
        source=event.source,
        risk=event.risk or Risk(),
        created_at=event.at,
        updated_at=event.at,
        version=0,
        chronology=folded.chronology,
    )
    validated.version = folded.version
    assert folded == validated
    assert folded.model_dump() == validated.model_dump()
    assert folded.model_dump_json() == validated.model_dump_json()
    assert Incident.model_validate_json(folded.model_dump_json()) == folded
    # Its own lists, not ones shared with another incident.
    log.create(OTHER)
    other = log.state.incidents[OTHER]
    assert other.assigned is not folded.assigned and other.links is not folded.links
    assert other.risk is not folded.risk


def test_sharing_field_sets_changes_nothing_a_picture_says(busy: Log) -> None:
    """A picture whose unchanging models share their sets of field names dumps, compares
    and folds on exactly as the one read from JSON did."""
    from cadterm.protocol.fold import share_field_sets

    busy.create(OTHER, location=Location(address="1 High St", position=Position(lat=52, lon=-1)))
    busy.add(NoteAdded, reference=REF, text="caller rang back")
    busy.add(UnitLocated, callsign="CD21", position=Position(lat=52.5, lon=-1.8), fixed_at=busy.at)
    text = busy.state.model_dump_json()
    plain = DispatchState.model_validate_json(text)
    shared = DispatchState.model_validate_json(text)
    share_field_sets(shared)
    assert shared == plain
    assert shared.model_dump_json() == plain.model_dump_json()
    for reference in (REF, OTHER):
        a, b = plain.incidents[reference], shared.incidents[reference]
        for x, y in zip(a.chronology, b.chronology, strict=True):
            assert x.model_fields_set == y.model_fields_set
        assert a.location.model_fields_set == b.location.model_fields_set
        assert a.risk.model_fields_set == b.risk.model_fields_set
    entries = [e for i in shared.incidents.values() for e in i.chronology]
    assert len({id(e.model_fields_set) for e in entries}) < len(entries)  # shared, not one each
    more = Log()
    more.state = plain
    more.at = busy.at
    more.add(UnitStateChanged, callsign="AB12", state=UnitState.AT_SCENE)
    more.add(UnitLocated, callsign="AB12", position=Position(lat=52.4, lon=-1.9), fixed_at=more.at)
    for event in more.events:
        apply(shared, event)
    assert shared.model_dump_json() == plain.model_dump_json()
