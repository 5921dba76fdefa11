"""End to end: a command POSTed until its row changes on a real console in a pty.

A backend subprocess holds a large picture (10,000 open incidents and 2,000 units by
default, written as its snapshot). `cadterm console URL --token T` runs in a real
pseudo-terminal at 80x24, exactly as an operator starts it. This script is its
terminal: it reads every byte the console writes, feeds them to a terminal emulator
(pyte), and answers the console's cursor-position requests as a terminal does (the
console paces its output by them).

Each sample picks an incident row shown on the emulated screen, POSTs a
`relocate_incident` giving it a new, unique address, and stops the clock when the
emulated screen shows that address on that incident's row. Nothing is read from a
client's state: the figure is what the operator would see. Samples are paced
(--interval-ms, jittered) one after another.

Phases:

- idle: nothing but the samples (--idle-minutes, default 2);
- loaded: a background load of --rate `locate_unit` commands a second (default 200)
  from another process over 8 keep-alive connections (`_fanout_worker.py load`, open
  loop), for --minutes (default 5).

The server runs with its default snapshot triggers (every 1,000 events, 4 MiB of log
or 5 minutes), so under 200 events/s it snapshots the whole picture about every 5 s;
the script watches the store's `snapshots` table (read-only) and reports how many
snapshots were written in each phase. The disk is shared: a probe thread fsyncs 4 KiB
beside the database every 0.1 s, and each sample over 50 ms is counted as near a
snapshot and/or near a slow (> 20 ms) probe fsync. Figures: samples, p50/p90/p99/p99.9/max of the
round trip to the screen, the POST alone, samples over 50 and 250 ms, the background
load achieved, server CPU, the machine speed (`json.loads`/s, `fsync`/s) at start and
end, and the load average. Targets (issue 11): p99 < 50 ms, max < 250 ms.

Run:  .venv/bin/python bench/bench_endtoend.py                 # ~8 min
      .venv/bin/python bench/bench_endtoend.py --minutes 1 --idle-minutes 0.5   # quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import json
import os
import pty
import random
import re
import sqlite3
import struct
import subprocess
import sys
import termios
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import pyte
from _common import (
    TOKEN,
    ServerProcess,
    bench_config,
    cpu_seconds,
    emit,
    machine,
    pct,
    r,
    scratch_dir,
)
from _speed import fsync_speed, machine_speed
from console_load import big_picture

from cadterm.server.store.sqlite import SQLiteEventStore

BENCH = "endtoend"
HERE = Path(__file__).parent
SIZE = (80, 24)
WORKSTATION = "CR1-WS01"
TARGET_P99_MS = 50.0
TARGET_MAX_MS = 250.0
#: A queue row's short reference (``0042-27NOV``; the bench's incidents are all 27NOV26).
ROW = re.compile(r"(?<![\w-])(\d{4}-27NOV)(?![\w-])")


def seed(db: Path, incidents: int, units: int) -> int:
    """Write the large picture as the store's snapshot; return its seq."""
    SQLiteEventStore(db).close()  # create the schema
    state = big_picture(incidents, units)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO snapshots (seq, body) VALUES (?, ?)", (state.seq, state.model_dump_json())
        )
    return state.seq


class Terminal(pyte.Screen):
    """A pyte screen that answers the console's device-status requests on the pty."""

    def __init__(self, columns: int, lines: int, master: int) -> None:
        super().__init__(columns, lines)
        self.master = master

    def write_process_input(self, data: str) -> None:
        os.write(self.master, data.encode())


class SnapshotWatch(threading.Thread):
    """Notes every new snapshot seq in the store (polled read-only, every 0.2 s)."""

    def __init__(self, db: Path) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.seen: list[tuple[float, int]] = []  # (perf_counter, snapshot seq)
        self.stop = threading.Event()

    def run(self) -> None:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
        last = None
        try:
            while not self.stop.wait(0.2):
                try:
                    (seq,) = conn.execute("SELECT MAX(seq) FROM snapshots").fetchone()
                except sqlite3.OperationalError:
                    continue  # busy for a moment; the next poll sees it
                if seq != last:
                    if last is not None:
                        self.seen.append((time.perf_counter(), seq))
                    last = seq
        finally:
            conn.close()

    def between(self, a: float, b: float) -> int:
        return sum(1 for t, _ in self.seen if a <= t < b)


class FsyncProbe(threading.Thread):
    """4 KiB written and fsynced beside the database every 0.1 s, each timed.

    The disk is shared with other work: a command waits for its commit's fsync, so a
    slow fsync here at the time of a slow sample says the disk, not cadterm, held it.
    """

    def __init__(self, directory: Path) -> None:
        super().__init__(daemon=True)
        self.path = directory / "fsync-probe"
        self.timed: list[tuple[float, float]] = []  # (perf_counter at start, ms)
        self.stop = threading.Event()

    def run(self) -> None:
        block = b"\0" * 4096
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            while not self.stop.wait(0.1):
                started = time.perf_counter()
                os.pwrite(fd, block, 0)
                os.fsync(fd)
                self.timed.append((started, (time.perf_counter() - started) * 1e3))
        finally:
            os.close(fd)

    def between(self, a: float, b: float) -> list[float]:
        return [ms for t, ms in self.timed if a <= t < b]


class Console:
    """`cadterm console` in a pty, its output fed to an emulated 80x24 terminal."""

    def __init__(self, url: str, workdir: Path, profile: Path | None = None) -> None:
        columns, lines = SIZE
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
        env.update(TERM="xterm-256color", CADTERM_DATA_DIR=str(workdir / "data"))
        env["CADTERM_CONFIG_DIR"] = str(workdir / "conf")
        self.screen = Terminal(columns, lines, self.master)
        self.stream = pyte.ByteStream(self.screen)
        self.bytes = 0
        # What a sample waits for: (incident short reference, address text, future).
        self.waiting: tuple[str, str, asyncio.Future[float]] | None = None
        self.changed = asyncio.Event()
        cadterm = Path(sys.executable).parent / "cadterm"
        # A desk the bench server knows (bench_config registers CR1-WS01..40).
        command = [str(cadterm), "console", url, "--token", TOKEN, "--workstation", WORKSTATION]
        if profile is not None:  # diagnostic: the console under cProfile
            command = [sys.executable, "-m", "cProfile", "-o", str(profile), *command]
        self.proc = subprocess.Popen(
            command,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        os.set_blocking(self.master, False)
        asyncio.get_running_loop().add_reader(self.master, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self.master, 65536)
        except BlockingIOError:
            return
        except OSError:  # the console closed its terminal
            asyncio.get_running_loop().remove_reader(self.master)
            return
        seen = time.perf_counter()
        self.bytes += len(data)
        self.stream.feed(data)
        self.changed.set()
        if self.waiting is not None:
            short, address, future = self.waiting
            if not future.done() and self.row_shows(short, address):
                future.set_result(seen)

    def row_shows(self, short: str, address: str) -> bool:
        return any(short in line and address in line for line in self.screen.display)

    def rows(self) -> list[str]:
        """Short references of the incident rows on screen now."""
        return [m.group(1) for line in self.screen.display for m in ROW.finditer(line)]

    async def wait_live(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = "\n".join(self.screen.display)
            if "| LIVE |" in text and self.rows():
                return
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 1.0)
        raise RuntimeError("the console did not show a live board:\n" + text)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.master)
        if self.proc.poll() is None:
            os.write(self.master, b"\x11")  # ctrl+q: quits the console, as an operator would
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)


class Poster:
    """POSTs commands over one keep-alive HTTP/1.1 connection."""

    def __init__(self, url: str) -> None:
        self.host, port = url.split("//", 1)[1].split(":")
        self.port = int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def post(self, body: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        head = (
            f"POST /v1/commands HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return int(status.split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def sample_for(
    console: Console,
    poster: Poster,
    seconds: float,
    interval: float,
    rng: random.Random,
    watch: SnapshotWatch | None = None,
    probe: FsyncProbe | None = None,
) -> dict:
    """Samples one after another for `seconds`; their figures."""
    lat: list[float] = []
    slow: list[float] = []  # start times of samples over 50 ms
    posts: list[float] = []
    timeouts = errors = 0
    run = uuid.uuid4().hex[:12]
    loop = asyncio.get_running_loop()
    until = time.monotonic() + seconds
    n = 0
    while time.monotonic() < until:
        n += 1
        rows = console.rows()
        short = rng.choice(rows)
        reference = short + "26"  # 0042-27NOV -> 0042-27NOV26
        address = f"{n % 100_000} E2E {run[:4]}"
        body = json.dumps(
            {
                "type": "relocate_incident",
                "idempotency_key": f"e2e-{run}-{n:07d}",
                "workstation": "bench",
                "reference": reference,
                "location": {"address": address, "position": {"lat": 53.8, "lon": -1.55}},
            }
        ).encode()
        future: asyncio.Future[float] = loop.create_future()
        console.waiting = (short, address, future)
        started = time.perf_counter()
        status, payload = await poster.post(body)
        answered = time.perf_counter()
        if status != 200:
            errors += 1
            console.waiting = None
            if errors > 20:
                raise RuntimeError(f"commands refused: {status} {payload[:300]!r}")
            continue
        try:
            seen = await asyncio.wait_for(asyncio.shield(future), 5.0)
        except TimeoutError:
            timeouts += 1
            console.waiting = None
            continue
        console.waiting = None
        lat.append((seen - started) * 1e3)
        if lat[-1] > 50:
            slow.append(started)
        posts.append((answered - started) * 1e3)
        await asyncio.sleep(interval * rng.uniform(0.5, 1.5))
    return {
        "samples": len(lat),
        "p50_ms": r(pct(lat, 50), 2),
        "p90_ms": r(pct(lat, 90), 2),
        "p99_ms": r(pct(lat, 99), 2),
        "p999_ms": r(pct(lat, 99.9), 2),
        "max_ms": r(max(lat, default=float("nan")), 2),
        "over_50ms": sum(1 for x in lat if x > 50),
        "over_250ms": sum(1 for x in lat if x > 250),
        "post_p50_ms": r(pct(posts, 50), 2),
        "post_p99_ms": r(pct(posts, 99), 2),
        "post_max_ms": r(max(posts, default=float("nan")), 2),
        # A snapshot is seen by polling every 0.2 s: "near" is within a second of one.
        "over_50ms_near_snapshot": sum(
            1 for t in slow if watch is not None and watch.between(t - 1.0, t + 1.2)
        ),
        # ... and with an fsync of the probe's over 20 ms within half a second of it.
        "over_50ms_near_slow_fsync": sum(
            1
            for t in slow
            if probe is not None and any(ms > 20 for ms in probe.between(t - 0.5, t + 0.5))
        ),
        "timeouts_5s": timeouts,
        "refused": errors,
        "worst": sorted(lat)[-5:],
    }


async def phase(name, console, poster, server, watch, probe, seconds, args, rng) -> dict:
    load = None
    if name == "loaded":
        load = await asyncio.create_subprocess_exec(
            sys.executable,
            str(HERE / "_fanout_worker.py"),
            "load",
            "http",
            server.url,
            TOKEN,
            str(args.rate),
            str(seconds + 8),
            "8",
            stdout=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(4)  # the load is up and steady
    load_avg_start = os.getloadavg()[0]
    console_cpu0 = cpu_seconds(console.proc.pid)
    bytes0 = console.bytes
    cpu0, t0 = server.cpu(), time.perf_counter()
    figures = await sample_for(console, poster, seconds, args.interval_ms / 1000, rng, watch, probe)
    t1 = time.perf_counter()
    fsyncs = probe.between(t0, t1)
    figures |= {
        "phase": name,
        "seconds": r(t1 - t0, 1),
        "snapshots_written": watch.between(t0, t1),
        "probe_fsync_p50_ms": r(pct(fsyncs, 50), 2),
        "probe_fsync_p99_ms": r(pct(fsyncs, 99), 2),
        "probe_fsync_max_ms": r(max(fsyncs, default=float("nan")), 2),
        "server_cpu_share": r((server.cpu() - cpu0) / (t1 - t0), 3),
        "console_cpu_share": r((cpu_seconds(console.proc.pid) - console_cpu0) / (t1 - t0), 3),
        "console_bytes_per_s": r((console.bytes - bytes0) / (t1 - t0), 1),
        "loadavg_1m_start": r(load_avg_start, 2),
        "loadavg_1m_end": r(os.getloadavg()[0], 2),
    }
    if load is not None:
        out, _ = await asyncio.wait_for(load.communicate(), 60)
        report = json.loads(out.decode().strip().splitlines()[-1])
        figures |= {
            "load_target_per_s": args.rate,
            "load_achieved_per_s": r(report["achieved_per_s"], 1),
            "load_skipped": report["skipped"],
            "load_errors": report["errors"],
            "load_req_p99_ms": r(report["req_p99_ms"], 2),
        }
    emit(BENCH, kind="phase", **figures)
    return figures


async def run(args) -> dict[str, dict]:
    results: dict[str, dict] = {}
    with scratch_dir("endtoend") as tmp:
        workdir = Path(tmp)
        db = workdir / "endtoend.db"
        head = seed(db, args.incidents, args.units)
        overrides = {} if args.snapshot_every is None else {"snapshot_every": args.snapshot_every}
        config = bench_config(**overrides)
        emit(
            BENCH,
            kind="config",
            seq=head,
            incidents=args.incidents,
            units=args.units,
            snapshot_every=config.snapshot_every,
            snapshot_seconds=config.limits.snapshot_seconds,
            snapshot_log_bytes=config.limits.snapshot_log_bytes,
            size=f"{SIZE[0]}x{SIZE[1]}",
        )
        with ServerProcess(db, config, workdir) as server:
            watch = SnapshotWatch(db)
            watch.start()
            probe = FsyncProbe(workdir)
            probe.start()
            console = Console(server.url, workdir, args.profile_console)
            poster = Poster(server.url)
            try:
                started = time.perf_counter()
                await console.wait_live()
                emit(BENCH, kind="console_live", seconds=r(time.perf_counter() - started, 2))
                await poster.open()
                rng = random.Random(11)
                await sample_for(console, poster, 5, args.interval_ms / 1000, rng)  # warm-up
                for name, minutes in (("idle", args.idle_minutes), ("loaded", args.minutes)):
                    if minutes > 0:
                        results[name] = await phase(
                            name, console, poster, server, watch, probe, minutes * 60, args, rng
                        )
            finally:
                poster.close()
                console.close()
                watch.stop.set()
                probe.stop.set()
                watch.join(5)
                probe.join(5)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="loaded phase (default 5)")
    parser.add_argument("--idle-minutes", type=float, default=2.0, help="idle phase (default 2)")
    parser.add_argument("--rate", type=float, default=200.0, help="background events/s")
    parser.add_argument("--interval-ms", type=float, default=100.0, help="mean gap between samples")
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--units", type=int, default=2_000)
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=None,
        help="diagnostic: the server's snapshot interval in events (default: the server's)",
    )
    parser.add_argument(
        "--profile-console",
        type=Path,
        default=None,
        help="diagnostic: run the console under cProfile, writing its stats to this file",
    )
    args = parser.parse_args()
    emit(BENCH, kind="machine", **machine())
    with scratch_dir("endtoend-speed") as tmp:
        speed = machine_speed() | fsync_speed(tmp)
    emit(BENCH, kind="speed", when="start", **speed)
    results = asyncio.run(run(args))
    with scratch_dir("endtoend-speed") as tmp:
        speed_end = machine_speed() | fsync_speed(tmp)
    emit(BENCH, kind="speed", when="end", **speed_end)
    print()
    print(
        f"end to end: POST relocate_incident -> its row changes on a console in a pty "
        f"({SIZE[0]}x{SIZE[1]}, {args.incidents:,} incidents, {args.units:,} units)"
    )
    print(
        f"{'phase':>7} {'samples':>7} {'p50':>6} {'p99':>6} {'p99.9':>6} {'max':>6} "
        f"{'>50ms':>5} {'POSTp99':>7} {'snaps':>5} {'load/s':>6} {'loadavg':>7}"
    )
    for name, x in results.items():
        print(
            f"{name:>7} {x['samples']:>7} {x['p50_ms']:>6.1f} {x['p99_ms']:>6.1f} "
            f"{x['p999_ms']:>6.1f} {x['max_ms']:>6.1f} {x['over_50ms']:>5} "
            f"{x['post_p99_ms']:>7.1f} {x['snapshots_written']:>5} "
            f"{x.get('load_achieved_per_s', 0):>6.0f} {x['loadavg_1m_end']:>7.2f}"
        )
    met = {
        name: {"p99": x["p99_ms"] < TARGET_P99_MS, "max": x["max_ms"] < TARGET_MAX_MS}
        for name, x in results.items()
    }
    emit(BENCH, kind="result", target_p99_ms=TARGET_P99_MS, target_max_ms=TARGET_MAX_MS, met=met)
    for name, ok in met.items():
        print(
            f"{name}: p99 < {TARGET_P99_MS:g} ms {'MET' if ok['p99'] else 'MISSED'}, "
            f"max < {TARGET_MAX_MS:g} ms {'MET' if ok['max'] else 'MISSED'}"
        )
    print(
        f"machine speed: json.loads {speed['json_loads_per_s']:,}/s and fsync "
        f"{speed['fsync_per_s']:,}/s at the start, {speed_end['json_loads_per_s']:,}/s and "
        f"{speed_end['fsync_per_s']:,}/s at the end; load average {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
