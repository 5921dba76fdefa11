"""How the live link judges frames, without a network: seq checks and heartbeats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cadterm.client.store import LocalStore
from cadterm.client.stream import Subscription, _Resume
from cadterm.protocol.events import UnitBookedOn
from cadterm.protocol.frames import EventFrame, Heartbeat

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def booked(seq: int) -> str:
    event = UnitBookedOn(
        seq=seq, at=AT, operator="op", workstation="ws", callsign=f"U{seq}", unit_type="van"
    )
    return EventFrame(event=event).model_dump_json()


def beat(seq: int) -> str:
    return Heartbeat(seq=seq, at=AT).model_dump_json()


@pytest.fixture
def link() -> Subscription:
    return Subscription(["http://127.0.0.1:9"], "token", LocalStore())


def test_a_gap_resumes(link: Subscription) -> None:
    link._handle(booked(1))
    with pytest.raises(_Resume, match="gap"):
        link._handle(booked(3))
    assert link.store.seq == 1


def test_a_duplicate_resumes_and_is_not_applied_twice(link: Subscription) -> None:
    link._handle(booked(1))
    with pytest.raises(_Resume, match="duplicate"):
        link._handle(booked(1))
    assert len(link.store.units) == 1


def test_one_heartbeat_ahead_is_tolerated(link: Subscription) -> None:
    # The heartbeat may overtake an event that is still on its way.
    link._handle(booked(1))
    link._handle(beat(2))
    link._handle(booked(2))
    link._handle(beat(2))
    assert link.store.seq == 2


def test_two_heartbeats_ahead_with_nothing_applied_between_resume(link: Subscription) -> None:
    link._handle(booked(1))
    link._handle(beat(2))
    with pytest.raises(_Resume, match="no event arrived between two heartbeats"):
        link._handle(beat(2))


def test_a_heartbeat_behind_the_client_resumes(link: Subscription) -> None:
    link._handle(booked(1))
    link._handle(booked(2))
    with pytest.raises(_Resume, match="behind"):
        link._handle(beat(1))
