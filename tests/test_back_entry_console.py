"""Paper logs typed back in: ``at=HH:MM`` at the end of a command line.

The grammar reads it; the console turns it into the command's `taken_at` (the last such
local time, so 23:50 typed after midnight is yesterday's); the server records the event
back-entered, with both times.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import httpx
import pytest
from test_console import create, open_console, seen
from test_grammar import CTX

from cadterm.tui.command_actions import happened_today
from cadterm.tui.grammar import Dispatch, ParseError, parse


def test_at_hh_mm_ends_any_command_line() -> None:
    action = parse("note 0042-27NOV26 knock heard at the rear at=09:13", CTX)
    assert isinstance(action, Dispatch) and action.happened_at == time(9, 13)
    assert action.commands[0].text == "knock heard at the rear"
    plain = parse("note 0042-27NOV26 meet at 9:13", CTX)
    assert isinstance(plain, Dispatch) and plain.happened_at is None


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("note 0042-27NOV26 knock at=9.13", "HH:MM"),
        ("note 0042-27NOV26 knock at=25:00", "HH:MM"),
        ("/gasworks at=09:13", "command that changes something"),
    ],
)
def test_a_wrong_at_is_said_where_it_is(line: str, words: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse(line, CTX)
    assert words in caught.value.message
    assert line[caught.value.start : caught.value.end].startswith("at=")


def test_the_time_meant_is_the_last_such_time() -> None:
    now = datetime(2026, 12, 1, 0, 20, tzinfo=UTC).astimezone()
    earlier = happened_today(time(0, 5), now)
    assert earlier == now.replace(minute=5).astimezone(UTC)
    # After midnight, 23:50 is yesterday's.
    late = happened_today(time(23, 50), now)
    assert late < now and now - late < timedelta(hours=1)


async def test_a_paper_log_entry_is_recorded_back_entered(backend, tmp_path) -> None:
    reference = create(backend, "5 Bridge Street")
    happened = (datetime.now().astimezone() - timedelta(minutes=20)).replace(
        second=0, microsecond=0
    )
    async with open_console(backend.url, tmp_path) as console:
        await seen(console, reference)
        await console.line(f"note {reference} caller rang back at={happened:%H:%M}")
        await console.until(lambda: "done:" in console.said, what="the note accepted")
        assert f"happened at {happened:%H:%M}" in console.said
    async with httpx.AsyncClient(headers=backend.headers(), timeout=5) as http:
        events = (await http.get(f"{backend.url}/v1/events", params={"after": 0})).json()
    note = events[-1]
    assert note["type"] == "note_added" and note["text"] == "caller rang back"
    assert note["back_entered"] is True
    assert datetime.fromisoformat(note["taken_at"]) == happened.astimezone(UTC)
