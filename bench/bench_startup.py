"""Start-up: from launching `cadterm console` to a usable board, with the large picture.

A backend subprocess holds 10,000 open incidents and 2,000 units (written as a snapshot
straight into its SQLite file). The console is started in a real pseudo-terminal
(120x40), exactly as an operator would start it; the clock stops when a terminal
emulator (pyte) fed with its output shows the status bar saying LIVE and the first
incident row. Repeated --runs times; the median is the figure. Building the boards is
timed separately in-process (`reload` of both boards over the same picture).

With --long-shift the backend instead holds a long shift built through the server's
own rules (`domain.rules.decide`, folded as the server folds): 50,000 incidents closed
the day before (more than `closed_window` ago) and 1,000 open, with 300 units. The
server archives the closed ones at start; the figures are taken once it has, and again
on the same shift with no closed history, so the two can be compared. Each case also
reports the server's first start on that log (spawn to health; the seeded log has no
snapshot, so every event is folded), its restarts once it has run (after SIGTERM,
median of --runs, and after kill -9: from its own snapshot), the time until the
archive is done, the
console's peak memory (VmHWM) and the largest frame a default `websockets` subscriber
is sent.

Run:  .venv/bin/pip install -e '.[bench]'
      .venv/bin/python bench/bench_startup.py [--runs 5]
      .venv/bin/python bench/bench_startup.py --long-shift [--closed 50000] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
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
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pyte
from _common import TOKEN, ServerProcess, bench_config, emit, machine
from console_load import big_picture

from cadterm.domain.rules import Codes, decide
from cadterm.protocol.commands import COMMAND_ADAPTER
from cadterm.protocol.domain import Operator, Role
from cadterm.protocol.fold import DispatchState, apply
from cadterm.server.store.sqlite import SQLiteEventStore

SIZE = (120, 40)
ROW = re.compile(r"^(\d{4}-\d{2}[A-Z]{3}|\d{5,}-\d{2}) ", re.MULTILINE)


def seed(db: Path) -> int:
    """Write the large picture as the store's snapshot; return its seq."""
    SQLiteEventStore(db).close()  # create the schema
    state = big_picture()
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO snapshots (seq, body) VALUES (?, ?)", (state.seq, state.model_dump_json())
        )
    return state.seq


def long_shift(db: Path, closed: int, open_: int, units: int) -> int:
    """Write a shift built through the server's rules into `db`; return its head seq.

    `closed` incidents were opened and closed over the day before, more than one
    12-hour window ago; `open_` are open now, `units` units are on, and the first
    `units // 2` open incidents have a unit each.
    """
    config = bench_config()
    codes = Codes(config.incident_types, config.closing_codes, config.timezone)
    supervisor = Operator(id="sup1", name="Bench supervisor", role=Role.SUPERVISOR)
    state = DispatchState()
    rows: list[tuple[int, str, str, str]] = []
    now = datetime.now(UTC).replace(microsecond=0)

    def do(at: datetime, kind: str, **fields: object) -> str | None:
        command = COMMAND_ADAPTER.validate_python(
            {"type": kind, "idempotency_key": uuid.uuid4().hex, "workstation": "ws-1", **fields}
        )
        event = decide(state, command, supervisor, at, codes)
        apply(state, event)
        rows.append((event.seq, event.type, event.at.isoformat(), event.model_dump_json()))
        return getattr(event, "reference", None)

    for n in range(units):
        do(now - timedelta(hours=40), "book_on", callsign=f"U{n:03d}", unit_type="patrol_car")
    day_start = now - timedelta(hours=37)
    for n in range(closed):
        at = day_start + timedelta(seconds=n * (22 * 3600) / max(1, closed))
        reference = do(
            at,
            "create_incident",
            grade=1 + n % 4,
            incident_type="THEFT",
            location={"address": f"{n % 400} High Street"},
            description=f"Bicycle {n} taken from outside the library",
        )
        if n % 4 == 0:
            do(at + timedelta(minutes=5), "add_note", reference=reference, text="Caller rang back")
        do(at + timedelta(minutes=30), "close_incident", reference=reference, closing_code="NFA")
    for n in range(open_):
        at = now - timedelta(minutes=60 - n * 50 / max(1, open_))
        reference = do(
            at,
            "create_incident",
            grade=1 + n % 4,
            incident_type="ASB",
            location={"address": f"{n} Market Street"},
        )
        if n < units // 2:
            do(at + timedelta(seconds=30), "assign_unit", reference=reference, callsign=f"U{n:03d}")
    SQLiteEventStore(db).close()  # create the schema
    with sqlite3.connect(db) as conn:
        conn.executemany("INSERT INTO events (seq, type, at, body) VALUES (?, ?, ?, ?)", rows)
    return state.seq


def _get(url: str, path: str) -> object:
    request = urllib.request.Request(url + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def wait_archived(url: str, head: int, closed: int, timeout: float = 300.0) -> float:
    """Seconds until `incidents_archived` events after `head` name `closed` incidents.

    Read from the event log, a few events at a time: listing the closed incidents
    instead would cost the server more than the archiving it waits for.
    """
    started = time.perf_counter()
    after, archived = head, 0
    while archived < closed:
        if time.perf_counter() - started > timeout:
            raise RuntimeError(f"only {archived} of {closed} incidents archived in time")
        events = _get(url, f"/v1/events?after={after}&limit=1000")
        for event in events:
            if event["type"] == "incidents_archived":
                archived += len(event["references"])
            after = event["seq"]
        if not events:
            time.sleep(0.1)
    return time.perf_counter() - started


async def largest_frame(url: str) -> tuple[int, int]:
    """(largest frame in bytes, frames) a default `websockets` subscriber is sent."""
    from websockets.asyncio.client import connect

    from cadterm.protocol.frames import SUBPROTOCOL

    ws_url = url.replace("http://", "ws://") + "/v1/stream"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    sizes = []
    async with connect(ws_url, subprotocols=[SUBPROTOCOL], additional_headers=headers) as conn:
        await conn.send('{"type":"subscribe"}')
        for _ in range(100_000):
            raw = await conn.recv()
            sizes.append(len(raw))
            if '"type":"caught_up"' in raw[:40]:
                break
    return max(sizes), len(sizes)


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def time_to_usable(url: str, workdir: Path, timeout: float = 60.0) -> float:
    """Seconds from spawning `cadterm console` to a live, painted board."""
    return console_start(url, workdir, timeout)[0]


def console_start(url: str, workdir: Path, timeout: float = 60.0) -> tuple[float, float]:
    """(seconds to a live, painted board, the console's peak memory in MB)."""
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
                    return time.perf_counter() - started, peak_rss_mb(child.pid)
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


def long_shift_case(args: argparse.Namespace, closed: int) -> dict[str, object]:
    """Figures for the long shift with `closed` incidents of closed history."""
    with tempfile.TemporaryDirectory(prefix="cadterm-startup-") as scratch:
        workdir = Path(scratch)
        db = workdir / "cadterm.db"
        built = time.perf_counter()
        head = long_shift(db, closed, args.open, args.units)
        built = time.perf_counter() - built
        spawned = time.perf_counter()
        server = ServerProcess(db, bench_config(), workdir).start(timeout=300)
        server_start = time.perf_counter() - spawned
        try:
            archived = wait_archived(server.url, head, closed)
            frame, frames = asyncio.run(largest_frame(server.url))
            starts = [console_start(server.url, workdir) for _ in range(args.runs)]
        finally:
            server.stop()
        # Starting again, as after a planned restart (SIGTERM wrote a final snapshot) and
        # after kill -9 (the newest snapshot is whatever upkeep last wrote): the picture
        # is then the bounded one, loaded from a snapshot, with at most a tail to fold.
        restarts = []
        for _ in range(args.runs):
            spawned = time.perf_counter()
            server = ServerProcess(db, bench_config(), workdir).start(timeout=300)
            restarts.append(time.perf_counter() - spawned)
            server.stop()
        server = ServerProcess(db, bench_config(), workdir).start(timeout=300)
        assert server.proc is not None
        server.proc.kill()  # kill -9, then start once more
        server.proc.wait()
        server.proc = None
        spawned = time.perf_counter()
        server = ServerProcess(db, bench_config(), workdir).start(timeout=300)
        after_kill = time.perf_counter() - spawned
        server.stop()
    times = [t for t, _ in starts]
    figures = {
        "closed": closed,
        "open": args.open,
        "units": args.units,
        "seq": head,
        "build_s": round(built, 1),
        "server_start_s": round(server_start, 2),
        "server_restart_median_s": round(statistics.median(restarts), 2),
        "server_restart_after_kill_s": round(after_kill, 2),
        "archived_after_s": round(archived, 2),
        "largest_frame_bytes": frame,
        "snapshot_frames": frames - 1,
        "usable_median_s": round(statistics.median(times), 3),
        "usable_min_s": round(min(times), 3),
        "console_peak_rss_mb": round(max(rss for _, rss in starts), 1),
    }
    emit("startup-long-shift", **figures)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--long-shift", action="store_true", help="the long-shift cases")
    parser.add_argument("--closed", type=int, default=50_000, help="closed incidents (long shift)")
    parser.add_argument("--open", type=int, default=1_000, help="open incidents (long shift)")
    parser.add_argument("--units", type=int, default=300, help="units (long shift)")
    args = parser.parse_args()
    emit("machine", **machine())
    if args.long_shift:
        full = long_shift_case(args, args.closed)
        bare = long_shift_case(args, 0)
        for label, case in (("with closed history", full), ("no closed history", bare)):
            print(
                f"{label} ({case['closed']} closed, {case['open']} open, {case['units']} units):"
                f" console usable median {case['usable_median_s']:.2f} s, peak"
                f" {case['console_peak_rss_mb']:.0f} MB;"
                f" server first start {case['server_start_s']:.2f} s, restart"
                f" {case['server_restart_median_s']:.2f} s (after kill -9"
                f" {case['server_restart_after_kill_s']:.2f} s),"
                f" archived {case['archived_after_s']:.2f} s later; largest frame"
                f" {case['largest_frame_bytes']} B in {case['snapshot_frames']} snapshot frame(s)",
                file=sys.stderr,
            )
        return
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
