"""Which alarms the operator must see: pure bookkeeping, no widgets.

Three kinds, shown in this order, each acknowledged on its own:

- **EMERGENCY**: a unit in state 0. It comes from the picture and lasts until someone
  acknowledges it on the server (every console sees the acknowledgement). Its bell
  repeats until then.
- **BREACHED GRADE 1**: a grade 1 whose attendance target has passed with nobody at
  scene (resourced or not). Raised once, when the target passes; it rings.
- **NEW GRADE 1**: a grade 1 opened since this console started. It rings once, and
  goes when a unit is assigned.

The two incident alarms are this console's own: acknowledged here (``ack REF``, or
``ack`` for the top alarm), they go; they also go when the incident closes, and a breach
when someone reaches the scene. Acknowledging one alarm never clears another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cadterm.domain.timers import Level, TimerPolicy, attendance_alert, emergencies
from cadterm.protocol.domain import Grade, IncidentStatus, UnitState
from cadterm.protocol.fold import DispatchState

from .incident_queue import short_reference

__all__ = ["Alarm", "AlarmTracker"]

EMERGENCY, BREACH, NEW_GRADE_ONE = "emergency", "breach", "new grade 1"


def _number(reference: str) -> str:
    """The incident's number as a dispatcher types it: ``0042-27NOV26`` -> ``42``."""
    return reference.split("-")[0].lstrip("0") or "0"


@dataclass(frozen=True)
class Alarm:
    """One alarm on the banner: what it is about and how to acknowledge it."""

    kind: str
    target: str  # a callsign for an emergency, else an incident reference
    line: str


@dataclass
class AlarmTracker:
    """Remembers which alarms are raised, and says which are new (to ring the bell)."""

    emergency_callsigns: set[str] = field(default_factory=set)
    new_grade_ones: dict[str, str] = field(default_factory=dict)  # reference -> line
    breaches: dict[str, str] = field(default_factory=dict)  # reference -> line
    _breached: set[str] = field(default_factory=set)  # raised once, never again
    _seen_incidents: set[str] = field(default_factory=set)
    # Breached and unchanged since: a breach ends only by an event (someone at scene,
    # closed, regraded), so the once-a-second check need not measure these again.
    _settled: set[str] = field(default_factory=set)
    _settled_policy: TimerPolicy | None = None
    primed: bool = False

    def prime(self, state: DispatchState) -> None:
        """Take the first picture as known: only what happens after it is 'new'."""
        self._seen_incidents = set(state.incidents)
        self.emergency_callsigns = {unit.callsign for unit in emergencies(state)}
        self._settled.clear()  # a new picture: every breach is measured again
        self.primed = True

    def update(self, state: DispatchState, incidents: Iterable[str], units: Iterable[str]) -> bool:
        """Fold in what changed; True if a new alarm was raised (ring the bell)."""
        if not self.primed:
            self.prime(state)
            return bool(self.emergency_callsigns)
        ring = False
        for reference in incidents:
            self._settled.discard(reference)
            incident = state.incidents.get(reference)
            if incident is None:
                self.new_grade_ones.pop(reference, None)
                self.breaches.pop(reference, None)
                continue
            if reference not in self._seen_incidents:
                self._seen_incidents.add(reference)
                if incident.grade == Grade.EMERGENCY and incident.status == IncidentStatus.OPEN:
                    self.new_grade_ones[reference] = (
                        f"NEW GRADE 1: {short_reference(reference)} {incident.incident_type} "
                        f"at {incident.location.address} - 'ack {_number(reference)}'"
                    )
                    ring = True
            if incident.status != IncidentStatus.OPEN:  # resourced: no longer "new"
                self.new_grade_ones.pop(reference, None)
            if incident.status == IncidentStatus.CLOSED:
                self.breaches.pop(reference, None)
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

    def check_breaches(
        self,
        state: DispatchState,
        now: datetime,
        policy: TimerPolicy,
        grade_ones: Iterable[str] | None = None,
    ) -> bool:
        """Raise an alarm for each grade 1 whose target has just passed; True to ring.

        A breach is raised once per incident; one that is no longer a breach (someone
        reached the scene) leaves the banner. `grade_ones`: the open grade 1s, when the
        caller already knows them (the queue does), to spare a pass over every incident.
        """
        ring = False
        incidents = state.incidents
        if grade_ones is not None:
            chosen = ((ref, incidents[ref]) for ref in grade_ones if ref in incidents)
        else:
            chosen = iter(incidents.items())
        if policy is not self._settled_policy:
            self._settled.clear()  # other targets: measure every breach again
            self._settled_policy = policy
        settled = self._settled
        for reference, incident in chosen:
            if incident.grade != Grade.EMERGENCY or incident.status == IncidentStatus.CLOSED:
                continue
            if reference in settled:
                continue
            level = attendance_alert(incident, state, now, policy).level
            if level != Level.BREACH:
                self.breaches.pop(reference, None)
                continue
            settled.add(reference)
            if reference not in self._breached:
                self._breached.add(reference)
                short = short_reference(reference)
                self.breaches[reference] = (
                    f"BREACHED GRADE 1: {short} {incident.incident_type}, nobody at scene: "
                    f"{incident.location.address} - 'ack {_number(reference)}'"
                )
                ring = True
        return ring

    def alarms(self, state: DispatchState) -> list[Alarm]:
        """Every raised alarm, most urgent first (the order of the banner)."""
        out = []
        for callsign in sorted(self.emergency_callsigns):
            unit = state.units.get(callsign)
            where = f" on {short_reference(unit.incident)}" if unit and unit.incident else ""
            out.append(
                Alarm(
                    EMERGENCY,
                    callsign,
                    f"EMERGENCY: {callsign} state 0{where} - urgent assistance - 'ack {callsign}'",
                )
            )
        out.extend(Alarm(BREACH, ref, line) for ref, line in self.breaches.items())
        out.extend(Alarm(NEW_GRADE_ONE, ref, line) for ref, line in self.new_grade_ones.items())
        return out

    def lines(self, state: DispatchState) -> list[str]:
        """The banner's lines."""
        return [alarm.line for alarm in self.alarms(state)]

    def find(self, state: DispatchState, target: str | None) -> list[Alarm]:
        """The alarms `target` names (a callsign, or an incident by number or reference).

        No target names the top alarm alone: each ``ack`` takes one.
        """
        raised = self.alarms(state)
        if target is None:
            return raised[:1]
        wanted = target.strip().upper()
        return [
            alarm
            for alarm in raised
            if alarm.target == wanted
            or (
                alarm.kind != EMERGENCY
                and wanted.isdigit()
                and alarm.target.split("-")[0].lstrip("0") == wanted.lstrip("0")
            )
            or (alarm.kind != EMERGENCY and short_reference(alarm.target) == wanted)
        ]

    def acknowledge(self, alarm: Alarm) -> None:
        """This operator has seen an incident alarm (emergencies clear on the server)."""
        if alarm.kind == BREACH:
            self.breaches.pop(alarm.target, None)
        elif alarm.kind == NEW_GRADE_ONE:
            self.new_grade_ones.pop(alarm.target, None)

    @property
    def emergency_ringing(self) -> bool:
        """An emergency is waiting for acknowledgement: its bell keeps ringing."""
        return bool(self.emergency_callsigns)
