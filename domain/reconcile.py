"""After CAD was down: incidents two consoles opened offline for what may be one call.

While no backend answered, each console opened incidents on its own picture; a caller
who rang twice, or two callers about one crash, may have been taken on two consoles.
Once the journals have replayed, `offline_duplicates` finds pairs worth a person's look:
both opened offline (recorded back-entered), on different workstations, close in time,
at the same place. It only offers: linking is the dispatcher's decision (``dup``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cadterm.protocol.domain import Incident, IncidentStatus, LinkRelation
from cadterm.protocol.fold import DispatchState

from .geography import haversine_km

__all__ = ["OfflinePair", "offline_duplicates"]

#: Opened within this long of each other (by the times the dispatchers typed them).
WINDOW = timedelta(minutes=15)
#: Within this distance, when both have coordinates.
NEAR_KM = 0.2


@dataclass(frozen=True)
class OfflinePair:
    """Two incidents opened offline that may be one call: `later` may duplicate `earlier`."""

    earlier: str
    later: str
    why: str


def offline_duplicates(
    state: DispatchState, window: timedelta = WINDOW, near_km: float = NEAR_KM
) -> list[OfflinePair]:
    """Pairs of open incidents opened offline on two workstations, close in time and place.

    Oldest pair first; pairs already linked, and incidents already
    known as a duplicate of another, are left out.
    """
    opened = sorted(
        (
            (taken, incident)
            for incident in state.incidents.values()
            if incident.status != IncidentStatus.CLOSED
            and (taken := _opened_offline_at(incident)) is not None
        ),
        key=lambda pair: pair[0],
    )
    pairs: list[OfflinePair] = []
    for i, (taken, earlier) in enumerate(opened):
        for later_taken, later in opened[i + 1 :]:
            if later_taken - taken > window:
                break
            if _workstation(earlier) == _workstation(later) or _linked(earlier, later):
                continue
            where = _same_place(earlier, later, near_km)
            if where is None:
                continue
            minutes = round((later_taken - taken).total_seconds() / 60)
            pairs.append(
                OfflinePair(
                    earlier.reference,
                    later.reference,
                    f"{where}, opened {minutes} min apart on {_workstation(earlier)} "
                    f"and {_workstation(later)}",
                )
            )
    return pairs


def _opened_offline_at(incident: Incident) -> datetime | None:
    """When the incident was opened, if it was recorded after the fact (offline)."""
    if not incident.chronology:
        return None
    first = incident.chronology[0]
    return first.taken_at if first.kind == "incident_created" else None


def _workstation(incident: Incident) -> str:
    return incident.chronology[0].workstation


def _linked(a: Incident, b: Incident) -> bool:
    """Already linked to each other, or either already known as a duplicate of another."""
    if any(link.relation == LinkRelation.DUPLICATE_OF for link in (*a.links, *b.links)):
        return True
    return any(link.reference == b.reference for link in a.links) or any(
        link.reference == a.reference for link in b.links
    )


def _same_place(a: Incident, b: Incident, near_km: float) -> str | None:
    """How the two places match ("same address", "120 m apart"), or None."""
    here, there = a.location, b.location
    if here.position is not None and there.position is not None:
        km = haversine_km(here.position, there.position)
        if km <= near_km:
            return f"{round(km * 1000)} m apart"
    if _address_key(here.address) and _address_key(here.address) == _address_key(there.address):
        return "same address"
    return None


def _address_key(address: str) -> str:
    """An address as compared: case, punctuation and spacing do not matter."""
    return " ".join("".join(c if c.isalnum() else " " for c in address.casefold()).split())
