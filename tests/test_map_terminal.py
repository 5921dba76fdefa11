"""The map on a real terminal: `cadterm demo --fresh` in tmux, at 80x24, UTF-8 and ASCII.

The demo loads its town's gazetteer, so the sectors are outlined from it; in a C locale
the console writes ASCII only, and the map must draw its boundaries in ASCII rather
than have its Braille turned into ``?`` on the way out.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from test_terminal import Tmux, tmux, wait_for  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def _map_rows(screen: str) -> list[str]:
    """The map's own rows: between its heading and its legend."""
    lines = screen.splitlines()
    top = next(i for i, line in enumerate(lines) if line.startswith("MAP  1 col ="))
    bottom = next(i for i, line in enumerate(lines) if line.startswith("1-5 grade"))
    return lines[top + 1 : bottom]


def _start_demo(session: Tmux, tmp_path: Path, locale: str) -> None:
    data = tmp_path / "data"
    cadterm = Path(sys.executable).parent / "cadterm"
    session.start(
        f"env LANG={locale} LC_ALL={locale} CADTERM_DATA_DIR={data} "
        f"CADTERM_CONFIG_DIR={data}/conf {cadterm} demo --fresh",
        width=80,
        height=24,
    )
    wait_for(lambda: "| LIVE |" in session.screen(), 30, "the demo console to go live")


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_the_map_shows_the_towns_sectors_and_units_and_pans(
    tmux: Tmux,  # noqa: F811
    tmp_path: Path,
    locale: str,
) -> None:
    _start_demo(tmux, tmp_path, locale)
    tmux.key("F6")
    wait_for(lambda: "Esc: command line" in tmux.screen(), 20, "the map, with the keys")
    # The simulator's units book on with a position: available units show as A.
    wait_for(lambda: any("A" in row for row in _map_rows(tmux.screen())), 30, "units")
    screen = tmux.screen()
    rows = "\n".join(_map_rows(screen))
    for sector in ("City Centre", "North", "West"):
        assert sector in rows, screen
    if locale == "C":
        assert rows.isascii() and "?" not in rows, screen
        assert "|" in rows and "-" in rows, screen
    else:
        assert any("\u2801" <= c <= "\u28ff" for c in rows), screen
    scale = screen.splitlines()[0].split("  ")[1]
    tmux.key("+")
    wait_for(lambda: tmux.screen().splitlines()[0].split("  ")[1] != scale, 10, "zoom in")
    before = _map_rows(tmux.screen())
    tmux.key("l")
    wait_for(lambda: _map_rows(tmux.screen()) != before, 10, "the map to pan")
    tmux.key("Escape")  # back to the command line, the map still shown
    wait_for(lambda: "F6: map keys" in tmux.screen(), 10, "the command line to take the keys")
    tmux.type("zzz", enter=False)
    wait_for(lambda: "zzz" in tmux.screen().splitlines()[-3], 10, "typing on the command line")
    assert "MAP  1 col =" in tmux.screen()
