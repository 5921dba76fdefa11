"""Running a scenario: a fresh embedded backend, the script on a shared clock, a record.

The run uses two clients: the *operator* (the dispatcher token, workstation
"scenario"), which issues the script's steps and stays subscribed throughout (through
any outage), and the *simulator's* (the simulator token, workstation "sim"), which books
the force on and plays units and background calls. Every command either acknowledged is
kept with the event it caused, so the checks can look for each one on the server.

Steps that name a `console` go instead through that console: a client of its own with
an offline journal and a picture on disk, as a control room's consoles have. While the
backend is down they wait in its journal, applied to its picture as provisional (CAD-down
mode), and replay when it is back; what each console's journal ends with is kept for the
checks.

Steps run in order of their time on one `SimClock`; an outage runs in the background so
that the steps after it carry on (their commands are retried with the same idempotency
key until the backend is back). `recommended` expectations are probed at their time.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cadterm.client import (
    BackendUnavailable,
    Backoff,
    CommandError,
    DispatchClient,
    RateLimited,
)
from cadterm.client.journal import JournalEntry
from cadterm.client.queries import Queries
from cadterm.domain.recommend import Recommendation, needs_for, recommend
from cadterm.protocol.commands import CommandResult
from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.problems import Problem
from cadterm.server.embedded import EmbeddedBackend

from ..city import BRACKLEY
from ..clock import SimClock
from ..force import FORCE, book_on_fields
from ..simulator import Sent, Simulator
from .format import substitute_aliases
from .model import (
    AssignStep,
    CallStep,
    CommandStep,
    OutageStep,
    Recommended,
    ReconcileStep,
    Scenario,
    Step,
    UnitStateStep,
)

__all__ = ["Probe", "RunRecord", "StepOutcome", "run_scenario"]

# Real seconds a step's command may keep failing for want of a backend before it fails.
_PATIENCE = 60.0
_BACKOFF = Backoff(base=0.05, cap=0.5)


@dataclass
class StepOutcome:
    """What became of one step."""

    step: Step
    started_at: float  # simulated time it started
    real_seconds: float
    ok: bool  # it did what it should (or was refused as its `expect` said)
    detail: str
    problem: Problem | None = None


@dataclass
class Probe:
    """The recommendation list for an incident at the time a `recommended` check names."""

    expectation: Recommended
    taken_at: float
    picks: list[Recommendation]
    reference: str | None


@dataclass
class RunRecord:
    """Everything a run produced, for the checks and the report."""

    scenario: Scenario
    speed: float
    references: dict[str, str] = field(default_factory=dict)
    steps: list[StepOutcome] = field(default_factory=list)
    probes: dict[int, Probe] = field(default_factory=dict)
    acknowledged: list[Event] = field(default_factory=list)
    observer_state: DispatchState | None = None
    server_state: DispatchState | None = None
    server_events: list[Event] | None = None
    observer_resumes: int = 0
    restarts: int = 0
    #: Console name -> its journal's entries at the end (every one, in order).
    journals: dict[str, list[JournalEntry]] = field(default_factory=dict)
    #: Console name -> provisional references it used -> the log references they got.
    reference_maps: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Console name -> idempotency keys of the commands it journalled while offline.
    typed_offline: dict[str, list[str]] = field(default_factory=dict)
    real_seconds: float = 0.0
    sim_seconds: float = 0.0
    error: str | None = None


async def run_scenario(scenario: Scenario, *, speed: float | None = None) -> RunRecord:
    """Run `scenario` against a fresh embedded backend (temporary directory)."""
    record = RunRecord(scenario, speed or scenario.speed)
    backend = EmbeddedBackend(workstations=[_workstation(name) for name in scenario.consoles])
    backend.config = backend.config.model_copy(
        update={"back_entry_after": scenario.back_entry_after}
    )
    started = time.monotonic()
    try:
        url, tokens = await backend.astart()
        with tempfile.TemporaryDirectory(prefix="cadterm-consoles-") as folder:
            consoles = {
                name: DispatchClient(
                    [url],
                    tokens.dispatcher,
                    workstation=_workstation(name),
                    journal_path=Path(folder) / name / "journal.db",
                    picture_path=Path(folder) / name / "picture.json",
                    backoff=_BACKOFF,
                    reserve=scenario.reserve,
                )
                for name in scenario.consoles
            }
            async with contextlib.AsyncExitStack() as stack:
                operator = await stack.enter_async_context(
                    DispatchClient(
                        [url], tokens.dispatcher, workstation="scenario", backoff=_BACKOFF
                    )
                )
                players = await stack.enter_async_context(
                    DispatchClient([url], tokens.simulator, workstation="sim", backoff=_BACKOFF)
                )
                for console in consoles.values():
                    await stack.enter_async_context(console)
                await _Run(record, backend, operator, players, consoles).run()
    except Exception as exc:  # the report says what broke; nothing escapes the runner
        record.error = f"{type(exc).__name__}: {exc}"
    finally:
        await asyncio.to_thread(backend.close)
        record.real_seconds = time.monotonic() - started
    return record


def _workstation(console: str) -> str:
    """The workstation id a scenario's console sends its commands from."""
    return f"console-{console}"


class _Run:
    def __init__(
        self,
        record: RunRecord,
        backend: EmbeddedBackend,
        operator: DispatchClient,
        players: DispatchClient,
        consoles: dict[str, DispatchClient] | None = None,
    ) -> None:
        self.consoles = consoles or {}
        self.record = record
        self.scenario = record.scenario
        self.backend = backend
        self.operator = operator
        self.players = players
        self.clock = SimClock(record.speed)
        self.outages: list[asyncio.Task[None]] = []

    async def run(self) -> None:
        await self.operator.wait_live(timeout=15)
        await self.players.wait_live(timeout=15)
        for name, console in self.consoles.items():
            await console.wait_live(timeout=15)
            if self.scenario.reserve:  # its block in hand before anything can go down
                await self.until(
                    lambda c=console: len(c.reserved_references) >= self.scenario.reserve,
                    f"console {name}'s reserved references",
                )
        if self.scenario.force:
            for spec in FORCE:
                await self.execute(self.players, "book_on", book_on_fields(spec))
        self.clock.start()
        simulator = self.simulator()
        try:
            for at, item in self.timeline():
                await self.clock.sleep_until(at)
                if isinstance(item, Recommended):
                    self.probe(item)
                else:
                    await self.step(item)
            await self.clock.sleep_until(self.scenario.duration)
        finally:
            if simulator is not None:
                await simulator.stop()
            await self.finish_outages()
        if simulator is not None and simulator.failure is not None:
            raise simulator.failure
        self.record.sim_seconds = self.clock.now()
        await self.collect()

    def simulator(self) -> Simulator | None:
        part = self.scenario.simulator
        if not part.enabled:
            return None

        def keep(sent: Sent) -> None:
            if sent.event is not None:
                self.record.acknowledged.append(sent.event)

        simulator = Simulator(
            self.players,
            part.seed,
            part.rate,
            self.clock,
            auto_dispatch=part.auto_dispatch,
            hands_off=part.hands_off,
            play_units=part.play_units,
            avl_every=part.avl_every,
            scene_time_factor=part.scene_time_factor,
            emergency_chance=part.emergency_chance,
            on_sent=keep,
            patience=_PATIENCE,
        )
        simulator.start(self.scenario.duration)
        return simulator

    def timeline(self) -> list[tuple[float, Step | Recommended]]:
        """Steps and probes in time order; at equal times steps go first, in file order."""
        items: list[tuple[float, int, int, Step | Recommended]] = [
            (step.at, 0, step.index, step) for step in self.scenario.steps
        ]
        items += [
            (e.at, 1, e.index, e) for e in self.scenario.expectations if isinstance(e, Recommended)
        ]
        items.sort(key=lambda item: item[:3])
        return [(at, item) for at, _, _, item in items]

    # --- commands --------------------------------------------------------------------------

    async def until(self, predicate: Any, what: str, timeout: float = _PATIENCE) -> None:
        """Wait (bounded) for `predicate`, polling: the consoles' state has no events."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + timeout
        while not predicate():
            if loop.time() > give_up:
                raise TimeoutError(f"{what}: not reached within {timeout:g} s")
            await asyncio.sleep(0.02)

    async def issue(self, name: str, kind: str, fields: dict[str, Any]) -> tuple[str, Any]:
        """Issue one command through console `name`: at once if live, else journalled.

        Returns the words for the report and the `Issued`. Raises `CommandError` when
        the backend refused it there and then.
        """
        console = self.consoles[name]
        issued = await console.issue(console.command(kind, **fields))
        if issued.error is not None:
            raise issued.error
        if issued.result is not None:
            self.record.acknowledged.append(issued.result.event)
            return f"{kind} on console {name}: event {issued.result.seq}", issued
        self.record.typed_offline.setdefault(name, []).append(issued.entry.key)
        shown = f" as {issued.reference}" if issued.reference else ""
        return f"{kind} on console {name}: journalled{shown}, provisional", issued

    async def execute(
        self, client: DispatchClient, kind: str, fields: dict[str, Any]
    ) -> CommandResult:
        """Send one command, riding out an outage with the same idempotency key."""
        command = client.command(kind, **fields)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + _PATIENCE
        delays = _BACKOFF.delays()
        while True:  # bounded by `give_up`
            try:
                result = await client.execute(command, timeout=10.0)
            except RateLimited as limited:
                wait = max(limited.retry_after, 0.05)
            except (BackendUnavailable, TimeoutError):
                wait = next(delays)
            else:
                self.record.acknowledged.append(result.event)
                return result
            if loop.time() + wait > give_up:
                raise BackendUnavailable(f"{kind} not delivered within {_PATIENCE:g} s")
            await asyncio.sleep(wait)
            with contextlib.suppress(TimeoutError):
                await client.wait_live(timeout=max(0.1, give_up - loop.time()))

    async def step(self, step: Step) -> None:
        started_sim, started = self.clock.now(), time.monotonic()
        if isinstance(step, OutageStep):
            outcome = StepOutcome(step, started_sim, 0.0, True, "backend going down")
            self.record.steps.append(outcome)
            self.outages.append(asyncio.create_task(self.outage(step, outcome)))
            return
        problem: Problem | None = None
        try:
            detail, succeeded = await self.act(step), True
        except CommandError as refused:
            problem, succeeded = refused.problem, False
            detail = f"refused {problem.code.value}: {problem.detail}"
        except (LookupError, BackendUnavailable) as exc:
            succeeded, detail = False, str(exc).strip("'\"")
        expect = getattr(step, "expect", None)
        ok = _as_expected(expect, succeeded, problem)
        if expect is not None:
            got = "ok" if succeeded else problem.code.value if problem else "failure"
            detail = f"expected {expect}, got {got}: {detail}"
        self.record.steps.append(
            StepOutcome(step, started_sim, time.monotonic() - started, ok, detail, problem)
        )

    async def act(self, step: Step) -> str:
        """Carry out one step; the words for the report. Raises on refusal."""
        if isinstance(step, ReconcileStep):
            return await self.reconcile(step)
        if step.console is not None:
            return await self.act_on_console(step, step.console)
        if isinstance(step, CallStep):
            fields = self.call_fields(step)
            location = fields["location"]
            result = await self.execute(self.operator, "create_incident", fields)
            reference = result.event.reference  # type: ignore[union-attr]
            self.record.references[step.alias] = reference
            what = f"grade {int(step.grade)} {step.incident_type} at {location['address']}"
            return f"created {reference}: {what}"
        if isinstance(step, UnitStateStep):
            fields = {"callsign": step.callsign, "state": int(step.state)}
            await self.execute(self.operator, "set_unit_state", fields)
            return f"{step.callsign} now {int(step.state)} {step.state.label.lower()}"
        if isinstance(step, AssignStep):
            return await self.assign(step)
        assert isinstance(step, CommandStep)
        command = substitute_aliases(step.command, self.references())
        kind = command.pop("type")
        result = await self.execute(self.operator, kind, command)
        return f"{kind} applied as event {result.seq} ({result.event.type})"

    async def act_on_console(self, step: Step, name: str) -> str:
        """A step typed at console `name` (its journal keeps it while CAD is down)."""
        if isinstance(step, CallStep):
            said, issued = await self.issue(name, "create_incident", self.call_fields(step))
            reference = issued.reference or issued.result.event.reference
            self.record.references[step.alias] = reference
            return f"{said}: {step.alias} is {reference}"
        if isinstance(step, UnitStateStep):
            fields = {"callsign": step.callsign, "state": int(step.state)}
            return (await self.issue(name, "set_unit_state", fields))[0]
        if isinstance(step, AssignStep):
            fields = {"reference": self.references()[step.incident], "callsign": step.callsign}
            if step.divert:
                fields["divert"] = True
            return (await self.issue(name, "assign_unit", fields))[0]
        assert isinstance(step, CommandStep)
        command = substitute_aliases(step.command, self.references())
        kind = command.pop("type")
        return (await self.issue(name, kind, command))[0]

    async def replayed(self, name: str) -> DispatchClient:
        """Console `name` once live again with nothing left waiting in its journal."""
        console = self.consoles[name]
        await self.until(
            lambda: console.status.live and not console.pending.unsent,
            f"console {name}'s journal to replay",
        )
        return console

    async def reconcile(self, step: ReconcileStep) -> str:
        """Deal with every command the server refused from console `step.console`."""
        console = await self.replayed(step.console)
        refused = await asyncio.to_thread(console.rejected)
        for entry in refused:
            if step.choice == "withdraw":
                await console.withdraw(entry, step.reason or "")
            elif step.choice == "apply_anyway":
                await console.apply_anyway(entry)
            else:
                await asyncio.to_thread(console.dismiss, entry.key)
        kinds = ", ".join(entry.kind for entry in refused) or "nothing"
        return f"console {step.console}: {step.choice.replace('_', ' ')}: {kinds}"

    def call_fields(self, step: CallStep) -> dict[str, Any]:
        """The `create_incident` fields for a call step."""
        return {
            "grade": int(step.grade),
            "incident_type": step.incident_type,
            "location": self.scenario_location(step),
            "description": step.description or f"Scenario call {step.alias}",
            "source": step.source.value,
        }

    def scenario_location(self, step: CallStep) -> dict[str, Any]:
        location = BRACKLEY.location(step.place, step.house)
        return location.model_dump(mode="json", exclude_none=True)

    async def assign(self, step: AssignStep) -> str:
        reference = self.references()[step.incident]
        callsign, divert, why = step.callsign, step.divert, ""
        if callsign == "recommended":
            incident = self.operator.incidents[reference]
            picks = recommend(
                self.operator.state,
                incident,
                datetime.now(UTC),
                needs=needs_for(incident.incident_type),
                limit=1,
            )
            if not picks:
                raise LookupError(f"no unit can be recommended for {reference}")
            callsign, divert = picks[0].callsign, divert or picks[0].diverts_from is not None
            why = f" (recommended: {picks[0].reason})"
        fields: dict[str, Any] = {"reference": reference, "callsign": callsign}
        if divert:
            fields["divert"] = True
        await self.execute(self.operator, "assign_unit", fields)
        return f"assigned {callsign} to {reference}{why}"

    def references(self) -> dict[str, str]:
        return _References(self.record.references)

    async def outage(self, step: OutageStep, outcome: StepOutcome) -> None:
        """Stop the backend, wait out the outage, start it again; report on `outcome`."""
        started = time.monotonic()
        try:
            await self.backend.astop()
            stopped = time.monotonic()
            await self.clock.sleep_until(step.at + step.seconds)
            await self.backend.astart()
        except Exception as exc:
            outcome.ok, outcome.detail = False, f"restart failed: {type(exc).__name__}: {exc}"
            raise
        finally:
            outcome.real_seconds = time.monotonic() - started
        self.record.restarts += 1
        outcome.detail = (
            f"backend down {time.monotonic() - stopped:.1f} s real ({step.seconds:g} s "
            f"simulated), back on port {self.backend.port} with the same database"
        )

    async def finish_outages(self) -> None:
        for task in self.outages:
            await asyncio.wait_for(task, timeout=_PATIENCE)

    # --- probes and the end ----------------------------------------------------------------

    def probe(self, expectation: Recommended) -> None:
        reference = self.record.references.get(expectation.incident)
        picks: list[Recommendation] = []
        incident = self.operator.incidents.get(reference) if reference else None
        if incident is not None:
            picks = recommend(
                self.operator.state,
                incident,
                datetime.now(UTC),
                needs=needs_for(incident.incident_type),
                limit=5,
            )
        self.record.probes[expectation.index] = Probe(
            expectation, self.clock.now(), picks, reference
        )

    async def collect(self) -> None:
        """Let the operator's picture catch up with the server, then keep both."""
        for name, console in self.consoles.items():
            await self.replayed(name)
            self.record.journals[name] = await asyncio.to_thread(console.journal.entries)
            self.record.reference_maps[name] = console.reference_map
            for alias, reference in list(self.record.references.items()):
                # An incident opened offline under a provisional reference is known by
                # its log reference from here on.
                if reference in console.reference_map:
                    self.record.references[alias] = console.reference_map[reference]
        async with Queries(self.backend.url, self.backend.tokens.dispatcher) as server:
            head = await server.head()
            with contextlib.suppress(TimeoutError):
                await self.operator.subscription.wait_for_seq(head, timeout=15)
            self.record.observer_state = self.operator.state.model_copy(deep=True)
            self.record.observer_resumes = self.operator.subscription.resumes
            self.record.server_state = await server.state()
            self.record.server_events = await server.all_events()


class _References(dict):
    """Alias -> reference; a missing alias says the call it stands for never happened."""

    def __missing__(self, alias: str) -> str:
        raise LookupError(f"incident {alias!r} was never created (its call step failed)")


def _as_expected(expect: str | None, succeeded: bool, problem: Problem | None) -> bool:
    if expect is None or expect == "ok":
        return succeeded
    if succeeded or problem is None:
        return False
    if expect == "conflict":
        return problem.status == 409
    return problem.code.value == expect
