"""Any link: the console sends less (changed cells only, no clock when hidden) and paces
its boards to how fast the terminal takes output, while key echo is never held back.

The cell diff is tested against a terminal emulator (pyte): what it sends must leave
the screen exactly as the whole frame would. The pacing is tested as a function of the
round trips it is told of, and through Pilot against a real backend.
"""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import termios
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyte
import pytest
from conftest import TOKENS
from console_helpers import screen_text, until
from hypothesis import given
from hypothesis import strategies as st
from pty_session import PtySession
from test_console import create, open_console
from textual.driver import Driver

from cadterm.cli.console import fit_to_terminal
from cadterm.client import DispatchClient
from cadterm.protocol.domain import Role
from cadterm.tui.app import CadApp
from cadterm.tui.command_line import CommandInput
from cadterm.tui.output_pace import OutputPace
from cadterm.tui.painted_screen import PaintedScreen
from cadterm.tui.settings import ConsoleSettings
from cadterm.tui.status import StatusBar
from cadterm.tui.terminal_output import CURSOR_REQUEST, console_driver

SIZE = (50, 6)
CADTERM = [sys.executable, "-m", "cadterm.cli.main"]


def shown(*frames: str, size: tuple[int, int] = SIZE) -> pyte.Screen:
    """The screen a terminal of `size` shows after `frames`."""
    screen = pyte.Screen(*size)
    stream = pyte.Stream(screen)
    for frame in frames:
        stream.feed(frame.replace("\n", "\r\n"))  # the tty's ONLCR
    return screen


def same_screen(a: pyte.Screen, b: pyte.Screen) -> bool:
    cells = all(a.buffer[y][x] == b.buffer[y][x] for y in range(a.lines) for x in range(a.columns))
    return cells and (a.cursor.x, a.cursor.y) == (b.cursor.x, b.cursor.y)


def board_frame(age: str, clock: str) -> str:
    """A frame as Textual writes one: absolute moves, styled segments, the caret last."""
    return (
        "\x1b[1;1H\x1b[38;5;231;48;5;24m0001-01DEC \x1b[0m\x1b[1;7m1\x1b[0m"
        f"\x1b[38;5;188m THEFT  {age:>4}  High Street       \x1b[0m\n"
        f"\x1b[6;1H\x1b[38;5;188;48;5;17mws-1 | LIVE | pending 0 | {clock}  \x1b[0m"
        "\x1b[5;2H"
    )


# --- only the cells that changed -----------------------------------------------------------


def test_a_ticking_age_and_clock_send_their_changed_cells_only() -> None:
    painted = PaintedScreen()
    first = board_frame("17s", "16:23:40")
    assert painted.repaint(first, SIZE) == first  # nothing known yet: all of it
    second = board_frame("18s", "16:23:41")
    sent = painted.repaint(second, SIZE)
    assert "THEFT" not in sent and "LIVE" not in sent
    assert len(sent) < len(second) / 2
    assert same_screen(shown(first, sent), shown(first, second))


def test_an_unchanged_frame_sends_nothing_and_a_moved_caret_only_the_move() -> None:
    painted = PaintedScreen()
    frame = board_frame("17s", "16:23:40")
    painted.repaint(frame, SIZE)
    assert painted.repaint(frame, SIZE) == ""
    moved = frame.replace("\x1b[5;2H", "\x1b[5;9H")
    assert painted.repaint(moved, SIZE) == "\x1b[5;9H"


def test_a_new_style_on_the_same_text_is_sent() -> None:
    painted = PaintedScreen()
    frame = board_frame("17s", "16:23:40")
    painted.repaint(frame, SIZE)
    selected = frame.replace("\x1b[1;7m1", "\x1b[7m1")
    sent = painted.repaint(selected, SIZE)
    assert "\x1b[7m1" in sent
    assert same_screen(shown(frame, sent), shown(frame, selected))


@pytest.mark.parametrize(
    "odd",
    ["\x1b[2J", "\x1b[K", "\x1b[3A", "\x1b7", "\x1b]8;;http://x\x1b\\link", "\x1b[?1049h", "漢"],
    ids=["clear", "erase-line", "relative-move", "save-cursor", "link", "alt-screen", "wide"],
)
def test_what_it_does_not_follow_goes_out_as_it_came_and_is_forgotten(odd: str) -> None:
    painted = PaintedScreen()
    frame = board_frame("17s", "16:23:40")
    painted.repaint(frame, SIZE)
    strange = frame + "\x1b[3;1H" + odd
    assert painted.repaint(strange, SIZE) == strange
    again = painted.repaint(frame, SIZE)  # it knows nothing now: all of it
    assert "THEFT" in again and "LIVE" in again
    assert same_screen(shown(again), shown(frame))


def test_a_new_terminal_size_gets_the_whole_frame() -> None:
    painted = PaintedScreen()
    frame = board_frame("17s", "16:23:40")
    painted.repaint(frame, SIZE)
    assert painted.repaint(frame, (60, 6)) == frame


_cells = st.text(alphabet="ab -|", min_size=1, max_size=12)
_styles = st.sampled_from(["", "\x1b[1m", "\x1b[38;5;231;48;5;24m", "\x1b[7m", "\x1b[2m"])
_segment = st.tuples(st.integers(0, SIZE[1] - 1), st.integers(0, 27), _styles, _cells)
_frame = st.lists(_segment, min_size=1, max_size=8).map(
    lambda segments: (
        "".join(f"\x1b[{y + 1};{x + 1}H{style}{text}\x1b[0m" for y, x, style, text in segments)
        + "\x1b[6;1H"
    )
)


@given(st.lists(_frame, min_size=1, max_size=6))
def test_any_run_of_frames_leaves_the_screen_as_the_whole_frames_would(frames) -> None:
    painted = PaintedScreen()
    sent = [painted.repaint(frame, SIZE) for frame in frames]
    assert same_screen(shown(*sent), shown(*frames))


def test_a_piece_at_a_time_the_newest_rows_go_first_and_nothing_is_lost() -> None:
    painted = PaintedScreen()
    blank = "".join(f"\x1b[{y + 1};1H" + " " * 50 for y in range(6)) + "\x1b[6;1H"
    painted.repaint(blank, SIZE)
    board = "".join(f"\x1b[{y + 1};1H\x1b[1mrow {y} of the board\x1b[0m" for y in range(4))
    assert painted.take(board + "\x1b[6;1H", SIZE) == ""
    echo = "\x1b[5;1Hzqj\x1b[5;4H"
    painted.take(echo, SIZE)
    first = painted.changes(1)  # one row at a time
    assert "zqj" in first and "board" not in first  # the newest frame's row first
    assert painted.owed
    rest = [painted.changes(1) for _ in range(10)]
    assert not painted.owed and all(rest[:4]) and not any(rest[4:])
    assert same_screen(shown(blank, first, *rest), shown(blank, board, echo))


@given(st.lists(st.tuples(_frame, st.sampled_from([None, 1, 40, 200])), min_size=1, max_size=6))
def test_any_frames_sent_in_any_pieces_end_as_the_whole_frames_would(steps) -> None:
    painted = PaintedScreen()
    sent = []
    for frame, budget in steps:
        sent.append(painted.take(frame, SIZE))
        sent.append(painted.changes(budget))
    sent.append(painted.changes())
    assert same_screen(shown(*sent), shown(*(frame for frame, _ in steps)))


class Recorder(Driver):
    """A driver that keeps what it is asked to write, on a pty of `SIZE` for its size."""

    def __init__(self) -> None:  # Driver's own needs an app: nothing here uses one
        self.written: list[str] = []
        self.leader, follower = os.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
        self._file = os.fdopen(follower, "w")

    def write(self, data: str) -> None:
        self.written.append(data)

    def start_application_mode(self) -> None: ...
    def disable_input(self) -> None: ...
    def stop_application_mode(self) -> None: ...

    def close(self) -> None:
        self._file.close()
        os.close(self.leader)


def test_the_driver_sends_changed_cells_and_drops_empty_synchronised_updates() -> None:
    link = Link()
    pace = OutputPace(link)
    driver = console_driver(Recorder, unicode=True, extended=True, pace=pace)()
    try:
        driver.write("\x1b[?1049h")  # a mode switch: as it is, and no request after it
        assert driver.written == ["\x1b[?1049h"]
        frame = board_frame("17s", "16:23:40")
        for part in ("\x1b[?2026h", frame, "\x1b[?2026l"):
            driver.write(part)
        start, end = driver.written[1:]
        assert start.startswith("\x1b[?2026h") and start.endswith(CURSOR_REQUEST)
        assert same_screen(shown(start), shown(frame)) and end == "\x1b[?2026l"
        for part in ("\x1b[?2026h", frame, "\x1b[?2026l"):
            driver.write(part)  # the same frame again: nothing changed, nothing sent
        assert len(driver.written) == 3
        driver.write(board_frame("18s", "16:23:40"))
        assert "THEFT" not in driver.written[-1] and "8" in driver.written[-1]
        assert not driver.written[-1].endswith(CURSOR_REQUEST)  # one request at a time
    finally:
        driver.close()


def heavy_board(colour: int) -> str:
    """Four rows, every cell in a colour of its own: about 3 KB."""
    return (
        "".join(
            f"\x1b[{y + 1};1H" + "".join(f"\x1b[38;5;{colour + x}m#\x1b[0m" for x in range(50))
            for y in range(4)
        )
        + "\x1b[6;1H"
    )


def test_on_a_slow_link_a_keys_echo_goes_ahead_of_a_board_redraw() -> None:
    link = Link()
    pace = OutputPace(link)
    driver = console_driver(Recorder, unicode=True, extended=True, pace=pace)()
    try:
        first = heavy_board(16)
        driver.write(first)  # the link's speed is not known yet: all of it at once
        assert driver.written[-1].endswith(CURSOR_REQUEST)
        link.now += 1.0  # its answer takes a second: about 3 KB/s
        pace.answered()
        assert pace.speed is not None and 2000 < pace.speed < 4000
        assert pace.window is not None and pace.window < 500  # a tenth of a second
        second = heavy_board(100)
        driver.write(second)
        assert len(driver.written[-1]) < len(second) / 2  # a window now, the rest later
        assert driver.written[-1].endswith(CURSOR_REQUEST) and pace.awaiting
        echo = "\x1b[5;1Hzqj\x1b[5;4H"
        driver.write(echo)
        assert "zqj" in driver.written[-1] and "#" not in driver.written[-1]
        for _ in range(20):  # each answer lets the next window go
            if not driver._painted.owed:
                break
            link.now += 0.2
            pace.answered()
            driver._send()
        assert not driver._painted.owed
        assert same_screen(shown(*driver.written), shown(first, second, echo))
    finally:
        driver.close()


@pytest.mark.slow
def test_the_real_console_does_not_resend_its_status_line_each_second(tmp_path: Path) -> None:
    # Against a dead backend the bar and the banner both tick (the clock, "(12s)"):
    # every second, only their changed cells may go out, never the words around them.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CADTERM_", "TEXTUAL"))}
    env |= {
        "CADTERM_DATA_DIR": str(tmp_path / "data"),
        "CADTERM_CONFIG_DIR": str(tmp_path / "config"),
        "TERM": "xterm-256color",
        "LANG": "C.UTF-8",
        "SSH_CONNECTION": "10.0.0.9 5 10.0.0.1 22",
    }
    session = PtySession(
        [*CADTERM, "console", "http://127.0.0.1:9", "--token", "t", "--workstation", "ws-1"],
        env,
    )
    try:
        session.wait_for(b"RECONNECTING", 60)
        screen = pyte.Screen(80, 24)
        stream = pyte.ByteStream(screen)
        stream.feed(bytes(session.output))
        settled = len(session.output)
        clocks = {screen.display[-1].rstrip()[-8:]}
        fed = settled
        deadline = time.monotonic() + 30
        while len(clocks) < 3:  # two ticks of the clock after the screen was drawn
            assert time.monotonic() < deadline, screen.display[-1]
            assert session.process.poll() is None
            time.sleep(0.05)
            now = len(session.output)
            stream.feed(bytes(session.output[fed:now]))
            fed = now
            clocks.add(screen.display[-1].rstrip()[-8:])
        after = bytes(session.output[settled:])
        assert b"RECONNECTING" not in after and b"ws-1" not in after
    finally:
        session.close()


@pytest.mark.parametrize(
    ("ssh", "setting", "blinks"),
    [(True, None, False), (False, None, True), (True, True, True), (False, False, False)],
)
def test_the_cursor_does_not_blink_over_ssh_unless_asked(monkeypatch, ssh, setting, blinks):
    for name in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("TEXTUAL_COLOR_SYSTEM", "256")  # fit_to_terminal may set it
    if ssh:
        monkeypatch.setenv("SSH_CONNECTION", "10.0.0.9 5 10.0.0.1 22")
    fitted, _ = fit_to_terminal(ConsoleSettings(cursor_blink=setting))
    assert fitted.cursor_blink is blinks


# --- the clock -------------------------------------------------------------------------------


@pytest.mark.parametrize("shown_clock", [True, False], ids=["clock", "no-clock"])
async def test_a_hidden_clock_leaves_an_idle_status_line_alone(
    backend, tmp_path, shown_clock: bool
) -> None:
    client = DispatchClient(
        [backend.url], TOKENS[Role.DISPATCHER], workstation="ws-test",
        journal_path=tmp_path / "j.db",
    )  # fmt: skip
    settings = ConsoleSettings(bell=False, workstation="ws-test", clock=shown_clock)
    start = datetime.now(UTC)
    later = timedelta()

    def clock() -> datetime:
        # One second a tick; once live, five minutes on, so that only the time of day
        # changes from one tick to the next ("last event 5m ago" stays).
        return start + later + timedelta(seconds=app.ticks)

    app = CadApp(client, settings, clock=clock)
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: client.status.live, 10, what="the link to go live")
            bar = app.query_one(StatusBar)
            await until(pilot, lambda: "last event" in bar._shown, what="the bar")
            later = timedelta(minutes=5)
            await until(pilot, lambda: "5m ago" in bar._shown, 10, what="an old event")
            ticks, repaints = app.ticks, bar.repaints
            await until(pilot, lambda: app.ticks >= ticks + 3, 10, what="three ticks")
            assert (bar.repaints > repaints) == shown_clock, bar._shown
            assert (":" in bar._shown.split("|")[-1]) == shown_clock
    finally:
        await client.close()


# --- the pace -----------------------------------------------------------------------------


class Link:
    """A fake clock for `OutputPace`, moved on by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def trip(pace: OutputPace, link: Link, seconds: float) -> None:
    """One request after a frame, answered `seconds` later."""
    link.now += pace.EVERY
    assert pace.request_due()
    link.now += seconds
    pace.answered()


def test_slow_answers_space_the_boards_out_and_fast_ones_bring_them_back() -> None:
    link = Link()
    pace = OutputPace(link)
    trip(pace, link, 0.01)  # the link's own latency
    assert pace.interval == pace.FASTEST
    trip(pace, link, 0.8)
    assert pace.interval >= 0.8 - 1e-9  # never a frame more often than output takes to arrive
    slow = pace.interval
    trip(pace, link, 0.8)
    assert pace.interval > slow
    for _ in range(5):
        trip(pace, link, 0.8)
    assert pace.interval == pace.SLOWEST
    for _ in range(12):
        trip(pace, link, 0.01)
    assert pace.interval == pace.FASTEST


def test_an_answer_not_back_yet_already_counts_as_slow() -> None:
    link = Link()
    pace = OutputPace(link)
    trip(pace, link, 0.01)
    link.now += pace.EVERY
    assert pace.request_due()
    assert not pace.request_due()  # one request at a time
    link.now += 0.1
    assert pace.interval == pace.FASTEST
    link.now += 0.5
    assert pace.interval >= 0.5


def test_a_slow_answer_to_a_large_write_measures_the_link() -> None:
    link = Link()
    pace = OutputPace(link)
    assert pace.window is None  # unknown: nothing held back
    pace.wrote(8000)
    assert pace.request_due()
    link.now += 1.0
    pace.answered()
    assert pace.speed == 8000 and pace.window == 800  # a tenth of a second of it
    for _ in range(5):  # full windows coming back at once: the link takes more
        link.now += pace.EVERY
        pace.wrote(pace.window)
        assert pace.request_due()
        pace.answered()
    assert pace.speed > 8000


def test_a_long_link_is_not_taken_for_a_slow_one() -> None:
    link = Link()
    pace = OutputPace(link)
    for _ in range(5):
        trip(pace, link, 0.25)  # a satellite hop: long, but nothing queues
    assert pace.interval == pace.FASTEST


def test_a_terminal_that_never_answers_is_not_paced() -> None:
    link = Link()
    pace = OutputPace(link)
    assert pace.request_due()
    link.now += pace.GIVE_UP + 1
    assert not pace.request_due()
    assert pace.silent and pace.interval == pace.FASTEST
    pace.answered()
    assert pace.interval == pace.FASTEST


async def test_key_echo_is_written_while_the_boards_are_held(backend, tmp_path) -> None:
    async with open_console(backend.url, tmp_path, size=(120, 40)) as console:
        first = create(backend, "1 First Street")
        await console.until(lambda: console.row(first) is not None, 10, what="the first")
        link = Link()
        pace = OutputPace(link, slowest=600)
        trip(pace, link, 0.01)
        link.now += pace.EVERY
        assert pace.request_due()
        link.now += 300  # the answer is very late: the link is far behind
        assert pace.interval >= 300
        console.app.output_pace = pace
        # The first change after a quiet spell goes out at once; the next waits.
        second = create(backend, "2 Second Street")
        await console.until(lambda: console.row(second) is not None, 10, what="the second")
        third = create(backend, "3 Third Street")
        await console.until(lambda: third in console.client.state.incidents, 10, what="3rd")
        await console.keys.type("zqj")
        await console.until(lambda: "zqj" in screen_text(console.app), what="the echo")
        assert console.app.query_one(CommandInput).value == "zqj"
        assert console.row(third) is None  # held: the link is behind
        pace.answered()
        for _ in range(15):
            trip(pace, link, 0.01)
        await console.until(lambda: console.row(third) is not None, 10, what="the catch-up")
