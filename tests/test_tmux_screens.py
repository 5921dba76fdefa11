"""The screen fixes on a real terminal: `cadterm console` in tmux at 80x24.

Each test runs the console in a detached tmux server of its own (``-L`` a unique
socket name, ``-f /dev/null`` so no one's tmux.conf takes part) against the `backend`
fixture, types with ``send-keys`` and reads what the terminal shows with
``capture-pane`` (``-e`` keeps the attributes, to see the selection's reverse video).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import waiting
from conftest import TOKENS, Backend
from console_helpers import post_command
from rich.cells import cell_len

from cadterm.protocol.domain import Role

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
]

CADTERM = Path(sys.executable).parent / "cadterm"


def wait_for(predicate: Callable[[], object], timeout: float = 15.0, what: str = "") -> object:
    return waiting.wait_for(predicate, timeout, what, step=0.1)


class Tmux:
    """One tmux server on its own socket name, with one session."""

    def __init__(self) -> None:
        self.name = f"cadterm-screens-{uuid.uuid4().hex[:10]}"

    def run(self, *args: str, check: bool = False) -> str:
        result = subprocess.run(
            ["tmux", "-f", "/dev/null", "-L", self.name, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=check,
        )
        return result.stdout

    def start(self, command: str, env: dict[str, str]) -> None:
        # COLUMNS and LINES are dropped: Textual would believe them over the terminal.
        assignments = " ".join(f"{key}={value}" for key, value in env.items())
        line = f"env -u COLUMNS -u LINES {assignments} {command}"
        self.run("new-session", "-d", "-s", "console", "-x", "80", "-y", "24", line, check=True)

    def type(self, text: str) -> None:
        self.run("send-keys", "-t", "console", "-l", text)
        self.run("send-keys", "-t", "console", "Enter")

    def resize(self, width: int, height: int) -> None:
        self.run("resize-window", "-t", "console", "-x", str(width), "-y", str(height))

    def screen(self, *, attributes: bool = False) -> str:
        return self.run("capture-pane", "-p", *(["-e"] if attributes else []), "-t", "console")

    def kill(self) -> None:
        self.run("kill-server")


@pytest.fixture
def tmux() -> Iterator[Tmux]:
    session = Tmux()
    try:
        yield session
    finally:
        session.kill()


def start_console(tmux: Tmux, backend: Backend, tmp_path: Path, **env: str) -> None:
    env = {
        "CADTERM_DATA_DIR": str(tmp_path / "data"),
        "CADTERM_CONFIG_DIR": str(tmp_path / "conf"),
        "TERM": "xterm-256color",
        **env,
    }
    token = TOKENS[Role.DISPATCHER]
    tmux.start(f"{CADTERM} console {backend.url} --token {token} --workstation ws-test", env)
    wait_for(lambda: "| LIVE |" in tmux.screen(), 30, "the console to go live")


def create(backend: Backend, address: str, grade: int = 2) -> str:
    result = post_command(
        backend,
        type="create_incident",
        grade=grade,
        incident_type="CONCERN",
        location={"address": address},
    )
    return result["event"]["reference"]


def header(screen: str) -> str:
    return next(line for line in screen.splitlines() if line.startswith("REF "))


def row(screen: str, reference: str) -> str | None:
    short = reference[:10]
    return next((line for line in screen.splitlines() if line.startswith(short)), None)


_SGR = re.compile(r"\x1b\[([0-9;]*)m")


def reversed_rows(captured: str) -> list[tuple[str, bool]]:
    """Each row of a ``capture-pane -e`` as plain text, and whether its first character
    is in reverse video (SGR 7).

    tmux writes only the changes of attributes, and they carry over from one row to the
    next (a row may start reversed because the row above ended so), so the state is
    followed through the whole capture.
    """
    reverse = False
    rows = []
    for line in captured.splitlines():
        first: bool | None = None
        at = 0
        while at < len(line):
            match = _SGR.match(line, at)
            if match is None:
                if first is None:
                    first = reverse
                at += 1
                continue
            for code in match.group(1).split(";"):
                if code in ("", "0", "27"):
                    reverse = False
                elif code == "7":
                    reverse = True
            at = match.end()
        rows.append((_SGR.sub("", line), bool(first)))
    return rows


def test_resize_filter_and_selection_on_a_real_terminal(
    backend: Backend, tmux: Tmux, tmp_path: Path
) -> None:
    first = create(backend, "12 High Street")
    second = create(backend, "3 Park Lane", grade=3)
    post_command(backend, type="book_on", callsign="AB12", unit_type="patrol_car")
    start_console(tmux, backend, tmp_path, NO_COLOR="1")
    wait_for(lambda: row(tmux.screen(), second), what="both incidents")

    # Resize: wider and back again; LOCATION and UNITS come back at 80x24.
    tmux.resize(100, 30)
    wait_for(lambda: len(header(tmux.screen()).rstrip()) > 80, what="the wider layout")
    tmux.resize(80, 24)
    wait_for(lambda: len(tmux.screen().splitlines()[0]) <= 80, what="80 columns again")
    wait_for(
        lambda: {"LOCATION", "UNITS"} <= set(header(tmux.screen()).split()),
        what="LOCATION and UNITS back at 80x24",
    )

    # Selection: without colour, the selected row is in reverse video and no other is.
    rows = reversed_rows(tmux.screen(attributes=True))
    queue_rows = [(text, marked) for text, marked in rows if re.match(r"\d{4}-", text)]
    marked = [text for text, reverse in queue_rows if reverse]
    assert len(queue_rows) == 2 and len(marked) == 1, queue_rows
    assert marked[0].startswith(first[:10])

    # Filter: the status bar says so and how much it hides; an empty board says why.
    tmux.type("/park")
    wait_for(lambda: "1 inc, 1 units hidden" in tmux.screen(), what="the filter in the bar")
    screen = tmux.screen()
    assert row(screen, second) and not row(screen, first)
    tmux.type("/zzz")
    wait_for(lambda: "no open incident matches /zzz (2 hidden)" in tmux.screen(), what="why")
    assert "no unit on duty matches /zzz (1 hidden)" in tmux.screen()


def test_wide_characters_keep_columns_aligned_on_a_real_terminal(
    backend: Backend, tmux: Tmux, tmp_path: Path
) -> None:
    addresses = [
        "1 Plain Street",
        "東京都千代田区丸の内 1-1",
        "Ambulance 🚑 bay, Leeds",
        unicodedata.normalize("NFD", "Café de l'Église, Rue Étienne"),
    ]
    references = []
    for n, address in enumerate(addresses):
        reference = create(backend, address)
        callsign = f"WD{n}"
        post_command(backend, type="book_on", callsign=callsign, unit_type="patrol_car")
        post_command(backend, type="assign_unit", reference=reference, callsign=callsign)
        references.append((reference, callsign))
    start_console(tmux, backend, tmp_path)
    wait_for(lambda: all(row(tmux.screen(), r) for r, _ in references), what="every incident shown")
    screen = tmux.screen()
    head = header(screen)
    column = cell_len(head[: head.index("UNITS")])
    for reference, callsign in references:
        line = row(screen, reference)
        assert line is not None
        # The UNITS column starts at the same terminal cell on every row.
        assert cell_len(line[: line.index(callsign)]) == column, (line, column)


def test_a_grade_1_stays_at_the_top_of_a_scrolled_queue_on_a_real_terminal(
    backend: Backend, tmux: Tmux, tmp_path: Path
) -> None:
    urgent = create(backend, "1 Briggate", grade=1)
    others = [create(backend, f"{n} Long Lane", grade=4) for n in range(1, 16)]
    start_console(tmux, backend, tmp_path, NO_COLOR="1")
    wait_for(lambda: row(tmux.screen(), urgent), what="the queue")
    # Select the last incident by its log number: the queue scrolls down to it. (Typed
    # text, not F-keys or End: an escape sequence split by a loaded machine can reach
    # the console as Escape and letters.)
    tmux.type(str(int(others[-1][:4])))
    wait_for(lambda: row(tmux.screen(), others[-1]), what="the last incident shown")
    rows = reversed_rows(tmux.screen(attributes=True))
    queue_rows = [(text, marked) for text, marked in rows if re.match(r"\d{4}-", text)]
    assert not row(tmux.screen(), others[0])  # scrolled: the first rows are off screen
    assert queue_rows[0][0].startswith(urgent[:10])  # ...but the grade 1 is still on top
    marked = [text for text, reverse in queue_rows if reverse]
    assert len(marked) == 1 and marked[0].startswith(others[-1][:10]), queue_rows
