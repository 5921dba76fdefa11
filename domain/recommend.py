"""Which units to send: the ones that would get there first, and why each was picked.

Pure code over a `DispatchState`: no I/O, no clock (the caller passes ``now``), no UI.
The console shows the result as a short list the dispatcher picks from with one key.

Rules (UK police defaults, see ``DESIGN.md`` "Domain defaults"):

* Candidates are on-duty units that are not already assigned to the incident. Units in
  state 0 (emergency) and in the non-deployable states 8-11 (committed not deployable,
  prisoner escort, at court, off duty) are never offered.
* **Free** units come first: units in a deployable state (1, 2, 3, 4, 7) that are not
  committed to a live incident.
* **Diversions** come after every free unit, and only for a grade 1 (Emergency)
  incident: units committed to a live incident of a *lower* priority (a higher grade
  number), in states 1-7. Each carries ``diverts_from``.
* Units lacking any needed capability are left out. If nobody qualifies the list is empty.
* Within each group units are ranked by estimated travel time from their last fix to the
  incident (`cadterm.domain.travel`: road distance as 1.3 times the straight line, at the
  unit type's speed, on blue lights for a grade 1). Units with no fix come after the
  positioned ones, those whose home sector is the incident's first.
* An incident with no coordinates cannot be ranked by travel time, and the reason says
  so: units are ranked by sector instead (the incident's sector first, ``basis`` is
  ``"sector"``). With neither coordinates nor a sector, no order is better than another:
  the units that could go are listed by callsign with ``basis="unranked"``, and the
  console must not present them as a recommendation.
* A fix older than ``stale_after`` (or a fix with no time) is flagged ``stale``; stale
  units are still ranked by that fix, so the dispatcher sees them and the warning.

Example::

    recs = recommend(state, incident, now, needs=needs_for(incident.incident_type))
    for r in recs:
        print(r.callsign, r.reason)
        # AR21 3 min (1.2 km), available on patrol, has firearms (nearest of 3)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import MappingProxyType

from cadterm.protocol.domain import (
    DEPLOYABLE_STATES,
    Capability,
    Grade,
    Incident,
    IncidentStatus,
    Unit,
    UnitState,
)
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import known_time

from .geography import haversine_km
from .travel import speed_kmh, travel_seconds

__all__ = [
    "BY_SECTOR",
    "BY_TRAVEL_TIME",
    "DEFAULT_NEEDS",
    "NEVER_OFFERED",
    "UNRANKED",
    "Recommendation",
    "needs_for",
    "parse_capability",
    "recommend",
]

#: States in which a unit is never recommended, free or as a diversion.
NEVER_OFFERED = frozenset(
    {
        UnitState.EMERGENCY,
        UnitState.COMMITTED_NOT_DEPLOYABLE,
        UnitState.PRISONER_ESCORT,
        UnitState.AT_COURT,
        UnitState.OFF_DUTY,
    }
)

#: Default capabilities an incident type cannot be attended without (opening code ->
#: capabilities). Kept to what is truly required: an armed incident needs armed
#: officers, but the nearest patrol car should still go to a road traffic collision, so
#: RTC requires nothing. A force configures its own table and passes it to `needs_for`,
#: and a dispatcher can always ask for capabilities explicitly (``rec traffic``).
DEFAULT_NEEDS: Mapping[str, tuple[Capability, ...]] = MappingProxyType(
    {"FIREARMS": (Capability.FIREARMS,)}
)

#: How a list of recommendations was ranked (`Recommendation.basis`).
BY_TRAVEL_TIME, BY_SECTOR, UNRANKED = "travel time", "sector", "unranked"

# How a free unit's state reads in a reason.
_FREE_WORDS = {
    UnitState.ON_DUTY: "on duty",
    UnitState.AVAILABLE_ON_PATROL: "available on patrol",
    UnitState.AVAILABLE_AT_STATION: "available at station",
    UnitState.REFRESHMENTS: "refreshments (deployable)",
    UnitState.COMMITTED_DEPLOYABLE: "committed (deployable)",
}
# Tie-break at equal distance: truly available units before those on a break or busy.
_STATE_PREFERENCE = {
    UnitState.AVAILABLE_ON_PATROL: 0,
    UnitState.ON_DUTY: 1,
    UnitState.AVAILABLE_AT_STATION: 2,
    UnitState.REFRESHMENTS: 3,
    UnitState.COMMITTED_DEPLOYABLE: 4,
}


@dataclass(frozen=True)
class Recommendation:
    """One suggested unit and the reason for the pick, in words a dispatcher reads."""

    callsign: str
    distance_km: float | None
    state: UnitState
    capabilities: tuple[str, ...]
    stale: bool
    reason: str
    diverts_from: str | None = None
    #: Estimated seconds to the incident from the last fix (None without both positions).
    travel_seconds: float | None = None
    #: How the list was ranked: `BY_TRAVEL_TIME`, `BY_SECTOR` or `UNRANKED`.
    basis: str = BY_TRAVEL_TIME


def parse_capability(value: Capability | str) -> Capability:
    """Read a capability given as the enum or a word (``"firearms"``, ``"First aid"``).

    Raises ``ValueError`` naming the known capabilities when nothing matches.
    """
    if isinstance(value, Capability):
        return value
    key = str(value).strip().lower().replace("-", "_").replace(" ", "_")
    try:
        return Capability(key)
    except ValueError:
        known = ", ".join(c.value for c in Capability)
        raise ValueError(f"unknown capability {value!r}: expected one of {known}") from None


def needs_for(
    incident_type: str, table: Mapping[str, Iterable[Capability]] = DEFAULT_NEEDS
) -> tuple[Capability, ...]:
    """The capabilities an incident type needs by default (``()`` when none).

    Defaults (`DEFAULT_NEEDS`): ``FIREARMS`` needs firearms;
    every other type needs nothing special. The type is matched case-insensitively.
    Pass ``table`` to use a force's own defaults.
    """
    return tuple(table.get(incident_type.strip().upper(), ()))


def recommend(
    state: DispatchState,
    incident: Incident,
    now: datetime,
    *,
    needs: Iterable[Capability | str] = (),
    limit: int = 5,
    stale_after: timedelta = timedelta(minutes=5),
) -> list[Recommendation]:
    """Suggest up to ``limit`` units for ``incident``, best first (see the module rules).

    ``needs`` are capabilities every suggested unit must have (words are accepted; an
    unknown word raises ``ValueError``). The defaults for the incident's type are *not*
    added automatically: pass ``needs_for(incident.incident_type)`` for those.
    An empty list means no on-duty unit qualifies.
    """
    required = tuple(dict.fromkeys(parse_capability(n) for n in needs))
    if limit <= 0:
        return []
    target = incident.location.position
    sector = incident.location.sector
    basis = BY_TRAVEL_TIME if target else (BY_SECTOR if sector else UNRANKED)
    blue_lights = incident.grade == Grade.EMERGENCY
    assigned = set(incident.assigned)
    free: list[tuple[tuple, Recommendation]] = []
    diversions: list[tuple[tuple, Recommendation]] = []

    for unit in state.units.values():
        if not unit.on_duty or unit.state in NEVER_OFFERED:
            continue
        if unit.callsign in assigned or unit.incident == incident.reference:
            continue
        if not set(required) <= set(unit.capabilities):
            continue
        committed = state.incidents.get(unit.incident) if unit.incident else None
        if committed is not None and committed.status == IncidentStatus.CLOSED:
            committed = None  # a stale link to finished work does not tie the unit
        if committed is None:
            if unit.state not in DEPLOYABLE_STATES:
                continue
            group, state_words = free, _FREE_WORDS[unit.state]
        elif incident.grade == Grade.EMERGENCY and committed.grade > incident.grade:
            group = diversions
            state_words = (
                f"{unit.state.label.lower()}, diverts from {committed.reference} "
                f"(grade {int(committed.grade)})"
            )
        else:
            continue
        rec = _recommendation(
            unit, incident, now, stale_after, required, state_words, committed, blue_lights
        )
        rec = replace(rec, basis=basis)
        key = (
            rec.travel_seconds is None,
            rec.travel_seconds or 0.0,
            sector is None or unit.home_sector != sector,
            _STATE_PREFERENCE.get(unit.state, 9),
            unit.callsign,
        )
        group.append((key, rec))

    free.sort(key=lambda item: item[0])
    diversions.sort(key=lambda item: item[0])
    picks = [rec for _, rec in free + diversions][:limit]
    if required and picks and picks[0].travel_seconds is not None:
        # The reason ends "has <capabilities>": say how many such units there were.
        ranked = sum(1 for _, rec in free + diversions if rec.travel_seconds is not None)
        among = "the only one" if ranked == 1 else f"nearest of {ranked}"
        picks[0] = replace(picks[0], reason=f"{picks[0].reason} ({among})")
    return picks


def _recommendation(
    unit: Unit,
    incident: Incident,
    now: datetime,
    stale_after: timedelta,
    required: tuple[Capability, ...],
    state_words: str,
    committed: Incident | None,
    blue_lights: bool,
) -> Recommendation:
    parts: list[str] = []
    distance: float | None = None
    seconds: float | None = None
    target, sector = incident.location.position, incident.location.sector
    if target is None:
        if sector is None:
            parts.append("incident has no location or sector: not ranked")
        elif unit.home_sector == sector:
            parts.append(f"incident has no location; same sector ({sector})")
        else:
            parts.append(f"incident has no location; sector {unit.home_sector or 'unknown'}")
    elif unit.position is None:
        parts.append("no location fix")
    else:
        distance = haversine_km(unit.position, target)
        kmh = speed_kmh(unit.unit_type, blue_lights=blue_lights)
        seconds = travel_seconds(unit.position, target, kmh)
        parts.append(f"{_format_minutes(seconds)} ({_format_km(distance)})")

    stale = False
    if unit.position is not None:
        fixed_at = known_time(unit.position_at)
        if fixed_at is None:
            stale = True
            parts.append("fix time unknown")
        else:
            age = max(now - fixed_at, timedelta(0))
            if age > stale_after:
                stale = True
                parts.append(f"fix {_format_fix_age(age)} old")

    parts.append(state_words)
    if required:
        parts.append("has " + _join_words([c.value.replace("_", " ") for c in required]))
    return Recommendation(
        callsign=unit.callsign,
        distance_km=distance,
        state=unit.state,
        capabilities=tuple(c.value for c in unit.capabilities),
        stale=stale,
        reason=", ".join(parts),
        diverts_from=committed.reference if committed is not None else None,
        travel_seconds=seconds,
    )


def _format_minutes(seconds: float) -> str:
    minutes = round(seconds / 60)
    return "under 1 min" if minutes < 1 else f"{minutes} min"


def _format_km(km: float) -> str:
    return f"{km:.1f} km" if km < 10 else f"{km:.0f} km"


def _format_fix_age(age: timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // (24 * 60)} d"


def _join_words(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]
