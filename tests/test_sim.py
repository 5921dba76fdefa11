"""The simulator: determinism, the call mix, units that travel and arrive, client-only.

The pure core is exercised against an in-memory backend made of the server's own rules
and the protocol fold (`FakeBackend`), which is fast and exact; the driver is exercised
against real embedded backends on loopback ports.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import math
import random
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from waiting import until

from cadterm.client import Backoff, DispatchClient
from cadterm.client.queries import fetch_events
from cadterm.domain.geography import haversine_km
from cadterm.domain.rules import Codes, Refused, decide
from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.protocol.commands import parse_command
from cadterm.protocol.domain import (
    IncidentStatus,
    Operator,
    Position,
    Role,
    SourceChannel,
    UnitState,
    UnitType,
)
from cadterm.protocol.fold import DispatchState, apply
from cadterm.server.embedded import SIMULATOR_ID, EmbeddedBackend
from cadterm.sim.background import main as background_main
from cadterm.sim.background import simulation
from cadterm.sim.calls import GRADE_MIX, plan_calls
from cadterm.sim.city import BRACKLEY, UnknownPlace
from cadterm.sim.clock import SimClock
from cadterm.sim.core import SimCore
from cadterm.sim.force import FORCE, book_on_fields, seed_force
from cadterm.sim.movement import ROAD_FACTOR, speed_kmh
from cadterm.sim.planned import Planned, SimSettings
from cadterm.sim.simulator import Simulator, SimulatorError

ROOT = Path(__file__).resolve().parent.parent
VIRTUAL = math.inf


# --- an in-memory backend: the server's rules and the protocol's fold, no I/O --------------


class FakeBackend:
    """Applies planned commands exactly as the server would, without a server."""

    def __init__(self) -> None:
        self.state = DispatchState()
        self.codes = Codes(INCIDENT_TYPES, CLOSING_CODES)
        self.operator = Operator(id="sim", name="Simulator", role=Role.DISPATCHER)
        self.start = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)

    def execute(self, kind: str, fields: dict, now: float) -> str | None:
        """Apply one command at sim time `now`; the problem code if refused."""
        command = parse_command(
            {"type": kind, "idempotency_key": "k" * 16, "workstation": "sim", **fields}
        )
        try:
            event = decide(
                self.state, command, self.operator, self.start + timedelta(seconds=now), self.codes
            )
        except Refused as refused:
            return refused.problem.code.value
        apply(self.state, event)
        return None

    def seed(self) -> None:
        for spec in FORCE:
            assert self.execute("book_on", book_on_fields(spec), 0.0) is None


def run_offline(
    core: SimCore, backend: FakeBackend, until: float
) -> list[tuple[Planned, str | None]]:
    """Drive `core` against `backend` the way `Simulator.run` does, on a virtual clock."""
    sent: list[tuple[Planned, str | None]] = []
    now = 0.0
    for _ in range(1_000_000):
        for _ in range(20):
            planned = core.step(now, backend.state)
            if not planned:
                break
            for item in planned:
                problem = backend.execute(item.type, dict(item.fields), now)
                core.settle(item, problem)
                sent.append((item, problem))
        if now >= until:
            return sent
        now = min(max(core.next_due, now + 1e-3), until)
    raise AssertionError("simulation did not reach its end")


def offline(seed: int, until: float, **settings) -> tuple[list, FakeBackend]:
    backend = FakeBackend()
    backend.seed()
    core = SimCore(seed, SimSettings(**settings))
    return run_offline(core, backend, until), backend


def commands(sent) -> list[tuple[float, dict]]:
    return [(item.at, item.as_dict()) for item, _ in sent]


# --- calls -----------------------------------------------------------------------------------


def test_same_seed_and_rate_give_the_same_calls() -> None:
    first = plan_calls(42, 1.0, 3600)
    assert first == plan_calls(42, 1.0, 3600)
    assert first != plan_calls(43, 1.0, 3600)
    assert [c.at for c in first] == sorted(c.at for c in first)


def test_grade_mix_over_many_calls_matches_the_defaults() -> None:
    calls = plan_calls(7, 20.0, 6 * 3600)  # a long major incident: about 7,200 calls
    assert 6800 < len(calls) < 7600, len(calls)
    counts = collections.Counter(int(c.grade) for c in calls)
    for grade, share in GRADE_MIX.items():
        assert abs(counts[grade] / len(calls) - share) < 0.02, (grade, counts)
    assert counts[2] + counts[3] > 5 * counts[1]
    assert {c.incident_type for c in calls} <= set(INCIDENT_TYPES)
    grade_1 = [c for c in calls if c.grade == 1]
    by_999 = sum(c.source == SourceChannel.EMERGENCY_999 for c in grade_1) / len(grade_1)
    assert by_999 > 0.85
    online_1 = sum(c.source == SourceChannel.ONLINE for c in grade_1)
    assert online_1 == 0, "nobody reports an emergency online"
    for call in calls[:200]:
        assert call.location.position is not None and call.location.sector is not None
        parse_command(
            {
                "type": "create_incident",
                "idempotency_key": "k" * 8,
                "workstation": "sim",
                **call.command_fields(),
            }
        )


@pytest.mark.parametrize(("rate", "low", "high"), [(0.2, 4, 22), (1.0, 45, 78), (20.0, 1100, 1300)])
def test_rate_scales_the_arrivals(rate: float, low: int, high: int) -> None:
    assert low <= len(plan_calls(1, rate, 3600)) <= high
    assert plan_calls(1, 0.0, 3600) == []


def test_city_names_are_checked_with_suggestions() -> None:
    assert BRACKLEY.location("market square").address == "Market Square, Brackley"
    assert BRACKLEY.location("Albion Street", house=1).address.startswith("1 Albion Street")
    with pytest.raises(UnknownPlace, match="did you mean 'Market Square'"):
        BRACKLEY.find("Market Sqare")
    assert (
        BRACKLEY.locate("23 Albion Street, Brackley")
        == BRACKLEY.location("Albion Street", house=23).position
    )


def test_force_is_three_dozen_units_with_distinct_callsigns() -> None:
    callsigns = [spec.callsign for spec in FORCE]
    assert len(callsigns) == 36 == len(set(callsigns))
    assert {spec.home_sector for spec in FORCE} == {s.name for s in BRACKLEY.sectors}
    for spec in FORCE:
        assert haversine_km(spec.start, BRACKLEY.centre) < 8


# --- the pure core ---------------------------------------------------------------------------


def test_core_is_deterministic_and_its_commands_obey_the_rules() -> None:
    settings = dict(rate=2.0, auto_dispatch=True, emergency_chance=0.2)
    first, backend = offline(5, 2 * 3600, **settings)
    second, _ = offline(5, 2 * 3600, **settings)
    other, _ = offline(6, 2 * 3600, **settings)
    assert commands(first) == commands(second)
    assert commands(first) != commands(other)
    refused = [(item.type, problem) for item, problem in first if problem]
    assert refused == [], refused  # with nobody else at work, nothing is refused
    kinds = collections.Counter(item.type for item, _ in first)
    for kind in ("create_incident", "assign_unit", "locate_unit", "set_unit_state"):
        assert kinds[kind] > 0, kinds
    assert kinds["close_incident"] > 0.5 * kinds["create_incident"]
    assert kinds["acknowledge_emergency"] > 0  # state 0 happens, and is acknowledged
    closed = [i for i in backend.state.incidents.values() if i.status == IncidentStatus.CLOSED]
    assert {i.closing_code for i in closed} <= set(CLOSING_CODES)


def test_a_short_run_is_the_start_of_a_long_one() -> None:
    short, _ = offline(9, 1800, rate=1.0, auto_dispatch=True)
    long, _ = offline(9, 3600, rate=1.0, auto_dispatch=True)
    assert commands(long)[: len(short)] == commands(short)


def test_without_auto_dispatch_the_simulator_dispatches_nothing() -> None:
    sent, backend = offline(3, 3600, rate=2.0, auto_dispatch=False)
    kinds = {item.type for item, _ in sent}
    assert kinds == {"create_incident"}
    assert all(i.status == IncidentStatus.OPEN for i in backend.state.incidents.values())


def test_units_handed_over_are_never_played() -> None:
    backend = FakeBackend()
    backend.seed()
    location = BRACKLEY.location("Canal Wharf").model_dump(mode="json")
    fields = {"grade": 1, "incident_type": "ASSAULT", "location": location}
    assert backend.execute("create_incident", fields, 0.0) is None
    (reference,) = backend.state.incidents
    for callsign in ("CC13", "CF33"):
        assert (
            backend.execute("assign_unit", {"reference": reference, "callsign": callsign}, 0)
            is None
        )
    core = SimCore(1, SimSettings(rate=0, hands_off=frozenset({"CC13"})))
    sent = run_offline(core, backend, 3600)
    about = {item.fields.get("callsign") for item, _ in sent}
    assert "CF33" in about and "CC13" not in about
    assert backend.state.units["CC13"].state == UnitState.EN_ROUTE


# --- the driver against real backends --------------------------------------------------------


async def simulate(seed: int, until: float, **options) -> tuple[list, DispatchState, list]:
    """Run a simulator on a virtual clock against a fresh embedded backend."""
    with EmbeddedBackend() as (url, tokens):
        async with DispatchClient(url, tokens.simulator, workstation="sim") as client:
            await client.wait_live()
            await seed_force(client)
            sim = Simulator(client, seed, clock=SimClock(VIRTUAL), keep_transcript=True, **options)
            await asyncio.wait_for(sim.run(until=until), timeout=60)
            assert sim.transcript is not None
            events = await asyncio.to_thread(fetch_events, url, tokens.dispatcher, 0, 5000)
            return sim.transcript, client.state, events


def same_day(commands: list) -> list:
    """Commands with log references stripped of their day (a run may cross midnight)."""
    text = repr(commands)
    return [re.sub(r"(\d{4})-\d{2}[A-Z]{3}\d{2}", r"\1", text)]


async def test_same_seed_same_commands_against_a_backend() -> None:
    options = dict(rate=2.0, auto_dispatch=True, avl_every=20)
    first, _, _ = await simulate(21, 1800, **options)
    second, _, _ = await simulate(21, 1800, **options)
    other, _, _ = await simulate(22, 1800, **options)

    def sent(transcript):
        return [(s.at, s.command, s.problem) for s in transcript]

    assert len(first) > 100
    assert same_day(sent(first)) == same_day(sent(second))
    assert same_day(sent(first)) != same_day(sent(other))


async def test_units_travel_at_plausible_speeds_arrive_and_clear() -> None:
    with EmbeddedBackend() as (url, tokens):
        async with DispatchClient(url, tokens.dispatcher, workstation="console") as console:
            await console.wait_live()
            await seed_force(console)
            scene = BRACKLEY.location("Eastgate Retail Park")
            created = await console.execute(
                console.command("create_incident", grade=1, incident_type="ROBBERY", location=scene)
            )
            reference = created.event.reference
            await console.execute(
                console.command("assign_unit", reference=reference, callsign="ARV3")
            )
            start = console.units["ARV3"].position
            assert start is not None and scene.position is not None
            distance = haversine_km(start, scene.position)
            assert distance > 5  # from the far side of the city

            async with DispatchClient(url, tokens.simulator, workstation="sim") as players:
                await players.wait_live()
                sim = Simulator(
                    players, 4, rate=0, clock=SimClock(VIRTUAL), keep_transcript=True,
                    avl_every=10, scene_time_factor=0.1,
                )  # fmt: skip
                await asyncio.wait_for(sim.run(until=3600), timeout=60)

            about = [s for s in sim.transcript or [] if s.command.get("callsign") == "ARV3"]
            fixes = [s for s in about if s.command["type"] == "locate_unit"]
            states = [
                (s.at, s.command["state"]) for s in about if s.command["type"] == "set_unit_state"
            ]
            assert [state for _, state in states] == [6, 2], states
            arrived = states[0][0]
            drive = (
                distance * ROAD_FACTOR / speed_kmh(UnitType.ARMED_RESPONSE, blue_lights=True) * 3600
            )
            assert drive + 10 <= arrived <= drive + 40  # turnout 10-40 s, then blue lights
            en_route = [f for f in fixes if f.at < arrived]
            assert len(en_route) >= drive // 10 - 1
            gaps = [haversine_km(_pos(f), scene.position) for f in en_route]
            assert gaps == sorted(gaps, reverse=True), "each fix is closer to the scene"
            assert all(s.problem is None for s in sim.transcript or [])
            incident = console.incidents[reference]
            assert incident.status == IncidentStatus.CLOSED
            assert incident.closing_code in CLOSING_CODES
            assert console.units["ARV3"].state in (
                UnitState.AVAILABLE_ON_PATROL,
                UnitState.REFRESHMENTS,
            )


def _pos(sent) -> Position:
    return Position.model_validate(sent.command["position"])


async def test_a_running_simulator_plays_units_a_person_dispatches() -> None:
    with EmbeddedBackend() as (url, tokens):
        async with (
            DispatchClient(url, tokens.dispatcher, workstation="console") as console,
            DispatchClient(url, tokens.simulator, workstation="sim") as players,
        ):
            await console.wait_live()
            await players.wait_live()
            await seed_force(players)
            sim = Simulator(players, 2, rate=0, clock=SimClock(50), avl_every=5)
            sim.start(until=600)
            try:
                scene = BRACKLEY.location("Canal Wharf")
                made = await console.execute(
                    console.command(
                        "create_incident", grade=2, incident_type="THEFT", location=scene
                    )
                )
                waiting = await console.execute(
                    console.command(
                        "create_incident", grade=3, incident_type="FRAUD", location=scene
                    )
                )
                reference = made.event.reference
                await console.execute(
                    console.command("assign_unit", reference=reference, callsign="CC13")
                )
                await until(
                    lambda: console.units["CC13"].state == UnitState.AT_SCENE, 10, "CC13 at scene"
                )
                assert console.incidents[reference].status == IncidentStatus.AT_SCENE
                # Nobody dispatches the other call: that is the person's job.
                assert console.incidents[waiting.event.reference].assigned == []
            finally:
                await sim.stop()
            assert sim.task is None


async def test_every_event_of_a_run_comes_from_the_simulators_client() -> None:
    transcript, state, events = await simulate(8, 1200, rate=2.0, auto_dispatch=True)
    assert {(e.operator, e.workstation) for e in events} == {(SIMULATOR_ID, "sim")}
    applied = [s for s in transcript if s.problem is None]
    assert len(events) == len(FORCE) + len(applied)
    assert [s.seq for s in applied] == [e.seq for e in events[len(FORCE) :]]
    assert state.seq == events[-1].seq


# --- the clock -------------------------------------------------------------------------------


async def test_scaled_clock_runs_faster_than_real_time() -> None:
    clock = SimClock(100)
    clock.start()
    started = time.monotonic()
    assert await clock.sleep_until(30) is False
    assert 0.25 <= time.monotonic() - started < 1.0
    assert clock.now() >= 30
    assert clock.wall(100) - clock.wall(0) == timedelta(seconds=1)


async def test_clock_wakes_early_and_virtual_clock_jumps() -> None:
    clock = SimClock(1)
    started = time.monotonic()
    assert await clock.sleep_until(60, wake=lambda: time.monotonic() - started > 0.1, poll=0.01)
    assert time.monotonic() - started < 1
    virtual = SimClock(VIRTUAL)
    assert virtual.virtual
    await virtual.sleep_until(3600)
    assert virtual.now() == 3600
    with pytest.raises(ValueError):
        SimClock(0)


# --- in the background, and when the backend goes away ----------------------------------------


async def test_background_simulation_runs_and_stops_cleanly() -> None:
    with EmbeddedBackend() as (url, tokens):
        async with simulation(url, tokens.simulator, seed=1, rate=30.0, speed=100) as sim:
            await until(lambda: sim.sent["create_incident"] >= 3, 10, "three calls to come in")
            sim.set_rate(0.0)
            assert sim.core.next_call_at == math.inf
        assert sim.task is None and sim.failure is None
        async with DispatchClient(url, tokens.dispatcher) as console:
            await console.wait_live()
            assert len(console.units) == len(FORCE)
            assert len(console.incidents) >= 3


def test_load_generator_command_line(capsys) -> None:
    with EmbeddedBackend() as (url, tokens):
        argv = [url, "--token", tokens.simulator, "--rate", "20", "--speed", "200"]
        assert background_main([*argv, "--duration", "120", "--auto-dispatch"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"sent \d+ commands .*'create_incident'", out), out
    assert background_main([url, "--speed", "2"]) == 2  # no token


async def test_simulator_gives_up_when_the_backend_stays_away() -> None:
    backend = EmbeddedBackend()
    with backend as (url, tokens):
        async with DispatchClient(url, tokens.simulator, workstation="sim") as client:
            await client.wait_live()
            sim = Simulator(client, 1, rate=60.0, clock=SimClock(10), patience=1.0)
            sim.start()
            await backend.astop()
            await asyncio.wait_for(asyncio.wait({sim.task}), timeout=15)
            assert isinstance(sim.failure, SimulatorError)
            assert "gave up on create_incident after 1 s" in str(sim.failure)
            await sim.stop()


def test_retries_are_paced_by_the_clients_backoff() -> None:
    # The simulator and the scenario runner wait `Backoff.delays()` between tries: each
    # wait is half to all of a step that doubles from `base` up to `cap`.
    backoff = Backoff(base=0.05, cap=1.0)
    waits = list(itertools.islice(backoff.delays(random.Random(4)), 10))
    steps = [min(1.0, 0.05 * 2**n) for n in range(10)]
    assert all(step / 2 <= wait <= step for wait, step in zip(waits, steps, strict=True))
    assert waits[-1] > waits[0] * 5
    assert list(itertools.islice(backoff.delays(random.Random(4)), 10)) == waits
