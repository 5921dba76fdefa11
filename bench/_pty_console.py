"""Child process for bench_terminal.py: a board app writing to a real terminal.

Runs either the cadterm console or the stock DataTable baseline over the large picture,
non-headless, in the pty the parent gave it. After a warm-up it marks phases in a file
(wall-clock times): `idle` (nothing happens but the clock), then `load` (events folded
at --rate a second), then quits. Not a benchmark by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_console import TableApp
from console_load import EventStream, big_picture
from textual.widgets import DataTable

from cadterm.client import DispatchClient
from cadterm.client.stream import LinkState, LinkStatus
from cadterm.protocol.fold import apply
from cadterm.tui.app import CadApp
from cadterm.tui.settings import ConsoleSettings


def mark(path: Path, name: str) -> None:
    with path.open("a") as fh:
        fh.write(f"{name} {time.time()}\n")


async def phases(app, feed, args) -> None:
    await asyncio.sleep(args.warmup)
    mark(args.marks, "idle")
    await asyncio.sleep(args.idle)
    mark(args.marks, "load")
    start = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - start) < args.load:
        for _ in range(int(elapsed * args.rate) - sent):
            feed()
            sent += 1
        await asyncio.sleep(0.005)
    mark(args.marks, "end")
    app.exit()


async def run(args) -> None:
    state = big_picture(args.incidents, args.units)
    stream = EventStream(state, watched_share=0.3)
    if args.board == "cadterm":
        client = DispatchClient(["http://127.0.0.1:9"], "unused")
        client.store.load_snapshot(state)
        client.store.take_changes()
        client.subscription.status = LinkStatus(LinkState.LIVE, datetime.now(UTC))
        app = CadApp(client, ConsoleSettings(bell=False), connect=False)

        def feed() -> None:
            event, _ = next(events)
            client.store.apply(event)
            client._changed.set()

        def watched() -> list[str]:
            top = int(app.queue.scroll_offset.y)
            return list(app.queue.keys[top : top + app.queue.size.height - 1])

    else:
        app = TableApp(state)

        def feed() -> None:
            event, _ = next(events)
            changes = apply(state, event)
            table = app.query_one(DataTable)
            for reference in changes.incidents:
                incident = state.incidents[reference]
                table.update_cell(reference, "version", str(incident.version))
                table.update_cell(reference, "location", incident.location.address)

        def watched() -> list[str]:
            table = app.query_one(DataTable)
            rows = min(table.row_count, app.size.height - 4)
            return [str(table.coordinate_to_cell_key((y, 0)).row_key.value) for y in range(rows)]

    events = iter(stream)

    async def start_phases() -> None:
        await asyncio.sleep(0.5)
        stream.watched = watched()
        await phases(app, feed, args)

    app.call_later(lambda: asyncio.ensure_future(start_phases()))
    await app.run_async()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--board", choices=["cadterm", "datatable"], required=True)
    parser.add_argument("--marks", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--idle", type=float, default=5)
    parser.add_argument("--load", type=float, default=10)
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--units", type=int, default=2_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
