"""Start-up: from launching `cadterm console` to a usable board, with the large picture.

A backend subprocess holds 10,000 open incidents and 2,000 units (written as a snapshot
straight into its SQLite file). The console is started in a real pseudo-terminal
(120x40), exactly as an operator would start it; the clock stops when a terminal
emulator (pyte) fed with its output shows the status bar saying LIVE and the first
incident row. Repeated --runs times; the median is the figure. Building the boards is
timed separately in-process (`reload` of both boards over the same picture).

Run:  .venv/bin/pip install -e '.[bench]'
      .venv/bin/python bench/bench_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import pty
import re
import select
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pyte
from _common import TOKEN, ServerProcess, bench_config, emit, machine
from console_load import big_picture

from cadterm.server.store.sqlite import SQLiteEventStore

SIZE = (120, 40)
ROW = re.compile(r"^\d{4}-\d{2}[A-Z]{3} ", re.MULTILINE)


def seed(db: Path) -> int:
    """Write the large picture as the store's snapshot; return its seq."""
    SQLiteEventStore(db).close()  # create the schema
    state = big_picture()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO snapshots (seq, body) VALUES (?, ?)", (state.seq, state.model_dump_json())
        )
    return state.seq


def time_to_usable(url: str, workdir: Path, timeout: float = 60.0) -> float:
    """Seconds from spawning `cadterm console` to a live, painted board."""
    columns, lines = SIZE
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(TERM="xterm-256color", CADTERM_DATA_DIR=str(workdir / "data"))
    env["CADTERM_CONFIG_DIR"] = str(workdir / "conf")
    screen = pyte.Screen(columns, lines)
    stream = pyte.ByteStream(screen)
    cadterm = Path(sys.executable).parent / "cadterm"
    started = time.perf_counter()
    child = subprocess.Popen(
        [str(cadterm), "console", url, "--token", TOKEN],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        while time.perf_counter() - started < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                stream.feed(os.read(master, 65536))
                text = "\n".join(screen.display)
                if "| LIVE |" in text and ROW.search(text):
                    return time.perf_counter() - started
        raise RuntimeError("the console did not become usable in time")
    finally:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)
        os.close(master)


async def board_build_seconds() -> float:
    from datetime import UTC, datetime

    from cadterm.client import DispatchClient
    from cadterm.client.stream import LinkState, LinkStatus
    from cadterm.tui.app import CadApp
    from cadterm.tui.settings import ConsoleSettings

    client = DispatchClient(["http://127.0.0.1:9"], "unused")
    client.store.load_snapshot(big_picture())
    client.subscription.status = LinkStatus(LinkState.LIVE, datetime.now(UTC))
    app = CadApp(client, ConsoleSettings(), connect=False)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        started = time.perf_counter()
        app.queue.reload(client.state)
        app.units.reload(client.state)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    emit("machine", **machine())
    with tempfile.TemporaryDirectory(prefix="cadterm-startup-") as scratch:
        workdir = Path(scratch)
        db = workdir / "cadterm.db"
        head = seed(db)
        server = ServerProcess(db, bench_config(), workdir).start()
        try:
            times = [time_to_usable(server.url, workdir) for _ in range(args.runs)]
        finally:
            server.stop()
    build = asyncio.run(board_build_seconds())
    emit(
        "startup",
        incidents=10_000,
        units=2_000,
        seq=head,
        runs=args.runs,
        usable_median_s=round(statistics.median(times), 3),
        usable_min_s=round(min(times), 3),
        usable_max_s=round(max(times), 3),
        board_build_s=round(build, 3),
    )
    print(
        f"start-up to a usable board: median {statistics.median(times):.2f} s "
        f"(min {min(times):.2f}, max {max(times):.2f}); building both boards {build * 1000:.0f} ms",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
