"""Duplicate-call detection against the simulator's ground truth.

A seeded shift is played offline, as in bench_recommend: the simulator's decisions
(`SimCore`, with `repeat_share` further calls about incidents already rung in) applied
through the server's own rules and fold on a virtual clock, with the virtual dispatcher
resourcing and closing incidents as the shift goes on. Each time a call becomes an
incident, the console's duplicate check (`cadterm.domain.duplicates.likely_duplicates`,
as the call form and the board run it) is asked which open incidents it may repeat.

The simulator marks each further call with the call it repeats, so every offer is
judged: true when the offered incident is the same underlying incident (the original
or another further call about it), false otherwise. Reported: how many repeats were
offered their incident for linking (first offer, or any of the form's three), how many
could not be (their incident already closed when the call came), and the false offers.

    .venv/bin/python bench/bench_duplicates.py                      # seed 1, 8 h, 15 % repeats
    .venv/bin/python bench/bench_duplicates.py --seed 7 --hours 12 --repeat-share 0.2
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from _shift import Shift

from cadterm.domain.duplicates import DuplicatePolicy, NewCall, likely_duplicates
from cadterm.domain.geography import haversine_km
from cadterm.protocol.domain import IncidentStatus
from cadterm.sim.core import SimCore
from cadterm.sim.force import FORCE, book_on_fields
from cadterm.sim.planned import SimSettings

START = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
SHOWN = 3  # the call form lists three possible duplicates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hours", type=float, default=8.0, help="simulated hours")
    parser.add_argument("--rate", type=float, default=1.0, help="calls per simulated minute")
    parser.add_argument("--repeat-share", type=float, default=0.15)
    parser.add_argument("--metres", type=float, default=200.0)
    parser.add_argument("--minutes", type=float, default=30.0, help="time window")
    parser.add_argument(
        "--any-type", action="store_true", help="offer a place match whatever its type"
    )
    args = parser.parse_args()
    policy = DuplicatePolicy(
        metres=args.metres, window=timedelta(minutes=args.minutes), same_type=not args.any_type
    )

    shift = Shift(START)
    for spec in FORCE:
        shift.execute("book_on", book_on_fields(spec), 0.0)
    core = SimCore(
        args.seed,
        SimSettings(rate=args.rate, auto_dispatch=True, repeat_share=args.repeat_share),
    )
    group: dict[str, int] = {}  # incident reference -> the call number it is about
    counts: Counter[str] = Counter()
    false_reasons: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    started = time.perf_counter()
    now, end = 0.0, args.hours * 3600
    while now <= end:
        for _ in range(20):
            planned = core.step(now, shift.state)
            if not planned:
                break
            creates_before = core.calls_made - sum(p.type == "create_incident" for p in planned)
            for item in planned:
                event, problem = shift.execute(item.type, dict(item.fields), now)
                core.settle(item, problem)
                if item.type == "create_incident":
                    creates_before += 1
                if event is None or event.type != "incident_created":
                    continue
                call = core.calls[creates_before - 1]
                about = call.repeat_of or creates_before
                judge(shift.state, event.reference, call, about, group, policy, counts,
                      false_reasons, missed)  # fmt: skip
                group[event.reference] = about
        now = max(core.next_due, now + 1e-3)
    elapsed = time.perf_counter() - started

    repeats = counts["repeats"]
    print(
        f"seed {args.seed}, {args.rate} calls/min, {args.hours:g} simulated hours, "
        f"repeat share {args.repeat_share:g}; policy {args.metres:g} m, {args.minutes:g} min, "
        f"{'any type' if args.any_type else 'same type'} for a place match, same phone 12 h"
    )
    print(f"calls: {counts['calls']} ({repeats} repeats, marked by the simulator)")
    print(
        f"repeats whose incident was still open: {counts['open_original']} "
        f"(closed before the repeat came: {repeats - counts['open_original']})"
    )
    print(
        f"offered for linking: first offer {counts['first']} of {counts['open_original']}, "
        f"among the {SHOWN} shown {counts['shown']} of {counts['open_original']}"
    )
    print(f"repeats not offered although open: {dict(missed)}")
    print(
        f"false offers: {counts['false']} (on {counts['calls_with_false']} of "
        f"{counts['calls']} calls; as first offer on {counts['false_first']} calls)"
    )
    print(f"false offers by first reason: {dict(false_reasons)}")
    print(f"elapsed: {elapsed:.1f} s; load average {os.getloadavg()}")


def judge(state, reference, call, about, group, policy, counts, false_reasons, missed) -> None:
    """Score the duplicate check's offers for one new incident against the truth."""
    incident = state.incidents[reference]
    new = NewCall(
        at=incident.created_at,
        address=incident.location.address,
        position=incident.location.position,
        phone=incident.caller.phone if incident.caller else None,
        incident_type=incident.incident_type,
        reference=reference,
    )
    offers = likely_duplicates(new, state.incidents.values(), policy)[:SHOWN]
    counts["calls"] += 1
    truth = {ref for ref, number in group.items() if number == about}
    if call.repeat_of is not None:
        counts["repeats"] += 1
        still_open = {r for r in truth if state.incidents[r].status != IncidentStatus.CLOSED}
        if still_open:
            counts["open_original"] += 1
            if offers and offers[0].reference in still_open:
                counts["first"] += 1
            if any(o.reference in still_open for o in offers):
                counts["shown"] += 1
            else:
                missed[_why_missed(incident, [state.incidents[r] for r in still_open], policy)] += 1
    false = [o for o in offers if o.reference not in truth]
    counts["false"] += len(false)
    counts["calls_with_false"] += bool(false)
    counts["false_first"] += bool(offers) and offers[0].reference not in truth
    for offer in false:
        first = offer.reasons[0]
        false_reasons["within the distance" if first.endswith(" m away") else first] += 1


def _why_missed(incident, originals, policy) -> str:
    """Why a repeat of an open incident was not offered: what kept them apart."""
    here = incident.location.position
    if here is None or all(o.location.position is None for o in originals):
        return "no position, different words"
    metres = min(
        haversine_km(here, o.location.position) * 1000
        for o in originals
        if o.location.position is not None
    )
    if metres > policy.metres:
        return f"over {policy.metres:g} m apart"
    if policy.same_type and all(o.incident_type != incident.incident_type for o in originals):
        return "another type, another phone"
    return f"over {policy.window.total_seconds() / 60:g} min apart"


if __name__ == "__main__":
    main()
