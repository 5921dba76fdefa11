"""Starting the console from settings: build the client, run the app, close cleanly."""

from __future__ import annotations

import asyncio
import gc

from cadterm.client import DispatchClient
from cadterm.client.stream import LinkState, LinkStatus

from .settings import ConsoleSettings

__all__ = ["run_console", "tune_gc_for_a_live_picture"]


def tune_gc_for_a_live_picture(client: DispatchClient) -> None:
    """Keep the garbage collector off the long-lived picture (console processes only).

    A picture of thousands of incidents is hundreds of thousands of objects that live
    as long as the console. Left to the cyclic collector they make every full pass take
    ~100 ms and free nothing, a visible stall on the board (bench/bench_ingest.py). Each
    time the link goes live, after a snapshot or a replay, the picture is frozen out of
    collection, and young-generation passes are made rarer.
    """
    gc.set_threshold(20_000, 20, 20)

    def freeze(status: LinkStatus) -> None:
        if status.state == LinkState.LIVE:
            gc.collect()
            gc.freeze()

    client.add_status_listener(freeze)


def run_console(settings: ConsoleSettings) -> int:
    """Run the console until the operator quits; returns the exit status."""
    return asyncio.run(_run(settings))


async def _run(settings: ConsoleSettings) -> int:
    from .app import CadApp

    client = DispatchClient(
        settings.url,
        settings.token or "",
        workstation=settings.workstation,
        journal_path=settings.journal_path,
    )
    tune_gc_for_a_live_picture(client)
    app = CadApp(client, settings)
    try:
        await app.run_async()
    finally:
        await client.close()
    return app.return_code or 0
