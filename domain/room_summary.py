"""The control room at a glance: the figures a supervisor's board shows.

Pure code over the picture: no I/O and no clock reads (the caller passes ``now``).
`room_summary` counts open incidents by grade (waiting for resources, resourced,
breached against their attendance target), lists the breaches oldest first, counts the
units available in each sector against the minimum the room wants there, sums each
operator's workload from the incidents' chronologies, and counts new incidents in
equal time buckets over the last hours (demand).

What "the picture" holds bounds what can be counted: open incidents, and closed ones
only for the server's closed window (a 12-hour shift by default), so demand over the
last hours counts every incident raised in them as long as the window is longer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cadterm.protocol.domain import AVAILABLE_STATES, Grade, IncidentStatus
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import known_time

from .timers import DEFAULT_POLICY, Level, TimerPolicy, attendance_alert

__all__ = [
    "NO_SECTOR",
    "Breach",
    "GradeCount",
    "RoomSummary",
    "SectorCover",
    "Workload",
    "room_summary",
]

#: The sector name for units with no home sector.
NO_SECTOR = "(none)"


@dataclass(frozen=True)
class GradeCount:
    """Open incidents of one grade.

    ``waiting`` have no unit assigned (status open), ``resourced`` have one (resourced
    or at scene), ``breached`` are past their attendance target with nobody at scene.
    ``waiting + resourced == total``; a breached incident is also waiting or resourced.
    """

    grade: Grade
    total: int = 0
    waiting: int = 0
    resourced: int = 0
    breached: int = 0


@dataclass(frozen=True)
class Breach:
    """An open incident past its attendance target with nobody at scene yet."""

    reference: str
    grade: Grade
    incident_type: str
    address: str
    age: timedelta
    over_by: timedelta  # how far past the target
    resourced: bool  # a unit is on its way


@dataclass(frozen=True)
class SectorCover:
    """Units in one sector: available now against the minimum the room wants."""

    sector: str
    available: int
    on_duty: int
    minimum: int

    @property
    def short(self) -> bool:
        """Fewer available than the minimum."""
        return self.available < self.minimum


@dataclass(frozen=True)
class Workload:
    """What one operator has in hand, read from the chronologies in the picture.

    ``open_incidents``: open incidents whose chronology has an entry of theirs.
    ``latest``: those where theirs is the newest entry (they were the last to act).
    ``actions``: their chronology entries in the demand window, on any incident.
    """

    operator: str
    workstations: tuple[str, ...]
    open_incidents: int
    latest: int
    actions: int


@dataclass(frozen=True)
class RoomSummary:
    """Everything on the supervisor's board, at `now`."""

    now: datetime
    grades: tuple[GradeCount, ...]
    breaches: tuple[Breach, ...]
    sectors: tuple[SectorCover, ...]
    workloads: tuple[Workload, ...]
    bucket: timedelta
    demand: tuple[int, ...]  # new incidents per bucket, oldest first, the last ends at now
    demand_by_grade: Mapping[Grade, tuple[int, ...]] = field(default_factory=dict)

    @property
    def open_total(self) -> int:
        """Open incidents of every grade."""
        return sum(g.total for g in self.grades)

    @property
    def breached_total(self) -> int:
        """Breached incidents of every grade."""
        return sum(g.breached for g in self.grades)


def room_summary(
    state: DispatchState,
    now: datetime,
    *,
    policy: TimerPolicy = DEFAULT_POLICY,
    minimums: Mapping[str, int] | None = None,
    hours: int = 6,
    bucket: timedelta = timedelta(minutes=30),
) -> RoomSummary:
    """The board's figures for the picture `state` at `now`.

    `minimums` maps a sector to the fewest available units the room wants in it
    (compared without case); sectors with units or a minimum are all listed. Demand
    counts incidents created in the `hours` before `now`, in buckets of `bucket`.
    """
    if bucket <= timedelta(0) or hours <= 0:
        raise ValueError("demand needs a positive number of hours and a positive bucket")
    buckets = max(1, int(timedelta(hours=hours) / bucket))
    start = now - bucket * buckets
    counts = {grade: [0, 0, 0, 0] for grade in Grade}  # total, waiting, resourced, breached
    breaches: list[Breach] = []
    demand = [0] * buckets
    by_grade = {grade: [0] * buckets for grade in Grade}
    touched: dict[str, set[str]] = {}
    latest: dict[str, int] = {}
    actions: dict[str, int] = {}
    desks: dict[str, set[str]] = {}

    for incident in state.incidents.values():
        grade = Grade(incident.grade)
        created = known_time(incident.created_at)
        if created is not None and start <= created < now:
            index = int((created - start) / bucket)
            demand[index] += 1
            by_grade[grade][index] += 1
        is_open = incident.status != IncidentStatus.CLOSED
        updated = known_time(incident.updated_at)
        if is_open or updated is None or updated >= start:
            # One pass over the chronology for all three: it is most of the work, and
            # the board counts again every second.
            hands: set[str] = set()
            for entry in incident.chronology:
                operator = entry.operator
                hands.add(operator)
                try:
                    if start <= entry.at <= now:
                        actions[operator] = actions.get(operator, 0) + 1
                except TypeError:
                    pass  # a naive time stored by an old server: not counted
                desk = desks.get(operator)
                if desk is None:
                    desks[operator] = {entry.workstation}
                else:
                    desk.add(entry.workstation)
            if is_open:
                for operator in hands:
                    touched.setdefault(operator, set()).add(incident.reference)
        if not is_open:
            continue
        row = counts[grade]
        row[0] += 1
        row[1 if incident.status == IncidentStatus.OPEN else 2] += 1
        alert = attendance_alert(incident, state, now, policy)
        if alert.level == Level.BREACH and alert.age is not None and alert.remaining is not None:
            row[3] += 1
            breaches.append(
                Breach(
                    reference=incident.reference,
                    grade=grade,
                    incident_type=incident.incident_type,
                    address=incident.location.address,
                    age=alert.age,
                    over_by=-alert.remaining,
                    resourced=incident.status != IncidentStatus.OPEN,
                )
            )
        if incident.chronology:
            last = incident.chronology[-1].operator
            latest[last] = latest.get(last, 0) + 1

    breaches.sort(key=lambda b: (-b.over_by, b.reference))
    operators = sorted(set(touched) | set(actions))
    workloads = tuple(
        Workload(
            operator=operator,
            workstations=tuple(sorted(desks.get(operator, ()))),
            open_incidents=len(touched.get(operator, ())),
            latest=latest.get(operator, 0),
            actions=actions.get(operator, 0),
        )
        for operator in operators
    )
    workloads = tuple(sorted(workloads, key=lambda w: (-w.open_incidents, w.operator)))
    return RoomSummary(
        now=now,
        grades=tuple(GradeCount(grade, *counts[grade]) for grade in Grade),
        breaches=tuple(breaches),
        sectors=_sector_cover(state, minimums or {}),
        workloads=workloads,
        bucket=bucket,
        demand=tuple(demand),
        demand_by_grade={grade: tuple(row) for grade, row in by_grade.items()},
    )


def _sector_cover(state: DispatchState, minimums: Mapping[str, int]) -> tuple[SectorCover, ...]:
    # Sectors are compared without case (a unit's "ls1" is the room's "LS1"), and shown
    # as the minimums name them, else as the first unit names them.
    names: dict[str, str] = {sector.casefold(): sector for sector in minimums}
    wanted = {sector.casefold(): count for sector, count in minimums.items()}
    available: dict[str, int] = {}
    on_duty: dict[str, int] = {}
    for unit in sorted(state.units.values(), key=lambda u: u.callsign):
        if not unit.on_duty:
            continue
        sector = unit.home_sector or NO_SECTOR
        key = sector.casefold()
        names.setdefault(key, sector)
        on_duty[key] = on_duty.get(key, 0) + 1
        if unit.state in AVAILABLE_STATES:
            available[key] = available.get(key, 0) + 1
    return tuple(
        SectorCover(
            sector=names[key],
            available=available.get(key, 0),
            on_duty=on_duty.get(key, 0),
            minimum=wanted.get(key, 0),
        )
        for key in sorted(names, key=lambda k: (k == NO_SECTOR.casefold(), names[k]))
    )
