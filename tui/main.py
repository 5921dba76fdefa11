"""Starting the console from settings: build the client, run the app, close cleanly."""

from __future__ import annotations

import asyncio

from cadterm.client import DispatchClient

from .settings import ConsoleSettings

__all__ = ["run_console"]


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
    app = CadApp(client, settings)
    try:
        await app.run_async()
    finally:
        await client.close()
    return app.return_code or 0
