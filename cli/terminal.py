"""The console's terminal: refuse to start without one, and stop when it goes away.

A console is a full-screen program. Started without a terminal (``ssh host cadterm``,
``ssh -T``, ``scp``, ``sftp``, a pipe) it would draw into a pipe that nobody reads and,
once the SSH client has gone, linger for ever holding its backend socket and the
dispatcher's journal. So the console refuses to start unless both its input and its
output are terminals, and it ends at once when its terminal hangs up (``SIGHUP``, sent
by the kernel when an SSH session's pty closes) or it is asked to stop (``SIGTERM``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import TextIO

__all__ = ["HANG_UP_GRACE", "end_on_hang_up", "terminal_problem"]

#: Seconds a hung-up console has to close cleanly before it is ended regardless:
#: with no terminal left, the UI's own shutdown may block writing to it.
HANG_UP_GRACE = 3.0

_log = logging.getLogger("cadterm.console")


def terminal_problem(stdin: TextIO, stdout: TextIO, term: str | None) -> str | None:
    """Why the console cannot run on this terminal, in one line; None when it can."""
    missing = [name for name, stream in (("input", stdin), ("output", stdout)) if not _tty(stream)]
    if missing:
        return (
            f"the console needs a terminal, and its {' and '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not one: connect with `ssh -t`, "
            "or run it in a terminal"
        )
    if (term or "").strip() in ("", "dumb"):
        return (
            f"the console cannot draw on TERM={term or '(unset)'}: set TERM to your "
            "terminal's type (for example xterm-256color or vt100)"
        )
    return None


def _tty(stream: TextIO) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


def end_on_hang_up(
    loop: asyncio.AbstractEventLoop,
    stop: Callable[[str], None],
    last_words: Callable[[], None],
    grace: float = HANG_UP_GRACE,
) -> None:
    """On SIGHUP or SIGTERM: `stop(reason)` now, and end the process after `grace` s.

    `stop` asks the app to exit (its journal is written before each command is sent, so
    nothing typed is lost); should that not finish in time, `last_words` closes what can
    be closed (the journal) and the process exits with 128 + the signal's number.
    """
    for number in (signal.SIGHUP, signal.SIGTERM):
        loop.add_signal_handler(number, _on_signal, number, stop, last_words, grace)


def _on_signal(
    number: int, stop: Callable[[str], None], last_words: Callable[[], None], grace: float
) -> None:
    name = signal.Signals(number).name
    reason = "the terminal hung up" if number == signal.SIGHUP else "asked to stop"
    _log.warning("console stopping: %s (%s)", reason, name)

    def end_regardless() -> None:
        _log.warning("console ended: it did not close within %.0f s of %s", grace, name)
        try:
            last_words()
        except Exception:  # the process ends either way; say why it was not clean
            _log.exception("could not close the journal cleanly (each entry is already on disk)")
        finally:
            logging.shutdown()
            os._exit(128 + number)

    watchdog = threading.Timer(grace, end_regardless)
    watchdog.daemon = True
    watchdog.start()
    stop(reason)
