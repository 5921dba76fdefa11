"""The supervisor board's recount: how long `room_summary` takes on a big picture.

The board counts the whole picture again once a second, on the console's event loop,
while it is shown; every millisecond it takes is a millisecond the console cannot
answer a key. This builds pictures through the real fold (open incidents with a few
chronology lines each, a third of them resourced, closed ones in the window, units in
five sectors, several operators) and times `room_summary` on each, best and median of
repeated runs, next to the machine's speed measured in the same run.

    .venv/bin/python bench/bench_room_summary.py
    .venv/bin/python bench/bench_room_summary.py --sizes 1000 20000 --repeat 20
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from _common import emit, machine, r
from _speed import machine_speed

from cadterm.domain.room_summary import room_summary
from cadterm.protocol.domain import Location, Position
from cadterm.protocol.events import (
    Event,
    IncidentClosed,
    IncidentCreated,
    NoteAdded,
    UnitAssigned,
    UnitBookedOn,
)
from cadterm.protocol.fold import DispatchState, fold

NOW = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
SECTORS = ("North", "South", "East", "West", "City Centre")


def picture(incidents: int, units: int, seed: int = 1) -> DispatchState:
    """`incidents` open incidents (plus a fifth as many closed) and `units` units."""
    rng = random.Random(seed)
    events: list[Event] = []

    def add(cls: type, minutes_ago: float, **fields: object) -> None:
        events.append(
            cls(
                seq=len(events) + 1,
                at=NOW - timedelta(minutes=minutes_ago),
                operator=f"disp{rng.randrange(8)}",
                workstation=f"ws-{rng.randrange(8)}",
                **fields,
            )
        )

    for n in range(units):
        add(
            UnitBookedOn,
            600,
            callsign=f"U{n:05d}",
            unit_type="patrol_car",
            home_sector=SECTORS[n % len(SECTORS)],
            position=Position(lat=53.8, lon=-1.55),
        )
    total = incidents + incidents // 5
    for n in range(total):
        reference = f"{n + 1:05d}-01DEC26"
        add(
            IncidentCreated,
            rng.uniform(0, 360),
            reference=reference,
            grade=rng.choice((1, 2, 2, 3, 3, 3, 4, 5)),
            incident_type="CONCERN",
            location=Location(address=f"{n} High Street", sector=rng.choice(SECTORS)),
            source="999",
        )
        for _ in range(3):
            add(NoteAdded, rng.uniform(0, 300), reference=reference, text="update from caller")
        if n < units and n % 3 == 0:
            add(UnitAssigned, rng.uniform(0, 60), reference=reference, callsign=f"U{n:05d}")
        if n >= incidents:
            add(IncidentClosed, rng.uniform(0, 60), reference=reference, closing_code="NFA")
    return fold(events)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--units", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    emit("room_summary", kind="machine", **machine(), **machine_speed())
    minimums = {sector: 5 for sector in SECTORS}
    rows = []
    for size in args.sizes:
        state = picture(size, args.units)
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            summary = room_summary(state, NOW, minimums=minimums)
            times.append(time.perf_counter() - started)
        best, median = min(times) * 1000, statistics.median(times) * 1000
        emit(
            "room_summary",
            kind="recount",
            open_incidents=summary.open_total,
            incidents_in_picture=len(state.incidents),
            units=len(state.units),
            best_ms=r(best, 2),
            median_ms=r(median, 2),
            loadavg=[round(x, 2) for x in os.getloadavg()],
        )
        rows.append((summary.open_total, len(state.incidents), best, median))
    print()
    print("open incidents  in picture  best ms  median ms")
    for open_total, held, best, median in rows:
        print(f"{open_total:>14}  {held:>10}  {best:>7.1f}  {median:>9.1f}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
