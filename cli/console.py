"""Starting the console from settings: build the client, run the app, close cleanly.

The app shell's part of the console: the process-wide things (its log file, the garbage
collector, the default file locations) that the Textual app itself must not decide.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING

from cadterm.client import DispatchClient
from cadterm.client.stream import LinkState, LinkStatus
from cadterm.tui.settings import ConsoleSettings

from .locations import console_journal_path, console_log_path
from .terminal import TerminalTraits, end_on_hang_up, terminal_traits

if TYPE_CHECKING:  # imported when run: Textual reads its colour settings on import
    from cadterm.tui.app import CadApp

__all__ = [
    "GC_CATCHING_UP",
    "GC_LIVE",
    "close_journal",
    "journal_file",
    "keep_a_log",
    "log_file",
    "picture_file",
    "run_console",
    "run_on_terminal",
    "tune_gc_for_a_live_picture",
]

#: Incident references each console holds for incidents opened while CAD is down.
RESERVED_REFERENCES = 10

#: The log is kept to this size, with this many older files beside it.
LOG_BYTES, LOG_BACKUPS = 5 * 1024 * 1024, 3


def journal_file(settings: ConsoleSettings) -> Path:
    """The offline journal this console uses: its settings' file, else the default."""
    return settings.journal or console_journal_path()


def picture_file(settings: ConsoleSettings) -> Path:
    """Where this console keeps its last known picture: beside its journal."""
    return journal_file(settings).with_name("picture.json")


def log_file(settings: ConsoleSettings) -> Path:
    """The console's own log: its settings' file, else the default in the log dir."""
    return settings.log or console_log_path()


def keep_a_log(path: Path) -> logging.Handler | None:
    """Send cadterm's log records (INFO and up) to `path`, rotated, readable by its owner.

    After an incident the log is what a control-room engineer reads: link changes,
    journal outcomes, internal errors. A file that cannot be opened is no reason to
    refuse a console to a dispatcher, so then there is no file log (None).
    """
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
        handler = RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS)
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    root = logging.getLogger("cadterm")
    root.addHandler(handler)
    if root.getEffectiveLevel() > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


#: Collector thresholds while the picture is caught up (a snapshot, a replay): young
#: passes rarely, as thousands of events are folded between them (bench_resume.py).
GC_CATCHING_UP = (20_000, 20, 20)
#: While live: Python's own. A young pass then walks a few hundred objects (at worst
#: about 2 ms at 1,000 events/s); at 20,000 a pass took 10-20 ms, and it lands inside
#: a frame (bench/bench_console.py).
GC_LIVE = (700, 10, 10)


def tune_gc_for_a_live_picture(client: DispatchClient) -> None:
    """Keep the garbage collector off the long-lived picture (console processes only).

    A picture of thousands of incidents is hundreds of thousands of objects that live
    as long as the console. Left to the cyclic collector they make every full pass take
    ~100 ms and free nothing, a visible stall on the board (bench/bench_ingest.py). Each
    time the link goes live, after a snapshot or a replay, the picture is frozen out of
    collection. Young-generation passes are made rarer while the picture is caught up
    (throughput) and left at Python's pace while live (each pass short: no frame
    waits long for one). A picture read from disk at start is frozen at once: the
    catch-up from it then walks only the new events.
    """
    gc.set_threshold(*GC_CATCHING_UP)
    if client.saved_picture is not None:
        gc.collect()
        gc.freeze()

    def follow(status: LinkStatus) -> None:
        if status.state == LinkState.LIVE:
            gc.collect()
            gc.freeze()
            gc.set_threshold(*GC_LIVE)
        else:
            gc.set_threshold(*GC_CATCHING_UP)

    client.add_status_listener(follow)


def close_journal(client: DispatchClient) -> Callable[[], None]:
    """A function that closes `client`'s journal, for a process that must end now."""

    def close() -> None:
        if client.journal is not None:
            client.journal.close()

    return close


def fit_to_terminal(settings: ConsoleSettings) -> tuple[ConsoleSettings, TerminalTraits]:
    """What this terminal can take, with the settings' choices resolved for it.

    Call before Textual is imported: its colour system is read from the environment
    then (``TEXTUAL_COLOR_SYSTEM``; ``NO_COLOR`` for none).
    """
    traits = terminal_traits(
        os.environ, unicode=settings.unicode, colour=settings.colour, mouse=settings.mouse
    )
    if traits.colour_system is None:
        os.environ["NO_COLOR"] = "1"
    else:
        os.environ.setdefault("TEXTUAL_COLOR_SYSTEM", traits.colour_system)
    blink = settings.cursor_blink if settings.cursor_blink is not None else not traits.over_ssh
    logging.getLogger("cadterm.console").info(
        "terminal %s: %s, %s colours, mouse %s, extended modes %s%s",
        os.environ.get("TERM", "(unset)"),
        "UTF-8" if traits.unicode else "ASCII",
        traits.colours or "no",
        "on" if traits.mouse else "off",
        "on" if traits.extended else "off",
        ", over SSH" if traits.over_ssh else "",
    )
    return settings.model_copy(update={"cursor_blink": blink}), traits


def run_console(settings: ConsoleSettings) -> int:
    """Run the console until the operator quits; returns the exit status."""
    handler = keep_a_log(log_file(settings))
    try:
        settings, traits = fit_to_terminal(settings)
        return asyncio.run(_run(settings, traits))
    finally:
        if handler is not None:
            logging.getLogger("cadterm").removeHandler(handler)
            handler.close()


async def _run(settings: ConsoleSettings, traits: TerminalTraits) -> int:
    from cadterm.tui.app import CadApp

    client = DispatchClient(
        settings.url,
        settings.token or "",
        workstation=settings.workstation,
        journal_path=journal_file(settings),
        picture_path=picture_file(settings),
        # References held for incidents opened while no backend answers.
        reserve=RESERVED_REFERENCES,
    )
    tune_gc_for_a_live_picture(client)
    logging.getLogger("cadterm.console").info(
        "console started: %s as workstation %s", ", ".join(settings.url), settings.workstation
    )
    try:
        return await run_on_terminal(CadApp(client, settings), client, traits, "console")
    finally:
        logging.getLogger("cadterm.console").info("console stopped")


async def run_on_terminal(
    app: CadApp, client: DispatchClient, traits: TerminalTraits, name: str
) -> int:
    """Run `app` on this terminal until its user quits (or the terminal goes away).

    It writes only what `traits` allow, ends on a hang-up (see `end_on_hang_up`), and
    closes `client` afterwards. Returns the exit status. `name` is how its exit message
    names the program (``cadterm console``, ``cadterm demo``).
    """
    from cadterm.tui.terminal_output import console_driver

    app.driver_class = console_driver(
        app.driver_class, unicode=traits.unicode, extended=traits.extended, pace=app.output_pace
    )
    # The map draws its own lines (Braille or ASCII): it must know which reach the screen.
    app.settings = app.settings.model_copy(update={"unicode": traits.unicode})
    end_on_hang_up(
        asyncio.get_running_loop(),
        stop=lambda reason: app.exit(return_code=1, message=f"cadterm {name}: {reason}"),
        last_words=close_journal(client),
    )
    try:
        await app.run_async(mouse=traits.mouse)
    finally:
        await client.close()
    # Only the operator's quit (or a hang-up, 1) sets the code: an app that stopped any
    # other way (Textual's panic leaves it unset) did not end as asked, and says so.
    return 1 if app.return_code is None else app.return_code
