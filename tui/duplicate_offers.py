"""Possible duplicates of an incident already on the board, in the dispatcher's words.

The call form checks a call before it is an incident; this checks one that has arrived
(from any workstation, or the public's own channels): the open incidents it may repeat,
by `cadterm.domain.duplicates`, the incident's own opening time standing for the call's.
"""

from __future__ import annotations

from cadterm.domain.duplicates import DuplicateOffer, DuplicatePolicy, NewCall, likely_duplicates
from cadterm.protocol.domain import Incident, IncidentStatus
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.types import known_time

from .incident_queue import short_reference

__all__ = ["incident_offers", "offer_line"]


#: The last answer, by picture, its seq and the incident's version: the detail pane asks
#: again every second, and on a long shift's picture the check takes milliseconds.
_last: tuple[tuple[object, ...], list[DuplicateOffer]] | None = None


def incident_offers(
    incident: Incident, state: DispatchState, policy: DuplicatePolicy | None = None
) -> list[DuplicateOffer]:
    """The open incidents `incident` may repeat (none for a closed one, or one whose
    opening time is unknown)."""
    global _last
    key = (id(state), state.seq, incident.reference, incident.version, policy)
    if _last is not None and _last[0] == key:
        return _last[1]
    offers = _offers(incident, state, policy)
    _last = (key, offers)
    return offers


def _offers(
    incident: Incident, state: DispatchState, policy: DuplicatePolicy | None
) -> list[DuplicateOffer]:
    opened = known_time(incident.created_at)
    if opened is None or incident.status == IncidentStatus.CLOSED:
        return []
    call = NewCall(
        at=opened,
        address=incident.location.address,
        position=incident.location.position,
        phone=incident.caller.phone if incident.caller else None,
        incident_type=incident.incident_type,
        reference=incident.reference,
        linked=frozenset(link.reference for link in incident.links),
    )
    return likely_duplicates(call, state.incidents.values(), policy)


def offer_line(reference: str, offer: DuplicateOffer) -> str:
    """``0012-01DEC may repeat 0009-01DEC: same address, opened 4 min before``."""
    return (
        f"{short_reference(reference)} may repeat {short_reference(offer.reference)}: "
        f"{offer.summary}"
    )
