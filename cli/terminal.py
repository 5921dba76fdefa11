"""The console's terminal: what it can do, no console without one, stop when it goes.

A console is a full-screen program. Started without a terminal (``ssh host cadterm``,
``ssh -T``, ``scp``, ``sftp``, a pipe) it would draw into a pipe that nobody reads and,
once the SSH client has gone, linger for ever holding its backend socket and the
dispatcher's journal. So the console refuses to start unless both its input and its
output are terminals, and it ends at once when its terminal hangs up (``SIGHUP``, sent
by the kernel when an SSH session's pty closes) or it is asked to stop (``SIGTERM``).

What the terminal can show is read from the terminal's own description, as the
platform's other programs read it: the locale says whether it takes UTF-8, terminfo
(for ``$TERM``) how many colours it has and whether it reports a mouse; a terminal with
no mouse (a VT100, a serial console) is also not sent xterm's extended modes. Each can
be forced in the console settings (``unicode``, ``colour``, ``mouse``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TextIO

__all__ = [
    "HANG_UP_GRACE",
    "TerminalTraits",
    "end_on_hang_up",
    "read_terminfo",
    "terminal_problem",
    "terminal_traits",
    "wants_unicode",
]

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


@dataclass(frozen=True)
class TerminalTraits:
    """What the console may send this terminal."""

    unicode: bool  #: UTF-8 text and line drawing (else ASCII of the same width)
    colours: int  #: 0 (none), 8, 16, 256 or 16,777,216
    mouse: bool  #: mouse reporting
    extended: bool  #: focus reports, bracketed paste, kitty keys, in-band resize
    over_ssh: bool  #: the session comes over SSH (thin links: no cursor blink)

    @property
    def colour_system(self) -> str | None:
        """Textual's colour system for these colours (None: no colour at all)."""
        if self.colours <= 0:
            return None
        if self.colours <= 16:
            return "standard"
        return "256" if self.colours <= 256 else "truecolor"


def wants_unicode(environ: Mapping[str, str], coerced: bool) -> bool:
    """Whether the locale the user set says UTF-8 (``LC_ALL``, ``LC_CTYPE``, ``LANG``).

    `coerced`: Python itself replaced a C locale by setting ``LC_CTYPE=C.UTF-8`` at
    start-up (PEP 538, with UTF-8 mode on); that value says nothing about the terminal.
    """
    for name in ("LC_ALL", "LC_CTYPE", "LANG"):
        value = environ.get(name, "")
        if name == "LC_CTYPE" and coerced and value == "C.UTF-8":
            continue
        if value:
            return "utf-8" in value.lower() or "utf8" in value.lower()
    return False


def read_terminfo(term: str) -> tuple[int, bool] | None:
    """(colours, has a mouse) from terminfo for `term`; None when it has no entry.

    ncurses reads the description once per process, so this is for the console's own
    process, at start-up.
    """
    import curses

    null = os.open(os.devnull, os.O_WRONLY)
    try:
        curses.setupterm(term, null)
    except curses.error:
        return None
    finally:
        os.close(null)
    colours = curses.tigetnum("colors")
    mouse = curses.tigetstr("kmous")
    return max(colours, 0), bool(mouse)


def terminal_traits(
    environ: Mapping[str, str],
    terminfo: Callable[[str], tuple[int, bool] | None] = read_terminfo,
    *,
    coerced: bool | None = None,
    unicode: bool | None = None,
    colour: str = "auto",
    mouse: bool | None = None,
) -> TerminalTraits:
    """What to send this terminal, from its description; settings force each trait."""
    if coerced is None:
        coerced = bool(sys.flags.utf8_mode) and "PYTHONUTF8" not in environ
    term = environ.get("TERM", "")
    known = terminfo(term) if term else None
    colours, has_mouse = known if known is not None else (0, False)
    if environ.get("COLORTERM", "").lower() in ("truecolor", "24bit") and colours >= 256:
        colours = 2**24
    if "NO_COLOR" in environ:
        colours = 0
    colours = {"auto": colours, "none": 0, "16": 16, "256": 256, "truecolor": 2**24}[colour]
    return TerminalTraits(
        unicode=wants_unicode(environ, coerced) if unicode is None else unicode,
        colours=colours,
        mouse=has_mouse if mouse is None else mouse,
        extended=has_mouse,
        over_ssh=any(environ.get(v) for v in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY")),
    )


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
