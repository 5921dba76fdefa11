"""Gazetteer completion on a real terminal: Tab after a partial street, in tmux at 80x24.

`cadterm demo --fresh` loads its town's gazetteer; typing ``n 1 rtc 37 Gas`` and Tab
must complete a real street, and the incident opened must have that place's sector.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from test_map_terminal import _start_demo
from test_terminal import Tmux, tmux, wait_for  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]


def test_tab_completes_a_real_street_and_the_incident_gets_its_sector(
    tmux: Tmux,  # noqa: F811
    tmp_path: Path,
) -> None:
    _start_demo(tmux, tmp_path, "C.UTF-8")
    tmux.type("n 1 rtc 37 Gas", enter=False)
    tmux.key("Tab")
    wait_for(lambda: "37 Gasworks Row" in tmux.screen(), 15, "the completed street")
    tmux.key("Enter")
    # The line says the place was matched, and the sector it set (the town's South).
    wait_for(lambda: "done: new grade 1 RTC" in tmux.screen(), 15, "the incident opened")
    screen = tmux.screen()
    assert re.search(r"at 37 Gasworks Row \(house in South\)", screen), screen
    assert any(line[:1].isdigit() and "37 Gasworks Row" in line for line in screen.splitlines())
    assert "unverified" not in screen.lower()
