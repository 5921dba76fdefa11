"""Recommendation quality against the simulator's ground truth.

A seeded shift is played offline: the simulator's decisions (`SimCore`) applied through
the server's own rules and fold, on a virtual clock, so it takes seconds. Each time an
incident with coordinates is created, the console's first recommendation (from the
picture it would hold: the units' last AVL fixes) is compared with the truth: among the
capable, free units, the one whose *true* position (where the simulator has it, between
fixes) gives the shortest travel time by the same road-speed model. A pick counts as
right when it is that unit, or ties with it within 5 s of travel.

Target (the gazetteer issue): right in at least 95 % of at least 500 incidents. The
cases it got wrong are listed with both units' travel times, and the old rule (nearest
last fix in a straight line) is scored in the same run as the baseline. The console and
the simulator share the road-speed model, so what this measures is the cost of ranking
on last fixes and of unit speeds, not of the model against real roads.

    .venv/bin/python bench/bench_recommend.py                 # seed 1, until 500 incidents
    .venv/bin/python bench/bench_recommend.py --seed 7 --incidents 1000 --rate 2
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime, timedelta

from _shift import Shift

from cadterm.domain.geography import haversine_km
from cadterm.domain.recommend import NEVER_OFFERED, needs_for, recommend
from cadterm.domain.travel import speed_kmh, travel_seconds
from cadterm.protocol.domain import (
    DEPLOYABLE_STATES,
    Grade,
    Incident,
    IncidentStatus,
    Position,
    Unit,
)
from cadterm.protocol.fold import DispatchState
from cadterm.sim.core import SimCore
from cadterm.sim.force import FORCE, book_on_fields
from cadterm.sim.movement import interpolate
from cadterm.sim.planned import SimSettings
from cadterm.sim.units import Job

START = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)
TIE_SECONDS = 5.0


def true_position(job: Job | None, unit: Unit, now: float) -> Position | None:
    """Where the simulator has the unit now: along its trip, or at its last fix."""
    if job is None or job.origin is None or job.destination is None:
        return unit.position
    if now <= job.depart_at:
        return job.origin
    if now >= job.arrive_at:
        return job.destination
    span = job.arrive_at - job.depart_at
    return interpolate(job.origin, job.destination, (now - job.depart_at) / span)


def true_seconds(core: SimCore, unit: Unit, now: float, target: Position, grade: Grade) -> float:
    """Travel time to `target` from where the unit truly is (infinite when nowhere)."""
    where = true_position(core.units.jobs.get(unit.callsign), unit, now)
    if where is None:
        return float("inf")
    kmh = speed_kmh(unit.unit_type, blue_lights=grade == Grade.EMERGENCY)
    return travel_seconds(where, target, kmh)


def capable_free(state: DispatchState, incident: Incident) -> list[Unit]:
    needs = set(needs_for(incident.incident_type))
    out = []
    for unit in state.units.values():
        committed = state.incidents.get(unit.incident) if unit.incident else None
        if committed is not None and committed.status == IncidentStatus.CLOSED:
            committed = None
        if (
            unit.on_duty
            and unit.state not in NEVER_OFFERED
            and unit.state in DEPLOYABLE_STATES
            and committed is None
            and needs <= set(unit.capabilities)
        ):
            out.append(unit)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--incidents", type=int, default=500)
    parser.add_argument("--rate", type=float, default=1.0, help="calls per simulated minute")
    parser.add_argument("--show", type=int, default=10, help="wrong cases to list")
    args = parser.parse_args()

    shift = Shift(START)
    for spec in FORCE:
        shift.execute("book_on", book_on_fields(spec), 0.0)
    core = SimCore(args.seed, SimSettings(rate=args.rate, auto_dispatch=True))
    judged = right = distance_right = unplaced = nobody = 0
    wrong: list[str] = []
    started = time.perf_counter()
    now = 0.0
    for _ in range(2_000_000):
        if judged >= args.incidents:
            break
        for _ in range(20):
            planned = core.step(now, shift.state)
            if not planned:
                break
            for item in planned:
                event, problem = shift.execute(item.type, dict(item.fields), now)
                core.settle(item, problem)
                if event is None or event.type != "incident_created":
                    continue
                incident = shift.state.incidents[event.reference]
                target = incident.location.position
                if target is None:
                    unplaced += 1
                    continue
                candidates = capable_free(shift.state, incident)
                picks = recommend(
                    shift.state,
                    incident,
                    START + timedelta(seconds=now),
                    needs=needs_for(incident.incident_type),
                )
                free_picks = [p for p in picks if p.diverts_from is None]
                if not candidates or not free_picks:
                    nobody += 1
                    continue

                def truth(unit: Unit, now=now, target=target, grade=incident.grade) -> float:
                    return true_seconds(core, unit, now, target, grade)

                best = min(candidates, key=truth)
                # The old rule in the same run: nearest last fix in a straight line.
                placed = [u for u in candidates if u.position is not None]
                if placed:
                    nearest = min(placed, key=lambda u, t=target: haversine_km(u.position, t))
                    if truth(nearest) - truth(best) <= TIE_SECONDS:
                        distance_right += 1
                chosen = shift.state.units[free_picks[0].callsign]
                judged += 1
                if chosen.callsign == best.callsign or truth(chosen) - truth(best) <= TIE_SECONDS:
                    right += 1
                else:
                    wrong.append(
                        f"{incident.reference} grade {int(incident.grade)} "
                        f"{incident.incident_type}: picked {chosen.callsign} "
                        f"({truth(chosen):.0f} s true, fix {free_picks[0].reason}), "
                        f"best {best.callsign} ({truth(best):.0f} s true)"
                    )
        now = max(core.next_due, now + 1e-3)
    elapsed = time.perf_counter() - started
    share = right / judged if judged else 0.0
    print(f"seed {args.seed}, {args.rate} calls/min, {now / 3600:.1f} simulated hours")
    print(f"incidents judged: {judged} (without coordinates: {unplaced}; no free unit: {nobody})")
    print(f"first pick right: {right} of {judged} = {share:.1%} (target >= 95%)")
    print(
        f"baseline, nearest fix in a straight line: {distance_right} of {judged} = "
        f"{distance_right / judged if judged else 0:.1%}"
    )
    print(f"wrong: {len(wrong)}")
    for line in wrong[: args.show]:
        print(f"  {line}")
    print(f"elapsed: {elapsed:.1f} s")


if __name__ == "__main__":
    main()
