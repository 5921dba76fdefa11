"""The selection stays in view, grade 1s and emergencies stay on screen, and the selection
is marked without colour: at 80x24, with NO_COLOR=1 and with 16 colours.

A queue longer than the screen is scrolled down: its grade 1s are still drawn at the
top, under the heading; a unit in emergency likewise on the unit board. The cursor
never rests on a row the dispatcher cannot see: scrolling away brings it along, and a
change of order that would push it off scrolls it back into view.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from console_helpers import screen_text, until
from rich.color import ColorSystem
from rich.style import Style
from textual.pilot import Pilot

from cadterm.client import DispatchClient
from cadterm.protocol.events import IncidentCreated, UnitBookedOn, UnitStateChanged
from cadterm.protocol.fold import DispatchState, fold
from cadterm.tui.app import CadApp
from cadterm.tui.board import Board
from cadterm.tui.incident_queue import short_reference
from cadterm.tui.settings import ConsoleSettings

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
URL = "http://127.0.0.1:9"  # never reached: these consoles show a picture as it is


def _events() -> Iterator:
    seq = iter(range(1, 10**6))

    def base(minutes_ago: float) -> dict:
        return {
            "seq": next(seq),
            "at": NOW - timedelta(minutes=minutes_ago),
            "operator": "disp1",
            "workstation": "ws-1",
        }

    for n in range(1, 41):
        yield IncidentCreated(
            **base(120 - n),
            reference=f"{n:04d}-27NOV26",
            grade=1 if n in (7, 31) else 3,
            incident_type="CONCERN",
            location={"address": f"{n} Long Lane, Leeds"},
            source="101",
        )
    for n in range(20):
        yield UnitBookedOn(**base(60), callsign=f"AB{n:02d}", unit_type="van", home_sector="LS1")
    yield UnitStateChanged(**base(1), callsign="AB01", state=0)


def picture() -> DispatchState:
    return fold(_events())


GRADE_1 = ["0007-27NOV26", "0031-27NOV26"]


@pytest.fixture(params=["no colour", "16 colours", "default theme on 16 colours"])
async def console(request, monkeypatch) -> AsyncIterator[tuple[CadApp, Pilot]]:
    theme = "cadterm-dark"
    if request.param == "no colour":
        monkeypatch.setenv("NO_COLOR", "1")
    else:
        monkeypatch.delenv("NO_COLOR", raising=False)
    if request.param == "16 colours":
        theme = "cadterm-ansi"  # the built-in theme for 16-colour terminals
    client = DispatchClient([URL], "token", workstation="ws-1")
    client.store.load_snapshot(picture())
    settings = ConsoleSettings(url=[URL], token="token", workstation="ws-1", theme=theme)
    app = CadApp(client, settings, operator="disp1", clock=lambda: NOW, connect=False)
    app.bell = lambda: None  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        yield app, pilot
        await pilot.pause()
    await client.close()


def board_rows(app: CadApp, board: Board) -> list[str]:
    """The board's rows as on screen, heading first."""
    region = board.content_region
    lines = screen_text(app).splitlines()[region.y : region.y + region.height]
    return [line[region.x : region.x + region.width] for line in lines]


def shown_references(app: CadApp) -> list[str]:
    rows = board_rows(app, app.queue)[1:]
    return [row.split()[0] for row in rows if row.strip()]


def cursor_marked(app: CadApp, board: Board) -> bool:
    """Whether the cursor's row is drawn unlike its neighbours without relying on hue:
    reverse video, or (on 16 colours) a background that stays distinct once the
    colours are cut down to the terminal's 16."""
    window = board._window()
    row = window.index(board.cursor_key) + 1
    other = 1 if row != 1 else 2
    drawn, plain = board.render_line(row), board.render_line(other)

    def look(strip) -> tuple:
        style = Style.combine(segment.style or Style() for segment in strip)
        bg = style.bgcolor.downgrade(ColorSystem.STANDARD) if style.bgcolor else None
        return bool(style.reverse), bg

    return look(drawn) != look(plain) and (look(drawn)[0] or look(drawn)[1] is not None)


async def test_grade_1s_stay_at_the_top_of_a_scrolled_queue(console) -> None:
    app, pilot = console
    queue = app.queue
    assert len(queue.keys) > queue.size.height  # longer than the screen
    queue.scroll_to(y=25, animate=False)
    await pilot.pause()
    await until(pilot, lambda: int(queue.scroll_offset.y) == 25, what="scrolled")
    shown = shown_references(app)
    assert shown[:2] == [short_reference(r) for r in GRADE_1], shown
    assert short_reference(queue.keys[25]) in shown  # the scrolled rows follow them
    # The cursor came along: it is on a row the dispatcher can see, and marked.
    assert short_reference(queue.cursor_key) in shown
    assert cursor_marked(app, queue)


async def test_a_selection_moved_off_screen_comes_back_into_view(console) -> None:
    app, pilot = console
    queue = app.queue
    queue.focus()
    await pilot.press("end")
    await until(pilot, lambda: queue.cursor_key == queue.keys[-1], what="the last row")
    assert short_reference(queue.keys[-1]) in shown_references(app)
    assert shown_references(app)[:2] == [short_reference(r) for r in GRADE_1]
    # A new grade 1 sorts in above every row on screen: the selection stays in view.
    client = app.client
    client.store.apply(
        IncidentCreated(
            seq=client.store.state.seq + 1,
            at=NOW,
            operator="disp1",
            workstation="ws-1",
            reference="0099-27NOV26",
            grade=1,
            incident_type="ASSAULT",
            location={"address": "Briggate"},
            source="999",
        )
    )
    client._changed.set()
    await until(pilot, lambda: "0099-27NOV26" in queue.keys, what="the new grade 1")
    await pilot.pause()
    shown = shown_references(app)
    assert short_reference(queue.cursor_key) in shown, shown
    assert "0099-27NOV" in shown[:3], shown
    assert cursor_marked(app, queue)


async def test_a_unit_in_emergency_stays_on_a_scrolled_unit_board(console) -> None:
    app, pilot = console
    units = app.units
    assert len(units.keys) > units.size.height
    units.scroll_to(y=12, animate=False)
    await pilot.pause()
    await until(pilot, lambda: int(units.scroll_offset.y) == 12, what="scrolled")
    rows = board_rows(app, units)
    assert rows[1].split()[0] == "AB01" and "EMERG" in rows[1], rows
    assert units.cursor_key in units._window()
    assert cursor_marked(app, units)


async def test_a_unit_put_in_emergency_while_scrolled_is_pinned_and_released(console) -> None:
    app, pilot = console
    units = app.units
    units.scroll_to(y=12, animate=False)
    await until(pilot, lambda: int(units.scroll_offset.y) == 12, what="scrolled")
    client = app.client
    seq = client.store.seq

    def change(state: int) -> None:
        nonlocal seq
        seq += 1
        client.store.apply(
            UnitStateChanged(
                seq=seq, at=NOW, operator="disp1", workstation="ws-1", callsign="AB02", state=state
            )
        )
        client._changed.set()

    def pinned_callsigns() -> list[str]:
        rows = board_rows(app, units)[1:]
        return [row.split()[0] for row in rows if "EMERG" in row]

    change(0)
    await until(pilot, lambda: "AB02" in pinned_callsigns(), what="AB02 pinned")
    assert "AB01" in pinned_callsigns()
    change(2)
    await until(pilot, lambda: "AB02" not in pinned_callsigns(), what="AB02 released")
    assert "AB01" in pinned_callsigns()
