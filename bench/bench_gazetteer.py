"""Gazetteer latency on a force-sized gazetteer: a completion per keystroke, a match per
location entered.

A synthetic force of 50,000 entries (40,000 streets in 200 localities, each a grid of
streets 150 m long that meet at their ends, so names repeat between localities as they
do in a county, and 10,000 places) is written as CSV and read back through the same
strict reader a force's file goes through. Then 1,000 entries, drawn at random, are
typed one keystroke at a time as a dispatcher would ("3", "37", "37 ", "37 O", ... for a
street; the name for a place), with a completion after every keystroke; each finished
text is matched; 1,000 texts the gazetteer does not hold are matched too; and 200
junctions are completed from "junction of A and ". Latencies are p50/p99 per call.

The machine's speed is measured in the same run: `json.loads` of a fixed 1.3 KB document,
per second, so figures from different machines can be compared.

    .venv/bin/python bench/bench_gazetteer.py
    .venv/bin/python bench/bench_gazetteer.py --entries 100000 --typed 2000 --seed 3
"""

from __future__ import annotations

import argparse
import json
import random
import time

from _common import emit, machine, pct, r

from cadterm.domain.gazetteer import Entry, EntryKind, Gazetteer
from cadterm.domain.gazetteer_csv import read_gazetteer_csv, write_gazetteer_csv
from cadterm.domain.geography import offset
from cadterm.protocol.domain import Position

BENCH = "gazetteer"

# Words street and place names are made of, as in a West Riding county.
_STEMS = [
    "Ash",
    "Oak",
    "Elm",
    "Mill",
    "Church",
    "Station",
    "Park",
    "Kings",
    "Queens",
    "Victoria",
    "Albert",
    "Chapel",
    "Bridge",
    "Water",
    "Brook",
    "Moor",
    "Green",
    "Hill",
    "Beech",
    "Cherry",
    "Holly",
    "Rose",
    "Manor",
    "Grange",
    "Abbey",
    "Castle",
    "Priory",
    "Low",
    "High",
    "Market",
    "Farm",
    "Wood",
    "Lea",
    "Dale",
    "Fern",
    "Heath",
    "Meadow",
    "Orchard",
    "Spring",
    "Well",
]
_ENDINGS = ("", "field", "wood", "ley", "ton", "by", "ham", "croft", "gate", "side", "dale")
_STREET_TYPES = [
    "Street",
    "Road",
    "Lane",
    "Avenue",
    "Close",
    "Crescent",
    "Drive",
    "Grove",
    "Terrace",
    "Way",
    "Gardens",
    "Place",
]
_PLACE_TYPES = [
    "Primary School",
    "Academy",
    "Medical Centre",
    "Community Centre",
    "Retail Park",
    "Recreation Ground",
    "Methodist Church",
    "Working Mens Club",
    "Filling Station",
    "Business Park",
]
_GRID = 10  # nodes a side in each locality's street grid
_SPACING_KM = 0.15


def synthetic_force(entries: int, seed: int) -> list[Entry]:
    """A force's gazetteer of about `entries` entries: four in five streets, in localities
    laid out 2.5 km apart, each locality a grid of streets meeting at their ends."""
    rng = random.Random(seed)
    stems = [stem + ending.lower() for stem in _STEMS for ending in _ENDINGS]
    street_names = [f"{stem} {kind}" for stem in stems for kind in _STREET_TYPES]
    streets_each = 2 * _GRID * (_GRID - 1)
    places_each = streets_each // 4
    localities = -(-entries // (streets_each + places_each))
    out: list[Entry] = []
    origin = Position(lat=53.6, lon=-1.9)
    for n in range(localities):
        locality = f"{rng.choice(stems)} {n}"
        corner = offset(origin, (n // 20) * 2.5, (n % 20) * 2.5)
        names = iter(rng.sample(street_names, streets_each))

        def node(row: int, col: int, corner: Position = corner) -> Position:
            return offset(corner, row * _SPACING_KM, col * _SPACING_KM)

        for row in range(_GRID):
            for col in range(_GRID - 1):
                for start, end in (
                    (node(row, col), node(row, col + 1)),
                    (node(col, row), node(col + 1, row)),
                ):
                    first = rng.randrange(1, 20)
                    out.append(
                        Entry(
                            EntryKind.STREET,
                            next(names),
                            start,
                            sector=f"Sector {n % 12}",
                            end=end,
                            first_house=first,
                            last_house=first + rng.randrange(10, 120),
                            locality=locality,
                        )
                    )
        for p in range(places_each):
            out.append(
                Entry(
                    EntryKind.PLACE,
                    f"{rng.choice(stems)} {rng.choice(_PLACE_TYPES)} {p}",
                    node(rng.randrange(_GRID), rng.randrange(_GRID)),
                    sector=f"Sector {n % 12}",
                    locality=locality,
                )
            )
    return out[:entries]


def keystrokes(text: str) -> list[str]:
    """Every prefix of `text`, as the command line holds it after each key."""
    return [text[:i] for i in range(1, len(text) + 1)]


def timed(call, *args) -> float:
    start = time.perf_counter()
    call(*args)
    return (time.perf_counter() - start) * 1e6


def json_loads_per_second(seconds: float = 1.0) -> float:
    """Machine speed: `json.loads` of a fixed 1.3 KB document, per second."""
    document = json.dumps(
        {
            "type": "event",
            "seq": 123456,
            "payload": {f"field{i}": [i, f"value {i}", {"x": i / 7}] for i in range(24)},
        }
    )
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(500):
            json.loads(document)
        count += 500
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--typed", type=int, default=1_000, help="entries typed in full")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    emit(BENCH, kind="machine", **machine(), json_loads_per_s=round(json_loads_per_second()))

    entries = synthetic_force(args.entries, args.seed)
    text = write_gazetteer_csv(entries)
    start = time.perf_counter()
    gazetteer = read_gazetteer_csv(text, source="synthetic")
    load_s = time.perf_counter() - start
    start = time.perf_counter()
    Gazetteer(gazetteer.entries)
    build_s = time.perf_counter() - start
    streets = sum(1 for e in gazetteer.entries if e.kind is EntryKind.STREET)
    emit(
        BENCH,
        kind="load",
        entries=len(gazetteer),
        streets=streets,
        junctions=len(gazetteer.junctions),
        csv_bytes=len(text.encode()),
        read_csv_and_build_s=r(load_s),
        build_index_only_s=r(build_s),
    )

    rng = random.Random(args.seed)
    typed = rng.sample(gazetteer.entries, min(args.typed, len(gazetteer)))
    finals: list[str] = []
    complete_us: list[float] = []
    found_own = 0
    for entry in typed:
        label = gazetteer.complete(f"{entry.name}, {entry.locality}", limit=1)[0]
        final = label
        if entry.kind is EntryKind.STREET and entry.first_house is not None:
            final = f"{rng.randint(entry.first_house, entry.last_house)} {label}"
        finals.append(final)
        for prefix in keystrokes(final):
            complete_us.append(timed(gazetteer.complete, prefix, 10))
        found_own += final in gazetteer.complete(final)
    match_us = [timed(gazetteer.match, final) for final in finals]
    matched = sum(1 for final in finals if gazetteer.match(final) is not None)
    misses = [f"{rng.randint(1, 300)} Nonesuch {rng.choice(_STREET_TYPES)}" for _ in finals]
    miss_us = [timed(gazetteer.match, text) for text in misses]
    junctions = rng.sample(gazetteer.junctions, min(200, len(gazetteer.junctions)))
    junction_us = [
        timed(
            gazetteer.complete,
            f"junction of {j.first.name}, {j.first.locality} and ",
            10,
        )
        for j in junctions
    ]
    short_us = [timed(gazetteer.complete, letter, 10) for letter in "abcdefghijklmnopqrstuvwxyz"]

    def figures(values: list[float]) -> dict[str, float]:
        return {"n": len(values), "p50_us": r(pct(values, 50), 1), "p99_us": r(pct(values, 99), 1)}

    emit(BENCH, kind="complete_per_keystroke", **figures(complete_us))
    emit(BENCH, kind="complete_one_letter", **figures(short_us))
    emit(BENCH, kind="complete_junction", **figures(junction_us))
    emit(BENCH, kind="match_known", **figures(match_us), matched=matched, of=len(finals))
    emit(BENCH, kind="match_unknown", **figures(miss_us))
    print(
        f"\n{len(gazetteer):,} entries ({streets:,} streets, {len(gazetteer.junctions):,} "
        f"junctions): read CSV and build {load_s:.2f} s (index alone {build_s:.2f} s)\n"
        f"complete per keystroke: p50 {pct(complete_us, 50):.0f} us, "
        f"p99 {pct(complete_us, 99):.0f} us over {len(complete_us):,} keystrokes "
        f"(own text offered {found_own}/{len(typed)})\n"
        f"complete one letter: p99 {pct(short_us, 99):.0f} us; junction: "
        f"p99 {pct(junction_us, 99):.0f} us\n"
        f"match: p50 {pct(match_us, 50):.0f} us, p99 {pct(match_us, 99):.0f} us "
        f"({matched}/{len(finals)} matched); unknown text p99 {pct(miss_us, 99):.0f} us"
    )


if __name__ == "__main__":
    main()
