"""Timers a control room watches: incident ageing, officer safety, emergency alarms.

Pure code: no I/O and no clock reads (the caller passes ``now``, timezone-aware like
the domain's datetimes). Defaults follow UK police practice (``DESIGN.md``, "Domain
defaults") and every one is configurable through `TimerPolicy`:

* **Attendance targets** by grade: 1 Emergency 15 min (20 min in a rural sector),
  2 Priority 60 min, 3 Scheduled 48 h, 4 and 5 no target. The clock runs from the
  incident's creation; it warns at ``warn_fraction`` (75%) of the target and breaches
  at the target itself.
* **Officer safety**: a unit at scene (state 6) with no update - no state change, no
  position fix, no check-in (``unit_checked_in``) - for its cadence is due a check. The
  cadence is ``officer_safety_after`` (20 min), or the one ``safety_by_type`` gives the
  type of the incident the unit is on (`DEFAULT_SAFETY_BY_TYPE`: firearms 10 min,
  domestic 15 min). `safety_checks` lists every running timer with its countdown.
* **Emergency** (state 0) is an alarm until someone acknowledges it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from cadterm.protocol.answers import DEFAULT_SAFETY_BY_TYPE_MINUTES
from cadterm.protocol.domain import Grade, Incident, IncidentStatus, Unit, UnitState
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import known_time, sortable_time

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_RURAL_TARGETS",
    "DEFAULT_SAFETY_BY_TYPE",
    "DEFAULT_TARGETS",
    "AgeingAlert",
    "Level",
    "SafetyCheck",
    "TimerPolicy",
    "arrived_at",
    "attendance_alert",
    "emergencies",
    "format_age",
    "incident_age",
    "officer_safety",
    "officer_safety_due",
    "safety_checks",
    "time_since",
]

_ZERO = timedelta(0)

#: Attendance target per grade (None: no target).
DEFAULT_TARGETS: Mapping[Grade, timedelta | None] = MappingProxyType(
    {
        Grade.EMERGENCY: timedelta(minutes=15),
        Grade.PRIORITY: timedelta(minutes=60),
        Grade.SCHEDULED: timedelta(hours=48),
        Grade.APPOINTMENT: None,
        Grade.RESOLVED_WITHOUT_DEPLOYMENT: None,
    }
)
#: Targets that replace `DEFAULT_TARGETS` for incidents in a rural sector.
DEFAULT_RURAL_TARGETS: Mapping[Grade, timedelta | None] = MappingProxyType(
    {Grade.EMERGENCY: timedelta(minutes=20)}
)

#: Safety-check cadences shorter than `TimerPolicy.officer_safety_after` for incident
#: types where officers face more risk (a server's config may replace them).
DEFAULT_SAFETY_BY_TYPE: Mapping[str, timedelta] = MappingProxyType(
    {code: timedelta(minutes=every) for code, every in DEFAULT_SAFETY_BY_TYPE_MINUTES.items()}
)


class Level(StrEnum):
    """Where an incident stands against its attendance target."""

    OK = "ok"  # within target, or no target, or closed without attendance
    WARN = "warn"  # past warn_fraction of the target, not yet breached
    BREACH = "breach"  # target passed with nobody at scene
    MET = "met"  # a unit has arrived at scene (see `AgeingAlert.remaining` for margin)
    UNKNOWN = "unknown"  # the incident's creation time is unusable (stored by an old server)


@dataclass(frozen=True)
class TimerPolicy:
    """Timer settings. The defaults are UK police practice.

    ``targets`` maps each grade to its attendance target (``None`` or absent: no
    target). For an incident whose location sector is in ``rural_sectors`` (compared
    case-insensitively), ``rural_targets`` overrides ``targets`` grade by grade.
    """

    targets: Mapping[Grade, timedelta | None] = field(default_factory=lambda: DEFAULT_TARGETS)
    rural_targets: Mapping[Grade, timedelta | None] = field(
        default_factory=lambda: DEFAULT_RURAL_TARGETS
    )
    rural_sectors: frozenset[str] = frozenset()
    warn_fraction: float = 0.75
    officer_safety_after: timedelta = timedelta(minutes=20)
    safety_by_type: Mapping[str, timedelta] = field(default_factory=lambda: DEFAULT_SAFETY_BY_TYPE)

    def __post_init__(self) -> None:
        if not 0 < self.warn_fraction <= 1:
            raise ValueError(f"warn_fraction must be in (0, 1], got {self.warn_fraction}")
        if self.officer_safety_after <= _ZERO:
            raise ValueError("officer_safety_after must be positive")
        by_type = MappingProxyType(
            {code.strip().upper(): every for code, every in self.safety_by_type.items()}
        )
        for code, every in by_type.items():
            if every <= _ZERO:
                raise ValueError(f"safety-check cadence for {code} must be positive")
        object.__setattr__(self, "safety_by_type", by_type)
        for name in ("targets", "rural_targets"):
            # Copy and freeze, so a caller's dict changed later cannot change the policy.
            table = MappingProxyType({Grade(g): t for g, t in getattr(self, name).items()})
            for grade, target in table.items():
                if target is not None and target <= _ZERO:
                    raise ValueError(f"attendance target for grade {int(grade)} must be positive")
            object.__setattr__(self, name, table)
        sectors = frozenset(s.casefold() for s in self.rural_sectors)
        object.__setattr__(self, "rural_sectors", sectors)

    def is_rural(self, incident: Incident) -> bool:
        """Whether the incident's location is in one of the rural sectors."""
        sector = incident.location.sector
        return sector is not None and sector.casefold() in self.rural_sectors

    def safety_within(self, cap: timedelta) -> TimerPolicy:
        """This policy with no safety-check cadence longer than `cap`."""
        return replace(
            self,
            officer_safety_after=min(self.officer_safety_after, cap),
            safety_by_type={code: min(every, cap) for code, every in self.safety_by_type.items()},
        )

    def safety_interval(self, incident_type: str | None) -> timedelta:
        """How often a unit on an incident of `incident_type` is due a safety check."""
        if incident_type is None:
            return self.officer_safety_after
        return self.safety_by_type.get(incident_type.upper(), self.officer_safety_after)

    def target_for(self, incident: Incident) -> timedelta | None:
        """The attendance target for this incident, or None when its grade has none."""
        grade = Grade(incident.grade)
        if self.is_rural(incident) and grade in self.rural_targets:
            return self.rural_targets[grade]
        return self.targets.get(grade)


DEFAULT_POLICY = TimerPolicy()


@dataclass(frozen=True)
class AgeingAlert:
    """An incident measured against its attendance target.

    ``remaining`` is the target minus the time the attendance clock ran: up to ``now``
    while it runs, up to the first arrival (MET) or to closure (a closed incident nobody
    attended). It is negative once breached, and None when the grade has no target.
    """

    reference: str
    level: Level
    target: timedelta | None
    remaining: timedelta | None
    age: timedelta | None  # None when unknown (`Level.UNKNOWN`)
    arrived_at: datetime | None = None


def incident_age(incident: Incident, now: datetime) -> timedelta | None:
    """How long the incident has been open: creation to ``now``, or to closure if closed.

    Never negative (a ``now`` before creation, from clock skew, gives zero). None when
    the creation time is unusable (see `known_time`): the age is then unknown.
    """
    created = known_time(incident.created_at)
    if created is None:
        return None
    end = now
    closed = known_time(incident.closed_at)
    if incident.status == IncidentStatus.CLOSED and closed is not None:
        end = min(now, closed)
    return max(end - created, _ZERO)


def arrived_at(incident: Incident, state: DispatchState | None = None) -> datetime | None:
    """When a unit first arrived at scene, or None if none has (as far as we can tell).

    Read from the chronology: the first ``unit_state_changed`` entry whose text ends
    with "at scene" (the fold writes "<callsign> at scene"). If there is none but the
    incident is at scene (for instance a chronology trimmed by a snapshot), the earliest
    ``state_since`` of its assigned units now at scene in ``state`` is used, and failing
    that the incident's ``updated_at``. A reopened incident keeps its first arrival.
    """
    for entry in incident.chronology:
        arrival = entry.kind == "unit_state_changed" and entry.text.rstrip().lower().endswith(
            "at scene"
        )
        if arrival and (at := known_time(entry.at)) is not None:
            return at
    if incident.status != IncidentStatus.AT_SCENE:
        return None
    if state is not None:
        times = [
            since
            for callsign in incident.assigned
            if (unit := state.units.get(callsign)) is not None
            and unit.state == UnitState.AT_SCENE
            and (since := known_time(unit.state_since)) is not None
        ]
        if times:
            return min(times)
    return known_time(incident.updated_at)


def attendance_alert(
    incident: Incident,
    state: DispatchState | None,
    now: datetime,
    policy: TimerPolicy = DEFAULT_POLICY,
) -> AgeingAlert:
    """Measure an incident against its grade's attendance target (see `Level`).

    BREACH from the moment the clock reaches the target, WARN from ``warn_fraction`` of
    it. MET once a unit has arrived (`arrived_at`), even if late: ``remaining`` then says
    by how much it was met or missed. A closed incident is MET or OK, never WARN/BREACH.
    """
    target = policy.target_for(incident)
    age = incident_age(incident, now)
    arrival = arrived_at(incident, state)
    if age is None:
        # Without a creation time nothing can be measured; say so rather than guess.
        return AgeingAlert(incident.reference, Level.UNKNOWN, target, None, None, arrival)
    if arrival is not None:
        clock = max(arrival - known_time(incident.created_at), _ZERO)
        level = Level.MET
    else:
        clock = age
        if target is None or incident.status == IncidentStatus.CLOSED:
            level = Level.OK
        elif clock >= target:
            level = Level.BREACH
        elif clock >= target * policy.warn_fraction:
            level = Level.WARN
        else:
            level = Level.OK
    return AgeingAlert(
        reference=incident.reference,
        level=level,
        target=target,
        remaining=None if target is None else target - clock,
        age=age,
        arrived_at=arrival,
    )


def officer_safety(
    unit: Unit,
    now: datetime,
    policy: TimerPolicy = DEFAULT_POLICY,
    state: DispatchState | None = None,
) -> bool:
    """Whether an at-scene unit is due a safety check.

    True when the unit is on duty, in state 6 (at scene), and has had no update (state
    change, position fix or check-in) for its cadence: the one for the type of its
    incident in `state` when given, else ``policy.officer_safety_after``. A unit at
    scene whose last update time is unusable is due: for an officer's safety, unknown
    means check.
    """
    if not unit.on_duty or unit.state != UnitState.AT_SCENE:
        return False
    last = _last_update(unit)
    return last is None or now - last >= policy.safety_interval(_incident_type(unit, state))


def officer_safety_due(
    state: DispatchState, now: datetime, policy: TimerPolicy = DEFAULT_POLICY
) -> list[Unit]:
    """Every unit due a safety check, longest without an update first."""
    due = [u for u in state.units.values() if officer_safety(u, now, policy, state)]
    return sorted(due, key=lambda u: (sortable_time(_last_update(u)), u.callsign))


@dataclass(frozen=True)
class SafetyCheck:
    """One running officer-safety timer: a unit at scene and its countdown.

    ``remaining`` is the time until the check is due, negative once overdue, and None
    when the unit's last update time is unusable (then it is due now).
    """

    callsign: str
    reference: str | None
    incident_type: str | None
    every: timedelta
    last_update: datetime | None
    remaining: timedelta | None

    @property
    def overdue(self) -> bool:
        """Whether the check is due or past due."""
        return self.remaining is None or self.remaining <= _ZERO


def safety_checks(
    state: DispatchState, now: datetime, policy: TimerPolicy = DEFAULT_POLICY
) -> list[SafetyCheck]:
    """Every running safety timer: overdue first (longest overdue first), then soonest due."""
    checks = []
    for unit in state.units.values():
        if not unit.on_duty or unit.state != UnitState.AT_SCENE:
            continue
        incident_type = _incident_type(unit, state)
        every = policy.safety_interval(incident_type)
        last = _last_update(unit)
        remaining = None if last is None else every - (now - last)
        checks.append(
            SafetyCheck(unit.callsign, unit.incident, incident_type, every, last, remaining)
        )
    return sorted(
        checks,
        key=lambda c: (c.remaining is not None, c.remaining or _ZERO, c.callsign),
    )


def _incident_type(unit: Unit, state: DispatchState | None) -> str | None:
    if state is None or unit.incident is None:
        return None
    incident = state.incidents.get(unit.incident)
    return incident.incident_type if incident is not None else None


def emergencies(state: DispatchState) -> list[Unit]:
    """Units in state 0 whose alarm nobody has acknowledged, oldest alarm first."""
    units = [
        u
        for u in state.units.values()
        if u.state == UnitState.EMERGENCY and u.emergency_acknowledged_by is None
    ]
    return sorted(units, key=lambda u: (sortable_time(u.state_since), u.callsign))


def format_age(delta: timedelta | None) -> str:
    """A duration in at most a few characters for an 80-column board.

    ``45s``, ``12m``, ``1h05``, ``2d03``; negative durations get a leading ``-``.
    Partial units are truncated, never rounded up. An unknown duration is ``?``.
    """
    if delta is None:
        return "?"
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    if seconds < 60:
        return f"{sign}{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{sign}{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{sign}{hours}h{minutes:02d}"
    days, hours = divmod(hours, 24)
    return f"{sign}{days}d{hours:02d}"


def time_since(then: object, now: datetime) -> timedelta | None:
    """``now - then``, or None when `then` is not a usable time."""
    known = known_time(then)
    return None if known is None else now - known


def _last_update(unit: Unit) -> datetime | None:
    # The newest of the usable times; None only when the state's own time is unusable
    # and nothing later is known.
    times = [
        t
        for t in (
            known_time(unit.state_since),
            known_time(unit.position_at),
            known_time(unit.checked_in_at),
        )
        if t is not None
    ]
    return max(times) if times else None
