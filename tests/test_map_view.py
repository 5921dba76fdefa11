"""The map view in the running console: toggling, pan and zoom, the selection both ways.

The console runs on the snapshot tests' fixed picture (never connecting anywhere), and
live changes are folded into the client's store as the stream would fold them.
"""

from __future__ import annotations

import pytest
from console_helpers import screen_text, until
from test_console_snapshots import LIVE_SINCE, NOW, console

from cadterm.client import DispatchClient, LinkState, LinkStatus
from cadterm.domain.map_markers import incident_key, marker_name, unit_key
from cadterm.protocol.events import UnitLocated
from cadterm.tui.app import CadApp
from cadterm.tui.command_line import CommandInput
from cadterm.tui.map_view import MapView
from cadterm.tui.settings import ConsoleSettings


def _console(**settings) -> CadApp:
    app = console("cadterm-dark", LinkStatus(LinkState.LIVE, LIVE_SINCE))
    if settings:
        app.settings = app.settings.model_copy(update=settings)
    return app


def _map_text(view: MapView) -> list[str]:
    return ["".join(s.text for s in view.render_line(y)) for y in range(view.size.height)]


async def test_f6_shows_the_map_in_the_boards_place_and_esc_returns_to_the_command_line():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert not app.map.display
        await pilot.press("f6")
        await until(pilot, lambda: app.map.display and app.focused is app.map)
        assert not app.queue.display and not app.units.display
        assert app.map.size.width == 80
        assert "MAP  1 col =" in screen_text(app)
        await pilot.press("escape")
        assert isinstance(app.focused, CommandInput)
        assert app.map.display  # still shown: F6 goes back to it
        await pilot.press("f6")
        assert app.focused is app.map
        await pilot.press("f6")
        await until(pilot, lambda: not app.map.display and app.queue.display)
        assert isinstance(app.focused, CommandInput)


async def test_wide_screen_keeps_the_queue_beside_the_map():
    app = _console()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: app.map.display and app.map.size.width > 0)
        assert app.queue.display and not app.units.display
        assert app.map.size.width < 160


async def test_pan_and_zoom_from_the_keyboard():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: app.map.window is not None)
        start = app.map.window
        await pilot.press("right")
        assert app.map.window.centre.lon > start.centre.lon
        await pilot.press("h")
        assert app.map.window.centre.lon == pytest.approx(start.centre.lon, abs=1e-9)
        await pilot.press("k")
        assert app.map.window.centre.lat > start.centre.lat
        await pilot.press("down")
        assert app.map.window.centre.lat == pytest.approx(start.centre.lat, abs=1e-9)
        await pilot.press("plus")
        assert app.map.window.zoom == start.zoom + 1
        assert f"1 col = {app.map.window.metres_per_column:g} m" in screen_text(app)
        await pilot.press("minus", "minus")
        assert app.map.window.zoom == start.zoom - 1
        await pilot.press("c")
        selected = app.map.markers.by_key[app.map.selected]
        assert app.map.window.centre == selected.position
        await pilot.press("f")
        await pilot.pause()
        assert app.map.window.zoom == start.zoom


async def test_the_queue_selection_shows_on_the_map():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("pagedown", "f6")
        await until(pilot, lambda: app.map.selected == incident_key(app.queue.cursor_key))
        column, row = app.map.placement.at[app.map.selected]
        line = _map_text(app.map)[row + 1]  # below the heading
        grade = str(int(app.client.state.incidents[app.queue.cursor_key].grade))
        assert line[column - 1 : column + 2] == f"[{grade}]"
        await pilot.press("pagedown")  # the queue moves on while the map has the focus
        await until(pilot, lambda: app.map.selected == incident_key(app.queue.cursor_key))


async def test_the_unit_board_selection_shows_on_the_map():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f3", "down", "down")
        callsign = app.units.cursor_key
        assert callsign in app.client.state.units
        await until(pilot, lambda: app.map.selected == unit_key(callsign))


async def test_stepping_through_markers_selects_on_the_boards():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: app.map.placement.at)
        seen = set()
        for _ in range(len(app.map.placement.at)):  # once round every marker on screen
            await pilot.press("n")
            await pilot.pause()
            kind, name = marker_name(app.map.selected)
            board = app.queue if kind == "incident" else app.units
            await until(pilot, lambda b=board, n=name: b.cursor_key == n)
            seen.add(kind)
        assert seen == {"incident", "unit"}
        before = app.map.selected
        await pilot.press("n", "p")
        assert app.map.selected == before


async def test_enter_on_an_incident_marker_opens_its_detail():
    app = _console()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: app.map.placement.at)
        for _ in range(len(app.map.placement.at)):
            if marker_name(app.map.selected or "")[0] == "incident":
                break
            await pilot.press("n")
        reference = marker_name(app.map.selected)[1]
        await pilot.press("enter")
        await until(pilot, lambda: app.showing("incident"))
        assert reference in screen_text(app)


async def test_a_unit_moving_repaints_only_the_lines_it_left_and_entered():
    app = _console()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: app.map.placement.at)
        await pilot.pause()
        view = app.map
        key = unit_key("TR7")
        column, row = view.placement.at[key]
        target = view.window.position_at(column - 6, row - 3)  # somewhere empty nearby
        before = view.painted_lines
        _move(app, "TR7", target)
        await until(pilot, lambda: view.placement.at.get(key) == (column - 6, row - 3))
        assert view.painted_lines - before == 2
        assert _map_text(view)[row - 3 + 1][column - 6] == "A"


async def test_an_unchanged_picture_repaints_nothing():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: app.map.placement.at)
        await pilot.pause()
        before = app.map.painted_lines
        app.apply_changes(set(app.client.state.incidents), set(app.client.state.units))
        await pilot.pause()
        assert app.map.painted_lines == before


async def test_an_ascii_terminal_gets_an_ascii_map():
    app = _console(unicode=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: app.map.placement.at)
        text = "\n".join(_map_text(app.map))
        assert text.isascii()
        assert any(c in text for c in "-|.")


async def test_a_console_with_nothing_to_map_says_so():
    client = DispatchClient(["http://127.0.0.1:9"], "t", workstation="ws-1")
    settings = ConsoleSettings(url=["http://127.0.0.1:9"], token="t", workstation="ws-1")
    app = CadApp(client, settings, clock=lambda: NOW, connect=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6", "right", "plus", "c", "n", "enter")
        await pilot.pause()
        assert "no positions to show yet" in screen_text(app)


async def test_a_selection_off_the_map_brings_the_map_to_it():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: app.map.window is not None)
        for _ in range(6):
            await pilot.press("plus")  # close in: most of the town is off the map
        far = app.client.state.units["EF31"].position  # far south of the rest
        assert app.map.window.cell(far) is None
        await pilot.press("escape", "f3")
        app.units.move_cursor_to("EF31")
        await until(pilot, lambda: app.map.selected == unit_key("EF31"))
        assert app.map.window.cell(far) is not None


async def test_the_heading_says_where_the_keys_go():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: "Esc: command line" in screen_text(app))
        await pilot.press("escape")
        await until(pilot, lambda: "F6: map keys" in screen_text(app))


async def test_a_theme_change_restyles_the_map():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f6")
        await until(pilot, lambda: app.map.placement.at)
        row, column = next(
            (r, c)
            for r, cells in app.map.placement.cells.items()
            for c, (_, tag) in cells.items()
            if tag == "grade-1"
        )

        def marker_style():
            cell = 0
            for segment in app.map.render_line(row + 1):
                if cell <= column < cell + len(segment.text):
                    return segment.style
                cell += len(segment.text)
            return None

        before = marker_style()
        assert before is not None and before.color is not None
        await pilot.press("f9")
        await until(pilot, lambda: marker_style() != before, what="the map in the new theme")


def _move(app: CadApp, callsign: str, position) -> None:
    """Fold a unit's new fix into the store and drain it, as the live worker does."""
    app.client.store.apply(
        UnitLocated(
            seq=app.client.seq + 1,
            at=NOW,
            operator="disp1",
            workstation="ws-1",
            callsign=callsign,
            position=position,
            fixed_at=NOW,
        )
    )
    changes = app.client.take_changes()
    app.apply_changes(changes.incidents, changes.units)


async def test_a_unit_moving_while_the_map_is_hidden_costs_the_map_nothing():
    app = _console()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        view = app.map
        assert not view.shown  # the boards are shown, not the map
        unit = app.client.state.units["TR7"]
        assert unit.position is not None
        moved = unit.position.model_copy(
            update={"lat": unit.position.lat + 0.004, "lon": unit.position.lon - 0.006}
        )
        before = (view.repaints, view.painted_lines, view.followed)
        _move(app, "TR7", moved)
        await pilot.pause()
        # Not a marker followed, not a row composed, not a line repainted.
        assert (view.repaints, view.painted_lines, view.followed) == before
        assert view.markers.by_key[unit_key("TR7")].position != moved
        # Shown again, the map is true: the unit is where its last fix put it.
        await pilot.press("f6")
        await until(pilot, lambda: view.placement.at)
        assert view.markers.by_key[unit_key("TR7")].position == moved
        assert view.repaints > before[0]
        cell = view.window.cell(moved)
        if cell is not None and unit_key("TR7") in view.placement.at:
            assert view.placement.at[unit_key("TR7")] == cell
