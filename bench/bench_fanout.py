"""Fan-out: how the backend delivers new events to many live subscribers.

For each subscriber count (1, 50, 200) and target event rate (100, 500, 2000 events/s):

- the backend runs as a subprocess (``cadterm server``) on a seeded store (300 units);
- subscribers are raw `websockets` connections (no cadterm client code) in one process
  (1 subscriber) or two (50, 200), recording each event frame's receive time;
- a load process posts ``locate_unit`` commands at the target rate (open loop, 8
  keep-alive HTTP connections); every command is appended durably (fsync) before it is
  published, so if the backend cannot reach the rate the achieved rate is reported;
- figures: achieved append rate, delivered frames/s (all subscribers), p50/p99 latency
  from the event's ``at`` (server clock, set when the command is decided, i.e. *before*
  the durable append) to receipt, and the server's CPU seconds per delivered frame
  (read from /proc for the server process only).

Baseline in the same run: a bare `websockets` broadcast server (``_fanout_worker.py
bare``) that stamps and broadcasts a frame of the same shape and size for each publish
message from the same kind of load process, to the same subscribers. It does no
validation, no HTTP and no fsync, so it is the floor; ratios against it are the figures
to compare across runs. ``at`` has millisecond precision (as the server's clock), so
latencies carry up to 1 ms of rounding.

    .venv/bin/python bench/bench_fanout.py                  # ~100 s
    .venv/bin/python bench/bench_fanout.py --seconds 5 --skip 200@2000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    TOKEN,
    ServerProcess,
    Workload,
    bench_config,
    cpu_seconds,
    emit,
    machine,
    r,
    scratch_dir,
    seed_store,
    stop_process,
)

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = "fanout"
WORKER = os.path.join(HERE, "_fanout_worker.py")


def weighted_pct(parts: list[tuple[int, list[float]]], q: float) -> float | None:
    """Percentile over pooled samples: each part is (count, evenly spaced quantiles)."""
    points = []
    for count, samples in parts:
        if samples:
            w = count / len(samples)
            points.extend((s, w) for s in samples)
    if not points:
        return None
    points.sort()
    total = sum(w for _, w in points)
    acc = 0.0
    for value, w in points:
        acc += w
        if acc >= total * q / 100:
            return value
    return points[-1][0]


class Subscribers:
    """One or two subscriber processes holding `n` connections between them."""

    def __init__(self, ws_url: str, n: int, since: int) -> None:
        procs = 1 if n == 1 else 2
        split = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, WORKER, "subs", ws_url, TOKEN, str(k), str(since)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for k in split
        ]

    def wait_ready(self) -> None:
        for proc in self.procs:
            line = proc.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"subscriber process failed: {line!r}")

    def report(self, lo: int, hi: int, t0: float) -> list[dict]:
        for proc in self.procs:
            proc.stdin.write(f"report {lo} {hi} {t0}\n")
            proc.stdin.flush()
        return [json.loads(proc.stdout.readline()) for proc in self.procs]

    def close(self) -> None:
        for proc in self.procs:
            try:
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                stop_process(proc)


def run_load(mode: str, url: str, rate: int, seconds: float, conns: int) -> dict:
    out = subprocess.run(
        [sys.executable, WORKER, "load", mode, url, TOKEN, str(rate), str(seconds), str(conns)],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="load per cell")
    parser.add_argument("--subs", default="1,50,200")
    parser.add_argument("--rates", default="100,500,2000")
    parser.add_argument("--conns", type=int, default=8, help="load connections")
    parser.add_argument("--skip", default="", help="cells to skip, e.g. 200@2000,50@2000")
    parser.add_argument("--systems", default="cadterm,bare")
    args = parser.parse_args()
    subs_list = [int(x) for x in args.subs.split(",")]
    rates = [int(x) for x in args.rates.split(",")]
    skip = {tuple(int(v) for v in s.split("@")) for s in args.skip.split(",") if s}
    started = time.monotonic()
    emit(BENCH, kind="machine", **machine())

    results: dict[tuple[str, int, int], dict] = {}
    with scratch_dir("fanout") as tmp:
        workdir = Path(tmp)
        db = workdir / "fanout.db"
        seeded = seed_store(db, Workload(seed=5, units=300), 0)
        emit(
            BENCH,
            kind="seed",
            events=seeded.head,
            seconds=r(seeded.seconds, 2),
            note="seeded with SQLiteEventStore.append and synchronous=OFF (seeding only)",
        )
        for system in args.systems.split(","):
            server = None
            bare = None
            try:
                if system == "cadterm":
                    server = ServerProcess(db, bench_config(), workdir).start()
                    url, ws_url, pid = server.url, server.ws_url, server.pid
                    mode = "http"
                else:
                    bare = subprocess.Popen(
                        [sys.executable, WORKER, "bare", "0"],
                        stdout=subprocess.PIPE,
                        text=True,
                    )
                    said, _, port = bare.stdout.readline().partition(" ")
                    if said != "listening":
                        raise RuntimeError("bare server did not start")
                    port = port.strip()
                    url = ws_url = f"ws://127.0.0.1:{port}"
                    pid = bare.pid
                    mode = "ws"
                for n_subs in subs_list:
                    since = int(server.health()["seq"]) if server else 0
                    subs = Subscribers(ws_url, n_subs, since)
                    try:
                        subs.wait_ready()
                        for rate in rates:
                            if (n_subs, rate) in skip:
                                emit(
                                    BENCH,
                                    kind="cell",
                                    system=system,
                                    subs=n_subs,
                                    target_rate=rate,
                                    skipped=True,
                                )
                                continue
                            cpu0 = cpu_seconds(pid)
                            load = run_load(mode, url, rate, args.seconds, args.conns)
                            lo, hi = load["first_seq"] - 1, load["last_seq"]
                            reports = subs.report(lo, hi, load["t0_wall"])
                            cpu = cpu_seconds(pid) - cpu0
                            delivered = sum(x["delivered"] for x in reports)
                            span = max((x["span_s"] or 0) for x in reports) or float("nan")
                            parts = [(x["delivered"], x["samples"]) for x in reports]
                            cell = {
                                "system": system,
                                "subs": n_subs,
                                "target_rate": rate,
                                "achieved_rate": r(load["achieved_per_s"], 1),
                                "appended": load["completed"],
                                "skipped_schedule": load["skipped"],
                                "load_errors": load["errors"],
                                "delivered_frames": delivered,
                                "expected_frames": (hi - lo) * n_subs,
                                "delivered_per_s": r(delivered / span, 1),
                                "p50_ms": r(weighted_pct(parts, 50) or float("nan"), 2),
                                "p99_ms": r(weighted_pct(parts, 99) or float("nan"), 2),
                                "max_ms": r(max((x["max_ms"] or 0) for x in reports), 2),
                                "server_cpu_s": r(cpu, 3),
                                "server_cpu_util": r(cpu / span, 3),
                                "server_cpu_us_per_delivered": r(cpu / max(1, delivered) * 1e6, 2),
                                "server_cpu_us_per_appended": r(
                                    cpu / max(1, load["completed"]) * 1e6, 1
                                ),
                                "command_p50_ms": r(load["req_p50_ms"] or float("nan"), 2),
                                "command_p99_ms": r(load["req_p99_ms"] or float("nan"), 2),
                                "subscribers_closed": sum(x["closed"] for x in reports),
                            }
                            if server is not None:
                                cell["server_cut_off_total"] = server.health()["cut_off"]
                            results[(system, n_subs, rate)] = cell
                            emit(BENCH, kind="cell", **cell)
                    finally:
                        subs.close()
            finally:
                if server is not None:
                    server.stop()
                stop_process(bare)

    print()
    print(f"fanout: {args.seconds:g} s of load per cell; latency = receipt - event 'at'")
    print(
        f"{'subs':>4} {'rate':>5} | {'cad ach/s':>9} {'deliv/s':>8} {'p50':>6} {'p99':>7} "
        f"{'us/frm':>7} | {'bare ach/s':>10} {'deliv/s':>8} {'p50':>6} {'p99':>7} {'us/frm':>7}"
        f" | {'cpu/frm x':>9}"
    )
    for n_subs in subs_list:
        for rate in rates:
            c = results.get(("cadterm", n_subs, rate))
            b = results.get(("bare", n_subs, rate))

            def cols(x):
                if x is None:
                    return f"{'-':>9} {'-':>8} {'-':>6} {'-':>7} {'-':>7}"
                return (
                    f"{x['achieved_rate']:>9.0f} {x['delivered_per_s']:>8.0f} {x['p50_ms']:>6.1f} "
                    f"{x['p99_ms']:>7.1f} {x['server_cpu_us_per_delivered']:>7.1f}"
                )

            ratio = (
                c["server_cpu_us_per_delivered"] / b["server_cpu_us_per_delivered"]
                if c and b and b["server_cpu_us_per_delivered"]
                else float("nan")
            )
            if c and b:
                emit(
                    BENCH,
                    kind="ratio",
                    subs=n_subs,
                    target_rate=rate,
                    cpu_per_delivered_cad_over_bare=r(ratio, 2),
                    p99_cad_over_bare=r(c["p99_ms"] / b["p99_ms"], 2) if b["p99_ms"] else None,
                    delivered_cad_over_bare=r(c["delivered_per_s"] / b["delivered_per_s"], 3),
                )
            print(f"{n_subs:>4} {rate:>5} | {cols(c)} | {cols(b):>47} | {ratio:>9.1f}")
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
