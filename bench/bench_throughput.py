"""Throughput: commands/s the embedded SQLite backend accepts, durability on.

For event logs of 1k, 100k and 1M events, the backend runs as a subprocess (``cadterm
server``: WAL, ``synchronous=FULL``, one fsynced transaction per command) and takes
``locate_unit`` commands over HTTP as fast as it answers them:

- sequential: one connection, the next command sent when the last is answered;
- concurrent: 8 connections doing the same;
- each of those again with several commands a request (``--batch``, default 20:
  ``POST /v1/commands/batch``), every command still durable, keyed and answered.

Figures: accepted commands/s, client-side p50/p99 per command, the server's CPU per
command (/proc). Retention is set high so every event stays (a 1M log pruned to the
default 100k on its first snapshot would measure the prune instead).

Seeding (not timed as throughput, but reported): the first events are a real workload
(300 units, incidents open and resourced) written with ``SQLiteEventStore.append`` and
``synchronous=OFF``; the rest of a long log is AVL fixes written with ``executemany``
straight into the ``events`` and ``commands`` tables of the scratch database (each
with a uuid4 key and a full-sized stored result), ending with a snapshot at the head.
The same small picture is used at every length, so only the log length changes; the
``100k-shift`` case instead seeds a realistic shift (a picture of ~5,000 incidents with
their chronologies) to show what the picture's size costs (the server snapshots it
every 1,000 commands).

    .venv/bin/python bench/bench_throughput.py                 # ~90 s
    .venv/bin/python bench/bench_throughput.py --lengths 1000,100000 --seconds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import (
    TOKEN,
    ServerProcess,
    Workload,
    bench_config,
    emit,
    machine,
    r,
    scratch_dir,
    seed_bulk,
    seed_store,
)
from _speed import fsync_speed, machine_speed

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = "throughput"
WORKER = os.path.join(HERE, "_fanout_worker.py")


def closed_load(url: str, seconds: float, conns: int, batch: int = 1) -> dict:
    """Run the load process; its report, with the CPU seconds it used (`client_cpu_s`).

    `batch` above 1: each request carries that many commands (`POST /v1/commands/batch`).
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    mode = "http" if batch == 1 else f"http/{batch}"
    out = subprocess.run(
        [sys.executable, WORKER, "load", mode, url, TOKEN, "0", str(seconds), str(conns)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise RuntimeError(f"load failed: {out.stderr[-2000:]}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return report | {"client_cpu_s": used}


def _as_schema_3(db: Path) -> None:
    """Take a freshly seeded store back to schema 3 for a baseline server from before 4.

    Version 4 only added `commands.stored_at` (and its index), so dropping them gives
    exactly the file an older cadterm would have written.
    """
    with sqlite3.connect(db) as conn:
        conn.execute("DROP INDEX IF EXISTS commands_stored_at")
        conn.execute("ALTER TABLE commands DROP COLUMN stored_at")
        conn.execute("PRAGMA user_version = 3")


def _older_config(path: Path, tree: str) -> None:
    """Drop the limits the cadterm in `tree` does not know from a written config file.

    Asked of that cadterm itself, so a baseline from any older commit starts.
    """
    known = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cadterm.server.config import Limits; print(' '.join(Limits.model_fields))",
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": tree},
    ).stdout.split()
    lines = path.read_text().splitlines(keepends=True)
    in_limits, kept = False, []
    for line in lines:
        if line.startswith("["):
            in_limits = line.strip() == "[limits]"
        elif in_limits and "=" in line and line.split("=")[0].strip() not in known:
            continue
        kept.append(line)
    path.write_text("".join(kept))


@contextmanager
def _source(tree: str | None) -> Iterator[None]:
    """Servers started inside run the cadterm in `tree` (None: this one)."""
    if tree is None:
        yield
        return
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = tree  # found before the editable install's finder
    try:
        yield
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved


@contextmanager
def _profiled(stats: Path, workdir: Path) -> Iterator[None]:
    """A server started inside runs under cProfile, writing its stats to `stats` on exit.

    `ServerProcess` starts `sys.executable -m cadterm.cli.main server ...`; for the
    start only, that executable is a script running the same under `-m cProfile`.
    cProfile sees the event loop's thread (HTTP, routing, rules, fan-out), not the
    writer thread's SQLite work.
    """
    wrapper = workdir / "python-under-cprofile"
    wrapper.write_text(
        f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m cProfile"
        f' -o {shlex.quote(str(stats))} "$@"\n'
    )
    wrapper.chmod(0o755)
    saved, sys.executable = sys.executable, str(wrapper)
    try:
        yield
    finally:
        sys.executable = saved


def _load_runs(
    server: ServerProcess, name: str, length: int, seconds: float, label: str, batches: list[int]
):
    closed_load(server.url, 0.5, 1)  # warm up: imports, caches, connections
    for batch in batches:
        for conns in (1, 8):
            yield _load_run(server, name, length, seconds, label, conns, batch)


def _load_run(
    server: ServerProcess,
    name: str,
    length: int,
    seconds: float,
    label: str,
    conns: int,
    batch: int,
) -> dict:
    cpu0 = server.cpu()
    load = closed_load(server.url, seconds, conns, batch)
    cpu = server.cpu() - cpu0
    if load["errors"]:
        raise RuntimeError(f"{load['errors']} commands refused: {load.get('error_sample')}")
    res = {
        "case": name,
        "server": label,
        "log_events": length,
        "senders": conns,
        "per_request": batch,
        "commands": load["completed"],
        "errors": load["errors"],
        "commands_per_s": r(load["achieved_per_s"], 1),
        "p50_ms": r(load["req_p50_ms"], 2),
        "p99_ms": r(load["req_p99_ms"], 2),
        "server_cpu_ms_per_command": r(cpu / max(1, load["completed"]) * 1e3, 3),
        "server_cpu_util": r(cpu / load["elapsed_s"], 2),
        # The sender's own CPU: on two cores it competes with the server for them.
        "client_cpu_ms_per_command": r(load["client_cpu_s"] / max(1, load["completed"]) * 1e3, 3),
    }
    emit(BENCH, kind="run", **res)
    return res


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1000,100000,1000000")
    parser.add_argument(
        "--shift",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the 100k realistic-shift case",
    )
    parser.add_argument("--seconds", type=float, default=4.0, help="load per mode")
    parser.add_argument(
        "--batch",
        default="1,20",
        help="commands a request, comma-separated: 1 is POST /v1/commands, more is "
        "POST /v1/commands/batch (the current server only; a baseline runs 1 alone)",
    )
    parser.add_argument(
        "--baseline",
        metavar="TREE",
        help="also run each case, just before, with the cadterm in TREE (a folder holding "
        "a `cadterm` package, e.g. an older commit from `git archive`; schema 3)",
    )
    parser.add_argument(
        "--profile-server",
        type=Path,
        metavar="STATS",
        help="diagnostic: run the first case's server under cProfile, stats to STATS",
    )
    args = parser.parse_args()
    batches_asked = [int(n) for n in args.batch.split(",")]
    started = time.monotonic()
    emit(BENCH, kind="machine", **machine())
    cases: list[tuple[str, int]] = [(f"{int(n):,}", int(n)) for n in args.lengths.split(",")]
    if args.shift:
        cases.append(("100k-shift", 100_000))
    results = []
    with scratch_dir("throughput") as tmp:
        workdir = Path(tmp)
        speed = {**machine_speed(), **fsync_speed(workdir)}
        emit(BENCH, kind="speed", when="start", **speed)
        for name, length in cases:
            db = workdir / f"log-{length}-{len(results)}.db"
            if name == "100k-shift":
                seeded = seed_store(db, Workload(seed=13), length - 420)
                how = "SQLiteEventStore.append, synchronous=OFF (realistic shift)"
            else:
                seeded = seed_bulk(db, length)
                how = (
                    "SQLiteEventStore.append (first 5k) + executemany into events/commands"
                    ", synchronous=OFF"
                )
            emit(
                BENCH,
                kind="seed",
                case=name,
                head=seeded.head,
                seconds=r(seeded.seconds, 1),
                db_mb=r(db.stat().st_size / 1e6, 1),
                incidents=len(seeded.final_state.incidents),
                how=how,
            )
            config = bench_config(retain_events=10**9)
            servers: list[tuple[str, str | None, Path]] = []
            if args.baseline:
                old = db.with_suffix(".baseline.db")
                shutil.copyfile(db, old)
                _as_schema_3(old)
                servers.append(("baseline", args.baseline, old))
            servers.append(("current", None, db))
            for label, tree, path in servers:
                server = ServerProcess(path, config, workdir)
                if tree is not None:
                    _older_config(server.cfg, tree)
                first = not any(res["server"] == "current" for res in results)
                profile = args.profile_server if label == "current" and first else None
                with _source(tree):
                    if profile is not None:
                        with _profiled(profile.resolve(), workdir):
                            server.start()
                    else:
                        server.start()
                    try:
                        batches = batches_asked if label == "current" else [1]
                        results.extend(
                            _load_runs(server, name, length, args.seconds, label, batches)
                        )
                    finally:
                        server.stop()
                for suffix in ("", "-wal", "-shm"):
                    Path(str(path) + suffix).unlink(missing_ok=True)
        speed_after = {**machine_speed(), **fsync_speed(workdir)}
        emit(BENCH, kind="speed", when="end", **speed_after)

    print()
    print("throughput: locate_unit commands over HTTP, durable (WAL, synchronous=FULL)")
    print(
        f"{'log':>11} {'server':>8} {'senders':>7} {'a request':>9} {'cmds/s':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} "
        f"{'cpu ms/cmd':>10} {'cpu util':>8} {'sender ms/cmd':>13}"
    )
    for res in results:
        print(
            f"{res['case']:>11} {res['server']:>8} {res['senders']:>7} "
            f"{res['per_request']:>9} {res['commands_per_s']:>8.0f} "
            f"{res['p50_ms']:>7.2f} {res['p99_ms']:>7.2f} "
            f"{res['server_cpu_ms_per_command']:>10.3f} {res['server_cpu_util']:>8.2f} "
            f"{res['client_cpu_ms_per_command']:>13.3f}"
        )
    for when, figures in (("start", speed), ("end", speed_after)):
        print(
            f"machine speed at the {when}: json.loads {figures['json_loads_per_s']:,}/s, "
            f"fsync {figures['fsync_per_s']:,}/s"
        )
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
