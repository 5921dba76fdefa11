"""A call on the form as data: the one command it becomes, the guidance, the refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from test_console_places import brackley

from cadterm.domain.grading import default_rules
from cadterm.protocol.codes import INCIDENT_TYPES
from cadterm.protocol.domain import Incident, Location
from cadterm.protocol.fold import DispatchState
from cadterm.tui.call_draft import FIELDS, CallAnswers, CallFormError
from cadterm.tui.duplicate_offers import incident_offers, offer_line

RULES = default_rules()
NOW = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)


def answers(**values: str) -> CallAnswers:
    return CallAnswers(dict(values))


def test_a_call_becomes_one_create_incident_with_everything_in_it() -> None:
    call = answers(name="Sam Okoro", phone="07700 900456", location="37 gasworks row",
                   type="assault", what="fight", threat="knife", harm="cut arm",
                   vulnerability="caller is 15")  # fmt: skip
    action = call.dispatch(RULES, INCIDENT_TYPES, brackley())
    (command,) = action.commands
    assert command.type == "create_incident"
    assert command.grade == 1 and command.suggested_grade == 1 and command.grade_reason is None
    assert command.incident_type == "ASSAULT"
    assert command.caller.name == "Sam Okoro" and command.caller.phone == "07700 900456"
    assert command.location.address == "37 Gasworks Row"  # the gazetteer's form
    assert command.location.sector == "South" and command.location.position is not None
    assert command.description == "fight"
    assert command.risk.model_dump(exclude_none=True) == {
        "threat": "knife", "harm": "cut arm", "vulnerability": "caller is 15",
    }  # fmt: skip
    assert action.summary.startswith("new grade 1 ASSAULT at 37 gasworks row")


def test_an_override_needs_a_reason_and_carries_it() -> None:
    call = answers(location="3 Mill Lane", type="theft", grade="1")
    with pytest.raises(CallFormError) as refused:
        call.dispatch(RULES, INCIDENT_TYPES, None)
    assert refused.value.key == "reason"
    assert refused.value.message == "grade 1 overrides the suggested 3: say why"
    call.values["reason"] = "  "
    with pytest.raises(CallFormError, match="say why"):
        call.dispatch(RULES, INCIDENT_TYPES, None)
    call.values["reason"] = "victim is 90 and alone"
    (command,) = call.dispatch(RULES, INCIDENT_TYPES, None).commands
    assert (command.grade, command.suggested_grade) == (1, 3)
    assert command.grade_reason == "victim is 90 and alone"
    assert command.location.position is None  # no gazetteer: as typed


def test_the_grade_left_empty_is_the_suggestion_and_a_reason_then_is_not_sent() -> None:
    call = answers(location="x", type="fraud", reason="left over from an override")
    (command,) = call.dispatch(RULES, INCIDENT_TYPES, None).commands
    assert command.grade == 4 and command.grade_reason is None


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"type": "rtc"}, "location", "a location is needed"),
        ({"location": "x"}, "type", "an incident type is needed"),
        ({"location": "x", "type": "aliens"}, "type", "ALIENS is not an incident type"),
        ({"location": "x", "type": "rtc", "grade": "7"}, "grade", "grade '7' is not 1-5"),
        ({"location": "x", "type": "rtc", "grade": "٢"}, "grade", "is not 1-5"),
        ({"location": "x", "type": "rtc", "phone": "0\x1b[2J"}, "phone", "control characters"),
        ({"location": "x\x07", "type": "rtc"}, "location", "control characters"),
        ({"location": "x", "type": "rtc", "harm": "a\x9bb"}, "harm", "control characters"),
        ({"location": "x", "type": "rtc", "name": "n" * 201}, "name", "at most 200"),
    ],
)
def test_what_stops_a_call_is_said_at_its_field(values, key, message) -> None:
    with pytest.raises(CallFormError) as refused:
        answers(**values).dispatch(RULES, INCIDENT_TYPES, None)
    assert refused.value.key == key
    assert message in refused.value.message
    assert refused.value.key in {f.key for f in FIELDS}


def test_a_further_call_is_one_note_with_every_answer() -> None:
    call = answers(name="Jo", location="35 Gasworks Row", what="still fighting", threat="bottle")
    (command,) = call.further_call("0009-01DEC26").commands
    assert command.type == "add_note" and command.reference == "0009-01DEC26"
    assert command.text == (
        "Further call (Jo); location: 35 Gasworks Row; what: still fighting; threat: bottle"
    )
    (empty,) = answers().further_call("0009-01DEC26").commands
    assert empty.text == "Further call (caller unknown)"


def test_the_new_call_for_duplicate_checks_uses_the_gazetteer_and_only_a_whole_type() -> None:
    call = answers(location="37 gasworks row", phone="07700 900456", type="ASS")
    new = call.new_call(NOW, brackley(), INCIDENT_TYPES)
    assert new.address == "37 Gasworks Row" and new.position is not None
    assert new.incident_type is None  # half typed: says nothing yet
    call.values["type"] = "assault"
    assert call.new_call(NOW, None, INCIDENT_TYPES).incident_type == "ASSAULT"


def test_an_incidents_offers_follow_the_picture_as_it_moves_on() -> None:
    def at_the_pub(reference: str, minutes: int) -> Incident:
        opened = NOW + timedelta(minutes=minutes)
        return Incident(reference=reference, grade=2, incident_type="ASSAULT",
                        location=Location(address="The Red Lion"), source="999",
                        created_at=opened, updated_at=opened)  # fmt: skip

    new = at_the_pub("0003-01DEC26", 10)
    state = DispatchState(seq=2, incidents={"0001-01DEC26": at_the_pub("0001-01DEC26", 0),
                                            "0003-01DEC26": new})  # fmt: skip
    (offer,) = incident_offers(new, state)
    assert offer_line(new.reference, offer) == (
        "0003-01DEC may repeat 0001-01DEC: same address, opened 10 min before"
    )
    state.incidents["0002-01DEC26"] = at_the_pub("0002-01DEC26", 8)
    state.seq = 3  # an event applied: asked again, the answer is new
    assert [o.reference for o in incident_offers(new, state)] == ["0002-01DEC26", "0001-01DEC26"]
    closed = new.model_copy(update={"status": "closed", "version": 2})
    assert incident_offers(closed, state) == []


def test_a_half_typed_type_gives_no_guidance_yet_and_a_whole_one_does() -> None:
    assert answers(type="AS").guidance(RULES).reasons == ("no type or answers yet",)
    assert answers(type="assault").guidance(RULES).reasons == ("assault reported",)
    assert answers(type="ZZZ").guidance(RULES).reasons == (
        "no rule for this type: scheduled response",
    )
