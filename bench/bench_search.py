"""History search on a year of closed incidents: the store call and the HTTP request.

50,000 calls are drawn as the simulator draws them (Brackley's streets and places,
types by grade, callers with names and phones, the call's own words), and each becomes a
closed incident through the server's own code: its events (opened, a unit assigned and
at scene, a note, closed) folded by `cadterm.protocol.fold`, then archived with
`IncidentHistory.keep` in the event store's SQLite file, as the archivist does. About
ten minutes apart, they cover a year.

Then at least 1,000 searches of mixed kinds, drawn from what was stored, are timed: a
reference, an address (house number and the start of the street), a caller's surname,
a phone with and without its space, two words of the description, a word of a note, a
street name alone (the broadest), and words that match nothing. Each is timed twice:
the store call (`IncidentHistory.search`, limit 50), and the HTTP request
(`GET /v1/history/search` over a kept-alive connection to a real server on loopback,
reading the same file). The target (issue 16): under 100 ms on the server.

    .venv/bin/python bench/bench_search.py
    .venv/bin/python bench/bench_search.py --incidents 10000 --queries 2000 --seed 3
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from _common import TOKENS, bench_config, emit, machine, pct, r, scratch_dir
from _speed import machine_speed

from cadterm.domain.rules import next_reference
from cadterm.protocol.domain import Incident, Role, SourceChannel, UnitState, UnitType
from cadterm.protocol.events import (
    IncidentClosed,
    IncidentCreated,
    IncidentsArchived,
    NoteAdded,
    UnitAssigned,
    UnitBookedOn,
    UnitStateChanged,
)
from cadterm.protocol.fold import DispatchState, apply
from cadterm.server.embedded import EmbeddedBackend
from cadterm.server.store.history import ArchiveRow, IncidentHistory
from cadterm.sim.calls import call_rng, draw_call

BENCH = "search"
START = datetime(2025, 12, 1, 0, 0, tzinfo=UTC)

#: What officers report back, as a note in the chronology.
_NOTES = (
    "Spoke to the caller, no further concerns",
    "Suspect left on foot towards the park",
    "Ambulance requested for the driver",
    "Neighbour saw a white van leave at speed",
    "CCTV requested from the corner shop",
    "Door secured by the keyholder",
    "Words of advice given to both parties",
    "Dog handler searched the gardens, negative",
    "Vehicle recovered by the garage",
    "Crime reference given to the victim",
)
_UNITS = [f"BK{n:02d}" for n in range(1, 41)]
_MISSES = ("zebra crossing", "submarine", "07999 123456", "9999-01JAN99", "quartermaster")


def build(path: Path, count: int, seed: int) -> list[Incident]:
    """`count` closed incidents in the history at `path`; return them (for the queries)."""
    rng = call_rng(seed)
    state = DispatchState()
    seq = 0

    def fold(cls, **fields) -> None:
        nonlocal seq
        seq += 1
        fields.setdefault("operator", "disp1")
        fields.setdefault("workstation", "CR1-WS01")
        apply(state, cls(seq=seq, **fields))

    for callsign in _UNITS:
        fold(UnitBookedOn, at=START, callsign=callsign, unit_type=UnitType.PATROL_CAR)
    kept: list[Incident] = []
    batch: list[ArchiveRow] = []
    with IncidentHistory(path) as history:
        for n in range(count):
            call = draw_call(rng, float(n))
            at = START + timedelta(minutes=10.5 * n)
            reference = next_reference(state, at.date())
            unit = _UNITS[n % len(_UNITS)]
            fold(
                IncidentCreated,
                at=at,
                reference=reference,
                grade=call.grade,
                incident_type=call.incident_type,
                description=call.description,
                location=call.location,
                caller=call.caller,
                source=call.source or SourceChannel.EMERGENCY_999,
            )
            fold(UnitAssigned, at=at + timedelta(minutes=2), reference=reference, callsign=unit)
            fold(UnitStateChanged, at=at + timedelta(minutes=9), callsign=unit, state=6)
            fold(
                NoteAdded,
                at=at + timedelta(minutes=20),
                reference=reference,
                text=rng.choice(_NOTES),
            )
            fold(
                IncidentClosed,
                at=at + timedelta(minutes=30),
                reference=reference,
                closing_code=rng.choice(("RESOLVED", "ADVICE", "NFA", "CRIME")),
            )
            incident = state.incidents[reference]
            batch.append(ArchiveRow.of(incident))
            kept.append(incident)
            fold(IncidentsArchived, at=at + timedelta(minutes=31), references=[reference])
            if len(batch) == 1000:
                history.keep(batch)
                batch = []
        history.keep(batch)
        assert history.count() == count
    assert all(u.state != UnitState.AT_SCENE for u in state.units.values())
    return kept


def queries(incidents: list[Incident], count: int, seed: int) -> list[tuple[str, str]]:
    """`count` searches, (kind, words), drawn from the stored incidents."""
    rng = random.Random(f"bench-search/{seed}")
    kinds: dict[str, Callable[[Incident], str | None]] = {
        "reference": lambda i: i.reference,
        "address": lambda i: _address(i),
        "caller": lambda i: i.caller.name.split()[-1] if i.caller and i.caller.name else None,
        "phone": lambda i: i.caller.phone if i.caller and i.caller.phone else None,
        "phone digits": lambda i: (
            "".join(c for c in i.caller.phone if c.isdigit())
            if i.caller and i.caller.phone
            else None
        ),
        "description": lambda i: " ".join(i.description.split()[:2]) or None,
        "note": lambda i: i.chronology[-2].text.split()[-1],
        "street alone": lambda i: _street(i),
        "miss": lambda i: rng.choice(_MISSES),
    }
    out: list[tuple[str, str]] = []
    names = list(kinds)
    while len(out) < count:
        kind = names[len(out) % len(names)]
        words = kinds[kind](rng.choice(incidents))
        if words:
            out.append((kind, words))
    rng.shuffle(out)
    return out


def _digits(incident: Incident) -> str | None:
    phone = incident.caller.phone if incident.caller else None
    return "".join(c for c in phone if c.isdigit()) if phone else None


def _address(incident: Incident) -> str | None:
    words = incident.location.address.split(",")[0].split()
    if len(words) < 2 or not words[0].isdigit():
        return None
    return f"{words[0]} {words[1][:4]}"


def _street(incident: Incident) -> str | None:
    words = incident.location.address.split(",")[0].split()
    return " ".join(w for w in words if not w.isdigit()) or None


def summary(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        kind: {"n": len(ms), "p50_ms": r(pct(ms, 50)), "p99_ms": r(pct(ms, 99))}
        for kind, ms in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    emit(BENCH, kind="machine", **machine(), **machine_speed())

    with scratch_dir("cadterm-bench-search-") as scratch:
        path = Path(scratch) / "cad.db"
        started = time.perf_counter()
        incidents = build(path, args.incidents, args.seed)
        emit(
            BENCH,
            kind="history",
            incidents=len(incidents),
            build_s=r(time.perf_counter() - started, 1),
            file_mb=r(path.stat().st_size / 1e6, 1),
        )
        asked = queries(incidents, args.queries, args.seed)
        del incidents

        store_ms: dict[str, list[float]] = defaultdict(list)
        found: dict[str, list[int]] = defaultdict(list)
        with IncidentHistory(path) as history:
            for kind, words in asked:
                t0 = time.perf_counter()
                page = history.search(words, limit=50)
                store_ms[kind].append((time.perf_counter() - t0) * 1000)
                found[kind].append(len(page.incidents))
        store_ms["all"] = [ms for kind in list(store_ms) for ms in store_ms[kind]]

        http_ms: dict[str, list[float]] = defaultdict(list)
        backend = EmbeddedBackend(path, config=bench_config())
        backend.start()
        try:
            headers = {"Authorization": f"Bearer {TOKENS[Role.DISPATCHER]}"}
            with httpx.Client(base_url=backend.url, headers=headers, timeout=30) as http:
                http.get("/v1/history/search", params={"q": "warm up"}).raise_for_status()
                for kind, words in asked:
                    t0 = time.perf_counter()
                    response = http.get("/v1/history/search", params={"q": words, "limit": 50})
                    http_ms[kind].append((time.perf_counter() - t0) * 1000)
                    response.raise_for_status()
        finally:
            backend.close()
        http_ms["all"] = [ms for kind in list(http_ms) for ms in http_ms[kind]]

    matches = {kind: sorted(n)[len(n) // 2] for kind, n in found.items()}
    emit(BENCH, kind="store", queries=len(asked), **{"by_kind": summary(store_ms)})
    emit(BENCH, kind="http", queries=len(asked), **{"by_kind": summary(http_ms)})
    emit(BENCH, kind="matches_median", **matches)
    emit(BENCH, kind="machine_end", **machine_speed())
    print(
        f"\n{args.incidents:,} archived incidents, {len(asked):,} searches of "
        f"{len(store_ms) - 1} kinds (target: under 100 ms on the server)"
    )
    print(f"{'kind':<14}{'store p50':>10}{'p99':>8}{'http p50':>10}{'p99':>8}  median found")
    for kind in [*sorted(k for k in store_ms if k != "all"), "all"]:
        s, h = store_ms[kind], http_ms[kind]
        print(
            f"{kind:<14}{pct(s, 50):>10.2f}{pct(s, 99):>8.2f}{pct(h, 50):>10.2f}{pct(h, 99):>8.2f}"
            f"  {matches.get(kind, '')}"
        )


if __name__ == "__main__":
    main()
