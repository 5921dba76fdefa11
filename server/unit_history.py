"""A unit's shift from the event log: its states, positions, incidents and check-ins.

The picture holds only where a unit is now; what it did over the shift is in the events.
`unit_history` reads the log's stored JSON page by page and decodes only the events that
can concern the unit: those naming its callsign, and the closing of the incident it is
on (closing an incident clears its units without naming them). Reading undecoded text
keeps a shift's worth of log (100,000 events) to a scan of strings, not of models.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime

from pydantic import ValidationError

from cadterm.protocol.answers import MAX_UNIT_HISTORY, UnitHistory, UnitHistoryEntry
from cadterm.protocol.domain import UnitState
from cadterm.protocol.events import (
    EmergencyAcknowledged,
    Event,
    IncidentClosed,
    UnitAssigned,
    UnitBookedOff,
    UnitBookedOn,
    UnitCheckedIn,
    UnitLocated,
    UnitStateChanged,
    UnitUnassigned,
    parse_event,
)

from .store.base import EventStore

__all__ = ["unit_history"]

#: Stored events read per query while scanning the log.
PAGE = 5000


def unit_history(
    store: EventStore, callsign: str, since: datetime, *, limit: int = MAX_UNIT_HISTORY
) -> UnitHistory:
    """What the unit `callsign` did from `since`, oldest first (the newest `limit` kept)."""
    entries: deque[UnitHistoryEntry] = deque(maxlen=max(1, limit))
    incidents: list[str] = []
    current: str | None = None  # the incident the unit is on, as the log tells it
    seen = 0
    first = store.first_retained()
    after = first - 1
    complete_from = None
    if first > 1:
        oldest = store.read(first - 1, 1)
        if oldest and oldest[0].at > since:
            complete_from = oldest[0].at
    head = store.head()
    for _ in range(max(0, head - after) // PAGE + 2):  # the head bounds the pages
        rows = store.read_raw(after, PAGE)
        if not rows:
            break
        for seq, body in rows:
            if callsign not in body and (current is None or current not in body):
                continue
            event = _decoded(store, seq, body)
            if event is None:
                continue
            entry, current = _entry(event, callsign, current)
            if entry is None or entry.at < since:
                continue
            seen += 1
            entries.append(entry)
            if entry.kind == "assigned" and entry.reference not in incidents:
                incidents.append(entry.reference)
        after = rows[-1][0]
    return UnitHistory(
        callsign=callsign,
        since=since,
        entries=list(entries),
        incidents=incidents,
        complete_from=complete_from,
        truncated=seen > len(entries),
    )


def _decoded(store: EventStore, seq: int, body: str) -> Event | None:
    try:
        return parse_event(body)
    except ValidationError:
        # Stored before today's rules: the store's own reader knows the repairs.
        events = store.read(seq - 1, 1)
        return events[0] if events and events[0].seq == seq else None


def _entry(
    event: Event, callsign: str, current: str | None
) -> tuple[UnitHistoryEntry | None, str | None]:
    """The entry `event` makes in the unit's history, and the unit's incident after it."""
    base = {
        "seq": event.seq,
        "at": event.at,
        "operator": event.operator,
        "workstation": event.workstation,
    }
    if isinstance(event, IncidentClosed):
        if event.reference != current:
            return None, current
        text = f"cleared: {event.reference} closed {event.closing_code}"
        return UnitHistoryEntry(**base, kind="cleared", reference=event.reference, text=text), None
    if getattr(event, "callsign", None) != callsign:
        return None, current
    if isinstance(event, UnitBookedOn):
        text = f"booked on, {event.state.label.lower()}"
        entry = UnitHistoryEntry(
            **base, kind="booked_on", state=event.state, position=event.position, text=text
        )
        return entry, current
    if isinstance(event, UnitBookedOff):
        released = f" (off {current})" if current else ""
        entry = UnitHistoryEntry(
            **base, kind="booked_off", state=UnitState.OFF_DUTY, text=f"booked off{released}"
        )
        return entry, None
    if isinstance(event, UnitStateChanged):
        words = f"{int(event.state)} {event.state.label.lower()}"
        if event.cleared_from:
            text = f"{words}: cleared from {event.cleared_from}"
            entry = UnitHistoryEntry(
                **base, kind="cleared", state=event.state, reference=event.cleared_from, text=text
            )
            return entry, None
        entry = UnitHistoryEntry(
            **base, kind="state", state=event.state, reference=current, text=words
        )
        return entry, current
    if isinstance(event, UnitLocated):
        fix = f"fix {event.position.lat:.5f},{event.position.lon:.5f}"
        entry = UnitHistoryEntry(
            **base, kind="located", position=event.position, reference=current, text=fix
        )
        return entry, current
    if isinstance(event, UnitAssigned):
        diverted = f" (diverted from {event.diverted_from})" if event.diverted_from else ""
        entry = UnitHistoryEntry(
            **base,
            kind="assigned",
            state=UnitState.EN_ROUTE,
            reference=event.reference,
            text=f"assigned to {event.reference}{diverted}",
        )
        return entry, event.reference
    if isinstance(event, UnitUnassigned):
        why = f": {event.reason}" if event.reason else ""
        entry = UnitHistoryEntry(
            **base,
            kind="unassigned",
            reference=event.reference,
            text=f"stood down from {event.reference}{why}",
        )
        return entry, None if current == event.reference else current
    if isinstance(event, UnitCheckedIn):
        said = f": {event.note}" if event.note else ""
        entry = UnitHistoryEntry(
            **base, kind="checked_in", reference=event.reference, text=f"checked in safe{said}"
        )
        return entry, current
    if isinstance(event, EmergencyAcknowledged):
        entry = UnitHistoryEntry(
            **base,
            kind="emergency_acknowledged",
            reference=current,
            text=f"emergency acknowledged by {event.operator}",
        )
        return entry, current
    return None, current
