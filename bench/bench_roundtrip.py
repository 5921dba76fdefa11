"""Round trip: from `client.execute(cmd)` to the command's event applied locally.

`DispatchClient.execute` posts the command and waits until its event has come back on
the console's own stream and been folded into its `LocalStore` (read-your-writes), so
its duration is what a dispatcher waits for between pressing Enter and seeing the
board change. Commands alternate ``add_note`` (on a random open incident) and
``locate_unit`` (a random on-duty unit).

The backend runs as a subprocess (``cadterm server``) on a store seeded with a
realistic shift (50k events by default: ~2,500 incidents with their chronologies),
written directly with ``SQLiteEventStore.append`` and ``synchronous=OFF`` (seeding
only). Consoles are `DispatchClient`s in worker processes (10 per process):

- ``1 console``: one console sending back to back;
- ``20 paced``: 20 consoles, each thinking ~200 ms (exponential) between commands
  (~100 commands/s in all, well above a real control room);
- ``20 flat-out``: 20 consoles sending back to back (stress).

Figures: p50/p90/p99/p99.9/max of the round trip, commands/s, server CPU, and the POST
half alone (``post_p50/p99``: answered by the server; the rest is the event coming back
on the console's own stream and being folded). The two halves are timed by doing what
``execute`` does (``sender.send`` then ``subscription.wait_for_seq``). The server
writes a snapshot of the whole picture every 1,000 events inside the command path; the
max column shows what that costs. Target (issue item 7): p99 < 30 ms.

    .venv/bin/python bench/bench_roundtrip.py                  # ~60 s
    .venv/bin/python bench/bench_roundtrip.py --seconds 4 --shift-events 20000
    BENCH_CLIENT_GC=freeze .venv/bin/python bench/bench_roundtrip.py   # consoles gc.freeze()
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from _common import (
    TOKEN,
    ServerProcess,
    Workload,
    bench_config,
    emit,
    machine,
    pct,
    r,
    scratch_dir,
    seed_store,
    stop_process,
)
from _speed import machine_speed

HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = "roundtrip"
TARGET_P99_MS = 30.0
PER_PROCESS = 10


# --- worker: consoles in one process ---------------------------------------------------


async def console(
    client, rng: random.Random, until: float, think: float, lat: list[float], acks: list[float]
):
    from cadterm.protocol.domain import IncidentStatus

    n = 0
    while time.monotonic() < until:
        n += 1
        if n % 2:
            refs = [
                ref for ref, inc in client.incidents.items() if inc.status != IncidentStatus.CLOSED
            ]
            cmd = client.command(
                "add_note",
                reference=rng.choice(refs),
                text=f"Update {n} from {client.workstation}: caller recontacted,"
                " no change to the risk assessment.",
            )
        else:
            units = [cs for cs, unit in client.units.items() if unit.on_duty]
            cmd = client.command(
                "locate_unit",
                callsign=rng.choice(units),
                position={"lat": 51.45 + rng.random() * 0.1, "lon": -0.2 + rng.random() * 0.2},
            )
        # Exactly what `client.execute(cmd)` does, timed in its two halves: the POST
        # (the server decided, appended durably and answered) and the wait until the
        # event came back on this console's stream and was folded locally.
        t = time.perf_counter()
        result = await client.sender.send(cmd)
        t_ack = time.perf_counter()
        await client.subscription.wait_for_seq(result.seq, 10.0)
        t_end = time.perf_counter()
        lat.append((t_end - t) * 1000)
        acks.append((t_ack - t) * 1000)
        if think > 0:
            await asyncio.sleep(rng.expovariate(1 / think))


async def worker(url: str, clients: int, seconds: float, think: float, seed: int) -> None:
    from cadterm.client import DispatchClient

    # Each console at one of control room 1's registered desks (several may share one).
    consoles = [
        DispatchClient([url], TOKEN, workstation=f"CR1-WS{(seed * clients + i) % 40 + 1:02d}")
        for i in range(clients)
    ]
    try:
        for c in consoles:
            c.start()
        await asyncio.gather(*(c.wait_live(timeout=60) for c in consoles))
        if os.environ.get("BENCH_CLIENT_GC") == "freeze":
            # Diagnostic (not the default): the pictures just loaded leave the collector's
            # view, and young collections happen less often, as a console process could do.
            gc.freeze()
            gc.set_threshold(20_000, *gc.get_threshold()[1:])
        rng = random.Random(seed)
        warm: list[float] = []
        await asyncio.gather(
            *(console(c, rng, time.monotonic() + 0.3, 0, warm, []) for c in consoles)
        )  # warm-up: connections, code paths
        print("ready", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        start_at = float(line.split()[1])
        await asyncio.sleep(max(0.0, start_at - time.time()))
        lat: list[float] = []
        acks: list[float] = []
        until = time.monotonic() + seconds
        t0 = time.perf_counter()
        await asyncio.gather(*(console(c, rng, until, think, lat, acks) for c in consoles))
        elapsed = time.perf_counter() - t0
        print(json.dumps({"lat": lat, "acks": acks, "elapsed": elapsed}), flush=True)
    finally:
        await asyncio.gather(*(c.close() for c in consoles))


# --- controller --------------------------------------------------------------------------


def run_case(server: ServerProcess, consoles: int, seconds: float, think: float) -> dict:
    procs = []
    per = [min(PER_PROCESS, consoles - i) for i in range(0, consoles, PER_PROCESS)]
    try:
        for k, n in enumerate(per):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        __file__,
                        "--worker",
                        server.url,
                        str(n),
                        str(seconds),
                        str(think),
                        str(k + 1),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("console worker failed to start")
        start_at = time.time() + 0.3
        cpu0 = server.cpu()
        for proc in procs:
            proc.stdin.write(f"go {start_at}\n")
            proc.stdin.flush()
        outs = [json.loads(proc.stdout.readline()) for proc in procs]
        cpu = server.cpu() - cpu0
        for proc in procs:
            proc.wait(timeout=30)
    finally:
        for proc in procs:
            stop_process(proc)
    lat = [x for out in outs for x in out["lat"]]
    acks = [x for out in outs for x in out["acks"]]
    elapsed = max(out["elapsed"] for out in outs)
    return {
        "commands": len(lat),
        "commands_per_s": r(len(lat) / elapsed, 1),
        "p50_ms": r(pct(lat, 50), 2),
        "p90_ms": r(pct(lat, 90), 2),
        "p99_ms": r(pct(lat, 99), 2),
        "p999_ms": r(pct(lat, 99.9), 2),
        "max_ms": r(max(lat), 2),
        "over_30ms": sum(1 for x in lat if x > 30),
        "post_p50_ms": r(pct(acks, 50), 2),
        "post_p99_ms": r(pct(acks, 99), 2),
        "server_cpu_s": r(cpu, 2),
        "server_cpu_ms_per_command": r(cpu / max(1, len(lat)) * 1e3, 3),
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        url, n, seconds, think, seed = sys.argv[2:7]
        asyncio.run(worker(url, int(n), float(seconds), float(think), int(seed)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per case")
    parser.add_argument("--shift-events", type=int, default=50_000)
    parser.add_argument("--think-ms", type=float, default=200.0)
    parser.add_argument(
        "--snapshot-every",
        type=int,
        default=None,
        help="server snapshot interval (default: the server's, 1000 events); "
        "a huge value shows the round trip without snapshot stalls",
    )
    args = parser.parse_args()
    started = time.monotonic()
    emit(BENCH, kind="machine", **machine())
    speed = machine_speed()
    emit(BENCH, kind="speed", when="start", **speed)
    cases = [
        ("1 console", 1, 0.0),
        ("20 paced", 20, args.think_ms / 1000),
        ("20 flat-out", 20, 0.0),
    ]
    results = {}
    with scratch_dir("roundtrip") as tmp:
        workdir = Path(tmp)
        db = workdir / "roundtrip.db"
        seeded = seed_store(db, Workload(seed=17), args.shift_events)
        emit(
            BENCH,
            kind="seed",
            head=seeded.head,
            seconds=r(seeded.seconds, 1),
            incidents=len(seeded.final_state.incidents),
            picture_mb=r(len(seeded.final_state.model_dump_json()) / 1e6, 1),
            note="SQLiteEventStore.append with synchronous=OFF: seeding, not durable",
        )
        overrides = {} if args.snapshot_every is None else {"snapshot_every": args.snapshot_every}
        config = bench_config(**overrides)
        emit(BENCH, kind="config", snapshot_every=config.snapshot_every)
        with ServerProcess(db, config, workdir) as server:
            for name, consoles, think in cases:
                res = run_case(server, consoles, args.seconds, think)
                res |= {"case": name, "consoles": consoles, "think_ms": think * 1000}
                results[name] = res
                emit(BENCH, kind="case", **res)

    print()
    print(
        f"roundtrip: execute() until applied locally; {args.seconds:g} s per case; "
        f"picture of {len(seeded.final_state.incidents)} incidents"
    )
    print(
        f"{'case':>12} {'cmds':>6} {'cmds/s':>7} {'p50':>6} {'p90':>6} {'p99':>6} "
        f"{'p99.9':>7} {'max':>7} {'>30ms':>6} {'POST p50':>8} {'POST p99':>8}"
    )
    for name, x in results.items():
        print(
            f"{name:>12} {x['commands']:>6} {x['commands_per_s']:>7.0f} {x['p50_ms']:>6.1f} "
            f"{x['p90_ms']:>6.1f} {x['p99_ms']:>6.1f} {x['p999_ms']:>7.1f} {x['max_ms']:>7.1f} "
            f"{x['over_30ms']:>6} {x['post_p50_ms']:>8.1f} {x['post_p99_ms']:>8.1f}"
        )
    met = {name: x["p99_ms"] < TARGET_P99_MS for name, x in results.items()}
    emit(BENCH, kind="result", target_p99_ms=TARGET_P99_MS, p99_target_met=met)
    print(
        f"p99 < {TARGET_P99_MS:g} ms: "
        + ", ".join(f"{name} {'MET' if ok else 'MISSED'}" for name, ok in met.items())
    )
    speed_after = machine_speed()
    emit(BENCH, kind="speed", when="end", **speed_after)
    print(
        f"machine speed: json.loads {speed['json_loads_per_s']:,}/s at the start, "
        f"{speed_after['json_loads_per_s']:,}/s at the end"
    )
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
