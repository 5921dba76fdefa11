"""The alarm tracker's breach check: once a second, and cheap on a long shift.

A breach ends only by an event (someone at scene, the incident closed), so a breach
already found is not measured again until its incident changes; these tests prove it
is still taken off the banner when someone arrives, and count the measuring.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import cadterm.tui.alerts as alerts
from cadterm.domain.timers import DEFAULT_POLICY
from cadterm.protocol.domain import UnitState
from cadterm.protocol.events import IncidentCreated, UnitAssigned, UnitBookedOn, UnitStateChanged
from cadterm.protocol.fold import DispatchState, apply
from cadterm.tui.alerts import AlarmTracker

START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


class _Log:
    def __init__(self) -> None:
        self.state = DispatchState()

    def add(self, kind, minutes: float, **fields) -> set[str]:
        event = kind(
            seq=self.state.seq + 1,
            at=START + timedelta(minutes=minutes),
            operator="disp1",
            workstation="ws-1",
            **fields,
        )
        changes = apply(self.state, event)
        return set(changes.incidents)


def _shift() -> _Log:
    log = _Log()
    log.add(UnitBookedOn, 0, callsign="AB12", unit_type="patrol_car", home_sector="LS1")
    for number in (1, 2):
        log.add(
            IncidentCreated,
            0,
            reference=f"{number:04d}-27NOV26",
            log_day=date(2026, 11, 27),
            grade=1,
            incident_type="ASSAULT",
            location={"address": f"{number} Canal Wharf"},
            source="999",
        )
    return log


def _counting(monkeypatch) -> list[str]:
    measured: list[str] = []
    real = alerts.attendance_alert

    def attendance_alert(incident, *args, **kwargs):
        measured.append(incident.reference)
        return real(incident, *args, **kwargs)

    monkeypatch.setattr(alerts, "attendance_alert", attendance_alert)
    return measured


def test_a_breach_found_is_not_measured_again_until_its_incident_changes(monkeypatch):
    log = _shift()
    tracker = AlarmTracker()
    tracker.prime(log.state)
    measured = _counting(monkeypatch)
    later = START + timedelta(minutes=20)  # past the 15-minute target
    assert tracker.check_breaches(log.state, later, DEFAULT_POLICY)
    assert set(tracker.breaches) == {"0001-27NOV26", "0002-27NOV26"}
    assert sorted(measured) == ["0001-27NOV26", "0002-27NOV26"]
    measured.clear()
    for second in range(1, 4):
        assert not tracker.check_breaches(
            log.state, later + timedelta(seconds=second), DEFAULT_POLICY
        )
    assert measured == []  # nothing changed: nothing to measure
    changed = log.add(UnitAssigned, 19, reference="0001-27NOV26", callsign="AB12")
    tracker.update(log.state, changed, {"AB12"})
    tracker.check_breaches(log.state, later + timedelta(seconds=5), DEFAULT_POLICY)
    assert measured == ["0001-27NOV26"]  # the changed one alone


def test_someone_at_scene_takes_a_settled_breach_off_the_banner():
    log = _shift()
    tracker = AlarmTracker()
    tracker.prime(log.state)
    later = START + timedelta(minutes=20)
    tracker.check_breaches(log.state, later, DEFAULT_POLICY, ["0001-27NOV26", "0002-27NOV26"])
    tracker.check_breaches(log.state, later, DEFAULT_POLICY, ["0001-27NOV26", "0002-27NOV26"])
    changed = log.add(UnitAssigned, 20, reference="0001-27NOV26", callsign="AB12")
    changed |= log.add(UnitStateChanged, 21, callsign="AB12", state=UnitState.AT_SCENE)
    tracker.update(log.state, changed, {"AB12"})
    assert "0001-27NOV26" in changed
    tracker.check_breaches(log.state, later, DEFAULT_POLICY, ["0001-27NOV26", "0002-27NOV26"])
    assert set(tracker.breaches) == {"0002-27NOV26"}
