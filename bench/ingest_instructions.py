"""Client ingest in instructions: what `bench_ingest.py` times, counted by valgrind.

On a shared machine whose speed drifts by a third from one second to the next, times
compare badly even within one run; the number of instructions executed does not drift.
This runs each pass in its own process under ``valgrind --tool=cachegrind`` (no cache
simulation) and subtracts a run that only sets up (imports, the workload read back, the
seeded picture loaded), so each figure is that pass's own instructions per event:

  json      bare ``json.loads`` of every frame;
  read      ``read_events``: the client's validation of each frame at the door;
  full      the full client path of `bench_ingest.py` (``LinkRules.received`` and
            ``Subscription._act``: validate, seq check, fold, change tracking), default GC;
  batched   the same with the events in ``events`` frames of 256, as a catch-up comes.

Instructions are not time (a cache miss is one instruction), so this is a check that
work was cut, beside the timed figures, never instead of them.

    .venv/bin/python bench/ingest_instructions.py --events 10000      # ~3 min
    PYTHONPATH=OTHER_TREE .venv/bin/python bench/ingest_instructions.py   # another tree
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile

from _common import TOKEN, Workload, emit, frame_json, machine

from cadterm.protocol import frames as _frames

# An older tree (PYTHONPATH=TREE) may have no events frames to count.
if hasattr(_frames, "EventBatch"):
    from cadterm.server.event_frames import batch_frames
else:
    batch_frames = None

PASSES = ("setup", "json", "read", "full", "batched")
BATCH = 256


def run_pass(mode: str, path: str) -> None:
    """Inside valgrind: set up, then run one pass over the frames in `path`."""
    from cadterm.client.store import LocalStore
    from cadterm.client.stream import Subscription
    from cadterm.protocol.fold import DispatchState
    from cadterm.protocol.frames import read_events

    with open(path, "rb") as handle:
        initial, frames, batched = pickle.load(handle)
    store = LocalStore()
    store.load_snapshot(DispatchState.model_validate_json(initial))
    store.take_changes()
    subscription = Subscription(["http://127.0.0.1:9"], TOKEN, store)
    received, act = subscription.rules.received, subscription._act
    if mode == "json":
        for raw in frames:
            json.loads(raw)
    elif mode == "read":
        for raw in frames:
            read_events(raw)
    elif mode == "full":
        for raw in frames:
            act(received(raw, 0.0))
    elif mode == "batched":
        for raw in batched:
            act(received(raw, 0.0))


def instructions(mode: str, path: str) -> int:
    """Instructions executed by a process that runs `mode` over the frames in `path`."""
    out = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--pass",
            mode,
            path,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    found = re.search(r"I\s+refs:\s+([\d,]+)", out)
    assert found is not None, out[-2000:]
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pass", dest="one", nargs=2, metavar=("MODE", "FILE"))
    args = parser.parse_args()
    if args.one:
        run_pass(*args.one)
        return 0

    emit("ingest_instructions", kind="machine", **machine())
    workload = Workload(seed=args.seed)
    workload.seed_state()
    initial = workload.state.model_dump_json()
    events = list(workload.events(args.events))
    frames = [frame_json(event) for event in events]
    bodies = [event.model_dump_json() for event in events]
    batched = list(batch_frames(bodies, BATCH, 256 * 1024)) if batch_frames else []
    del events, bodies
    with tempfile.TemporaryDirectory(prefix="cadterm-ir-") as tmp:
        path = os.path.join(tmp, "frames.pickle")
        with open(path, "wb") as handle:
            pickle.dump((initial, frames, batched), handle)
        passes = PASSES if batched else PASSES[:-1]
        counts = {mode: instructions(mode, path) for mode in passes}
    per_event = {
        mode: (counts[mode] - counts["setup"]) / args.events for mode in counts if mode != "setup"
    }
    emit(
        "ingest_instructions",
        kind="result",
        events=args.events,
        instructions=counts,
        per_event={mode: round(x) for mode, x in per_event.items()},
        ratio_json_over_full=round(per_event["json"] / per_event["full"], 3),
    )
    print(f"\ningest in instructions: {args.events} frames, each pass less the set-up alone")
    for mode, value in per_event.items():
        print(f"  {mode:7s} {value:>9,.0f} instructions/event")
    print(f"  json/full = {per_event['json'] / per_event['full']:.1%} (instructions, not time)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
