"""A stateful hypothesis test: the client's picture stays exact whatever happens to it.

A `RuleBasedStateMachine` drives, in random order:

- commands from a second, commanding client (a `CommandSender`) straight to the backend:
  book on, create an incident, assign, change a unit's state, add a note, close. Targets
  are picked from the server's current picture, so most are accepted; the odd refusal
  (no change, unit committed, ...) is fine and simply not acknowledged;
- disconnects of the observed client, which subscribes through a `FaultProxy`:
  `cut_all` (every connection reset, while a few commands are in flight), and a
  blackhole switched on for up to 1.5 s (past the client's 1 s silence limit or not)
  and left on across later steps, commands included, until a `heal` step lifts it;
- backend restarts: the backend thread is stopped, the port left dead for a moment, and
  a new one started on the same SQLite file and the same port, so the proxy in front
  keeps its listening port and the client its URL.

After every step that allows the client to converge (no blackhole is on), the
invariant waits, bounded, for the observed client to be live at the server's head,
then checks:

(a) the client's picture equals ``GET /v1/state``;
(b) no event was applied twice or skipped: `client.store.apply` is wrapped to record
    each applied seq, and the seqs run strictly increasing and gap-free from the one
    initial snapshot (a resume replays after the last applied seq, never re-snapshots);
(c) every acknowledged command's seq is in the client's picture: at or below the
    client's seq, applied by it, and ``GET /v1/events?after=seq-1&limit=1`` returns the
    very event the acknowledgement carried.

The teardown lifts a blackhole still on and checks the invariant one last time (unless
the run already failed), then stops everything it started.

Design: hypothesis runs the machine synchronously, but the client, the proxy and the
commanding sender are asyncio objects that must keep running *between* steps (the
client reconnects in the background while the next rule runs). So each example owns
one event loop running forever in a background thread (`LoopThread`); a rule hands a
coroutine to it with `run_coroutine_threadsafe` and blocks on the result with a timeout,
so every wait is bounded. The backend runs in its own thread and loop (`EmbeddedBackend`),
as a separate server would. Blocking calls in rules (sleeping through a blackhole,
stopping a backend) block only hypothesis's thread, never the client's loop.

A connection that lived through a blackhole has lost bytes silently, which no real TCP
link does (it would retransmit or break), so `heal` resets every connection as it lifts
the blackhole: the client must then notice and resume, exactly as after a real outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import httpx
from conftest import TOKENS, make_config
from faultproxy import FaultProxy
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from waiting import until

from cadterm.client import (
    BackendUnavailable,
    Backoff,
    CommandError,
    CommandSender,
    DispatchClient,
    LinkState,
)
from cadterm.protocol.codes import CLOSING_CODES
from cadterm.protocol.commands import (
    AddNote,
    AssignUnit,
    BookOn,
    CloseIncident,
    Command,
    CreateIncident,
    SetUnitState,
)
from cadterm.protocol.domain import (
    Grade,
    IncidentStatus,
    Location,
    Role,
    UnitState,
    UnitType,
)
from cadterm.protocol.events import EVENT_ADAPTER, Event
from cadterm.protocol.fold import DispatchState
from cadterm.server.config import Limits
from cadterm.server.embedded import EmbeddedBackend

T = TypeVar("T")

TOKEN = TOKENS[Role.DISPATCHER]
SILENCE = 1.0
BACKOFF = Backoff(base=0.05, cap=0.5)
# Heartbeats well inside the client's 1 s silence limit, and no command rate limit.
FAST = Limits(heartbeat_interval=0.25, command_rate=1000.0, command_burst=1000)
CONVERGE_WITHIN = 10.0  # seconds the invariant waits for the client to be live at head
STEP_TIMEOUT = 30.0  # seconds any one step may take on the client's loop

CALLSIGNS = ("AB12", "CD21", "ARV 1", "TR31")
INCIDENT_TYPES = ("ASB", "THEFT", "RTC", "CONCERN")
STATES = (
    UnitState.AVAILABLE_ON_PATROL,
    UnitState.AVAILABLE_AT_STATION,
    UnitState.EN_ROUTE,
    UnitState.AT_SCENE,
    UnitState.COMMITTED_DEPLOYABLE,
    UnitState.REFRESHMENTS,
    UnitState.EMERGENCY,
)


class LoopThread:
    """An asyncio event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = STEP_TIMEOUT) -> T:
        """Run `coro` on the loop and return its result; fail after `timeout` seconds."""
        future = asyncio.run_coroutine_threadsafe(asyncio.wait_for(coro, timeout), self.loop)
        return future.result(timeout + 5)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a plain function on the loop's thread (the proxy is not thread-safe)."""

        async def call() -> T:
            return fn(*args)

        return self.run(call(), 5)

    def close(self) -> None:
        """Cancel whatever is still running on the loop, stop it and join the thread."""

        async def cancel_the_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            # Not through `run`: its wait_for would be one of the tasks cancelled here.
            asyncio.run_coroutine_threadsafe(cancel_the_rest(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            if not self._thread.is_alive():
                self.loop.close()


def key(kind: str) -> str:
    """A fresh idempotency key."""
    return f"{kind}-{uuid.uuid4().hex}"


class ClientUnderFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory(prefix="cadterm-stateful-")
        self.db_path = Path(self._tmp.name) / "cad.db"
        self.config = make_config(limits=FAST)
        # Bound to port 0 once; every restart comes back on that port and database.
        self.backend = EmbeddedBackend(self.db_path, config=self.config)
        self.loop = LoopThread()
        self.proxy: FaultProxy | None = None
        self.client: DispatchClient | None = None
        self.sender: CommandSender | None = None
        self.http: httpx.AsyncClient | None = None
        self.blackholed = False
        self.picture = DispatchState()  # the server's picture as last fetched
        self.applied: list[int] = []  # seqs the observed client applied, in order
        self.snapshots: list[int] = []  # seqs of the snapshots it loaded
        self.acked: dict[int, dict[str, Any]] = {}  # seq -> event from the 200 reply
        self.verified: set[int] = set()  # acked seqs already checked against the log
        self.refused = 0
        self.unavailable = 0
        try:
            self.backend.start()
            self.loop.run(self._open())
        except BaseException:
            self._close()
            raise

    # --- plumbing ----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.backend.url

    async def _open(self) -> None:
        self.proxy = FaultProxy("127.0.0.1", self.backend.port)
        await self.proxy.start()
        self.sender = CommandSender([self.url], TOKEN, timeout=2.0, attempts=4, backoff=BACKOFF)
        self.http = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=5.0,
            trust_env=False,
        )
        self.client = DispatchClient(
            [self.proxy.url], TOKEN, silence_after=SILENCE, backoff=BACKOFF
        )
        store = self.client.store
        apply, load_snapshot = store.apply, store.load_snapshot

        def recording_apply(event: Event):
            changes = apply(event)  # raises, recording nothing, on a gap or a repeat
            self.applied.append(event.seq)
            return changes

        def recording_snapshot(state: DispatchState) -> None:
            load_snapshot(state)
            self.snapshots.append(state.seq)

        store.apply = recording_apply  # type: ignore[method-assign]
        store.load_snapshot = recording_snapshot  # type: ignore[method-assign]
        self.client.start()
        await self.client.wait_live(10)

    async def _shut(self) -> None:
        if self.client is not None:
            await self.client.close()
        if self.sender is not None:
            await self.sender.aclose()
        if self.http is not None:
            await self.http.aclose()
        if self.proxy is not None:
            await self.proxy.stop()

    def _close(self) -> None:
        try:
            with contextlib.suppress(Exception):
                self.loop.run(self._shut(), 15)
            self.loop.close()
        finally:
            try:
                self.backend.close()
            finally:
                self._tmp.cleanup()

    async def _fetch_picture(self) -> DispatchState:
        assert self.http is not None
        reply = await self.http.get("/v1/state")
        assert reply.status_code == 200, reply.text
        return DispatchState.model_validate_json(reply.content)

    def _refresh(self) -> DispatchState:
        self.picture = self.loop.run(self._fetch_picture())
        return self.picture

    async def _deliver(self, command: Command) -> None:
        """Send one command; record the event it caused if it was acknowledged."""
        assert self.sender is not None
        try:
            result = await self.sender.send(command)
        except CommandError:
            self.refused += 1  # a dispatch rule said no: fine, nothing acknowledged
            return
        except BackendUnavailable:
            self.unavailable += 1  # not acknowledged: whether it landed is unknown
            return
        assert result.seq not in self.acked or result.replayed, result
        self.acked[result.seq] = EVENT_ADAPTER.dump_python(result.event, mode="json")

    def _send(self, command: Command) -> None:
        self.loop.run(self._deliver(command))

    def _open_incidents(self) -> list[str]:
        return sorted(
            r for r, i in self.picture.incidents.items() if i.status != IncidentStatus.CLOSED
        )

    def _on_duty(self) -> list[str]:
        return sorted(c for c, u in self.picture.units.items() if u.on_duty)

    def _off_duty(self) -> list[str]:
        return [c for c in CALLSIGNS if c not in self.picture.units]

    def _traffic(self, count: int) -> list[Command]:
        """`count` harmless commands (notes, or new incidents when there are none)."""
        references = sorted(self.picture.incidents)
        return [
            AddNote(
                idempotency_key=key("traffic"),
                workstation="ws-test",
                reference=references[i % len(references)],
                text=f"traffic {i}: caller rang back",
            )
            if references
            else CreateIncident(
                idempotency_key=key("traffic"),
                workstation="ws-test",
                grade=Grade.PRIORITY,
                incident_type="ASB",
                location=Location(address=f"{i} Market Street, Anytown"),
            )
            for i in range(count)
        ]

    # --- commands ----------------------------------------------------------------------

    @precondition(lambda self: self._off_duty())
    @rule(data=st.data(), state=st.sampled_from(STATES[:2]))
    def book_on(self, data: st.DataObject, state: UnitState) -> None:
        self._send(
            BookOn(
                idempotency_key=key("book-on"),
                workstation="ws-test",
                callsign=data.draw(st.sampled_from(self._off_duty()), label="callsign"),
                unit_type=UnitType.PATROL_CAR,
                state=state,
            )
        )

    @rule(
        grade=st.sampled_from(list(Grade)),
        incident_type=st.sampled_from(INCIDENT_TYPES),
        number=st.integers(1, 300),
    )
    def create_incident(self, grade: Grade, incident_type: str, number: int) -> None:
        self._send(
            CreateIncident(
                idempotency_key=key("create"),
                workstation="ws-test",
                grade=grade,
                incident_type=incident_type,
                location=Location(address=f"{number} High Street, Anytown"),
            )
        )

    @precondition(lambda self: self._open_incidents() and self._on_duty())
    @rule(data=st.data(), divert=st.booleans())
    def assign(self, data: st.DataObject, divert: bool) -> None:
        self._refresh()
        references, callsigns = self._open_incidents(), self._on_duty()
        if not references or not callsigns:
            return
        self._send(
            AssignUnit(
                idempotency_key=key("assign"),
                workstation="ws-test",
                reference=data.draw(st.sampled_from(references), label="reference"),
                callsign=data.draw(st.sampled_from(callsigns), label="callsign"),
                divert=divert,
            )
        )

    @precondition(lambda self: self._on_duty())
    @rule(data=st.data(), state=st.sampled_from(STATES))
    def set_state(self, data: st.DataObject, state: UnitState) -> None:
        self._refresh()
        callsigns = self._on_duty()
        if not callsigns:
            return
        self._send(
            SetUnitState(
                idempotency_key=key("state"),
                workstation="ws-test",
                callsign=data.draw(st.sampled_from(callsigns), label="callsign"),
                state=state,
            )
        )

    @precondition(lambda self: self.picture.incidents)
    @rule(data=st.data(), size=st.integers(1, 3000))
    def note(self, data: st.DataObject, size: int) -> None:
        self._refresh()
        references = sorted(self.picture.incidents)
        if not references:
            return
        self._send(
            AddNote(
                idempotency_key=key("note"),
                workstation="ws-test",
                reference=data.draw(st.sampled_from(references), label="reference"),
                text="caller update " + "x" * size,  # big notes: frames split across reads
            )
        )

    @precondition(lambda self: self._open_incidents())
    @rule(data=st.data(), code=st.sampled_from(sorted(CLOSING_CODES)))
    def close_incident(self, data: st.DataObject, code: str) -> None:
        self._refresh()
        references = self._open_incidents()
        if not references:
            return
        self._send(
            CloseIncident(
                idempotency_key=key("close"),
                workstation="ws-test",
                reference=data.draw(st.sampled_from(references), label="reference"),
                closing_code=code,
            )
        )

    # --- faults ------------------------------------------------------------------------

    @rule(traffic=st.integers(0, 4), pause=st.floats(0.0, 0.05))
    def cut_all(self, traffic: int, pause: float) -> None:
        """Reset every connection, while `traffic` commands are being sent."""
        self._refresh()
        commands = self._traffic(traffic)
        proxy = self.proxy
        assert proxy is not None

        async def cut_amid_traffic() -> None:
            async def send_all() -> None:
                for command in commands:
                    await self._deliver(command)

            sending = asyncio.create_task(send_all())
            await asyncio.sleep(pause)
            proxy.cut_all()
            await sending

        self.loop.run(cut_amid_traffic())

    @precondition(lambda self: not self.blackholed)
    @rule(hold=st.floats(0.05, 1.5))
    def blackhole(self, hold: float) -> None:
        """Silence the link (left on until `heal`); past `SILENCE` the client must notice."""
        assert self.proxy is not None
        self.loop.call(self.proxy.blackhole, True)
        self.blackholed = True
        time.sleep(hold)  # the client's loop keeps running meanwhile

    @precondition(lambda self: self.blackholed)
    @rule()
    def heal(self) -> None:
        assert self.proxy is not None
        self.loop.call(self.proxy.blackhole, False)
        self.loop.call(self.proxy.cut_all)  # connections that lost bytes are corrupt
        self.blackholed = False

    @rule(down_for=st.floats(0.0, 0.6))
    def restart_backend(self, down_for: float) -> None:
        """Stop the backend, leave the port dead a moment, start it again on the same db."""
        self.backend.restart(down_for)  # meanwhile the client retries against nothing

    # --- the invariant -------------------------------------------------------------------

    async def _check_converged(self) -> None:
        client, http = self.client, self.http
        assert client is not None and http is not None
        reply = await http.get("/v1/health")
        assert reply.status_code == 200, reply.text
        head = reply.json()["seq"]
        await until(
            lambda: client.status.live and client.seq >= head,
            CONVERGE_WITHIN,
            lambda: f"client never live at head {head}: at {client.seq}, {client.status}",
        )
        assert client.status.state == LinkState.LIVE
        assert client.seq == head, (client.seq, head)
        # (a) the picture is exactly the server's.
        server = await self._fetch_picture()
        assert server.seq == head
        assert client.state.model_dump() == server.model_dump()
        self.picture = server
        # (b) each event applied once, in order, after the one initial snapshot.
        assert len(self.snapshots) == 1, f"resumed with a snapshot: {self.snapshots}"
        start = self.snapshots[0]
        assert all(a < b for a, b in zip(self.applied, self.applied[1:], strict=False)), (
            "an event was applied twice or out of order"
        )
        assert self.applied == list(range(start + 1, head + 1)), "an event was skipped"
        # (c) every acknowledged command's event is in the picture, as acknowledged.
        applied = set(self.applied)
        for seq, event in sorted(self.acked.items()):
            assert seq <= client.seq, (seq, client.seq)
            assert seq <= start or seq in applied, seq
            if seq in self.verified:
                continue
            reply = await http.get("/v1/events", params={"after": seq - 1, "limit": 1})
            assert reply.status_code == 200, reply.text
            assert reply.json() == [event], seq
            self.verified.add(seq)

    @invariant()
    def client_matches_server_once_settled(self) -> None:
        if self.blackholed:
            return  # the client cannot converge yet: checked once the link heals
        self.loop.run(self._check_converged(), CONVERGE_WITHIN + 10)

    def teardown(self) -> None:
        try:
            # CPython exposes the exception a failed step is raising here; only a run
            # that has not failed is worth the final check (it would hide the first).
            if sys.exc_info()[1] is None:
                if self.blackholed:
                    self.heal()
                self.client_matches_server_once_settled()
        finally:
            self._close()


ClientUnderFaults.TestCase.settings = settings(
    max_examples=8,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestClientUnderFaults = ClientUnderFaults.TestCase
