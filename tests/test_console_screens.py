"""Screens that never mislead: layout after a resize, filters that say what they hide.

Each test here failed on the console before the fix it names.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta

from console_helpers import body_text
from rich.cells import cell_len
from test_console import (
    book_on,
    create,
    number,
    open_console,
    post_command,
    seen,
    server_unit,
)
from textual.widgets import Static

from cadterm.protocol.drafts import draft
from cadterm.tui.grammar import Dispatch
from cadterm.tui.incident_queue import short_reference


async def test_the_layout_follows_the_new_size_not_the_old_one(backend, tmp_path):
    reference = create(backend, "12 High Street")
    async with open_console(backend.url, tmp_path, size=(130, 30)) as console:
        await seen(console, reference)
        assert not console.app.screen.has_class("-narrow")
        await console.pilot.resize_terminal(80, 24)
        await console.until(lambda: console.app.screen.has_class("-narrow"), what="narrow")
        await console.shows("LOCATION")
        header = next(line for line in console.screen().splitlines() if "REF" in line)
        assert "LOCATION" in header and "UNITS" in header
        await console.pilot.resize_terminal(130, 30)
        await console.until(lambda: not console.app.screen.has_class("-narrow"), what="wide")


async def test_a_filter_says_what_it_hides_and_never_hides_an_emergency(backend, tmp_path):
    book_on(backend, "AB12")
    book_on(backend, "AB13")
    post_command(backend, type="set_unit_state", callsign="AB13", state=0)
    high = create(backend, "12 High Street")
    park = create(backend, "3 Park Lane", grade=3)
    mill = create(backend, "7 Mill Road", grade=1, incident_type="ASSAULT")
    async with open_console(backend.url, tmp_path, size=(80, 24)) as console:
        await seen(console, high, park, mill)
        await console.line("/park")
        assert list(console.app.queue.keys) == [mill, park]  # grade 1: never hidden
        assert console.app.queue.hidden_count == 1
        assert "AB13" in console.app.units.keys  # state 0: never hidden
        assert "AB12" not in console.app.units.keys and console.app.units.hidden_count == 1
        await console.shows("1 inc, 1 units hidden")
        status = console.screen().splitlines()[-1].rstrip()
        assert re.search(r"\| \d\d:\d\d:\d\d$", status), status  # the clock stays at 80

        await console.line("/nothing like this")
        assert list(console.app.queue.keys) == [mill]
        await console.line("/")
        assert console.app.queue.hidden_count == 0
        await console.until(lambda: "hidden" not in console.screen(), what="the filter gone")


async def test_an_empty_board_under_a_filter_says_it_is_filtered(backend, tmp_path):
    book_on(backend, "AB12")
    high = create(backend, "12 High Street")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, high)
        await console.line("/zzz")
        await console.shows("no open incident matches /zzz (1 hidden)")
        await console.shows("no unit on duty matches /zzz (1 hidden)")
        assert "no units on duty" not in console.screen()


# --- alarms one by one, breaches, the bell --------------------------------------------


async def test_alarms_are_acknowledged_one_by_one(backend, tmp_path):
    book_on(backend, "AB12")
    async with open_console(backend.url, tmp_path) as console:
        await console.until(lambda: "AB12" in console.client.state.units, what="AB12")
        first = create(backend, "8 Canal Wharf", grade=1, incident_type="ASSAULT")
        second = create(backend, "9 Canal Wharf", grade=1, incident_type="ROBBERY")
        post_command(backend, type="set_unit_state", callsign="AB12", state=0)
        await console.shows("EMERGENCY: AB12")
        await console.shows("ROBBERY")
        assert len(console.app.alarms.alarms(console.client.state)) == 3

        def banner() -> str:
            return body_text(console.app.query_one("#alarms", Static))

        await console.line("ack AB12")  # the unit's emergency, and nothing else
        await console.done("acknowledge")
        await console.until(lambda: "EMERGENCY" not in banner(), what="the emergency gone")
        assert "ASSAULT at 8 Canal Wharf" in banner()
        assert "ROBBERY at 9 Canal Wharf" in banner()

        await console.line(f"ack {number(second)}")  # one incident's alarm by its number
        await console.until(lambda: "ROBBERY" not in banner(), what="the second one gone")
        assert "ASSAULT at 8 Canal Wharf" in banner()
        await console.line("ack")  # the top alarm
        assert console.said.startswith(f"acknowledged: NEW GRADE 1: {short_reference(first)}")
        assert console.app.alarms.alarms(console.client.state) == []


async def test_a_grade_one_past_its_target_raises_a_new_alarm_and_rings(backend, tmp_path):
    async with open_console(backend.url, tmp_path) as console:
        reference = create(backend, "8 Canal Wharf", grade=1, incident_type="ASSAULT")
        await console.shows("NEW GRADE 1")
        await console.line("ack")
        await console.until(
            lambda: not console.app.alarms.alarms(console.client.state), what="acked"
        )
        rang = len(console.bells)
        later = datetime.now(UTC) + timedelta(minutes=16)  # past the 15-minute target
        console.app.clock = lambda: later
        await console.shows(f"BREACHED GRADE 1: {short_reference(reference)}")
        assert len(console.bells) == rang + 1


async def test_an_emergency_rings_again_until_acknowledged_and_refusals_do_not(backend, tmp_path):
    book_on(backend, "AB12")
    async with open_console(backend.url, tmp_path, emergency_bell_every=1) as console:
        await console.until(lambda: "AB12" in console.client.state.units, what="AB12")
        # Refused by the server (there is no such incident): shown on the line, silent.
        console.app.controller.dispatch(
            Dispatch((draft("assign_unit", reference="0999-01JAN26", callsign="AB12"),), "a")
        )
        await console.refused()
        assert console.bells == []
        post_command(backend, type="set_unit_state", callsign="AB12", state=0)
        await console.until(lambda: len(console.bells) >= 3, timeout=10, what="three bells")
        await console.line("ack AB12")
        await console.until(lambda: not console.app.alarms.emergency_ringing, what="ack")
        rang = len(console.bells)
        ticks = console.app.ticks
        await console.until(lambda: console.app.ticks >= ticks + 2, what="two ticks")
        assert len(console.bells) == rang


async def test_moving_the_only_unit_off_an_urgent_incident_asks_first(backend, tmp_path):
    book_on(backend, "AB12")
    book_on(backend, "AB13")
    urgent = create(backend, "7 Mill Road", grade=1, incident_type="ASSAULT")
    routine = create(backend, "3 Park Lane", grade=3)
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, urgent, routine)
        await console.line(f"a {number(urgent)} AB12")
        await console.done("assign")
        await console.until(lambda: console.client.state.units["AB12"].incident == urgent)

        for line in (f"sd {number(urgent)} AB12", "off AB12", f"dv {number(routine)} AB12"):
            await console.line(line)
            warning = await console.refused()
            assert f"AB12 is the only unit on {urgent} (grade 1)" in warning, line
            assert console.input.value == f"!{line}"
            await console.keys.press("escape")  # thought better of it
        assert server_unit(backend, "AB12")["incident"] == urgent  # nothing was sent

        # With a second unit on it, AB12 may go without a question.
        await console.line(f"a {number(urgent)} AB13")
        await console.done("assign")
        await console.until(lambda: "AB13" in console.client.state.incidents[urgent].assigned)
        await console.line(f"dv {number(routine)} AB12")
        await console.done("divert")


async def test_help_scrolls_from_the_keyboard_at_80x24(backend, tmp_path):
    async with open_console(backend.url, tmp_path, size=(80, 24)) as console:
        await console.line("?")
        pane = console.app.detail
        await console.until(lambda: pane.max_scroll_y > 0, what="help longer than the pane")
        assert pane.scroll_y == 0
        await console.keys.press("shift+pagedown")
        await console.until(lambda: pane.scroll_y > 0, what="a page down")
        await console.keys.press("shift+up")
        assert console.app.focused is console.input  # the command line kept the focus


async def test_the_detail_panes_age_moves_on(backend, tmp_path):
    reference = create(backend, "12 High Street")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        await console.line(number(reference))
        await console.until(lambda: "12 High Street" in console.detail, what="the detail")
        before = console.detail
        later = datetime.now(UTC) + timedelta(minutes=7)
        console.app.clock = lambda: later
        await console.until(lambda: console.detail != before, what="the age to move on")


async def test_a_grade_one_stands_apart_from_a_grade_two_without_colour(backend, tmp_path):
    async with open_console(backend.url, tmp_path, theme="cadterm-ansi") as console:
        queue = console.app.queue
        one = queue.get_component_rich_style("queue--grade-1")
        two = queue.get_component_rich_style("queue--grade-2")
        assert one.reverse and not two.reverse  # not by colour alone


async def test_quitting_with_unsent_commands_asks_first(tmp_path, refused_url):
    async with open_console(refused_url, tmp_path, wait_live=False) as console:
        await console.line("n 2 concern 1 Quiet Street")  # journalled: nobody to send to
        await console.until(lambda: console.client.pending.unsent == 1, what="journalled")
        await console.keys.press("ctrl+q")
        said = await console.refused()
        assert said.startswith("1 command not yet sent: kept in the journal")
        assert console.app.is_running
        await console.keys.press("ctrl+q")  # asked twice: it goes
        await console.until(lambda: not console.app.is_running, what="the console to quit")


# --- cells, not characters -------------------------------------------------------------

WIDE = [
    "東京都千代田区丸の内1-9-1",  # CJK: two cells each
    "🚑 Ambulance Station, Mill Rd",  # an emoji
    "Rue de l'Église, Zoë Brontë",  # NFD below: letters with combining accents
    "Zero\u200bwidth\u200bjoins Street",
    "".join(chr(0xFF21 + ord(c) - ord("A")) for c in "FULLWIDTH") + " Road",  # 2 cells
]


def test_fit_gives_exactly_the_cells_asked_with_an_ellipsis_when_cut() -> None:
    from rich.cells import cell_len

    from cadterm.tui.safe_text import fit

    for text in [*WIDE, unicodedata.normalize("NFD", WIDE[2]), "short"]:
        for cells in (1, 5, 12, 40):
            out = fit(text, cells)
            assert cell_len(out) == cells, (text, cells, out)
            if cell_len(text) > cells:
                assert out.endswith("\u2026")


async def test_wide_names_keep_every_column_in_its_place(backend, tmp_path):
    references = [create(backend, unicodedata.normalize("NFD", address)) for address in WIDE]
    async with open_console(backend.url, tmp_path, size=(80, 24)) as console:
        await seen(console, *references)
        lines = [console.row(reference) for reference in references]
        header = next(line for line in console.screen().splitlines() if "UNITS" in line)
        column = cell_len(header[: header.index("UNITS")])
        for line in lines:
            assert line is not None
            assert cell_len(line.rstrip()) <= 80
            # The UNITS column starts at the same cell on every row: "-" (none assigned).
            assert cells_before(line, "-  ") <= column + 1, line


def cells_before(line: str, marker: str) -> int:
    return cell_len(line[: line.rindex(marker.strip())])


async def test_without_colour_the_selected_row_is_in_reverse_video(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    reference = create(backend, "12 High Street")
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        cursor = console.app.queue.get_component_rich_style("board--cursor")
        assert cursor.reverse  # marked by more than a shade of grey
    monkeypatch.delenv("NO_COLOR")
    async with open_console(backend.url, tmp_path, journal="j2.db") as console:
        await seen(console, reference)
        assert not console.app.queue.get_component_rich_style("board--cursor").reverse
