"""Time as it happened: an action recorded after it was taken keeps both times.

A console stamps each command with the time it was typed (`taken_at`); one sent late
from the offline journal, or a paper log entry typed in after CAD came back, is recorded
with `taken_at` and flagged `back_entered`, in the event, the chronology and the log.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from conftest import make_config
from test_server_commands import SCENE, Console, assert_problem


@pytest.fixture
def console(backend):
    desk = Console(backend)
    yield desk
    desk.close()


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def test_an_action_typed_minutes_ago_is_recorded_back_entered(console: Console) -> None:
    typed = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=12)
    reply = console.ok(
        "create_incident", grade=2, incident_type="RTC", location=SCENE, taken_at=iso(typed)
    )
    event = reply["event"]
    assert event["back_entered"] is True
    assert datetime.fromisoformat(event["taken_at"]) == typed
    assert datetime.fromisoformat(event["at"]) > typed + timedelta(minutes=11)
    # The chronology shows both times; the log gives the event back the same.
    incident = console.client.get(f"/v1/incidents/{event['reference']}").json()
    first = incident["chronology"][0]
    assert datetime.fromisoformat(first["taken_at"]) == typed
    logged = console.client.get("/v1/events", params={"after": 0}).json()
    assert logged[-1]["back_entered"] is True and logged[-1]["taken_at"] == event["taken_at"]


def test_an_action_sent_as_it_was_typed_carries_no_flag(console: Console) -> None:
    typed = datetime.now(UTC) - timedelta(seconds=5)
    event = console.ok(
        "create_incident", grade=3, incident_type="THEFT", location=SCENE, taken_at=iso(typed)
    )["event"]
    assert "back_entered" not in event and "taken_at" not in event
    incident = console.client.get(f"/v1/incidents/{event['reference']}").json()
    assert "taken_at" not in incident["chronology"][0]


@pytest.mark.parametrize(
    ("offset", "words"),
    [(timedelta(minutes=5), "in the future"), (-timedelta(days=8), "7 days ago")],
)
def test_times_outside_the_window_are_refused_with_the_reason(
    console: Console, offset: timedelta, words: str
) -> None:
    taken = datetime.now(UTC) + offset
    problem = console.refused(
        "create_incident",
        422,
        "taken_at_out_of_range",
        grade=2,
        incident_type="RTC",
        location=SCENE,
        taken_at=iso(taken),
    )
    assert problem["field"] == "taken_at" and words in problem["detail"]


def test_a_naive_taken_at_is_refused_at_the_door(console: Console) -> None:
    response = console.post(
        "create_incident",
        grade=2,
        incident_type="RTC",
        location=SCENE,
        taken_at="2026-12-01T09:13:00",
    )
    assert_problem(response, 422, "invalid_command")


def test_a_control_room_sets_how_late_counts_as_back_entered(backend_factory) -> None:
    desk = Console(backend_factory(make_config(back_entry_after=5.0)))
    try:
        now = datetime.now(UTC)
        late = desk.ok(
            "create_incident",
            grade=3,
            incident_type="THEFT",
            location=SCENE,
            taken_at=iso(now - timedelta(seconds=30)),
        )["event"]
        assert late["back_entered"] is True
        prompt = desk.ok(
            "create_incident",
            grade=3,
            incident_type="THEFT",
            location=SCENE,
            taken_at=iso(now - timedelta(seconds=1)),
        )["event"]
        assert "back_entered" not in prompt
    finally:
        desk.close()
