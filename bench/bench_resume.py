"""Resume: how long a client takes to catch up after missing 1k, 10k or 100k events.

Seeds a store with a realistic shift (300 units, mixed events; 110k+ events by default)
by writing it directly with ``SQLiteEventStore.append`` and ``synchronous=OFF``: this
is seeding, not a durability test. The pictures at head-1k, head-10k and head-100k are
kept. The backend then runs as a subprocess (``cadterm server``) with retention high
enough to keep every event.

- replay: a `DispatchClient` whose `LocalStore` holds the picture at head-N subscribes
  with ``since = head-N``; timed from ``start()`` until the stream is live (caught up)
  with every event applied locally;
- snapshot: a fresh client (no ``since``) gets the whole picture at the head.

Figures: wall seconds, events/s, the client's CPU seconds (this process) and the
server's CPU seconds (/proc) over the catch-up, so it is clear which side is the
bottleneck. Target (issue 17): 100k events in under 1 s, scaled by the machine-speed
figure (`json.loads` a second, measured at the start and the end).

    .venv/bin/python bench/bench_resume.py                   # ~60-90 s
    .venv/bin/python bench/bench_resume.py --events 30000 --missed 1000,10000
    BENCH_CLIENT_GC=freeze .venv/bin/python bench/bench_resume.py   # client gc.freeze()
    .venv/bin/python bench/bench_resume.py --missed 100000 --rounds 1 --profile

`--profile` runs the client under cProfile in the largest replay (an extra, untimed run
after the timed ones) and prints where its CPU went.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import time
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
    seed_store,
)
from _speed import machine_speed

from cadterm.client import DispatchClient
from cadterm.client.queries import fetch_state
from cadterm.protocol.fold import DispatchState
from cadterm.server.config import Limits

BENCH = "resume"
#: Issue 17: 100k events caught up in under a second (on the reference machine, scaled
#: by the machine-speed figure: see the summary's "needs json.loads at").
TARGET_100K_S = 1.0


class CollectorClock:
    """Time the cyclic garbage collector spends in this process, by generation."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __enter__(self) -> CollectorClock:
        gc.callbacks.append(self._heard)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._heard)

    def _heard(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            generation = info["generation"]
            self.seconds[generation] += time.perf_counter() - self._started
            self.collections[generation] += 1


async def catch_up(
    server: ServerProcess,
    state_json: str | None,
    head: int,
    profiler: cProfile.Profile | None = None,
) -> dict:
    client = DispatchClient([server.url], TOKEN, workstation="bench-resume")
    try:
        if state_json is not None:
            client.store.load_snapshot(DispatchState.model_validate_json(state_json))
            client.take_changes()
        since = client.seq if state_json is not None else None
        if os.environ.get("BENCH_CLIENT_GC") == "freeze":
            # Diagnostic (not the default): keep the loaded picture out of the collector's
            # full passes and collect the young generation less often, as a console could.
            gc.collect()
            gc.freeze()
            gc.set_threshold(20_000, *gc.get_threshold()[1:])
        cpu0_server = server.cpu()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        if profiler is not None:
            profiler.enable()
        with CollectorClock() as collector:
            client.start()
            await client.wait_live(timeout=120)
        if profiler is not None:
            profiler.disable()
        elapsed = time.perf_counter() - t0
        cpu_client = time.process_time() - cpu0
        cpu_server = server.cpu() - cpu0_server
        assert client.seq == head, (client.seq, head)
        return {
            "since": since,
            "applied_to": client.seq,
            "seconds": r(elapsed, 3),
            "client_cpu_s": r(cpu_client, 3),
            "server_cpu_s": r(cpu_server, 3),
            # The collector's share of the client's CPU: pauses in generations 0, 1, 2.
            "client_gc_s": [r(x, 3) for x in collector.seconds],
            "client_gc_collections": collector.collections,
        }
    finally:
        await client.close()


def profile_replay(server: ServerProcess, states: dict[int, str], head: int, n: int) -> str:
    """Where the client's CPU goes catching up `n` events: top functions by own time."""
    profiler = cProfile.Profile()
    asyncio.run(catch_up(server, states[head - n], head, profiler))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
    return "\n".join(out.getvalue().splitlines()[:40])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=110_000, help="events to seed")
    parser.add_argument("--missed", default="1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=2, help="runs per case (best counts)")
    parser.add_argument(
        "--profile", action="store_true", help="profile the client in the largest replay"
    )
    parser.add_argument(
        "--hold-seeded-picture",
        action="store_true",
        help="keep the seeder's picture alive through the runs, as the bench used to",
    )
    args = parser.parse_args()
    missed = [int(x) for x in args.missed.split(",")]
    started = time.monotonic()
    speed_start = machine_speed()
    emit(BENCH, kind="machine", **machine())

    with scratch_dir("resume") as tmp:
        workdir = Path(tmp)
        db = workdir / "resume.db"
        seeded = seed_store(db, Workload(seed=11, units=300), args.events, keep_back=tuple(missed))
        incidents, units = len(seeded.final_state.incidents), len(seeded.final_state.units)
        if not args.hold_seeded_picture:
            # The seeder's own picture of the whole shift is no part of a client's
            # process: held through the runs, every full collection in a client's
            # catch-up walked it as well as the client's picture (--hold-seeded-picture
            # measures as before, for comparison).
            seeded.final_state = DispatchState()
            gc.collect()
        emit(
            BENCH,
            kind="seed",
            head=seeded.head,
            seconds=r(seeded.seconds, 1),
            incidents=incidents,
            db_mb=r(db.stat().st_size / 1e6, 1),
            note="SQLiteEventStore.append with synchronous=OFF: seeding, not durable",
        )
        # The seeded shift's closed incidents are days old: with the default window the
        # server would archive them (new events) while a client catches up to a fixed head.
        limits = Limits(command_rate=1e9, command_burst=10**9, closed_window=10**9)
        config = bench_config(retain_events=10**9, limits=limits)
        results: dict[str, dict] = {}
        with ServerProcess(db, config, workdir) as server:
            # The server sends the picture as this very serialisation of it.
            snapshot_bytes = len(fetch_state(server.url, TOKEN).model_dump_json().encode())
            cases: list[tuple[str, int | None]] = [(f"replay_{n}", n) for n in missed]
            cases.append(("snapshot", None))
            for name, n in cases:
                best = None
                for round_no in range(args.rounds if (n or 0) < 100_000 else 1):
                    state_json = seeded.states[seeded.head - n] if n is not None else None
                    res = asyncio.run(catch_up(server, state_json, seeded.head))
                    events = n if n is not None else 1
                    res |= {"case": name, "round": round_no + 1, "missed": n}
                    if n is not None:
                        res["events_per_s"] = round(n / res["seconds"])
                    else:
                        res["snapshot_bytes"] = snapshot_bytes
                    emit(BENCH, kind="run", **res)
                    if best is None or res["seconds"] < best["seconds"]:
                        best = res
                    del events
                assert best is not None
                results[name] = best
            if args.profile:
                profile_text = profile_replay(server, seeded.states, seeded.head, max(missed))

    print()
    print(
        f"resume: log head {seeded.head}, picture {incidents} incidents "
        f"/ {units} units, snapshot {snapshot_bytes / 1e6:.1f} MB"
    )
    print(
        f"{'case':>16} {'seconds':>8} {'events/s':>9} {'client cpu':>10} {'server cpu':>10} "
        f"{'client gc':>10}"
    )
    for name, res in results.items():
        eps = f"{res.get('events_per_s', 0):>9,}" if "events_per_s" in res else f"{'-':>9}"
        print(
            f"{name:>16} {res['seconds']:>8.3f} {eps} {res['client_cpu_s']:>10.2f} "
            f"{res['server_cpu_s']:>10.2f} {sum(res['client_gc_s']):>10.2f}"
        )
    big = results.get("replay_100000")
    if big:
        met = big["seconds"] < TARGET_100K_S
        emit(
            BENCH,
            kind="result",
            replay_100k_s=big["seconds"],
            target_s=TARGET_100K_S,
            target_met=met,
            snapshot_s=results["snapshot"]["seconds"],
            snapshot_bytes=snapshot_bytes,
        )
        print(
            f"100k by replay: {big['seconds']:.2f} s (target < {TARGET_100K_S:g} s): "
            f"{'MET' if met else 'MISSED'}"
        )
    speed = machine_speed()
    emit(BENCH, kind="speed", when="start", **speed_start)
    emit(BENCH, kind="speed", when="end", **speed, loadavg=os.getloadavg())
    if big:
        # The client's CPU counted in json.loads of the reference document, so that runs
        # on different machines compare: under 1 s needs a machine at least this fast.
        loads_per_s = (speed_start["json_loads_per_s"] + speed["json_loads_per_s"]) / 2
        needed = big["client_cpu_s"] * loads_per_s / TARGET_100K_S
        emit(BENCH, kind="scaled", client_cpu_in_json_loads=round(needed), target_s=1.0)
        print(
            f"100k client CPU {big['client_cpu_s']:.2f} s at json.loads {loads_per_s:,.0f}/s: "
            f"under {TARGET_100K_S:g} s of client CPU on a machine doing json.loads at "
            f"{needed:,.0f}/s or more"
        )
    if args.profile:
        print(f"\ncProfile of the client catching up {max(missed):,} events (untimed run):")
        print(profile_text)
    print(
        f"machine: json.loads {speed_start['json_loads_per_s']:,}/s at the start, "
        f"{speed['json_loads_per_s']:,}/s at the end; load average "
        + " ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(f"total {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
