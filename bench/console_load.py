"""A large dispatch picture and a stream of events for it, for the console benchmarks.

Not a benchmark itself. `big_picture` builds 10,000 open incidents and 2,000 units by
folding real protocol events; `EventStream` yields further events valid in sequence
after it: unit moves, state changes, notes (some on the incidents at the top of the
queue, where the operator is looking) and grade changes that reorder the queue.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from cadterm.protocol.domain import UnitState
from cadterm.protocol.events import (
    Event,
    IncidentCreated,
    IncidentGraded,
    IncidentRelocated,
    NoteAdded,
    UnitBookedOn,
    UnitLocated,
    UnitStateChanged,
)
from cadterm.protocol.fold import DispatchState, apply

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
SECTORS = ["North", "South", "East", "West", "City", "Airport", "Docks", "Hills"]
TYPES = ["THEFT", "ASB", "BURGLARY", "CONCERN", "RTC", "ASSAULT", "DOMESTIC", "CRIMDAM"]
STREETS = ["High Street", "Station Road", "Kirkgate", "Boar Lane", "Park Lane", "Mill Road"]


def _base(seq: int) -> dict:
    return {
        "seq": seq,
        "at": START + timedelta(milliseconds=seq),
        "operator": "bench",
        "workstation": "bench",
    }


def big_picture(incidents: int = 10_000, units: int = 2_000, seed: int = 1) -> DispatchState:
    """The picture after booking on `units` and opening `incidents`."""
    rng = random.Random(seed)
    state = DispatchState()
    seq = 0
    for i in range(units):
        seq += 1
        apply(
            state,
            UnitBookedOn(
                **_base(seq),
                callsign=f"{SECTORS[i % 8][:2].upper()}{i:04d}",
                unit_type="patrol_car",
                home_sector=SECTORS[i % 8],
                position={
                    "lat": 53.8 + rng.uniform(-0.1, 0.1),
                    "lon": -1.55 + rng.uniform(-0.1, 0.1),
                },
            ),
        )
    for i in range(incidents):
        seq += 1
        apply(
            state,
            IncidentCreated(
                **_base(seq),
                reference=f"{i + 1:04d}-27NOV26",
                log_day=START.date(),
                grade=rng.choices([1, 2, 3, 4], weights=[5, 30, 45, 20])[0],
                incident_type=rng.choice(TYPES),
                location={
                    "address": f"{rng.randint(1, 300)} {rng.choice(STREETS)}",
                    "position": {"lat": 53.8, "lon": -1.55},
                    "sector": rng.choice(SECTORS),
                },
                source="999",
            ),
        )
    return state


class EventStream:
    """Events valid after `state`, chosen with a seed; `watched` incidents get notes.

    Which incidents are "watched" (on screen) is set by the benchmark once the board is
    laid out, so a known share of events touches rows the operator can see.
    """

    def __init__(self, state: DispatchState, seed: int = 2, watched_share: float = 0.3):
        self.rng = random.Random(seed)
        self.seq = state.seq
        self.callsigns = list(state.units)
        self.references = list(state.incidents)
        self.grades = {ref: int(inc.grade) for ref, inc in state.incidents.items()}
        self.unit_states = {c: u.state for c, u in state.units.items()}
        self.watched: list[str] = []
        self.watched_share = watched_share

    def __iter__(self) -> Iterator[tuple[Event, str | None]]:
        """Yield (event, watched incident whose row it visibly changes, or None)."""
        rng = self.rng
        while True:
            self.seq += 1
            base = _base(self.seq)
            roll = rng.random()
            if self.watched and roll < self.watched_share:
                # A change the operator can see on the row: the address is corrected.
                reference = rng.choice(self.watched)
                address = f"{rng.randint(1, 300)} {rng.choice(STREETS)}"
                location = {"address": address, "position": {"lat": 53.8, "lon": -1.55}}
                yield IncidentRelocated(**base, reference=reference, location=location), reference
            elif roll < 0.65:
                callsign = rng.choice(self.callsigns)
                position = {
                    "lat": 53.8 + rng.uniform(-0.1, 0.1),
                    "lon": -1.55 + rng.uniform(-0.1, 0.1),
                }
                yield (
                    UnitLocated(**base, callsign=callsign, position=position, fixed_at=base["at"]),
                    None,
                )
            elif roll < 0.8:
                callsign = rng.choice(self.callsigns)
                new = (
                    UnitState.AVAILABLE_AT_STATION
                    if self.unit_states[callsign] == UnitState.AVAILABLE_ON_PATROL
                    else UnitState.AVAILABLE_ON_PATROL
                )
                self.unit_states[callsign] = new
                yield UnitStateChanged(**base, callsign=callsign, state=new), None
            elif roll < 0.9:
                reference = rng.choice(self.references)
                yield NoteAdded(**base, reference=reference, text="routine update"), None
            else:
                reference = rng.choice(self.references)
                grade = 3 if self.grades[reference] == 4 else 4
                if self.grades[reference] in (1, 2) or reference in self.watched:
                    yield NoteAdded(**base, reference=reference, text="routine update"), None
                    continue
                self.grades[reference] = grade
                yield IncidentGraded(**base, reference=reference, grade=grade), None
