"""Screens that never mislead: layout after a resize, filters that say what they hide.

Each test here failed on the console before the fix it names.
"""

from __future__ import annotations

import re

from test_console import book_on, create, open_console, post_command, seen


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
