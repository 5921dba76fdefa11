"""Playing the units: travel, arrival, time at scene, clearing, patrol, refreshments.

The simulator stands in for the officers: when a unit it plays is assigned (by anyone),
it drives there at a plausible speed sending position fixes, books at scene, stays for a
time that depends on the incident type, and clears (state 2, which takes it off the
incident). Afterwards it patrols back into its home sector or takes refreshments. Now
and then a unit at a violent incident presses its emergency button (state 0) for a while.

`UnitPlayer.play` is pure: it reads one unit from the observed picture, its own plan for
that unit (`Job`) and the time, and returns the commands to send. It follows what it
observes, so a person can take over at any point: a unit stood down mid-journey stops
where it is, a unit booked at scene by hand starts its time at scene.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import StrEnum

from cadterm.protocol.domain import AVAILABLE_STATES, Incident, Position, Unit, UnitState
from cadterm.protocol.fold import DispatchState

from .movement import interpolate, speed_kmh, travel_seconds
from .planned import Planned, SimSettings, position_fields
from .resulting import EMERGENCY_PRONE, scene_seconds

__all__ = ["Job", "Phase", "UnitPlayer"]

INF = math.inf
_SCENE_STATES = frozenset(
    {UnitState.AT_SCENE, UnitState.COMMITTED_DEPLOYABLE, UnitState.COMMITTED_NOT_DEPLOYABLE}
)


class Phase(StrEnum):
    """What the simulator is doing with a unit."""

    IDLE = "idle"  # free, standing still
    TRAVEL = "travel"  # en route to an incident
    SCENE = "scene"  # at an incident
    HOLD = "hold"  # on an incident in a state a person set (e.g. 9, 10): left alone
    PATROL = "patrol"  # free, driving back into its home sector
    REFS = "refs"  # on refreshments the simulator started


@dataclass
class Job:
    """The simulator's plan for one unit. Times are simulated seconds."""

    phase: Phase = Phase.IDLE
    reference: str | None = None
    origin: Position | None = None
    destination: Position | None = None
    depart_at: float = 0.0
    arrive_at: float = 0.0
    next_fix_at: float = INF
    until: float = INF
    emergency_at: float | None = None
    emergency_end: float | None = None
    cleared_by_us: bool = False


class UnitPlayer:
    """Plays every unit not handed to a person; one `Job` per callsign."""

    def __init__(self, settings: SimSettings, rng: random.Random) -> None:
        self.settings = settings
        self.rng = rng
        self.jobs: dict[str, Job] = {}
        self.attended: set[str] = set()  # incidents a unit of ours reached

    def play(self, now: float, unit: Unit, picture: DispatchState) -> tuple[list[Planned], float]:
        """The commands for `unit` at `now`, and when it next needs looking at.

        Once a command is planned for a unit nothing more is decided for it until that
        command is in the picture, so the next-due time is then `now`.
        """
        out: list[Planned] = []
        callsign = unit.callsign
        job = self.jobs.get(callsign)
        if unit.incident is not None:
            incident = picture.incidents.get(unit.incident)
            if incident is None:
                return out, INF
            if job is None or job.reference != incident.reference:
                job = self.jobs[callsign] = self._incident_job(now, unit, incident)
            due = self._on_incident(now, unit, incident, job, out)
        else:
            if job is None:
                job = self.jobs[callsign] = Job()
            elif job.reference is not None:
                job = self.jobs[callsign] = self._after_incident(now, unit, job, out)
                if out:
                    return out, now
            due = self._free(now, unit, job, out)
        return out, (now if out else due)

    def forget(self, callsign: str) -> None:
        """Drop the plan for a unit (booked off, or handed to a person)."""
        self.jobs.pop(callsign, None)

    # --- on an incident ------------------------------------------------------------------

    def _incident_job(self, now: float, unit: Unit, incident: Incident) -> Job:
        if unit.state == UnitState.EN_ROUTE:
            return self._travel(now, unit, incident, turnout=True)
        if unit.state in _SCENE_STATES:
            self.attended.add(incident.reference)
            return self._scene(now, incident)
        return Job(Phase.HOLD, incident.reference)

    def _travel(self, now: float, unit: Unit, incident: Incident, *, turnout: bool) -> Job:
        city = self.settings.city
        origin = unit.position or _sector_centre(city, unit.home_sector)
        destination = (
            incident.location.position
            or city.locate(incident.location.address)
            or _sector_centre(city, incident.location.sector)
        )
        kmh = speed_kmh(unit.unit_type, blue_lights=incident.grade == 1)
        depart = now + (self.rng.uniform(10, 40) if turnout else 0.0)
        arrive = depart + travel_seconds(origin, destination, kmh)
        every = self.settings.avl_every
        return Job(
            Phase.TRAVEL,
            incident.reference,
            origin,
            destination,
            depart_at=depart,
            arrive_at=arrive,
            next_fix_at=depart + every if every > 0 else INF,
        )

    def _scene(self, now: float, incident: Incident) -> Job:
        until = now + scene_seconds(
            self.rng, incident.incident_type, self.settings.scene_time_factor
        )
        job = Job(Phase.SCENE, incident.reference, until=until)
        # Always draw, so whether an emergency happens never shifts later draws.
        pressed = self.rng.random() < self.settings.emergency_chance
        when = self.rng.uniform(0.1, 0.7)
        if pressed and incident.incident_type in EMERGENCY_PRONE:
            job.emergency_at = now + (until - now) * when
        return job

    def _on_incident(
        self, now: float, unit: Unit, incident: Incident, job: Job, out: list[Planned]
    ) -> float:
        callsign, state = unit.callsign, unit.state
        if state == UnitState.EN_ROUTE:
            if job.phase != Phase.TRAVEL:  # sent again after arriving, or our arrival failed
                job = self.jobs[callsign] = self._travel(now, unit, incident, turnout=False)
            return self._drive(now, unit, job, out, arriving=incident)
        if state in _SCENE_STATES:
            if job.phase != Phase.SCENE:  # booked at scene by someone else
                self.attended.add(incident.reference)
                job = self.jobs[callsign] = self._scene(now, incident)
            job.emergency_end = None
            if job.emergency_at is not None and now >= job.emergency_at:
                job.emergency_at = None
                job.emergency_end = now + self.rng.uniform(90, 240)
                job.until = max(job.until, job.emergency_end + 120)
                out.append(
                    _state(now, callsign, UnitState.EMERGENCY, "presses the emergency button")
                )
                return now
            if now >= job.until:
                job.cleared_by_us = True
                out.append(_state(now, callsign, UnitState.AVAILABLE_ON_PATROL, "clears the scene"))
                return now
            return min(job.until, job.emergency_at if job.emergency_at is not None else INF)
        if state == UnitState.EMERGENCY and job.emergency_end is not None:
            if now >= job.emergency_end:
                job.emergency_end = None
                out.append(_state(now, callsign, UnitState.AT_SCENE, "emergency over, at scene"))
                return now
            return job.emergency_end
        return INF  # a state a person chose (refs, escort, court, their own state 0)

    def _drive(
        self, now: float, unit: Unit, job: Job, out: list[Planned], arriving: Incident | None
    ) -> float:
        """Move along `job`'s trip; on arrival book at scene (or stop, when patrolling)."""
        assert job.origin is not None and job.destination is not None
        callsign = unit.callsign
        if now >= job.arrive_at:
            if unit.position != job.destination:
                out.append(_fix(now, callsign, job.destination, "arrives"))
            if arriving is None:
                self.jobs[callsign] = Job()
                return now if out else INF
            self.attended.add(arriving.reference)
            self.jobs[callsign] = self._scene(now, arriving)
            out.append(_state(now, callsign, UnitState.AT_SCENE, f"at scene {arriving.reference}"))
            return now
        if now >= job.next_fix_at:
            span = job.arrive_at - job.depart_at
            share = (now - job.depart_at) / span if span > 0 else 1.0
            out.append(_fix(now, callsign, interpolate(job.origin, job.destination, share), "AVL"))
            every = self.settings.avl_every * (1 if arriving is not None else 3)
            job.next_fix_at = now + every
            return now
        return min(job.arrive_at, job.next_fix_at)

    # --- free ------------------------------------------------------------------------------

    def _after_incident(self, now: float, unit: Unit, job: Job, out: list[Planned]) -> Job:
        """The unit is off its incident: decide what it does next."""
        if not job.cleared_by_us:
            # Stood down or the incident closed under it: it stops where it is.
            if job.phase == Phase.TRAVEL and job.origin and job.destination and now > job.depart_at:
                span = job.arrive_at - job.depart_at
                share = (now - job.depart_at) / span if span > 0 else 1.0
                here = interpolate(job.origin, job.destination, share)
                if unit.position != here:
                    out.append(_fix(now, unit.callsign, here, "stood down"))
            return Job()
        refs = self.rng.random() < self.settings.refs_chance
        refs_for = self.rng.uniform(1200, 2400) * self.settings.scene_time_factor
        city = self.settings.city
        destination = city.random_point(self.rng, unit.home_sector)
        if refs and unit.state in AVAILABLE_STATES:
            out.append(_state(now, unit.callsign, UnitState.REFRESHMENTS, "takes refreshments"))
            return Job(Phase.REFS, until=now + refs_for)
        origin = unit.position or destination
        depart = now + 30.0
        every = self.settings.avl_every * 3
        return Job(
            Phase.PATROL,
            origin=origin,
            destination=destination,
            depart_at=depart,
            arrive_at=depart
            + travel_seconds(origin, destination, speed_kmh(unit.unit_type, patrol=True)),
            next_fix_at=depart + every if every > 0 else INF,
        )

    def _free(self, now: float, unit: Unit, job: Job, out: list[Planned]) -> float:
        if job.phase == Phase.PATROL:
            if unit.state not in AVAILABLE_STATES:
                self.jobs[unit.callsign] = Job()
                return INF
            return self._drive(now, unit, job, out, arriving=None)
        if job.phase == Phase.REFS:
            if unit.state != UnitState.REFRESHMENTS:
                self.jobs[unit.callsign] = Job()
                return INF
            if now >= job.until:
                self.jobs[unit.callsign] = Job()
                out.append(_state(now, unit.callsign, UnitState.AVAILABLE_ON_PATROL, "refs over"))
                return now
            return job.until
        return INF


def _sector_centre(city, sector: str | None) -> Position:
    try:
        return city.sector(sector).centre if sector else city.centre
    except KeyError:
        return city.centre


def _state(now: float, callsign: str, state: UnitState, why: str) -> Planned:
    return Planned(
        now, "set_unit_state", {"callsign": callsign, "state": int(state)}, callsign, why
    )


def _fix(now: float, callsign: str, position: Position, why: str) -> Planned:
    return Planned(
        now,
        "locate_unit",
        {"callsign": callsign, "position": position_fields(position)},
        callsign,
        why,
    )
