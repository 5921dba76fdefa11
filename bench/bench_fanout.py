"""Fan-out: how the backend delivers new events to many live subscribers.

For each subscriber count (1, 50, 200) and target event rate (100, 500, 2000 events/s):

- the backend runs as a subprocess (``cadterm server``) on a seeded store (300 units);
- subscribers are raw `websockets` connections (no cadterm client code) in processes
  of their own, apart from the server's (one for 1 subscriber, ``--sub-procs`` for
  more), asking for ``events`` frames of up to ``--batch`` events (0: not asking, one
  ``event`` frame per event), and recording each event's receive time;
- a load process posts ``locate_unit`` commands at the target rate (open loop, 32
  keep-alive HTTP connections); every command is appended durably (fsync) before it is
  published. The schedule is never thinned to suit the server: each command keeps the
  time it was meant to be sent, and latency is timed from then (no coordinated
  omission). A server that lets a second's worth of schedule back up is not holding the
  rate: the cell stops there and says so (``held`` false, ``skipped`` > 0); nor is one
  whose backlog stayed under a second but whose appends, counted to the last answer,
  came at under 95 % of the target (``held`` false, ``skipped`` 0);
- figures: achieved append rate, delivered events/s (all subscribers) and events per
  frame, p50/p99 latency from the intended send time to receipt (and p99 from the
  event's ``at``, the server's clock when the command was decided), and the server's
  CPU seconds per delivered event (read from /proc for the server process only).

Baseline in the same run: a bare `websockets` broadcast server (``_fanout_worker.py
bare``) that stamps and broadcasts a frame of the same shape and size for each publish
message from the same kind of load process, to the same subscribers. It does no
validation, no HTTP and no fsync, so it is the floor; ratios against it are the figures
to compare across runs. ``at`` has millisecond precision (as the server's clock), so
latencies from it carry up to 1 ms of rounding. The bare server sends one frame per
event (``websockets`` broadcast has no batches): the floor per delivered event.

The machine-speed figure (`json.loads` per second, `_speed.machine_speed`), the cores
this process may run on and the load average are printed with the figures.

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
from _speed import machine_speed

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

    def __init__(self, ws_url: str, n: int, since: int, procs: int, batch: int) -> None:
        procs = min(n, max(1, procs))  # none for 0 subscribers: the command path alone
        split = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        self.procs = [
            subprocess.Popen(
                [sys.executable, WORKER, "subs", ws_url, TOKEN, str(k), str(since), str(batch)],
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

    def report(self, lo: int, hi: int, t0: float, intended: Path) -> list[dict]:
        for proc in self.procs:
            proc.stdin.write(f"report {lo} {hi} {t0} {intended}\n")
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


def fanout_cost(results: dict, system: str, n_subs: int, rate: int) -> float | None:
    """Server CPU µs per delivered event spent on fan-out: the cell's CPU less what the
    same appends cost with no subscriber at all (the 0-subscriber cell at that rate)."""
    cell, alone = results.get((system, n_subs, rate)), results.get((system, 0, rate))
    if not cell or not alone or not cell["delivered_events"] or not alone["appended"]:
        return None
    command_path = alone["server_cpu_s"] / alone["appended"] * cell["appended"]
    return (cell["server_cpu_s"] - command_path) / cell["delivered_events"] * 1e6


#: The least share of the target rate, appends counted to the last answer, that holds it.
HELD_SHARE = 0.95


def run_cell(
    system: str,
    n_subs: int,
    rate: int,
    url: str,
    pid: int,
    mode: str,
    subs: Subscribers,
    workdir: Path,
    args: argparse.Namespace,
) -> dict:
    """One cell: the load at `rate` against `system`, and what its subscribers saw."""
    intended = workdir / f"intended-{system}-{n_subs}-{rate}.json"
    cpu0 = cpu_seconds(pid)
    load = run_load(mode, url, rate, args.seconds, args.conns, intended)
    lo, hi = load["first_seq"] - 1, load["last_seq"]
    reports = subs.report(lo, hi, load["t0_wall"], intended)
    cpu = cpu_seconds(pid) - cpu0
    delivered = sum(x["delivered"] for x in reports)
    span = max((x["span_s"] or 0 for x in reports), default=0) or load["elapsed_s"]
    parts = [(x["delivered"], x["samples"]) for x in reports]
    meant = [(x["intended_count"], x["intended_samples"]) for x in reports]
    frames = sum(x["frames"] for x in reports)
    expected = (hi - lo) * n_subs
    worst = max((x["intended_max_ms"] or 0 for x in reports), default=float("nan"))
    return {
        "system": system,
        "subs": n_subs,
        "target_rate": rate,
        "achieved_rate": r(load["achieved_per_s"], 1),
        "appended": load["completed"],
        "skipped_schedule": load["skipped"],
        "load_errors": load["errors"],
        "held": load["skipped"] == 0
        and delivered == expected
        and load["achieved_per_s"] >= HELD_SHARE * rate,
        "delivered_events": delivered,
        "expected_events": expected,
        "events_per_frame": r(delivered / max(1, frames), 2),
        "delivered_per_s": r(delivered / span, 1),
        "p50_ms": r(weighted_pct(meant, 50) or float("nan"), 2),
        "p99_ms": r(weighted_pct(meant, 99) or float("nan"), 2),
        "max_ms": r(worst, 2),
        "p99_from_at_ms": r(weighted_pct(parts, 99) or float("nan"), 2),
        "server_cpu_s": r(cpu, 3),
        "server_cpu_util": r(cpu / span, 3),
        "server_cpu_us_per_delivered_event": r(cpu / max(1, delivered) * 1e6, 2),
        "server_cpu_us_per_appended": r(cpu / max(1, load["completed"]) * 1e6, 1),
        "command_p50_ms": r(load["req_p50_ms"] or float("nan"), 2),
        "command_p99_ms": r(load["req_p99_ms"] or float("nan"), 2),
        "subscribers_closed": sum(x["closed"] for x in reports),
    }


def run_load(mode: str, url: str, rate: int, seconds: float, conns: int, intended: Path) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            WORKER,
            "load",
            mode,
            url,
            TOKEN,
            str(rate),
            str(seconds),
            str(conns),
            str(intended),
        ],
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
    parser.add_argument(
        "--subs", default="0,1,50,200", help="subscriber counts (0: the command path alone)"
    )
    parser.add_argument("--rates", default="100,500,2000")
    parser.add_argument("--conns", type=int, default=32, help="load connections")
    parser.add_argument("--skip", default="", help="cells to skip, e.g. 200@2000,50@2000")
    parser.add_argument("--systems", default="cadterm,bare")
    parser.add_argument(
        "--batch", type=int, default=256, help="events per frame subscribers ask (0: none)"
    )
    parser.add_argument("--sub-procs", type=int, default=2, help="subscriber processes")
    args = parser.parse_args()
    subs_list = [int(x) for x in args.subs.split(",")]
    rates = [int(x) for x in args.rates.split(",")]
    skip = {tuple(int(v) for v in s.split("@")) for s in args.skip.split(",") if s}
    started = time.monotonic()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    speed = machine_speed()
    emit(BENCH, kind="machine", **machine(), cores_usable=cores, **speed)

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
        systems = args.systems.split(",")
        server = None
        bare = None
        # Both servers run side by side and the cells alternate between them, so each
        # pair of figures is taken under the same load from whatever else the machine
        # is doing; the idle one costs nothing meanwhile.
        try:
            where: dict[str, tuple[str, str, int, str]] = {}
            if "cadterm" in systems:
                server = ServerProcess(db, bench_config(), workdir).start()
                where["cadterm"] = (server.url, server.ws_url, server.pid, "http")
            if "bare" in systems:
                bare = subprocess.Popen(
                    [sys.executable, WORKER, "bare", "0"], stdout=subprocess.PIPE, text=True
                )
                said, _, port = bare.stdout.readline().partition(" ")
                if said != "listening":
                    raise RuntimeError("bare server did not start")
                bare_url = f"ws://127.0.0.1:{port.strip()}"
                where["bare"] = (bare_url, bare_url, bare.pid, "ws")
            for n_subs in subs_list:
                subs: dict[str, Subscribers] = {}
                try:
                    for system in systems:
                        since = int(server.health()["seq"]) if system == "cadterm" else 0
                        ws_url = where[system][1]
                        subs[system] = Subscribers(
                            ws_url, n_subs, since, args.sub_procs, args.batch
                        )
                    for group in subs.values():
                        group.wait_ready()
                    for rate in rates:
                        for system in systems:
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
                            url, _ws, pid, mode = where[system]
                            cell = run_cell(
                                system, n_subs, rate, url, pid, mode, subs[system], workdir, args
                            )
                            if system == "cadterm":
                                cell["server_cut_off_total"] = server.health()["cut_off"]
                            results[(system, n_subs, rate)] = cell
                            emit(BENCH, kind="cell", **cell)
                finally:
                    for group in subs.values():
                        group.close()
        finally:
            if server is not None:
                server.stop()
            stop_process(bare)

    print()
    load_now = os.getloadavg()
    print(
        f"fanout: {args.seconds:g} s of load per cell; latency = receipt - intended send "
        f"time; subscribers ask batch={args.batch} in {args.sub_procs} processes"
    )
    print(
        f"machine: json.loads {speed['json_loads_per_s']:,}/s, {cores} usable cores, "
        f"load average {load_now[0]:.2f} {load_now[1]:.2f} {load_now[2]:.2f}"
    )
    print(
        f"{'subs':>4} {'rate':>5} | {'cad ach/s':>9} {'deliv/s':>8} {'p50':>6} {'p99':>7} "
        f"{'us/ev':>7} {'ev/frm':>6} | {'bare ach/s':>10} {'deliv/s':>8} {'p50':>6} {'p99':>7} "
        f"{'us/ev':>7} | {'cpu/ev x':>8} | {'fan us/ev cad':>13} {'bare':>6} {'x':>5}"
    )
    for n_subs in subs_list:
        for rate in rates:
            c = results.get(("cadterm", n_subs, rate))
            b = results.get(("bare", n_subs, rate))

            def cols(x, per_frame: bool):
                if x is None:
                    return f"{'-':>9} {'-':>8} {'-':>6} {'-':>7} {'-':>7}" + (
                        f" {'-':>6}" if per_frame else ""
                    )
                mark = "" if x["held"] else "!"  # not held: the rate backed up
                cost = x["server_cpu_us_per_delivered_event"] if x["delivered_events"] else "-"
                text = (
                    f"{x['achieved_rate']:>8.0f}{mark:1} {x['delivered_per_s']:>8.0f} "
                    f"{x['p50_ms']:>6.1f} {x['p99_ms']:>7.1f} {cost:>7}"
                )
                return text + (f" {x['events_per_frame']:>6.1f}" if per_frame else "")

            per = "server_cpu_us_per_delivered_event"
            ratio = c[per] / b[per] if c and b and b[per] else float("nan")
            fan_c, fan_b = (
                fanout_cost(results, "cadterm", n_subs, rate),
                fanout_cost(results, "bare", n_subs, rate),
            )
            fan_ratio = fan_c / fan_b if fan_c and fan_b else float("nan")
            if c and b and n_subs:
                emit(
                    BENCH,
                    kind="ratio",
                    subs=n_subs,
                    target_rate=rate,
                    cpu_per_delivered_event_cad_over_bare=r(ratio, 2),
                    fanout_us_per_delivered_event_cad=r(fan_c or float("nan"), 2),
                    fanout_us_per_delivered_event_bare=r(fan_b or float("nan"), 2),
                    fanout_cpu_per_delivered_event_cad_over_bare=r(fan_ratio, 2),
                    p99_cad_over_bare=r(c["p99_ms"] / b["p99_ms"], 2) if b["p99_ms"] else None,
                    delivered_cad_over_bare=r(c["delivered_per_s"] / b["delivered_per_s"], 3)
                    if b["delivered_per_s"]
                    else None,
                )
            print(
                f"{n_subs:>4} {rate:>5} | {cols(c, True)} | {cols(b, False):>47} | {ratio:>8.1f}"
                f" | {fan_c or float('nan'):>13.2f} {fan_b or float('nan'):>6.2f} {fan_ratio:>5.2f}"
            )
    print(
        "! = rate not held (a second of schedule backed up, appends under 95 % of the rate,"
        " or events missing)"
    )
    print(
        "us/ev: all server CPU per delivered event; fan us/ev: the same less the command "
        "path (CPU per appended event with 0 subscribers, at the same rate, times appended)"
    )
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
