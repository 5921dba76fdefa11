"""Recording a backend's event stream and replaying it into a fresh backend.

"The same final state" is `cadterm.sim.record.comparable` (see docs/scenarios.md):
equal pictures once log references are replaced by opening order and times and acting
operators, which a replay necessarily changes, are left out.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import waiting
from conftest import TOKENS, make_config

from cadterm.client import DispatchClient
from cadterm.client.intake import IntakeSender
from cadterm.client.queries import fetch_events, fetch_state
from cadterm.protocol.commands import parse_command
from cadterm.protocol.domain import AVAILABLE_STATES, Role, UnitState
from cadterm.protocol.events import EVENT_TYPES, SERVER_EVENT_TYPES, Event, NoteAdded
from cadterm.protocol.fold import fold
from cadterm.server.config import Limits
from cadterm.sim.city import BRACKLEY
from cadterm.sim.clock import SimClock
from cadterm.sim.force import seed_force
from cadterm.sim.record import (
    RecordError,
    ReplayError,
    command_for,
    comparable,
    main,
    read_recording,
    record,
    replay,
)
from cadterm.sim.simulator import Simulator

SUPERVISOR = TOKENS[Role.SUPERVISOR]
INTAKE = TOKENS[Role.INTAKE]
FAST = Limits(command_rate=2000.0, command_burst=4000)


def start(backend_factory, tmp_path: Path, name: str, **config):
    return backend_factory(make_config(limits=FAST, **config), db_path=tmp_path / f"{name}.db")


def _free(client: DispatchClient, count: int) -> list[str]:
    free = [
        u.callsign
        for u in client.units.values()
        if u.on_duty and u.incident is None and u.state in AVAILABLE_STATES
    ]
    assert len(free) >= count, "not enough free units for the script"
    return sorted(free)[:count]


async def make_history(url: str) -> None:
    """A simulated hour, then a hand-made tail that produces every kind of event."""
    async with DispatchClient([url], SUPERVISOR, workstation="history") as client:
        await client.wait_live()
        await seed_force(client)
        sim = Simulator(
            client, 12, rate=2.0, clock=SimClock(float("inf")), auto_dispatch=True,
            emergency_chance=0.5, avl_every=30, scene_time_factor=0.5,
        )  # fmt: skip
        await asyncio.wait_for(sim.run(until=3600), timeout=60)

        async def do(kind: str, **fields):
            return await client.execute(client.command(kind, **fields))

        where = BRACKLEY.location("Corn Exchange").model_dump(mode="json")
        first = (
            await do("create_incident", grade=2, incident_type="BURGLARY", location=where)
        ).event
        # As the call form sends one: caller, THRIVE and an override of the guidance.
        second = (
            await do(
                "create_incident", grade=3, incident_type="THEFT", location=where,
                caller={"name": "Jo", "phone": "07700 900222"}, risk={"harm": "none"},
                suggested_grade=4, grade_reason="repeat victim",
            )
        ).event  # fmt: skip
        a, b = first.reference, second.reference
        await do("grade_incident", reference=a, grade=1, reason="Suspects still inside")
        await do("retype_incident", reference=a, incident_type="ROBBERY")
        elsewhere = BRACKLEY.location("Vicar Lane", house=12).model_dump(mode="json")
        await do("relocate_incident", reference=a, location=elsewhere)
        await do("assess_risk", reference=a, risk={"threat": "Armed with a knife"})
        await do("add_note", reference=a, text=f"Same offenders as {b}?")
        one, two, three = _free(client, 3)
        await do("assign_unit", reference=b, callsign=one)
        await do("assign_unit", reference=a, callsign=one, divert=True)
        await do("assign_unit", reference=a, callsign=two)
        await do("unassign_unit", reference=a, callsign=two, reason="Not needed")
        await do("set_unit_state", callsign=one, state=6)
        await do("set_unit_state", callsign=one, state=0)
        await do("acknowledge_emergency", callsign=one)
        await do("set_unit_state", callsign=one, state=6)
        await do("check_in_unit", callsign=one, note="All in hand")
        await do("link_incidents", reference=b, other=a)
        await do("close_incident", reference=b, closing_code="DUPLICATE")
        await do("reopen_incident", reference=b, reason="Different offenders after all")
        await do("locate_unit", callsign=three, position={"lat": 53.81, "lon": -1.56})
        await do("book_off", callsign=three)
        # A console's block of references, and an incident opened offline from it.
        reserved = (await do("reserve_references", count=2)).event.references
        await do(
            "create_incident",
            grade=2,
            incident_type="CONCERN",
            location={"address": "1 Offline Road"},
            reference=reserved[0],
        )
        # Online reports: one opened as an incident, one closed, one left waiting.
        async with IntakeSender(url, INTAKE) as website:
            sent = [
                (await website.send(website.report(**fields))).event.report
                for fields in (
                    {"channel": "web_form", "text": "Bike stolen \x1b[2J [bold]x[/]"},
                    {
                        "channel": "chat",
                        "transcript": [
                            {"sender": "public", "text": "Man trying car doors"},
                            {"sender": "agent", "text": "Where?"},
                        ],
                        "location": "Vicar Lane",
                    },
                    {"channel": "web_form", "text": "Noise again", "reporter": {"name": "Jo"}},
                )
            ]
        await do(
            "triage_report",
            report=sent[1],
            outcome="created_incident",
            grade=2,
            incident_type="SUSPICIOUS",
            location=elsewhere,
        )
        await do("triage_report", report=sent[0], outcome="closed", reason="Crime number given")


async def test_replayed_recording_gives_the_same_final_state(backend_factory, tmp_path: Path):
    original = start(backend_factory, tmp_path, "original")
    copy = start(backend_factory, tmp_path, "copy")
    await make_history(original.url)
    path = tmp_path / "shift.jsonl"
    count = await asyncio.to_thread(record, original.url, SUPERVISOR, path)
    events = read_recording(path)
    assert len(events) == count > 500
    # Archiving is the server's own doing, after a shift: no command makes it happen.
    commanded = set(EVENT_TYPES) - SERVER_EVENT_TYPES
    assert {e.type for e in events} == commanded, "every kind of event is exercised"
    created = {e.reference: e.reference for e in events if e.type == "incident_created"}
    created |= {e.report: e.report for e in events if e.type == "report_received"}
    for event in events:  # every event becomes a well-formed command of the right type
        command = command_for(event, created)
        keyed = {**command, "idempotency_key": "k" * 8, "workstation": event.workstation}
        assert parse_command(keyed).type == command["type"]

    references = await replay(events, copy.url, SUPERVISOR, intake_token=INTAKE)

    before = await asyncio.to_thread(fetch_state, original.url, SUPERVISOR)
    after = await asyncio.to_thread(fetch_state, copy.url, SUPERVISOR)
    # Every incident, the one reference reserved but never used, and the three reports.
    assert len(references) == len(before.incidents) + 4 == len(after.incidents) + 4
    assert len(before.reports) == len(after.reports) == 1  # the one left waiting
    assert set(before.incidents) < set(references)
    assert comparable(after) == comparable(before)
    assert comparable(fold(events)) == comparable(before)
    # What "the same" leaves out does differ: the operator, and the times.
    assert {e.operator for e in events} == {"sup1", "web1"}
    assert after.units["CC11"].state_since != before.units["CC11"].state_since


async def test_comparable_sees_a_real_difference(backend_factory, tmp_path: Path):
    original = start(backend_factory, tmp_path, "original")
    async with DispatchClient([original.url], SUPERVISOR) as client:
        await client.wait_live()
        await seed_force(client)
    events = await asyncio.to_thread(_all_events, original.url)
    same, changed = fold(events), fold(events[:-1])
    assert comparable(same) == comparable(fold(events))
    assert comparable(same) != comparable(changed)


def _all_events(url: str) -> list[Event]:
    return fetch_events(url, SUPERVISOR, 0, 5000)


async def test_replay_keeps_the_pace_divided_by_speed(backend_factory, tmp_path: Path):
    original = start(backend_factory, tmp_path, "original")
    async with DispatchClient([original.url], SUPERVISOR) as client:
        await client.wait_live()
        await seed_force(client)
    events = (await asyncio.to_thread(_all_events, original.url))[:6]
    base = events[0].at
    spaced = [
        e.model_copy(update={"at": base + timedelta(seconds=2 * n)}) for n, e in enumerate(events)
    ]

    copy = start(backend_factory, tmp_path, "copy")
    started = time.monotonic()
    await replay(spaced, copy.url, SUPERVISOR, speed=20)  # 10 s of recording at x20
    assert 0.5 <= time.monotonic() - started < 2.5

    capped = start(backend_factory, tmp_path, "capped")
    started = time.monotonic()
    await replay(spaced, capped.url, SUPERVISOR, speed=10, max_gap=0.5)  # 5 gaps of 0.5 s
    assert 0.25 <= time.monotonic() - started < 1.5


async def test_replay_stops_at_the_first_refused_command(backend_factory, tmp_path: Path):
    original = start(backend_factory, tmp_path, "original")
    async with DispatchClient([original.url], SUPERVISOR) as client:
        await client.wait_live()
        await seed_force(client)
    events = await asyncio.to_thread(_all_events, original.url)
    with pytest.raises(
        ReplayError, match=r"event 1 \(unit_booked_on\) refused as book_on: unit_on_duty"
    ):
        await replay(events, original.url, SUPERVISOR)  # not fresh: the units are on duty


def test_command_for_an_unknown_incident_is_an_error() -> None:
    note = NoteAdded(
        seq=1,
        at=datetime.now(UTC),
        operator="x",
        workstation="y",
        reference="0007-01JAN26",
        text="hi",
    )
    with pytest.raises(ReplayError, match="names incident 0007-01JAN26, which the recording never"):
        command_for(note, {})
    assert command_for(note, {"0007-01JAN26": "0001-02JAN26"}) == {
        "type": "add_note",
        "reference": "0001-02JAN26",
        "text": "hi",
    }


def test_recording_needs_the_whole_history(backend_factory, tmp_path: Path) -> None:
    trimmed = start(backend_factory, tmp_path, "trimmed", snapshot_every=5, retain_events=0)
    with httpx.Client(base_url=trimmed.url, headers=trimmed.headers(), trust_env=False) as http:
        for n in range(12):
            body = {"type": "book_on", "callsign": f"T{n}", "unit_type": "patrol_car",
                    "workstation": "ws-test", "idempotency_key": f"trim-{n:04d}-key"}  # fmt: skip
            assert http.post("/v1/commands", json=body).status_code == 200

    # Snapshots are written off the command path, and the log is trimmed after them.
    def trimmed_after_a_snapshot() -> bool:
        events = fetch_events(trimmed.url, SUPERVISOR, 0, 1)
        return bool(events) and events[0].seq > 1

    waiting.wait_for(trimmed_after_a_snapshot, 10, "the log trimmed after a snapshot")
    with pytest.raises(RecordError, match="no longer stored"):
        record(trimmed.url, SUPERVISOR, tmp_path / "x.jsonl")


def test_command_line_records_and_replays(backend_factory, tmp_path: Path, capsys) -> None:
    original = start(backend_factory, tmp_path, "original")
    copy = start(backend_factory, tmp_path, "copy")
    asyncio.run(_seed(original.url))
    path = tmp_path / "cli.jsonl"
    assert main(["record", original.url, str(path), "--token", SUPERVISOR]) == 0
    assert "recorded 36 events" in capsys.readouterr().out
    assert main(["replay", str(path), copy.url, "--token", SUPERVISOR, "--speed", "max"]) == 0
    assert "replayed 36 events" in capsys.readouterr().out
    state = fetch_state(copy.url, SUPERVISOR)
    assert len(state.units) == 36 and state.units["ARV1"].state == UnitState.AVAILABLE_ON_PATROL
    assert main(["replay", str(path), copy.url, "--token", SUPERVISOR]) == 1
    assert "unit_on_duty" in capsys.readouterr().err
    assert main(["record", original.url, str(path), "--token", "wrong"]) == 1
    assert "HTTP 401" in capsys.readouterr().err
    assert main(["replay", str(path), copy.url, "--token", ""]) == 2


async def _seed(url: str) -> None:
    async with DispatchClient([url], SUPERVISOR) as client:
        await client.wait_live()
        await seed_force(client)
