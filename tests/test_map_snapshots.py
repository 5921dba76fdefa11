"""What the map looks like: SVG snapshots at 80x24 and 160x50, without colour and in 16.

The picture, clock and link are the console snapshots' (`test_console_snapshots`): one
fixed afternoon, frozen, never connecting. "16 colours" is the ANSI theme, which uses
only the terminal's own palette; "no colour" is ``NO_COLOR=1``, where the console shows
the terminal's own colours, bold and reverse video only.

Regenerate after an intended change with ``pytest tests/test_map_snapshots.py
--snapshot-update`` and look at the SVGs in ``tests/__snapshots__/`` before committing.
"""

from __future__ import annotations

import pytest
from test_console_snapshots import LIVE_SINCE, console, steady_cursor
from test_console_snapshots import utc as utc  # the fixture: local time is UTC
from textual.pilot import Pilot

from cadterm.client import LinkState, LinkStatus


async def show_map(pilot: Pilot) -> None:
    """The map on, the second incident in the queue selected; at 80x24, one step closer
    (the whole force at that size is a huddle of marks)."""
    await steady_cursor(pilot)
    await pilot.press("pagedown", "f6")
    if pilot.app.size.width < 120:
        await pilot.press("plus")
    await pilot.pause()


@pytest.mark.parametrize("size", [(80, 24), (160, 50)], ids=["80x24", "160x50"])
@pytest.mark.parametrize("colour", ["no-colour", "16-colours"])
def test_map(snap_compare, utc, monkeypatch, colour: str, size: tuple[int, int]) -> None:
    if colour == "no-colour":
        monkeypatch.setenv("NO_COLOR", "1")
    app = console("cadterm-ansi", LinkStatus(LinkState.LIVE, LIVE_SINCE))
    assert app.no_color == (colour == "no-colour")
    assert snap_compare(app, terminal_size=size, run_before=show_map)


def test_map_ascii(snap_compare, utc) -> None:
    """A terminal that takes only ASCII: boundaries in ``-``, ``|`` and ``.``."""
    app = console("cadterm-ansi", LinkStatus(LinkState.LIVE, LIVE_SINCE))
    app.settings = app.settings.model_copy(update={"unicode": False})
    assert snap_compare(app, terminal_size=(80, 24), run_before=show_map)
