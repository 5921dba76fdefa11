"""`cadterm demo`: a living control room in one command.

Starts the embedded backend (SQLite under the data directory, or a throwaway one with
`--fresh`), books on the simulated force of Brackley, starts the simulator, and opens
the console logged in as a dispatcher (``--supervisor``: as a supervisor). The
simulated force's website sends online reports to the triage queue (F12). Everything
runs in this one process: the backend in a thread, the simulator and the console on
the event loop. Quitting the console stops the simulator, then the backend, and
removes a fresh run's files, so nothing is left behind.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cadterm.tui.settings import ConsoleSettings

from .locations import data_dir
from .terminal import TerminalTraits

__all__ = ["DemoOptions", "run_demo"]


@dataclass(frozen=True)
class DemoOptions:
    """How busy and how fast the demo's shift is."""

    fresh: bool = False
    rate: float = 4.0  # calls a minute of simulated time
    speed: float = 4.0  # simulated seconds per real second
    seed: int = 0
    auto_dispatch: bool = True  # a virtual colleague resources calls you leave alone
    report_rate: float = 0.3  # online reports a minute of simulated time
    theme: str | None = None
    supervisor: bool = False  # log in as a supervisor (the supervisor board) instead


def run_demo(options: DemoOptions) -> int:
    """Run the demo until the operator quits; returns the exit status."""
    from .console import fit_to_terminal

    fitted, traits = fit_to_terminal(ConsoleSettings(workstation="demo"))
    return asyncio.run(_run(options, traits, cursor_blink=bool(fitted.cursor_blink)))


async def _run(options: DemoOptions, traits: TerminalTraits, *, cursor_blink: bool) -> int:
    from cadterm.client import DispatchClient
    from cadterm.server.embedded import EmbeddedBackend
    from cadterm.sim.background import simulation
    from cadterm.sim.gazetteer import BRACKLEY_CSV
    from cadterm.tui.app import CadApp

    from .console import RESERVED_REFERENCES, run_on_terminal, tune_gc_for_a_live_picture

    scratch = Path(tempfile.mkdtemp(prefix="cadterm-demo-")) if options.fresh else None
    home = scratch or data_dir() / "demo"
    home.mkdir(parents=True, exist_ok=True)
    backend = EmbeddedBackend(home / "cadterm.db")
    try:
        url, tokens = await backend.astart()
        login = tokens.supervisor if options.supervisor else tokens.dispatcher
        assert login is not None  # an embedded backend makes every token
        settings = ConsoleSettings(
            url=[url],
            token=login,
            workstation="demo",
            journal=home / "journal.db",
            cursor_blink=cursor_blink,
            gazetteer=BRACKLEY_CSV,
            **({"theme": options.theme} if options.theme else {}),
        )
        async with simulation(
            url,
            tokens.simulator,
            seed=options.seed,
            rate=options.rate,
            speed=options.speed,
            auto_dispatch=options.auto_dispatch,
            # The force's website: online reports for the triage queue (F12).
            intake_token=tokens.intake,
            report_rate=options.report_rate,
        ):
            client = DispatchClient(
                settings.url,
                login,
                workstation=settings.workstation,
                journal_path=home / "journal.db",
                picture_path=home / "picture.json",
                reserve=RESERVED_REFERENCES,
            )
            tune_gc_for_a_live_picture(client)
            return await run_on_terminal(CadApp(client, settings), client, traits, "demo")
    finally:
        await backend.astop()
        backend.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
