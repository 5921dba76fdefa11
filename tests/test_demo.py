"""`cadterm demo --fresh` in a real terminal: a living control room, and a clean exit."""

from __future__ import annotations

import re
import shutil
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_terminal import Tmux, tmux, wait_for  # noqa: F401

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

REFERENCE = re.compile(r"^\d{4}-\d{2}[A-Z]{3} ", re.MULTILINE)


def _processes_mentioning(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (entry / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if (marker in command or marker in environ) and _running(int(entry.name)):
            found.append(int(entry.name))
    return found


def test_demo_shows_a_living_control_room_and_leaves_nothing_behind(
    tmux: Tmux,  # noqa: F811
    tmp_path: Path,
) -> None:
    marker = f"cadterm-demo-test-{uuid.uuid4().hex[:8]}"
    data = tmp_path / marker
    cadterm = Path(sys.executable).parent / "cadterm"
    tmux.start(
        f"env CADTERM_DATA_DIR={data} CADTERM_CONFIG_DIR={data}/conf {cadterm} demo --fresh",
        width=120,
        height=36,
    )
    wait_for(lambda: "| LIVE |" in tmux.screen(), 30, "the demo console to go live")
    wait_for(lambda: "ARV1" in tmux.screen(), 30, "the simulated force on the board")
    wait_for(lambda: REFERENCE.search(tmux.screen()), 30, "incidents to arrive")
    first = tmux.screen()
    # The picture moves on by itself: new calls, units changing state, incidents ageing.
    wait_for(
        lambda: (
            REFERENCE.findall(tmux.screen()) != REFERENCE.findall(first)
            or _board(tmux.screen()) != _board(first)
        ),
        30,
        "the board to change",
    )
    pane = int(tmux.run("display", "-p", "-t", tmux.session, "#{pane_pid}").strip())
    assert pane in _processes_mentioning(marker)

    tmux.key("C-q")
    wait_for(lambda: not tmux.alive(), 20, "the demo to quit")
    deadline = time.monotonic() + 10
    while _processes_mentioning(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _processes_mentioning(marker) == [], "the demo left a process behind"
    assert not _running(pane)


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (an exited one not yet reaped is a zombie, Z)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _board(screen: str) -> list[str]:
    """The board lines, without the clock and status line that change every second."""
    return [line for line in screen.splitlines() if "|" not in line]
