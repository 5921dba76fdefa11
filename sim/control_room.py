"""The control room's side of the simulation: resulting incidents, and a virtual dispatcher.

Always on: an incident that a unit the simulator plays attended, and that has no unit
left on it, is closed after a short while with a plausible closing code, as the
officer's result comes in. (Incidents attended only by units a person plays are left
to that person.)

With `auto_dispatch` on, the simulator is also the dispatcher: after a delay that depends
on the grade it sends the recommended unit (two for grade 1) to each unresourced
incident, deals with grade 3-5 calls that need no deployment (by telephone, appointment
or advice), and acknowledges state-0 alarms. Off, all of that is left to the person at
the console.

`ControlRoom.act` is pure: the observed picture, the time and its own timetable in;
commands out.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from cadterm.domain.recommend import needs_for, recommend
from cadterm.protocol.domain import Incident, IncidentStatus, UnitState
from cadterm.protocol.fold import DispatchState

from .planned import Planned, SimSettings
from .resulting import closing_code, dispatch_delay

__all__ = ["ControlRoom"]

INF = math.inf
# Simulated seconds before an attended incident with no units left is closed.
_RESULT_DELAY = (30.0, 120.0)
# Simulated seconds before a state-0 alarm is acknowledged by the virtual dispatcher.
_ACK_DELAY = (8.0, 25.0)
# Simulated seconds before trying again when no unit could be recommended.
_NO_UNIT_RETRY = 60.0


class ControlRoom:
    """Results attended incidents; with `auto_dispatch`, also dispatches and acknowledges."""

    def __init__(
        self, settings: SimSettings, rng: random.Random, attended: set[str], epoch: datetime
    ) -> None:
        self.settings = settings
        self.rng = rng
        self.attended = attended  # incidents our units reached: the unit player adds them
        self.epoch = epoch
        self.dispatch_due: dict[str, float] = {}
        self.close_due: dict[str, float] = {}
        self.ack_due: dict[str, float] = {}

    def act(
        self, now: float, picture: DispatchState, cooldown: dict[str, float]
    ) -> tuple[list[Planned], float]:
        """The control room's commands at `now`, and when it next needs to act."""
        out: list[Planned] = []
        due = INF
        live = [i for i in picture.incidents.values() if i.status != IncidentStatus.CLOSED]
        live.sort(key=_queue_order)
        for incident in live:
            ref = incident.reference
            if cooldown.get(ref, -INF) > now:
                due = min(due, cooldown[ref])
                continue
            if incident.assigned:
                self.close_due.pop(ref, None)
                self.dispatch_due.pop(ref, None)
            elif ref in self.attended:
                due = min(due, self._result(now, incident, out))
            elif self.settings.auto_dispatch:
                due = min(due, self._dispatch(now, incident, picture, out))
        if self.settings.auto_dispatch:
            due = min(due, self._acknowledge(now, picture, out))
        self._forget_closed(picture)
        return out, due

    def _result(self, now: float, incident: Incident, out: list[Planned]) -> float:
        ref = incident.reference
        if ref not in self.close_due:
            self.close_due[ref] = now + self.rng.uniform(*_RESULT_DELAY)
        if now < self.close_due[ref]:
            return self.close_due[ref]
        del self.close_due[ref]
        code = closing_code(self.rng, incident.incident_type)
        out.append(_close(now, ref, code, "Result from attending officers", "resulted"))
        return now

    def _dispatch(
        self, now: float, incident: Incident, picture: DispatchState, out: list[Planned]
    ) -> float:
        ref, grade = incident.reference, int(incident.grade)
        if ref not in self.dispatch_due:
            self.dispatch_due[ref] = now + dispatch_delay(self.rng, grade)
        if now < self.dispatch_due[ref]:
            return self.dispatch_due[ref]
        del self.dispatch_due[ref]
        by_phone = self.rng.random() < 0.5
        if grade == 5:
            out.append(
                _close(now, ref, "WORKAROUND", "Advice given by the call handler", "no deployment")
            )
            return now
        if grade == 4 or (grade == 3 and by_phone):
            code = self.rng.choice(("CRIME", "ADVICE"))
            summary = "Appointment booked" if grade == 4 else "Dealt with by telephone"
            out.append(_close(now, ref, code, summary, "no deployment"))
            return now
        wanted = 2 if grade == 1 else 1
        picks = recommend(
            picture,
            incident,
            self.epoch + timedelta(seconds=now),
            needs=needs_for(incident.incident_type),
            limit=wanted,
        )
        if not picks:
            self.dispatch_due[ref] = now + _NO_UNIT_RETRY
            return self.dispatch_due[ref]
        for pick in picks:
            fields = {"reference": ref, "callsign": pick.callsign}
            if pick.diverts_from is not None:
                fields["divert"] = True
            out.append(Planned(now, "assign_unit", fields, ref, f"dispatch: {pick.reason}"))
        return now

    def _acknowledge(self, now: float, picture: DispatchState, out: list[Planned]) -> float:
        due = INF
        for callsign in sorted(picture.units):
            unit = picture.units[callsign]
            if unit.state != UnitState.EMERGENCY or unit.emergency_acknowledged_by is not None:
                self.ack_due.pop(callsign, None)
                continue
            if callsign not in self.ack_due:
                self.ack_due[callsign] = now + self.rng.uniform(*_ACK_DELAY)
            if now < self.ack_due[callsign]:
                due = min(due, self.ack_due[callsign])
                continue
            del self.ack_due[callsign]
            out.append(
                Planned(
                    now, "acknowledge_emergency", {"callsign": callsign}, callsign, "ack state 0"
                )
            )
            due = now
        return due

    def _forget_closed(self, picture: DispatchState) -> None:
        for table in (self.dispatch_due, self.close_due):
            for ref in [r for r in table if _closed(picture, r)]:
                del table[ref]
        for ref in [r for r in self.attended if _closed(picture, r)]:
            self.attended.discard(ref)


def _closed(picture: DispatchState, reference: str) -> bool:
    incident = picture.incidents.get(reference)
    return incident is None or incident.status == IncidentStatus.CLOSED


def _queue_order(incident: Incident) -> tuple:
    opened = incident.chronology[0].seq if incident.chronology else 0
    return (int(incident.grade), opened, incident.reference)


def _close(now: float, reference: str, code: str, summary: str, why: str) -> Planned:
    fields = {"reference": reference, "closing_code": code, "summary": summary}
    return Planned(now, "close_incident", fields, reference, why)
