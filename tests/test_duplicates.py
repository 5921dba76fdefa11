"""Likely duplicate calls: same place, near, recent, or the same caller's phone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadterm.domain.duplicates import DuplicatePolicy, NewCall, likely_duplicates, phone_key
from cadterm.domain.geography import offset
from cadterm.protocol.domain import Caller, Incident, IncidentStatus, Location, Position

T0 = datetime(2026, 12, 1, 20, 0, tzinfo=UTC)
PUB = Position(lat=52.03, lon=-1.15)


def incident(
    reference: str,
    *,
    address: str = "The Red Lion, Market Square",
    at: Position | None = PUB,
    opened: datetime = T0,
    phone: str | None = None,
    status: IncidentStatus = IncidentStatus.OPEN,
) -> Incident:
    return Incident(
        reference=reference,
        grade=2,
        incident_type="ASSAULT",
        status=status,
        location=Location(address=address, position=at),
        caller=Caller(phone=phone) if phone else None,
        source="999",
        created_at=opened,
        updated_at=opened,
    )


def refs(call: NewCall, incidents: list[Incident], **policy) -> list[str]:
    return [o.reference for o in likely_duplicates(call, incidents, DuplicatePolicy(**policy))]


def test_same_address_within_the_window_is_offered_with_its_reasons() -> None:
    open_one = incident("0001-01DEC26")
    call = NewCall(at=T0 + timedelta(minutes=12), address="the red lion,  market sq")
    (offer,) = likely_duplicates(call, [open_one])
    assert offer.reference == "0001-01DEC26"
    assert offer.reasons == ("same address", "opened 12 min before")
    assert not offer.same_phone


def test_near_enough_counts_and_the_distance_is_configurable() -> None:
    near = incident("0001-01DEC26", address="Market Square", at=offset(PUB, 0.15, 0))
    call = NewCall(at=T0 + timedelta(minutes=5), address="Church Street", position=PUB)
    (offer,) = likely_duplicates(call, [near])
    assert offer.reasons[0] == "150 m away"
    assert refs(call, [near], metres=100) == []
    assert refs(call, [near], metres=200) == ["0001-01DEC26"]


def test_too_old_or_closed_or_itself_or_already_linked_is_not_offered() -> None:
    old = incident("0001-01DEC26", opened=T0 - timedelta(minutes=31))
    closed = incident("0002-01DEC26", status=IncidentStatus.CLOSED)
    itself = incident("0003-01DEC26")
    linked = incident("0004-01DEC26")
    call = NewCall(
        at=T0,
        address="The Red Lion, Market Square",
        position=PUB,
        reference="0003-01DEC26",
        linked=frozenset({"0004-01DEC26"}),
    )
    assert refs(call, [old, closed, itself, linked]) == []
    assert refs(call, [old], window=timedelta(minutes=40)) == ["0001-01DEC26"]


def test_the_same_callers_phone_matches_anywhere_within_its_own_window() -> None:
    elsewhere = incident(
        "0001-01DEC26", address="Mill Lane", at=offset(PUB, 3, 3),
        opened=T0 - timedelta(hours=2), phone="+44 7700 900123",
    )  # fmt: skip
    call = NewCall(at=T0, address="High Street", position=PUB, phone="07700900123")
    (offer,) = likely_duplicates(call, [elsewhere])
    assert offer.same_phone and offer.reasons[0] == "same caller's phone"
    assert refs(call, [elsewhere], phone_window=timedelta(hours=1)) == []


def test_phone_and_place_together_rank_first_then_the_nearer() -> None:
    far = incident("0001-01DEC26", address="Market Square", at=offset(PUB, 0.19, 0))
    near = incident("0002-01DEC26", address="Market Square", at=offset(PUB, 0.05, 0))
    both = incident("0003-01DEC26", address="Market Square", at=offset(PUB, 0.18, 0),
                    phone="07700 900999")  # fmt: skip
    call = NewCall(at=T0, position=PUB, phone="07700 900999")
    assert refs(call, [far, near, both]) == ["0003-01DEC26", "0002-01DEC26", "0001-01DEC26"]
    assert refs(call, [far, near, both], limit=1) == ["0003-01DEC26"]


@pytest.mark.parametrize("phone", ["", "999", "   ", "ext. 12", "٠٧٧٠٠٩٠٠١٢٣", "+", None])
def test_a_blank_short_or_foreign_digit_phone_never_matches(phone) -> None:
    assert phone_key(phone) is None
    other = incident("0001-01DEC26", address="Elsewhere", at=None, phone=phone or None)
    assert refs(NewCall(at=T0, phone=phone), [other]) == []


def test_an_incident_with_a_naive_time_is_skipped_and_a_naive_call_refused() -> None:
    odd = incident("0001-01DEC26").model_copy(update={"created_at": datetime(2026, 12, 1, 20)})
    assert refs(NewCall(at=T0, address="The Red Lion, Market Square"), [odd]) == []
    with pytest.raises(ValueError, match="timezone-aware"):
        likely_duplicates(NewCall(at=datetime(2026, 12, 1, 20)), [])


def test_a_policy_that_makes_no_sense_is_refused() -> None:
    with pytest.raises(ValueError, match="metres"):
        DuplicatePolicy(metres=float("nan"))
    with pytest.raises(ValueError, match="window"):
        DuplicatePolicy(window=timedelta(minutes=-1))
    with pytest.raises(ValueError, match="limit"):
        DuplicatePolicy(limit=0)


def test_a_call_with_nothing_known_yet_offers_nothing() -> None:
    assert refs(NewCall(at=T0), [incident("0001-01DEC26")]) == []


@settings(max_examples=200, deadline=None)
@given(
    address=st.text(max_size=60),
    phone=st.text(max_size=40),
    other_address=st.text(min_size=1, max_size=60),
    other_phone=st.text(max_size=40),
    minutes=st.integers(-10_000, 10_000),
)
def test_hostile_text_never_breaks_it(address, phone, other_address, other_phone, minutes):
    other = incident(
        "0001-01DEC26", address=other_address, phone=other_phone or None,
        opened=T0 + timedelta(minutes=minutes),
    )  # fmt: skip
    offers = likely_duplicates(NewCall(at=T0, address=address, phone=phone), [other])
    assert len(offers) <= 1
    for offer in offers:
        assert offer.reasons and abs(offer.minutes - (-minutes)) < 1e-6


def test_a_place_match_needs_the_same_type_once_the_type_is_known_but_a_phone_does_not() -> None:
    assault = incident("0001-01DEC26")  # at the pub, as `incident` makes them
    rang_back = incident("0002-01DEC26", address="Elsewhere", at=None, phone="07700 900123")
    call = NewCall(at=T0, address="The Red Lion, Market Square", phone="07700900123",
                   incident_type=" rtc ")  # fmt: skip
    assert refs(call, [assault, rang_back]) == ["0002-01DEC26"]
    assert set(refs(call, [assault, rang_back], same_type=False)) == {
        "0001-01DEC26",
        "0002-01DEC26",
    }
    same = NewCall(at=T0, address="The Red Lion, Market Square", incident_type="assault")
    assert refs(same, [assault]) == ["0001-01DEC26"]
