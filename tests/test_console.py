"""The console end to end: keys typed into the real app, a real backend, the server's word.

Each test starts a real uvicorn backend on a loopback port with its own SQLite file
(`backend`, `backend_factory`), runs `CadApp` under Textual's Pilot at 120x40 with a
real `DispatchClient` and journal, types command lines one key at a time, waits (always
with a time limit) until the boards show the change, and checks what the server itself
holds through ``GET /v1/state``. Another console's actions are plain HTTP commands.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKENS, Backend
from console_helpers import (
    Keys,
    body_text,
    feedback,
    post_command,
    screen_text,
    server_incident,
    server_state,
    server_unit,
    until,
)
from textual.pilot import Pilot
from textual.widgets import Static

from cadterm.client import Backoff, DispatchClient, LinkState
from cadterm.client.journal import JournalStatus
from cadterm.protocol.domain import Role
from cadterm.protocol.drafts import draft
from cadterm.themes import THEMES
from cadterm.tui.app import CadApp
from cadterm.tui.command_line import CommandInput
from cadterm.tui.grammar import VERBS
from cadterm.tui.incident_queue import short_reference
from cadterm.tui.settings import ConsoleSettings

FAST = Backoff(base=0.02, cap=0.2)  # reconnect quickly: tests wait on it
HIGH_STREET = (53.80, -1.55)


# --- a console under test ----------------------------------------------------------------


@dataclass
class Console:
    """A running console: the app, its pilot, a key counter and the bells it rang."""

    app: CadApp
    pilot: Pilot
    client: DispatchClient
    keys: Keys
    bells: list[float] = field(default_factory=list)

    async def line(self, text: str) -> None:
        """Type a command line, key by key, and press Enter."""
        await self.keys.line(text)

    async def until(self, predicate: Callable[[], Any], timeout: float = 5.0, what: str = ""):
        """Bounded wait while the app runs."""
        return await until(self.pilot, predicate, timeout=timeout, what=what)

    @property
    def feedback(self) -> Static:
        return feedback(self.app)

    @property
    def said(self) -> str:
        """The text of the line under the command field."""
        return body_text(self.feedback)

    @property
    def input(self) -> CommandInput:
        return self.app.query_one("#command-input", CommandInput)

    @property
    def detail(self) -> str:
        """The detail pane's text as built (never markup)."""
        return body_text(self.app.query_one("#detail-body", Static))

    def screen(self) -> str:
        return screen_text(self.app)

    async def shows(self, text: str, timeout: float = 5.0) -> None:
        """Wait until the terminal shows `text` (a change lands on screen a frame later)."""
        await self.until(lambda: text in self.screen(), timeout, what=f"{text!r} on screen")

    def row(self, reference: str) -> str | None:
        """The incident queue's row for `reference` as on screen, if shown (a provisional
        row has ``~`` after its reference)."""
        short = short_reference(reference)
        return next(
            (
                line
                for line in self.screen().splitlines()
                if line.startswith((f"{short} ", f"{short}~"))
            ),
            None,
        )

    def unit_row(self, callsign: str) -> str | None:
        """The unit board's row for `callsign` as on screen, from the callsign on."""
        pattern = re.compile(rf"(?<![\w-]){re.escape(callsign)}\s+\d+ [A-Z]+.*")
        for line in self.screen().splitlines():
            found = pattern.search(line)
            if found:
                return found.group(0)
        return None

    async def done(self, what: str, timeout: float = 5.0) -> str:
        """Wait for the outcome of the last line: ``done: ...`` (or fail on an error)."""

        def outcome() -> bool:
            assert not self.feedback.has_class("-error"), self.said
            return self.said.startswith("done:")

        await self.until(outcome, timeout, what=what)
        return self.said

    async def refused(self, timeout: float = 5.0) -> str:
        """Wait for an error under the command field and return it."""
        await self.until(lambda: self.feedback.has_class("-error"), timeout, what="an error")
        return self.said


@contextlib.asynccontextmanager
async def open_console(
    url: str,
    tmp_path: Path,
    *,
    role: Role = Role.DISPATCHER,
    size: tuple[int, int] = (120, 40),
    journal: str = "j.db",
    wait_live: bool = True,
    **settings: Any,
) -> AsyncIterator[Console]:
    """Run the real console against `url` with a journal in `tmp_path`."""
    token = TOKENS[role]
    journal_path = tmp_path / journal
    client = DispatchClient(
        [url], token, workstation="ws-test", journal_path=journal_path, backoff=FAST
    )
    console_settings = ConsoleSettings(
        url=[url], token=token, journal=journal_path, workstation="ws-test", **settings
    )
    app = CadApp(client, console_settings)
    bells: list[float] = []
    app.bell = lambda: bells.append(datetime.now(UTC).timestamp())  # type: ignore[method-assign]
    try:
        async with app.run_test(size=size) as pilot:
            console = Console(app, pilot, client, Keys(pilot), bells)
            if wait_live:
                await console.until(lambda: client.status.live, 10, what="the link to go live")
            yield console
            # Leave only once the app is idle: a message still queued (a board's
            # highlight after the last key) would otherwise be handled while the app
            # tears its screen down, and fail the test on its way out.
            await pilot.pause()
    finally:
        await client.close()


# --- another console, over HTTP ------------------------------------------------------------


def book_on(
    backend: Backend,
    callsign: str,
    at: tuple[float, float] | None = HIGH_STREET,
    capabilities: tuple[str, ...] = (),
    sector: str | None = "LS1",
) -> None:
    fields: dict[str, Any] = {
        "callsign": callsign,
        "unit_type": "patrol_car",
        "capabilities": list(capabilities),
    }
    if at is not None:
        fields["position"] = {"lat": at[0], "lon": at[1]}
    if sector:
        fields["home_sector"] = sector
    post_command(backend, type="book_on", **fields)


def create(
    backend: Backend,
    address: str,
    grade: int = 2,
    incident_type: str = "CONCERN",
    at: tuple[float, float] | None = HIGH_STREET,
) -> str:
    location: dict[str, Any] = {"address": address}
    if at is not None:
        location["position"] = {"lat": at[0], "lon": at[1]}
    result = post_command(
        backend, type="create_incident", grade=grade, incident_type=incident_type, location=location
    )
    return result["event"]["reference"]


def number(reference: str) -> str:
    """The log number as a dispatcher types it: ``0003-27NOV26`` -> ``3``."""
    return str(int(reference.split("-")[0]))


async def seen(console: Console, *references: str) -> None:
    """Wait until the console shows every incident: a row on screen, not only in its
    picture (the queue is drawn a frame after the picture changes)."""
    await console.until(
        lambda: all(console.row(ref) is not None for ref in references),
        what=f"rows for incidents {references} on screen",
    )


# --- incidents: new, grade, type, loc, risk, note ------------------------------------------


async def test_new_incident_with_position_and_description(backend, tmp_path):
    async with open_console(backend.url, tmp_path) as console:
        await console.line('new 1 rtc 12 High Street, Leeds pos=53.80,-1.55 desc="two cars"')
        await console.done("new incident")
        (reference,) = await console.until(lambda: list(console.app.queue.keys))
        incident = server_incident(backend, reference)
        assert incident["grade"] == 1
        assert incident["incident_type"] == "RTC"
        assert incident["location"]["address"] == "12 High Street, Leeds"
        assert incident["location"]["position"] == {"lat": 53.8, "lon": -1.55}
        assert incident["description"] == "two cars"
        assert incident["chronology"][0]["workstation"] == "ws-test"
        # The new incident is on the board and selected, ready for the next command.
        row = await console.until(lambda: console.row(reference))
        assert "RTC" in row and "12 High Street, Leeds" in row and "OPEN" in row
        assert console.app.queue.cursor_key == reference


async def test_grade_type_loc_risk_and_note_change_the_selected_incident(backend, tmp_path):
    reference = create(backend, "9 Mill Lane", grade=3, incident_type="CONCERN")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        await console.line(number(reference))  # a bare reference selects it
        assert console.app.queue.cursor_key == reference
        assert console.app.detail.shown and reference in console.detail

        await console.line("g 2 caller now frightened")
        await console.done("grade")
        await console.until(lambda: server_incident(backend, reference)["grade"] == 2)
        assert server_incident(backend, reference)["chronology"][-1]["text"] == (
            "Grade 3 -> 2: caller now frightened"
        )
        await console.until(lambda: console.row(reference).split()[1] == "2", what="grade 2 row")

        await console.line("ty burglary")
        await console.done("retype")
        assert server_incident(backend, reference)["incident_type"] == "BURGLARY"
        await console.until(lambda: "BURGLARY" in console.row(reference), what="type on the board")

        await console.line("loc 14 Park Road sector=LS2")
        await console.done("relocate")
        location = server_incident(backend, reference)["location"]
        assert location == {"address": "14 Park Road", "position": None, "sector": "LS2"}
        await console.until(lambda: "14 Park Road" in console.row(reference), what="new location")

        await console.line("risk threat=knife seen harm=high vul=elderly caller")
        await console.done("risk")
        risk = server_incident(backend, reference)["risk"]
        assert risk["threat"] == "knife seen"
        assert risk["harm"] == "high"
        assert risk["vulnerability"] == "elderly caller"
        await console.until(lambda: "threat: knife seen" in console.detail, what="THRIVE shown")

        await console.line("note suspect left on foot, red jacket")
        await console.done("note")
        await console.line("+ dog heard barking")
        await console.done("note with +")
        texts = [e["text"] for e in server_incident(backend, reference)["chronology"]]
        assert texts[-2:] == ["suspect left on foot, red jacket", "dog heard barking"]
        # The open detail pane follows the selected incident as events arrive.
        await console.until(lambda: "dog heard barking" in console.detail, what="note shown")


# --- units: assign, divert, unassign, state, locate, bookon, bookoff -----------------------


async def test_assign_divert_and_unassign(backend, tmp_path):
    book_on(backend, "AB12")
    first = create(backend, "1 First Street")
    second = create(backend, "2 Second Street", grade=1)
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, first, second)
        await console.line(f"a {number(first)} ab12")
        await console.done("assign")
        assert server_unit(backend, "AB12")["incident"] == first
        assert server_incident(backend, first)["assigned"] == ["AB12"]
        await console.until(
            lambda: "AB12" in console.row(first) and "RES" in console.row(short_reference(first)),
            what="unit on the incident row",
        )
        await console.until(lambda: "ENRT" in console.unit_row("AB12"), what="AB12 en route")

        # Sending a committed unit without divert is refused by the server, precisely.
        await console.line(f"a {number(second)} AB12")
        error = await console.refused()
        assert error.startswith("refused: AB12 is committed to") and "divert" in error
        assert console.bells == []  # the reason is on the line: refusals do not ring
        # Told once: the journal's once-a-second check must not report it again.
        ticks = console.app.ticks
        await console.until(lambda: console.app.ticks >= ticks + 2, what="two ticks")
        assert console.said == error and console.bells == []

        # AB12 is all the first incident has (grade 2): diverting it asks first.
        await console.line(f"dv {number(second)} AB12")
        warning = await console.refused()
        assert f"AB12 is the only unit on {first} (grade 2)" in warning
        assert console.input.value == f"!dv {number(second)} AB12"
        assert server_unit(backend, "AB12")["incident"] == first  # nothing sent
        await console.keys.press("enter")  # yes, on purpose
        await console.done("divert")
        state = server_state(backend)
        assert state["units"]["AB12"]["incident"] == second
        assert state["incidents"][first]["assigned"] == []
        assert state["incidents"][second]["assigned"] == ["AB12"]
        await console.until(lambda: "AB12" in console.row(second))
        await console.until(lambda: "OPEN" in console.row(first))

        await console.line(f"!sd {number(second)} AB12 not needed")  # forced at once
        await console.done("unassign")
        state = server_state(backend)
        assert state["units"]["AB12"]["incident"] is None
        assert state["incidents"][second]["assigned"] == []
        assert state["incidents"][second]["chronology"][-1]["kind"] == "unit_unassigned"
        await console.until(lambda: "OPEN" in console.row(second))


async def test_state_by_number_and_words_and_locate(backend, tmp_path):
    book_on(backend, "AB12")
    async with open_console(backend.url, tmp_path) as console:
        await console.until(lambda: console.unit_row("AB12"), what="AB12 on the board")
        await console.line("s AB12 4")
        await console.done("state 4")
        assert server_unit(backend, "AB12")["state"] == 4
        await console.until(lambda: "REFS" in console.unit_row("AB12"), what="REFS on the board")

        await console.line("s ab12 available at station")
        await console.done("state in words")
        assert server_unit(backend, "AB12")["state"] == 3
        await console.until(lambda: "STN" in console.unit_row("AB12"), what="STN on the board")

        await console.line("locate AB12 53.7965,-1.5478")
        await console.done("locate")
        assert server_unit(backend, "AB12")["position"] == {"lat": 53.7965, "lon": -1.5478}


async def test_book_on_and_book_off(backend, tmp_path):
    async with open_console(backend.url, tmp_path) as console:
        await console.line("on AB99 dog dog first_aid sector=LS3 pos=53.79,-1.54")
        await console.done("book on")
        unit = server_unit(backend, "AB99")
        assert unit["unit_type"] == "dog"
        assert unit["capabilities"] == ["dog", "first_aid"]
        assert unit["home_sector"] == "LS3"
        assert unit["on_duty"] is True
        row = await console.until(lambda: console.unit_row("AB99"), what="AB99 on the board")
        assert "AVAIL" in row and "DA" in row
        await console.shows("─ LS3")  # grouped under its sector

        await console.line("off AB99")
        await console.done("book off")
        assert server_unit(backend, "AB99")["on_duty"] is False
        await console.until(
            lambda: console.unit_row("AB99") is None, what="AB99 gone from the board"
        )


# --- close, reopen, link -----------------------------------------------------------------


async def test_close_then_reopen_needs_a_supervisor(backend, tmp_path):
    reference = create(backend, "3 Station Road")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        await console.line(number(reference))
        await console.line("cl resolved all quiet on arrival")
        await console.done("close")
        incident = server_incident(backend, reference)
        assert incident["status"] == "closed"
        assert incident["closing_code"] == "RESOLVED"
        await console.until(lambda: reference not in console.app.queue.keys, what="row gone")

        # A closed incident refuses changes: the server says why, under the line.
        await console.line(f"g {number(reference)} 1")
        error = await console.refused()
        assert "is closed (RESOLVED); reopen it first" in error
        assert console.feedback.has_class("-error")

        # Dispatchers may not reopen.
        await console.line(f"ro {number(reference)} caller rang back")
        error = await console.refused()
        assert error == "refused: operator disp1 (dispatcher) may not reopen_incident"
        assert server_incident(backend, reference)["status"] == "closed"

    async with open_console(
        backend.url, tmp_path, role=Role.SUPERVISOR, journal="sup.db"
    ) as supervisor:
        # Closed, so in the picture but not on the queue.
        await supervisor.until(
            lambda: reference in supervisor.client.state.incidents, what="the closed incident"
        )
        await supervisor.line(f"ro {reference} caller rang back")
        await supervisor.done("reopen")
        incident = server_incident(backend, reference)
        assert incident["status"] == "open"
        assert incident["chronology"][-1]["operator"] == "sup1"
        await supervisor.until(lambda: reference in supervisor.app.queue.keys, what="row back")


async def test_link_and_dup(backend, tmp_path):
    first = create(backend, "4 Elm Road")
    second = create(backend, "4 Elm Rd")
    third = create(backend, "6 Elm Road")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, first, second, third)
        await console.line(number(second))
        await console.line(f"dup {number(first)}")
        await console.done("dup")
        links = server_incident(backend, second)["links"]
        assert links == [{"reference": first, "relation": "duplicate_of"}]

        await console.line(f"ln {number(third)} {number(first)}")
        await console.done("link")
        links = server_incident(backend, third)["links"]
        assert links == [{"reference": first, "relation": "related"}]
        await console.line(number(third))
        await console.until(lambda: f"Links: related {first}" in console.detail)


# --- recommend and completion ---------------------------------------------------------------


async def test_recommend_shows_picks_with_reasons_and_flags_stale_fixes(backend, tmp_path):
    book_on(backend, "AB12", at=(53.801, -1.55))
    book_on(backend, "AB13", at=(53.81, -1.55))
    # Booked on with no position: the first fix it gets is half an hour old.
    book_on(backend, "AB14", at=None)
    old_fix = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    post_command(
        backend,
        type="locate_unit",
        callsign="AB14",
        position={"lat": 53.83, "lon": -1.55},
        fixed_at=old_fix,
    )
    reference = create(backend, "12 High Street")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        await console.until(lambda: console.client.state.units["AB14"].position_at is not None)
        await console.line(number(reference))
        await console.line("rec")
        lines = console.detail.splitlines()
        assert lines[0] == f"Recommended for {reference}:"
        assert lines[1].split()[:2] == ["1.", "AB12"] and "(0.1 km)" in lines[1]
        assert "available on patrol" in lines[1] and "STALE" not in lines[1]
        assert lines[2].split()[:2] == ["2.", "AB13"]
        assert lines[3].split()[:2] == ["3.", "AB14"]
        assert "fix 30 min old" in lines[3] and lines[3].endswith("(STALE FIX)")
        assert console.said.startswith(f"recommend {short_reference(reference)}: best: AB12")
        await console.shows("(STALE FIX)")

        # `rec firearms` asks for a capability nobody has.
        await console.line("rec firearms")
        assert "no deployable unit has what this incident needs" in console.detail


async def test_units_for_an_incident_with_no_location_are_not_called_recommended(backend, tmp_path):
    book_on(backend, "ARV1", at=(53.801, -1.55))
    book_on(backend, "AB12", at=(53.81, -1.55))
    reference = create(backend, "somewhere on the ring road", incident_type="RTC", at=None)
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        await console.line(number(reference))
        await console.line("rec")
        lines = console.detail.splitlines()
        assert (
            lines[0] == f"Units that could go to {reference} (no location or sector: not ranked):"
        )
        assert "could go; no location or sector to rank them by" in console.said
        await console.keys.type("a ")
        await console.keys.press("tab")
        assert "(recommended)" not in console.said


async def test_tab_completes_the_recommended_callsign_and_cycles(backend, tmp_path):
    book_on(backend, "AB12", at=(53.801, -1.55))
    book_on(backend, "AB13", at=(53.81, -1.55))
    reference = create(backend, "12 High Street")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        await console.line(number(reference))
        await console.keys.type("a ")
        await console.keys.press("tab")
        assert console.input.value == "a AB12 "
        assert console.said.startswith("Tab: AB12 (recommended)")
        await console.keys.press("tab")
        assert console.input.value == "a AB13 "
        await console.keys.press("tab")  # then the incident, for ``a 1 AB12``
        assert console.input.value == f"a {number(reference)} "
        await console.keys.press("tab")  # and round again
        assert console.input.value == "a AB12 "
        await console.keys.press("enter")
        await console.done("assign")
        assert server_unit(backend, "AB12")["incident"] == reference

        # Tab on a verb prefix completes the verb.
        await console.keys.type("reco")
        await console.keys.press("tab")
        assert console.input.value == "recommend "


# --- find, filter, select ------------------------------------------------------------------


async def test_find_filter_and_select(backend, tmp_path):
    book_on(backend, "AB12")
    high = create(backend, "12 High Street")
    park = create(backend, "3 Park Lane", grade=3)
    mill = create(backend, "7 Mill Road", grade=1, incident_type="ASSAULT")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, high, park, mill)
        assert list(console.app.queue.keys) == [mill, high, park]  # grade, then age

        await console.line("/park")
        assert list(console.app.queue.keys) == [mill, park]  # a grade 1 is never hidden
        assert console.said == "filter: park"
        await console.until(lambda: console.row(high) is None, what="row filtered out")
        await console.line("/")
        assert list(console.app.queue.keys) == [mill, high, park]
        assert console.said == "filter cleared"

        await console.line("f high street")
        assert console.app.queue.cursor_key == high
        assert console.said.startswith(f"find 'high street': 1 of 1 {short_reference(high)}")
        assert console.app.detail.shown and "12 High Street" in console.detail
        await console.line("")  # Enter on an empty line opens the match
        assert console.app.showing("incident") and "Chronology" in console.detail

        await console.line("f ab12")
        assert console.said.endswith("; unit AB12 selected")
        assert console.app.units.cursor_key == "AB12"

        await console.line("f nowhere at all")
        await console.until(
            lambda: "nothing matches" in console.detail and "Asking" not in console.detail,
            what="the server's answer too",
        )

        await console.line(number(park))
        assert console.app.queue.cursor_key == park
        assert "3 Park Lane" in console.detail


# --- alarms: state 0, new grade 1 ------------------------------------------------------------


async def test_state_zero_alarm_rings_and_stays_until_acknowledged(backend, tmp_path):
    book_on(backend, "AB12")
    book_on(backend, "AB13")
    async with open_console(backend.url, tmp_path) as console:
        await console.until(lambda: console.unit_row("AB12"), what="AB12 on the board")
        alarms = console.app.query_one("#alarms", Static)
        assert not alarms.has_class("-shown") and not console.bells

        post_command(backend, type="set_unit_state", callsign="AB12", state=0)
        await console.until(lambda: alarms.has_class("-shown"), what="the alarm banner")
        assert "EMERGENCY: AB12 state 0" in body_text(alarms)
        await console.shows("EMERGENCY: AB12 state 0")
        await console.until(lambda: "EMERGENCY" in console.unit_row("AB12"))
        assert len(console.bells) == 1

        # Another unit's name is no acknowledgement, and time alone does not clear it.
        await console.line("ack AB13")
        assert "AB13 has no alarm to acknowledge" in await console.refused()
        await console.pilot.pause(1.2)
        assert alarms.has_class("-shown")
        assert server_unit(backend, "AB12")["emergency_acknowledged_by"] is None

        await console.line("ack AB12")
        await console.done("acknowledge")
        assert server_unit(backend, "AB12")["emergency_acknowledged_by"] == "disp1"
        await console.until(lambda: not alarms.has_class("-shown"), what="banner cleared")
        assert len(console.bells) == 1


async def test_new_grade_one_from_another_console_raises_the_alarm(backend, tmp_path):
    create(backend, "1 Quiet Street", grade=3)
    async with open_console(backend.url, tmp_path) as console:
        await console.until(lambda: console.client.state.incidents, what="the first picture")
        alarms = console.app.query_one("#alarms", Static)
        reference = create(backend, "8 Canal Wharf", grade=1, incident_type="ASSAULT")
        await console.until(lambda: alarms.has_class("-shown"), what="the alarm banner")
        text = body_text(alarms)
        assert f"NEW GRADE 1: {short_reference(reference)} ASSAULT at 8 Canal Wharf" in text
        assert len(console.bells) == 1
        # A grade 2 rings nothing.
        quiet = create(backend, "9 Canal Wharf", grade=2)
        # Its row is drawn in the same batch that would have rung for it.
        await console.until(lambda: console.row(quiet), what="the grade 2 row")
        assert len(console.bells) == 1
        await console.line("ack")
        assert console.said.startswith("acknowledged: NEW GRADE 1:")
        assert not alarms.has_class("-shown")


async def test_first_grade_one_on_an_empty_backend_raises_the_alarm(backend, tmp_path):
    # An empty first snapshot used to go unreported by `watch()`, so the app took the
    # first event after it for part of a reload and rang nothing.
    async with open_console(backend.url, tmp_path) as console:
        alarms = console.app.query_one("#alarms", Static)
        create(backend, "8 Canal Wharf", grade=1, incident_type="ASSAULT")
        await console.until(lambda: console.app.queue.keys, what="the incident on the board")
        await console.until(lambda: alarms.has_class("-shown"), what="the alarm banner")
        assert len(console.bells) == 1


# --- officer safety ------------------------------------------------------------------------


async def test_unit_at_scene_too_long_is_flagged_for_a_safety_check(backend, tmp_path):
    book_on(backend, "AB12")
    reference = create(backend, "12 High Street")
    async with open_console(backend.url, tmp_path, officer_safety_minutes=0.01) as console:
        await seen(console, reference)
        await console.line(f"a {number(reference)} AB12")
        await console.done("assign")
        status = console.app.query_one("#status", Static)
        assert "SAFETY" not in body_text(status)
        await console.line("s AB12 at scene")
        await console.done("at scene")
        assert server_incident(backend, reference)["status"] == "at_scene"
        await console.until(
            lambda: "SAFETY CHECK 1" in body_text(status), timeout=5, what="the safety flag"
        )
        # The time cell carries a marker too.
        await console.until(lambda: "?" in console.unit_row("AB12"), what="the ? marker")
        await console.shows("SAFETY CHECK 1")


# --- the link: stale picture, journal, recovery --------------------------------------------


async def test_backend_loss_shows_not_live_journals_commands_and_recovers(
    backend_factory, tmp_path
):
    first = backend_factory()
    reference = create(first, "5 Bridge Street")
    async with open_console(first.url, tmp_path) as console:
        await seen(console, reference)
        stale = console.app.query_one("#stale", Static)
        status = console.app.query_one("#status", Static)
        # The banner follows the link within a turn of the message loop, not at once.
        await console.until(lambda: not stale.has_class("-shown"), what="the banner to go")
        rows_before = list(console.app.queue.keys)

        backend_factory.stop(first)
        await console.until(lambda: stale.has_class("-shown"), 10, what="the stale banner")
        link = console.client.status
        assert link.state != LinkState.LIVE
        since = link.since.astimezone().strftime("%H:%M:%S")
        banner = body_text(stale)
        assert banner.startswith("!! NOT LIVE - ") and f"since {since}" in banner
        assert "last known picture shown" in banner
        await console.shows("NOT LIVE")
        assert status.has_class("-stale")
        # The boards keep the last picture.
        assert list(console.app.queue.keys) == rows_before
        assert console.row(reference) is not None

        await console.line(f"note {reference} caller called back")
        await console.until(lambda: "journalled" in console.said, what="journalled")
        assert console.feedback.has_class("-error")
        await console.until(lambda: "pending 1" in body_text(status), what="pending 1")
        # One the server will refuse when it comes back: the grade is already 2.
        await console.line(f"g {number(reference)} 2")
        await console.until(lambda: "pending 2" in body_text(status), what="pending 2")
        assert not console.bells

        again = first.start()
        await console.until(lambda: not stale.has_class("-shown"), 15, what="live again")
        await console.until(lambda: "pending 0" in body_text(status), 10, what="pending 0")
        texts = [e["text"] for e in server_incident(again, reference)["chronology"]]
        assert texts[-1] == "caller called back"
        # The refusal comes later, so the console says so once, rings, and counts it.
        await console.until(lambda: "REJECTED 1" in body_text(status), what="REJECTED 1")
        await console.until(lambda: "was REJECTED" in console.said, what="the rejection")
        assert console.said.startswith("journalled grade_incident was REJECTED:")
        assert "already grade 2" in console.said
        assert len(console.bells) == 1
        await console.keys.press("f7")
        # As typed: what, on which incident, to what grade, and why it was refused.
        detail = console.detail
        assert f"1. grade incident {short_reference(reference)} 2\n" in detail
        assert "typed while CAD was down" in detail and "already grade 2" in detail
        assert f"now:  {short_reference(reference)} open" in detail
        assert "j retry 1 (apply anyway) | j adapt 1 COMMAND | j withdraw 1 REASON" in detail

        # Retrying sends it again as a new command: still refused, now at once.
        await console.line("j retry 1")
        await console.until(lambda: "already grade 2" in console.said, what="the retry refused")
        assert console.said.startswith("refused:")
        # Refused at once, on the line: nothing is left for the rejected list, and both
        # stay on file, marked dismissed (the refusal kept with each).
        await console.until(lambda: "REJECTED" not in body_text(status), what="count cleared")
        journal = console.client.journal
        assert [e.status for e in journal.entries(JournalStatus.DISMISSED)] == [
            JournalStatus.DISMISSED,
            JournalStatus.DISMISSED,
        ]
        await console.line("j dismiss 1")
        await console.until(lambda: "no rejected entry 1" in console.said, what="nothing left")
        await console.until(
            lambda: (
                console.client.state.incidents[reference].chronology[-1].text
                == "caller called back"
            ),
            what="the note in the picture",
        )
        assert not status.has_class("-stale")


async def test_status_bar_counts_commands_accepted_but_not_yet_on_the_stream(backend, tmp_path):
    """Pending is the client's to know: a command the backend accepted counts until its
    event is applied from the stream, and the status bar shows the client's count."""
    client = DispatchClient(
        [backend.url], TOKENS[Role.DISPATCHER], workstation="ws-test", backoff=FAST
    )
    settings = ConsoleSettings(url=[backend.url], workstation="ws-test")
    app = CadApp(client, settings, connect=False)  # no stream until the test starts it
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            status = app.query_one("#status", Static)
            result = await client.execute(
                draft("book_on", callsign="AB12", unit_type="patrol_car"), wait=False
            )
            assert client.pending.sent == {result.seq} and client.pending.count == 1
            app.refresh_status()
            await until(pilot, lambda: "pending 1" in body_text(status), what="pending 1")

            client.start()
            await until(pilot, lambda: "AB12" in client.units, 10, what="the event applied")
            assert client.pending.count == 0
            await until(pilot, lambda: "pending 0" in body_text(status), what="pending 0")
    finally:
        await client.close()


# --- keys, history, help, errors, quit -----------------------------------------------------


async def test_remapped_key_from_settings(backend, tmp_path):
    reference = create(backend, "12 High Street")
    async with open_console(backend.url, tmp_path, keymap={"app.detail": "f6"}) as console:
        await seen(console, reference)
        await console.until(lambda: console.app.queue.cursor_key == reference)
        assert not console.app.detail.shown
        await console.keys.press("f4")
        assert not console.app.detail.shown
        await console.keys.press("f6")
        assert console.app.detail.shown and reference in console.detail
        await console.keys.press("f6")
        assert not console.app.detail.shown


async def test_default_function_keys(backend, tmp_path):
    first = create(backend, "1 First Street")
    second = create(backend, "2 Second Street")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, first, second)
        await console.until(lambda: console.app.queue.cursor_key == first)
        await console.keys.press("f4")
        assert console.app.detail.shown and first in console.detail
        await console.keys.press("pagedown")
        assert console.app.queue.cursor_key == second and second in console.detail
        await console.keys.press("pageup")
        assert console.app.queue.cursor_key == first
        await console.keys.press("f4")
        assert not console.app.detail.shown
        await console.keys.press("f1")
        assert console.app.detail.shown and "Commands" in console.detail
        await console.keys.press("f7")
        assert "Journal: nothing pending or refused" in console.detail
        await console.keys.press("f5")
        assert console.said == "units grouped by state"
        await console.keys.press("f9")
        assert console.app.theme == "cadterm-light" and console.said == "theme cadterm-light"
        await console.keys.press("f2")
        assert console.app.focused is console.app.queue
        await console.keys.press("down")
        assert console.app.queue.cursor_key == second
        await console.keys.press("f3")
        assert console.app.focused is console.app.units
        await console.keys.press("escape")
        assert console.app.focused is console.input


async def test_f9_cycles_every_built_in_theme(backend, tmp_path):
    async with open_console(backend.url, tmp_path) as console:
        seen_themes = [console.app.theme]
        for _ in THEMES:
            await console.keys.press("f9")
            await console.pilot.pause()
            assert console.app.is_running and console.app.return_code is None
            seen_themes.append(console.app.theme)
        assert seen_themes == [*THEMES, next(iter(THEMES))]
        assert console.said == f"theme {next(iter(THEMES))}"


@pytest.mark.parametrize("theme", list(THEMES))
async def test_console_starts_in_every_built_in_theme(backend, tmp_path, theme):
    async with open_console(backend.url, tmp_path, theme=theme) as console:
        assert console.app.theme == theme
        await console.shows("LIVE")


async def test_history_up_and_down(backend, tmp_path):
    async with open_console(backend.url, tmp_path) as console:
        await console.line("/park")
        await console.line("/mill")
        await console.keys.press("up")
        assert console.input.value == "/mill"
        await console.keys.press("up")
        assert console.input.value == "/park"
        await console.keys.press("up")
        assert console.input.value == "/park"
        await console.keys.press("down")
        assert console.input.value == "/mill"
        await console.keys.press("down")
        assert console.input.value == ""
        await console.keys.type("half typed")
        await console.keys.press("escape")
        assert console.input.value == ""


async def test_help_lists_every_verb(backend, tmp_path):
    async with open_console(backend.url, tmp_path) as console:
        await console.line("?")
        assert console.app.detail.shown
        text = console.detail
        for verb in VERBS.values():
            assert f"{verb.name}" in text, verb.name
            assert f"e.g. {verb.example}" in text, verb.name
        await console.shows("Commands")

        await console.line("assign ?")
        assert console.detail.startswith("assign: send units to an incident")


@pytest.mark.parametrize(
    ("line", "expected", "kept"),
    [
        ("a ZZ99", "unknown callsign 'ZZ99'", True),
        ("g 7", "grade must be 1-5", True),
        ("frobnicate 1", "unknown verb 'frobnicate'", True),
        ("s AB12 12", "not an Airwave state", True),
        ("n 1 rtc", "new: missing LOCATION", True),
    ],
)
async def test_parse_errors_are_precise(backend, tmp_path, line, expected, kept):
    book_on(backend, "AB12")
    reference = create(backend, "12 High Street")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        await console.until(lambda: console.app.queue.cursor_key == reference)
        events_before = server_state(backend)["seq"]
        await console.line(line)
        error = await console.refused()
        assert expected in error, error
        assert console.feedback.has_class("-error") and not console.feedback.has_class("-ok")
        if kept:  # the line stays for correcting
            assert console.input.value == line
        assert server_state(backend)["seq"] == events_before


async def test_quit(backend, tmp_path):
    async with open_console(backend.url, tmp_path) as console:
        await console.line("q")
        await console.until(lambda: console.app.return_code is not None, what="the app to exit")
        assert console.app.return_code == 0


# --- untrusted text --------------------------------------------------------------------------


# Markup the server accepts (it is printable text). Escape sequences are refused at the
# door; the console's handling of ones stored before that is in test_legacy_values.py.
HOSTILE = "[@click=app.quit]x[/] [bold]loud [unclosed wipe end"


async def test_untrusted_note_is_shown_literally_and_does_nothing(backend, tmp_path):
    reference = create(backend, "[b]Yard[/b]")
    post_command(backend, type="add_note", reference=reference, text=HOSTILE)
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        await console.until(lambda: len(console.client.state.incidents[reference].chronology) == 2)
        await console.line(number(reference))
        text = console.detail
        for literal in ("[@click=app.quit]x[/]", "[bold]loud", "[unclosed"):
            assert literal in text, literal
        assert "\x1b" not in text and "\x07" not in text
        assert "[b]Yard[/b]" in text
        await console.until(lambda: "[b]Yard[/b]" in console.row(reference))
        # What reaches the terminal is the same literal text, with no click action on it.
        await console.shows("[@click=app.quit]x[/]")
        screen = console.screen()
        assert "[@click=app.quit]x[/]" in screen and "\x1b" not in screen
        row = next(i for i, line in enumerate(screen.splitlines()) if "[@click" in line)
        column = screen.splitlines()[row].index("[@click") + len("[@click=app.quit]")
        await console.pilot.click(offset=(column, row))
        # Once the app is idle (no sleep: every queued message handled) the click has had
        # its turn, and quit nothing.
        await console.pilot.pause()
        assert console.app.is_running and console.app.return_code is None
        body = console.app.query_one("#detail-body", Static).render()
        assert body.spans and all("@click" not in str(span.style) for span in body.spans)


# --- the five core flows, counted ------------------------------------------------------------


async def test_core_flows_are_one_line_each_and_counted(backend, tmp_path, capsys):
    book_on(backend, "AB12", at=(53.801, -1.55), capabilities=("traffic",))
    book_on(backend, "AB13", at=(53.9, -1.55), capabilities=("traffic",))
    counts: dict[str, int] = {}
    async with open_console(backend.url, tmp_path) as console:
        keys = console.keys
        await console.until(lambda: console.unit_row("AB13"), what="units on the board")
        keys.take()

        async def flow(name: str, *steps: str) -> None:
            """Type one flow: text, and "<tab>" / "<enter>" for those keys."""
            enters = 0
            for step in steps:
                if step in ("<tab>", "<enter>"):
                    await keys.press(step[1:-1])
                    enters += step == "<enter>"
                else:
                    await keys.type(step)
            assert enters == 1, f"{name} must be one line"
            counts[name] = keys.take()
            await console.done(name)

        await flow("create grade 1 with location", "n 1 rt", "<tab>", "12 High Street", "<enter>")
        (reference,) = await console.until(lambda: list(console.app.queue.keys))
        assert server_incident(backend, reference)["incident_type"] == "RTC"
        await console.until(lambda: console.app.queue.cursor_key == reference)

        await flow("assign the recommended unit", "a ", "<tab>", "<enter>")
        assert server_incident(backend, reference)["assigned"] == ["AB12"]

        await flow("unit at scene", "s ab12 6", "<enter>")
        assert server_unit(backend, "AB12")["state"] == 6

        await flow("add a note", "+suspect left on foot", "<enter>")
        assert server_incident(backend, reference)["chronology"][-1]["text"] == (
            "suspect left on foot"
        )

        await flow("close with a code", "cl res", "<tab>", "<enter>")
        incident = server_incident(backend, reference)
        assert (incident["status"], incident["closing_code"]) == ("closed", "RESOLVED")

    assert counts == {
        "create grade 1 with location": 22,
        "assign the recommended unit": 4,
        "unit at scene": 9,
        "add a note": 22,
        "close with a code": 8,
    }
    with capsys.disabled():
        print("\nkeystrokes per core flow (one command line each):")
        for name, count in counts.items():
            print(f"  {name:<30} {count:>3}")
