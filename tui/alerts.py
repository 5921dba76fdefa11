"""Which alarms the operator must see: pure bookkeeping, no widgets.

State-0 emergencies come from the picture and last until someone acknowledges them on
the server (every console sees the acknowledgement). A new grade 1 incident is a local
alarm: it stays until this operator acknowledges it or it has been resourced.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cadterm.domain.timers import emergencies
from cadterm.protocol.domain import Grade, IncidentStatus, UnitState
from cadterm.protocol.fold import DispatchState

from .incident_queue import short_reference

__all__ = ["AlarmTracker"]


@dataclass
class AlarmTracker:
    """Remembers which alarms are raised, and says which are new (to ring the bell)."""

    emergency_callsigns: set[str] = field(default_factory=set)
    new_grade_ones: dict[str, str] = field(default_factory=dict)  # reference -> line
    _seen_incidents: set[str] = field(default_factory=set)
    primed: bool = False

    def prime(self, state: DispatchState) -> None:
        """Take the first picture as known: only what happens after it is 'new'."""
        self._seen_incidents = set(state.incidents)
        self.emergency_callsigns = {unit.callsign for unit in emergencies(state)}
        self.primed = True

    def update(self, state: DispatchState, incidents: Iterable[str], units: Iterable[str]) -> bool:
        """Fold in what changed; True if a new alarm was raised (ring the bell)."""
        if not self.primed:
            self.prime(state)
            return bool(self.emergency_callsigns)
        ring = False
        for reference in incidents:
            incident = state.incidents.get(reference)
            if incident is None:
                continue
            if reference not in self._seen_incidents:
                self._seen_incidents.add(reference)
                if incident.grade == Grade.EMERGENCY and incident.status == IncidentStatus.OPEN:
                    self.new_grade_ones[reference] = (
                        f"NEW GRADE 1: {short_reference(reference)} {incident.incident_type} "
                        f"at {incident.location.address}"
                    )
                    ring = True
            elif reference in self.new_grade_ones and incident.status != IncidentStatus.OPEN:
                del self.new_grade_ones[reference]
        for callsign in units:
            unit = state.units.get(callsign)
            raised = (
                unit is not None
                and unit.state == UnitState.EMERGENCY
                and unit.emergency_acknowledged_by is None
            )
            if raised and callsign not in self.emergency_callsigns:
                self.emergency_callsigns.add(callsign)
                ring = True
            elif not raised:
                self.emergency_callsigns.discard(callsign)
        return ring

    def acknowledge_grade_ones(self) -> None:
        """This operator has seen the new grade 1 alarms."""
        self.new_grade_ones.clear()

    def lines(self, state: DispatchState) -> list[str]:
        """The banner: emergencies first (they stay until acknowledged), then grade 1s."""
        out = []
        for callsign in sorted(self.emergency_callsigns):
            unit = state.units.get(callsign)
            where = f" on {short_reference(unit.incident)}" if unit and unit.incident else ""
            out.append(
                f"EMERGENCY: {callsign} state 0{where} - urgent assistance - 'ack {callsign}'"
            )
        out.extend(self.new_grade_ones.values())
        return out
