"""CAD-down mode: what showing waiting commands on a large picture costs the console.

While no backend answers, a console runs every waiting command through the dispatch
rules on a copy of its picture, and does it again after each new command
(`cadterm.client.provisional`). The copy is made on write: only what an action may
touch is copied. This bench times that recompute on a picture of `--incidents` open
incidents and `--units` units, for 1, 10, 50 and 200 waiting commands (notes, unit
states, assignments and new incidents, in turn), against the baseline of copying the
whole picture once (`model_copy(deep=True)`), the naive way, measured in the same run.

Run:  .venv/bin/python bench/bench_provisional.py [--incidents 10000] [--units 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _common import emit, machine
from _speed import machine_speed
from console_load import big_picture

from cadterm.client.provisional import provisional_picture
from cadterm.protocol.commands import Command
from cadterm.protocol.domain import Operator, Role, UnitState
from cadterm.protocol.drafts import draft
from cadterm.protocol.fold import DispatchState

BENCH = "provisional"
OPERATOR = Operator(id="disp1", name="Dispatcher", role=Role.DISPATCHER)


def waiting_commands(state: DispatchState, count: int) -> list[Command]:
    """`count` commands as typed offline, valid on `state` one after the other."""
    at = datetime.now(UTC)
    references, callsigns = list(state.incidents), list(state.units)
    made: list[Command] = []
    for n in range(count):
        reference, callsign = references[n % len(references)], callsigns[n]
        kind = n % 4
        if kind == 0:
            command = draft("add_note", reference=reference, text=f"caller rang back {n}")
        elif kind == 1:
            command = draft("set_unit_state", callsign=callsign, state=int(UnitState.REFRESHMENTS))
        elif kind == 2:
            command = draft("assign_unit", reference=reference, callsign=callsign, divert=True)
        else:
            command = draft(
                "create_incident",
                grade=2,
                incident_type="RTC",
                location={"address": f"{n} Mill Road"},
            )
        keyed = command.keyed(f"bench-key-{n:06d}", "ws-bench")
        made.append(keyed.model_copy(update={"taken_at": at}))
    return made


def timed(work, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--units", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    speed = machine_speed()
    state = big_picture(args.incidents, args.units)
    emit(BENCH, **machine(), **speed, incidents=args.incidents, units=args.units)
    copy = timed(lambda: state.model_copy(deep=True), max(3, args.rounds // 4))
    emit(BENCH, case="deep copy of the picture (baseline)", ms=round(min(copy) * 1000, 2))
    summary = [f"deep copy of the picture: {min(copy) * 1000:.1f} ms (baseline)"]
    for count in (1, 10, 50, 200):
        commands = waiting_commands(state, count)
        picture = provisional_picture(state, commands, OPERATOR)
        applied = sum(action.event is not None for action in picture.actions)
        times = timed(lambda c=commands: provisional_picture(state, c, OPERATOR), args.rounds)
        median = statistics.median(times) * 1000
        emit(
            BENCH,
            case=f"{count} waiting",
            applied=applied,
            median_ms=round(median, 3),
            max_ms=round(max(times) * 1000, 3),
            touched_incidents=len(picture.incidents),
            touched_units=len(picture.units),
        )
        summary.append(f"{count:>3} waiting ({applied} applied): median {median:.2f} ms")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
