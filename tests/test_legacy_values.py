"""Nothing stored can crash a reader.

A log written by an older server may hold values the door refuses today: a time without
a UTC offset, an empty callsign, escape sequences in a note. The new server migrates
what it can (naive times read as UTC, flagged in the event) and says so once in its log;
the console shows what is left with no crash. Readers that meet an unusable value in a
picture (built here with ``model_construct``, as no validated model can hold one) treat
it as unknown.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TOKENS, BackendThread, make_config
from console_helpers import screen_text, until
from dispatch_strategies import valid_event_sequences
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_console import open_console
from textual.widgets import Static

from cadterm.client import DispatchClient, JournalError, LinkState, LinkStatus
from cadterm.domain.recommend import recommend
from cadterm.domain.timers import (
    Level,
    attendance_alert,
    emergencies,
    format_age,
    incident_age,
    officer_safety,
    officer_safety_due,
)
from cadterm.protocol.domain import (
    Grade,
    Incident,
    IncidentStatus,
    Location,
    Position,
    Risk,
    Role,
    SourceChannel,
    Unit,
    UnitState,
    UnitType,
)
from cadterm.protocol.fold import DispatchState, fold
from cadterm.server.store.legacy import TIME_FIELDS
from cadterm.tui.app import CadApp
from cadterm.tui.detail import incident_text
from cadterm.tui.settings import ConsoleSettings

NOW = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
NAIVE = "2026-11-27T09:18:58"
WORKSTATION = "ws-test"


def post(url: str, **fields: Any) -> dict[str, Any]:
    body = {"idempotency_key": uuid.uuid4().hex, "workstation": WORKSTATION, **fields}
    reply = httpx.post(
        f"{url}/v1/commands",
        json=body,
        headers={"Authorization": f"Bearer {TOKENS[Role.DISPATCHER]}"},
        timeout=5,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def write_legacy_log(db: Path) -> str:
    """A log as an older server left it; returns the incident's reference."""
    config = make_config()
    with BackendThread(db, config) as backend:
        post(backend.url, type="book_on", callsign="AB12", unit_type="patrol_car")
        reference = post(
            backend.url,
            type="create_incident",
            grade=1,
            incident_type="CONCERN",
            location={"address": "1 Safe Street"},
        )["event"]["reference"]
        post(backend.url, type="assign_unit", reference=reference, callsign="AB12")
        post(backend.url, type="set_unit_state", callsign="AB12", state=6)
        post(
            backend.url,
            type="locate_unit",
            callsign="AB12",
            position={"lat": 52.03, "lon": -1.15},
        )
        post(backend.url, type="add_note", reference=reference, text="placeholder")
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT type, body FROM events").fetchall())
        head = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0]
        # What the old door let through: a naive fix time, a note with escape sequences,
        # and a unit booked on with a callsign of spaces, which it stored as "".
        located = json.loads(rows["unit_located"])
        located["fixed_at"] = NAIVE
        note = json.loads(rows["note_added"])
        note["text"] = "wipe \x1b[2J clip \x1b]52;c;AAAA\x07 end"
        blank = json.loads(rows["unit_booked_on"])
        blank.update(seq=head + 1, callsign="", at=NAIVE)
        for event in (located, note):
            conn.execute(
                "UPDATE events SET body = ? WHERE seq = ?", (json.dumps(event), event["seq"])
            )
        conn.execute(
            "INSERT INTO events (seq, type, at, body) VALUES (?, ?, ?, ?)",
            (blank["seq"], blank["type"], NAIVE, json.dumps(blank)),
        )
        conn.execute("DELETE FROM snapshots")
        conn.execute("PRAGMA user_version = 1")
    return reference


async def test_a_legacy_log_loads_and_shows_with_no_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "old.db"
    reference = write_legacy_log(db)
    caplog.set_level(logging.WARNING, logger="cadterm.server.store")
    with BackendThread(db, make_config()) as backend:
        migrated = [r for r in caplog.records if "migrated" in r.getMessage()]
        assert len(migrated) == 1, caplog.text
        message = migrated[0].getMessage()
        assert "2 x naive time read as UTC" in message
        assert "callsign that today's rules refuse (kept as stored)" in message

        headers = {"Authorization": f"Bearer {TOKENS[Role.DISPATCHER]}"}
        async with httpx.AsyncClient(base_url=backend.url, headers=headers, timeout=5) as http:
            units = (await http.get("/v1/units")).json()
            events = (await http.get("/v1/events")).json()
        by_callsign = {unit["callsign"]: unit for unit in units}
        assert by_callsign["AB12"]["position_at"] == NAIVE + "Z"
        assert "" in by_callsign
        located = next(e for e in events if e["type"] == "unit_located")
        assert located["amended"] == ["fixed_at: naive time read as UTC"]
        assert all("amended" not in e for e in events if e["type"] == "incident_created")

        async with open_console(backend.url, tmp_path, size=(160, 40)) as console:
            await console.until(lambda: console.unit_row("AB12"), what="the unit board")
            assert "(blank)" in console.screen()  # the legacy callsign, said plainly
            await console.line(reference.split("-")[0])
            await console.until(lambda: "Chronology" in console.detail, what="the detail")
            text = console.detail
            assert "\u241b[2J" in text and "\u241b]52;c;AAAA\u2407" in text
            assert "\x1b" not in console.screen()
            assert console.app.is_running

    # Opened again, the log is already at the current version: nothing more to report.
    caplog.clear()
    with BackendThread(db, make_config()):
        assert not [r for r in caplog.records if "migrated" in r.getMessage()]


# --- readers over unusable values --------------------------------------------------------


def legacy_unit(callsign: str, **fields: Any) -> Unit:
    values: dict[str, Any] = {
        "callsign": callsign,
        "unit_type": UnitType.PATROL_CAR,
        "capabilities": [],
        "state": UnitState.AT_SCENE,
        "state_since": datetime(2026, 11, 27, 9, 0),  # naive
        "incident": None,
        "position": Position(lat=52.03, lon=-1.15),
        "position_at": datetime(2026, 11, 27, 9, 18, 58),  # naive
        "home_sector": None,
        "on_duty": True,
        "emergency_acknowledged_by": None,
        "version": 1,
    }
    return Unit.model_construct(**(values | fields))


def legacy_incident(reference: str, **fields: Any) -> Incident:
    values: dict[str, Any] = {
        "reference": reference,
        "grade": Grade.EMERGENCY,
        "incident_type": "CONCERN",
        "status": IncidentStatus.OPEN,
        "description": "",
        "location": Location(address="1 Safe Street", position=Position(lat=52.0, lon=-1.1)),
        "caller": None,
        "source": SourceChannel.EMERGENCY_999,
        "assigned": [],
        "chronology": [],
        "closing_code": None,
        "links": [],
        "created_at": datetime(2026, 11, 27, 9, 0),  # naive
        "updated_at": datetime(2026, 11, 27, 9, 0),
        "closed_at": None,
        "version": 1,
    }
    values["risk"] = Risk()
    return Incident.model_construct(**(values | fields))


def legacy_picture() -> DispatchState:
    good_since = NOW - timedelta(minutes=5)
    units = {
        "AB12": legacy_unit("AB12"),
        "": legacy_unit("", state=UnitState.EMERGENCY, position_at=None),
        "CD34": legacy_unit(
            "CD34", state=UnitState.AVAILABLE_ON_PATROL, state_since=good_since, position_at=None
        ),
        "EF56": legacy_unit("EF56", state=UnitState.EMERGENCY, state_since=good_since),
        "GH78": legacy_unit("GH78", state=UnitState.AVAILABLE_ON_PATROL, state_since="junk"),
    }
    incidents = {
        "0001-27NOV26": legacy_incident("0001-27NOV26"),
        "0002-27NOV26": legacy_incident(
            "0002-27NOV26", created_at=NOW - timedelta(minutes=20), updated_at=None
        ),
        "0003-27NOV26": legacy_incident(
            "0003-27NOV26", status=IncidentStatus.CLOSED, closed_at="yesterday"
        ),
    }
    return DispatchState.model_construct(
        seq=9, incidents=incidents, units=units, log_day=None, log_number=3
    )


def test_timers_treat_unusable_times_as_unknown() -> None:
    state = legacy_picture()
    naive = state.incidents["0001-27NOV26"]
    assert incident_age(naive, NOW) is None
    alert = attendance_alert(naive, state, NOW)
    assert alert.level == Level.UNKNOWN and alert.age is None
    assert format_age(alert.age) == "?"
    assert attendance_alert(state.incidents["0002-27NOV26"], state, NOW).level == Level.BREACH
    assert attendance_alert(state.incidents["0003-27NOV26"], state, NOW).level == Level.UNKNOWN
    # Unknown time at scene: for the officer's safety, due a check.
    assert officer_safety(state.units["AB12"], NOW)
    assert [u.callsign for u in officer_safety_due(state, NOW)] == ["AB12"]
    assert [u.callsign for u in emergencies(state)] == ["", "EF56"]


def test_recommendation_flags_an_unusable_fix_time() -> None:
    state = legacy_picture()
    state.units["AB12"].__dict__["state"] = UnitState.AVAILABLE_ON_PATROL
    picks = recommend(state, state.incidents["0002-27NOV26"], NOW)
    ab12 = next(p for p in picks if p.callsign == "AB12")
    assert "fix time unknown" in ab12.reason


@pytest.mark.parametrize("size", [(80, 24), (160, 50)])
async def test_boards_and_detail_show_a_legacy_picture(size: tuple[int, int]) -> None:
    client = DispatchClient(["http://127.0.0.1:9"], "token", workstation="ws-1")
    client.store.load_snapshot(legacy_picture())
    client.subscription.status = LinkStatus(LinkState.LIVE, NOW, "test")
    settings = ConsoleSettings(url=["http://127.0.0.1:9"], token="token", workstation="ws-1")
    app = CadApp(client, settings, operator="disp1", clock=lambda: NOW, connect=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        for reference in ("0001", "0002", "0003"):
            for key in reference + "\r":
                await pilot.press("enter" if key == "\r" else key)
            await pilot.pause()
            detail = str(app.query_one("#detail-body", Static).render())
            assert "Chronology" in detail
        await pilot.press("f4")
        app._tick()  # the once-a-second pass of the timers over every row and alarm
        await pilot.pause()
        assert app.is_running and app.return_code is None


# --- every reader over every shape: valid pictures with legacy values mixed in -----------

_UNUSABLE = st.sampled_from([None, datetime(2026, 11, 27, 9, 0), "2026-11-27T09:00:00", 0])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=valid_event_sequences(max_events=40),
    spoil=st.lists(
        st.tuples(st.integers(0, 200), st.sampled_from(sorted(TIME_FIELDS))), max_size=8
    ),
    unusable=_UNUSABLE,
    minutes=st.integers(-60, 48 * 60),
)
def test_readers_never_raise_on_any_picture(
    events: list, spoil: list[tuple[int, str]], unusable: object, minutes: int
) -> None:
    """Fold a random valid log, spoil some times as an old server might have left them,
    and run every reader the console runs each second: none may raise."""
    state = fold(events)
    now = events[-1].at + timedelta(minutes=minutes)
    records = [*state.incidents.values(), *state.units.values()]
    for index, name in spoil:
        if records and name in type(records[index % len(records)]).model_fields:
            records[index % len(records)].__dict__[name] = unusable
    for incident in state.incidents.values():
        alert = attendance_alert(incident, state, now)
        format_age(alert.age)
        format_age(alert.remaining)
        incident_text(incident, state, now)
        recommend(state, incident, now)
    for unit in state.units.values():
        officer_safety(unit, now)
    officer_safety_due(state, now)
    emergencies(state)


async def test_the_stale_banner_follows_the_link_at_once() -> None:
    """Going live hides the banner and losing the link shows it without waiting for the
    once-a-second tick: the screen never says "not live" of a live link, or the reverse."""
    client = DispatchClient(["http://127.0.0.1:9"], "token", workstation="ws-1")
    client.store.load_snapshot(legacy_picture())
    settings = ConsoleSettings(url=["http://127.0.0.1:9"], token="token", workstation="ws-1")
    app = CadApp(client, settings, operator="disp1", clock=lambda: NOW, connect=False)
    async with app.run_test(size=(80, 24)) as pilot:
        banner = app.query_one("#stale", Static)
        assert banner.has_class("-shown")  # connecting
        for state, shown in ((LinkState.LIVE, False), (LinkState.RECONNECTING, True)):
            status = LinkStatus(state, NOW, "test")
            client.subscription.status = status
            client._status_changed(status)
            await pilot.pause()
            assert banner.has_class("-shown") is shown, state


async def test_a_failing_worker_is_reported_and_the_console_carries_on() -> None:
    """A full disk under the journal, or a bug in drawing one change, must not close the
    fallback console: the fault is said on screen and the boards keep following."""
    client = DispatchClient(["http://127.0.0.1:9"], "token", workstation="ws-1")
    client.store.load_snapshot(legacy_picture())
    settings = ConsoleSettings(url=["http://127.0.0.1:9"], token="token", workstation="ws-1")
    app = CadApp(client, settings, operator="disp1", clock=lambda: NOW, connect=False)
    app.bell = lambda: None  # type: ignore[method-assign]

    async def disk_full(command: object) -> None:
        raise JournalError("cannot write journal: database or disk is full")

    client.issue = disk_full  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        for key in "+caller rang back":
            await pilot.press("space" if key == " " else key)
        await pilot.press("enter")
        feedback = app.query_one("#command-feedback", Static)
        await until(pilot, lambda: "disk is full" in str(feedback.render()), what="the fault")
        assert "NOT SENT" in str(feedback.render())  # a journal fault is said as one
        assert app.is_running and app.return_code is None

        original = app.apply_changes
        failures = []

        def broken_once(incidents: set[str], units: set[str], **options: bool) -> None:
            if not failures:
                failures.append(True)
                raise ValueError("a formatter bug")
            original(incidents, units, **options)

        app.apply_changes = broken_once  # type: ignore[method-assign]
        client.store._dirty.units.add("CD34")
        client._changed.set()
        await until(pilot, lambda: "formatter bug" in str(feedback.render()), what="the bug")
        # The boards follow the picture again: a later change is drawn.
        client.store.units["CD34"].__dict__["home_sector"] = "North"
        client.store._dirty.units.add("CD34")
        client._changed.set()
        await until(pilot, lambda: "North" in screen_text(app), what="the redraw")
        assert app.is_running and app.return_code is None
