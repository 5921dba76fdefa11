"""The client's live picture survives a bad network and a killed server, and stays exact.

These are the end-to-end checks over real sockets; the link's rules themselves (seq,
heartbeats, silence, closes, refusals, where a resume starts) are covered in
microseconds by tests/test_link_rules.py, so only a few cases run here.

A `DispatchClient` subscribes through a `FaultProxy` (tests/faultproxy.py) while a
second sender issues a steady, seeded stream of commands straight to the backend. The
test breaks the link (cuts mid-frame, a silent link, a backend that goes away behind a
refusing address; a backend killed with SIGKILL and restarted) and, once the faults
stop, checks what must hold whatever happened on the way:

(a) the client's picture is exactly the server's (`GET /v1/state`);
(b) no event was applied twice or skipped: after the first snapshot every applied
    event is exactly one past the last, up to the server's head, with no second
    snapshot (a resume continues from the last applied seq);
(c) every acknowledged command's event is the server's stored event at that seq
    (`GET /v1/events`) and is in the client's picture.

Plus a dead first backend failing over to the second, and a prompt close on a silent
link. (A wrong token stopping the stream after one try is in tests/test_client.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SERVER_ON, TOKENS, make_config
from faultproxy import FaultProxy
from waiting import until

from cadterm.client import (
    BackendUnavailable,
    Backoff,
    CommandError,
    CommandSender,
    DispatchClient,
    LinkState,
    LinkStatus,
)
from cadterm.protocol.commands import (
    AddNote,
    AssignUnit,
    BookOn,
    Command,
    CreateIncident,
    LocateUnit,
    SetUnitState,
)
from cadterm.protocol.domain import Location, Position, Role, UnitState, UnitType
from cadterm.protocol.events import EVENT_ADAPTER, Event
from cadterm.protocol.fold import DispatchState
from cadterm.server.config import Limits, write_config

TOKEN = TOKENS[Role.DISPATCHER]
SILENCE = 1.0
BACKOFF = Backoff(base=0.05, cap=0.5)
# Fast heartbeats so that a quiet but healthy stream is never taken for a silent one,
# and no command rate limit: the sender is meant to be steady, not throttled.
FAST = Limits(heartbeat_interval=0.25, command_rate=1000.0, command_burst=1000)
CONVERGE_WITHIN = 15.0


# --- the command stream -----------------------------------------------------------------


class Workload:
    """A second operator issuing a seeded mix of commands straight to a backend.

    Records every acknowledged command (`acked`: seq -> event from the 200 reply).
    A command that found no backend is retried with the same idempotency key, so one
    that landed just before a crash is answered from the store, not applied again.
    """

    def __init__(self, url: str, seed: int, *, pace: float = 0.02) -> None:
        self.sender = CommandSender(
            [url], TOKEN, timeout=2.0, attempts=2, backoff=BACKOFF, rng=random.Random(seed)
        )
        self.rng = random.Random(seed)
        self.pace = pace
        self.acked: dict[int, Event] = {}
        self.replayed = 0
        self.refused = 0
        self.unavailable = 0
        self.units: list[str] = []
        self.incidents: list[str] = []
        self._n = 0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def _key(self) -> str:
        self._n += 1
        return f"workload-{self.rng.getrandbits(64):016x}-{self._n}"

    def next_command(self) -> Command:
        rng, key = self.rng, self._key()
        base: dict[str, Any] = {"idempotency_key": key, "workstation": "ws-faults"}
        if len(self.units) < 4:
            callsign = f"F{len(self.units) + 1:02d}"
            return BookOn(**base, callsign=callsign, unit_type=UnitType.PATROL_CAR)
        if len(self.incidents) < 2 or rng.random() < 0.12:
            return CreateIncident(
                **base,
                grade=rng.choice([1, 2, 3]),
                incident_type=rng.choice(["ASB", "THEFT", "RTC", "CONCERN"]),
                location=Location(address=f"{rng.randint(1, 300)} High Street, Anytown"),
            )
        roll = rng.random()
        if roll < 0.40:
            return AddNote(
                **base,
                reference=rng.choice(self.incidents),
                text=f"caller update {self._n}: " + "x" * rng.randint(1, 400),
            )
        if roll < 0.60:
            return AssignUnit(
                **base,
                reference=rng.choice(self.incidents),
                callsign=rng.choice(self.units),
                divert=True,
            )
        if roll < 0.85:
            state = rng.choice(
                [UnitState.AVAILABLE_ON_PATROL, UnitState.AT_SCENE, UnitState.EN_ROUTE]
            )
            return SetUnitState(**base, callsign=rng.choice(self.units), state=state)
        return LocateUnit(
            **base,
            callsign=rng.choice(self.units),
            position=Position(lat=52.2 + rng.uniform(-0.05, 0.05), lon=-1.5),
        )

    async def step(self) -> None:
        command = self.next_command()
        for _ in range(200):  # bounded: ~200 x (2 tries + backoff) at most
            try:
                result = await self.sender.send(command)
            except CommandError:
                self.refused += 1  # a dispatch rule said no (e.g. no change): fine
                return
            except BackendUnavailable:
                self.unavailable += 1
                if self._stop.is_set():
                    return
                await asyncio.sleep(0.05)
                continue
            assert result.seq not in self.acked or result.replayed
            self.acked[result.seq] = result.event
            self.replayed += result.replayed
            if isinstance(command, BookOn):
                self.units.append(command.callsign)
            elif isinstance(command, CreateIncident):
                self.incidents.append(result.event.reference)  # type: ignore[union-attr]
            return

    async def _run(self) -> None:
        while not self._stop.is_set():
            await self.step()
            await asyncio.sleep(self.pace)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="workload")

    async def stop(self) -> None:
        """Stop after the command in hand (bounded) and close the HTTP client."""
        self._stop.set()
        if self._task is not None:
            try:
                async with asyncio.timeout(10):
                    await self._task
            finally:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self.sender.aclose()


# --- the client under test, instrumented ---------------------------------------------


class Watched:
    """A `DispatchClient` whose statuses and applied events / snapshots are recorded."""

    def __init__(self, urls: list[str], token: str = TOKEN, *, open_timeout: float = 2.0):
        self.statuses: list[tuple[float, LinkStatus]] = []
        self.timeline: list[tuple[str, int]] = []  # ("event" | "snapshot", seq)
        self.t0 = time.monotonic()
        self.client = DispatchClient(
            urls,
            token,
            silence_after=SILENCE,
            backoff=BACKOFF,
            command_timeout=2.0,
            on_status=lambda s: self.statuses.append((time.monotonic(), s)),
        )
        # The handshake timeout is not a DispatchClient argument: keep a handshake that
        # went into a blackhole from holding the client for the default 5 s.
        self.client.subscription.open_timeout = open_timeout
        store = self.client.store
        apply, load_snapshot = store.apply, store.load_snapshot

        def recording_apply(event: Event):
            changes = apply(event)
            self.timeline.append(("event", event.seq))
            return changes

        def recording_snapshot(state: DispatchState) -> None:
            load_snapshot(state)
            self.timeline.append(("snapshot", state.seq))

        store.apply = recording_apply  # type: ignore[method-assign]
        store.load_snapshot = recording_snapshot  # type: ignore[method-assign]

    def states(self, since: float = 0.0) -> list[LinkStatus]:
        return [s for t, s in self.statuses if t >= since]

    async def wait_state(self, state: LinkState, timeout: float) -> LinkStatus:
        await until(
            lambda: self.client.status.state == state,
            timeout,
            lambda: f"not {state.value} after {timeout:g} s: {self.client.status}",
        )
        return self.client.status


@contextlib.asynccontextmanager
async def watched(urls: list[str], token: str = TOKEN) -> AsyncIterator[Watched]:
    w = Watched(urls, token)
    async with w.client:
        yield w


# --- the invariants -------------------------------------------------------------------


async def server_events(http: httpx.AsyncClient) -> dict[int, dict[str, Any]]:
    events: dict[int, dict[str, Any]] = {}
    after = 0
    while True:
        response = await http.get("/v1/events", params={"after": after, "limit": 5000})
        response.raise_for_status()
        batch = response.json()
        if not batch:
            return events
        for event in batch:
            events[event["seq"]] = event
        after = batch[-1]["seq"]


async def assert_converged(w: Watched, base_url: str, workload: Workload) -> int:
    """Wait (bounded) until the client is live at the server's head, then check (a)-(c)."""
    client = w.client
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5.0
    ) as http:
        head = (await http.get("/v1/health")).json()["seq"]
        await until(
            lambda: client.status.live and client.seq >= head,
            CONVERGE_WITHIN,
            lambda: f"client never reached head {head}: at {client.seq}, {client.status}",
        )
        assert client.seq == head
        # (a) the picture is exactly the server's.
        response = await http.get("/v1/state")
        response.raise_for_status()
        server_state = DispatchState.model_validate_json(response.content)
        assert server_state.seq == head
        assert client.state.model_dump() == server_state.model_dump()
        # (b) every event applied once, in order, continuing from one initial snapshot.
        kinds = [kind for kind, _ in w.timeline]
        assert kinds and kinds[0] == "snapshot", w.timeline[:3]
        assert kinds.count("snapshot") == 1, "a resume fetched a snapshot instead of replaying"
        applied = [seq for kind, seq in w.timeline if kind == "event"]
        start = w.timeline[0][1]
        assert applied == list(range(start + 1, head + 1))
        # (c) every acknowledged command is stored as acknowledged and in the picture.
        stored = await server_events(http)
        assert sorted(stored) == list(range(1, head + 1))
        for seq, event in workload.acked.items():
            assert seq <= head
            assert stored[seq] == EVENT_ADAPTER.dump_python(event, mode="json")
            assert seq <= start or seq in applied
    return head


# --- fixtures -------------------------------------------------------------------------


@pytest.fixture
async def rig(backend_factory) -> AsyncIterator[tuple[Any, FaultProxy]]:
    """A backend with fast heartbeats and a fault proxy in front of it."""
    backend = backend_factory(config=make_config(limits=FAST))
    proxy = FaultProxy("127.0.0.1", backend.port)
    await proxy.start()
    try:
        yield backend, proxy
    finally:
        await proxy.stop()


@contextlib.asynccontextmanager
async def running(workload: Workload) -> AsyncIterator[Workload]:
    workload.start()
    try:
        yield workload
    finally:
        await workload.stop()


# --- network faults -------------------------------------------------------------------


async def test_cut_mid_frame_resumes_without_loss_or_repeat(rig) -> None:
    backend, proxy = rig
    rng = random.Random(1)
    async with asyncio.timeout(40), watched([proxy.url]) as w:
        await w.client.wait_live()
        workload = Workload(backend.url, seed=11)
        async with running(workload):
            for _ in range(6):
                await w.wait_state(LinkState.LIVE, 10)
                await asyncio.sleep(rng.uniform(0.05, 0.3))
                # A few hundred bytes to a few frames' worth: the cut lands inside one.
                proxy.cut_after_bytes(rng.randint(50, 3000))
                await until(lambda: not proxy.cut_armed, 10, lambda: "the cut never fired")
            await asyncio.sleep(0.3)
        assert proxy.cuts == 6
        await assert_converged(w, backend.url, workload)
        assert w.client.subscription.resumes >= 6
        assert len(workload.acked) > 20


async def test_blackholed_link_is_noticed_and_resumed(rig) -> None:
    backend, proxy = rig
    async with asyncio.timeout(40), watched([proxy.url]) as w:
        await w.client.wait_live()
        workload = Workload(backend.url, seed=33)
        async with running(workload):
            await asyncio.sleep(0.5)
            proxy.blackhole(True)
            silent_from = time.monotonic()
            status = await w.wait_state(LinkState.RECONNECTING, SILENCE + 2.0)
            noticed_after = time.monotonic() - silent_from
            assert "no frame or heartbeat" in (status.reason or ""), status
            # Noticed within the silence limit (plus one heartbeat and some slack), not
            # after a closing handshake over the dead link.
            assert noticed_after < SILENCE + 1.0, noticed_after
            # That nothing is claimed live while nothing gets through is a rule of the
            # link (tests/test_link_rules.py): live only after caught_up at the head.
            assert not w.client.status.live
            proxy.blackhole(False)
            await w.wait_state(LinkState.LIVE, 10)
            await asyncio.sleep(0.3)
        await assert_converged(w, backend.url, workload)
        reasons = [s.reason or "" for s in w.states(silent_from)]
        assert any("no frame or heartbeat" in r for r in reasons), reasons


async def test_backend_restarted_elsewhere_behind_refusing_proxy(rig, backend_factory) -> None:
    backend, proxy = rig
    async with asyncio.timeout(40), watched([proxy.url]) as w:
        await w.client.wait_live()
        first = Workload(backend.url, seed=77)
        for _ in range(25):
            await first.step()
        await first.sender.aclose()
        await w.wait_state(LinkState.LIVE, 10)
        # The backend goes down; while it is down the address refuses connections.
        proxy.refuse(True)
        down_from = time.monotonic()
        backend_factory.stop(backend)
        await w.wait_state(LinkState.RECONNECTING, 5)
        accepted = proxy.accepted
        await asyncio.sleep(1.5)
        retries = proxy.accepted - accepted
        # It keeps trying, but with backoff (capped at 0.5 s), not in a tight loop.
        assert 1 <= retries <= 15, retries
        assert not w.client.status.live
        # It comes back on the same database, on another port.
        restarted = backend_factory(config=backend.config, db_path=backend.db_path)
        proxy.retarget(restarted.port)
        proxy.refuse(False)
        await w.wait_state(LinkState.LIVE, 10)
        second = Workload(restarted.url, seed=78)
        second.units, second.incidents = first.units, first.incidents
        for _ in range(25):
            await second.step()
        await second.sender.aclose()
        second.acked.update(first.acked)
        await assert_converged(w, restarted.url, second)
        assert LinkState.STOPPED not in [s.state for s in w.states(down_from)]


async def test_close_during_a_silent_link_is_prompt(rig) -> None:
    _, proxy = rig
    async with asyncio.timeout(15):
        w = Watched([proxy.url])
        w.client.start()
        try:
            await w.client.wait_live()
            proxy.blackhole(True)
            await asyncio.sleep(0.3)  # silent, but not yet for `silence_after`
        finally:
            started = time.monotonic()
            await w.client.close()
        # No waiting out a closing handshake that cannot complete.
        assert time.monotonic() - started < 3.0
        assert w.client.status.state == LinkState.STOPPED


# --- ways a client must not loop forever ------------------------------------------------


async def test_dead_first_backend_fails_over_to_the_second(backend_factory, refused_url) -> None:
    backend = backend_factory(config=make_config(limits=FAST))
    dead_url = refused_url  # nothing listens there
    async with asyncio.timeout(20), watched([dead_url, backend.url]) as w:
        await w.client.wait_live(10)
        assert w.client.status.url == backend.ws_url
        assert w.states()[0].state == LinkState.CONNECTING
        assert LinkState.RECONNECTING in [s.state for s in w.states()]
        workload = Workload(backend.url, seed=55)
        for _ in range(10):
            await workload.step()
        await workload.sender.aclose()
        await assert_converged(w, backend.url, workload)


# --- a backend killed with SIGKILL and restarted ------------------------------------------


class ServerProcess:
    """`cadterm server` in a child process on a fixed db file: the first start binds
    port 0, every restart that same port again (as a restarted server would)."""

    def __init__(self, tmp_path: Path) -> None:
        self.db = tmp_path / "cad.db"
        self.config = tmp_path / "server.toml"
        self.log = tmp_path / "server.log"
        self.port = 0
        self.proc: asyncio.subprocess.Process | None = None
        write_config(
            self.config,
            make_config(
                limits=Limits(heartbeat_interval=0.5, command_rate=1000.0, command_burst=1000)
            ),
        )

    async def start(self) -> None:
        argv = [sys.executable, "-m", "cadterm.cli.main", "server"]
        argv += ["--db", str(self.db), "--config", str(self.config), "--port", str(self.port)]
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdout=log, stderr=asyncio.subprocess.STDOUT
            )
        proc = self.proc

        def announced() -> re.Match[str] | None:
            assert proc.returncode is None, f"server exited: {self.log.read_text()[-2000:]}"
            return SERVER_ON.search(self.log.read_text())

        found = await until(announced, 20, "the server to say where it listens")
        self.port = int(found.group(1).rsplit(":", 1)[1])
        async with httpx.AsyncClient(base_url=self.url, timeout=1.0) as http:
            deadline = time.monotonic() + 20
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"server exited: {self.log.read_text()[-2000:]}")
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/v1/health")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {self.log.read_text()[-2000:]}")
                await asyncio.sleep(0.05)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def kill(self) -> None:
        """SIGKILL: no shutdown, no close frames, nothing flushed that was not already."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 10)


@pytest.mark.slow
async def test_server_killed_mid_stream_and_restarted(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path)
    try:
        async with asyncio.timeout(60):
            await server.start()
            async with watched([server.url]) as w:
                await w.client.wait_live()
                workload = Workload(server.url, seed=66)
                async with running(workload):
                    for _ in range(2):
                        await asyncio.sleep(1.0)
                        before = len(workload.acked)
                        await server.kill()
                        status = await w.wait_state(LinkState.RECONNECTING, SILENCE + 2.0)
                        assert status.reason, status
                        await asyncio.sleep(0.5)  # commands fail meanwhile, and are retried
                        await server.start()
                        await w.wait_state(LinkState.LIVE, 10)
                        assert len(workload.acked) >= before
                    await asyncio.sleep(1.0)
                assert workload.unavailable > 0  # the sender did notice the backend gone
                await assert_converged(w, server.url, workload)
                assert len(workload.acked) > 20
    finally:
        await server.kill()
