"""No terminal, no console; and a console whose terminal hangs up ends at once.

The non-pty SSH cases (``ssh host cadterm``, ``ssh -T``, ``scp``, ``sftp``) all start the
command with pipes for input and output; a pty whose SSH session ends hangs up (the
kernel sends SIGHUP to the session). Both are reproduced here without sshd: pipes, and
a real pty that the test owns and closes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pty_session import PtySession

from cadterm.cli.terminal import terminal_problem

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="ptys are POSIX")

CADTERM = [sys.executable, "-m", "cadterm.cli.main"]
#: Enough for a console to import Textual and draw on a loaded CI machine.
START_TIMEOUT = 60.0


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CADTERM_", "TEXTUAL"))}
    env |= {
        "CADTERM_DATA_DIR": str(tmp_path / "data"),
        "CADTERM_CONFIG_DIR": str(tmp_path / "config"),
        "TERM": "xterm-256color",
    }
    return env | extra


@pytest.mark.parametrize("command", ["console", "demo"])
def test_with_pipes_instead_of_a_terminal_it_refuses_in_one_line(
    tmp_path: Path, command: str
) -> None:
    argv = [*CADTERM, command]
    if command == "console":
        argv += ["http://127.0.0.1:9", "--token", "not-used"]
    done = subprocess.run(
        argv,
        stdin=subprocess.PIPE,
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(tmp_path),
    )
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.strip().splitlines()
    assert "needs a terminal" in line and "ssh -t" in line
    assert not (tmp_path / "data").exists()  # no journal, no database: nothing started


def test_the_reason_names_what_is_missing(tmp_path: Path) -> None:
    with open(os.devnull) as null:
        assert "input and output are not one" in terminal_problem(null, null, "xterm")
    leader, follower = os.openpty()
    with os.fdopen(follower, "w") as tty, open(os.devnull) as null:
        assert "its input is not one" in terminal_problem(null, tty, "xterm")
        assert "output is not one" in terminal_problem(tty, null, "xterm")
        assert terminal_problem(tty, tty, "xterm") is None
        assert "TERM=dumb" in terminal_problem(tty, tty, "dumb")
        assert "TERM=(unset)" in terminal_problem(tty, tty, None)
    os.close(leader)


def test_a_console_whose_terminal_hangs_up_ends_at_once(tmp_path: Path) -> None:
    session = PtySession(
        [*CADTERM, "console", "http://127.0.0.1:9", "--token", "t", "--workstation", "ws-1"],
        child_env(tmp_path),
    )
    try:
        session.wait_for(b"ws-1", START_TIMEOUT)  # the status bar is drawn
        session.hang_up()  # the SSH session ends: the pty hangs up
        status = session.process.wait(timeout=30)
    finally:
        session.close()
    # It closes itself, or (when the shutdown blocks writing to the dead terminal) its
    # watchdog ends it, as test_a_shutdown_that_hangs_is_ended_by_the_watchdog shows.
    assert status in (1, 128 + 1)
    log = (tmp_path / "data" / "console.log").read_text(encoding="utf-8")
    assert "console stopping: the terminal hung up (SIGHUP)" in log
    assert (tmp_path / "data" / "journal.db").exists()


def test_a_shutdown_that_hangs_is_ended_by_the_watchdog(tmp_path: Path) -> None:
    # The app's exit is made to do nothing, as when its shutdown blocks on a dead
    # terminal: the watchdog must still end the process, closing the journal first.
    script = (
        "import asyncio, os, signal, sys\n"
        "from cadterm.cli.terminal import end_on_hang_up\n"
        "async def main():\n"
        "    loop = asyncio.get_running_loop()\n"
        "    end_on_hang_up(loop, stop=lambda reason: None,\n"
        "                   last_words=lambda: print('journal closed', flush=True), grace=0.2)\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    await asyncio.Event().wait()  # never set: only the watchdog ends this\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 128 + 15, done.stderr
    assert done.stdout == "journal closed\n"
    assert "did not close within" in done.stderr
