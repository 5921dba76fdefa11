"""The live stream: resume rules, live events, heartbeats, timeouts and slow subscribers.

Every test runs a real backend on loopback and reads the stream with a real WebSocket
client. Whatever the client is sent (a snapshot, a replay, live events) is folded with
the protocol's own fold and must come out equal to the server's `GET /v1/state`.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from conftest import Backend, make_config
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from cadterm.protocol.events import EVENT_ADAPTER, Event
from cadterm.protocol.fold import DispatchState, apply, fold
from cadterm.protocol.frames import (
    SERVER_FRAME_ADAPTER,
    SUBPROTOCOL,
    CaughtUp,
    CloseCode,
    EventFrame,
    Heartbeat,
    Snapshot,
)
from cadterm.server.config import Limits

TIMEOUT = 10.0  # seconds any one network step may take before the test fails


# --- helpers -----------------------------------------------------------------------------


def key() -> str:
    return uuid.uuid4().hex


def book_on(callsign: str) -> dict[str, Any]:
    return {
        "type": "book_on",
        "idempotency_key": key(),
        "workstation": "ws-test",
        "callsign": callsign,
        "unit_type": "patrol_car",
    }


def create_incident(address: str = "1 High Street") -> dict[str, Any]:
    return {
        "type": "create_incident",
        "idempotency_key": key(),
        "workstation": "ws-test",
        "grade": 2,
        "incident_type": "THEFT",
        "location": {"address": address},
        "description": "bike taken from outside the library",
    }


def add_note(reference: str, text: str = "caller rang back") -> dict[str, Any]:
    return {
        "type": "add_note",
        "idempotency_key": key(),
        "workstation": "ws-test",
        "reference": reference,
        "text": text,
    }


def assign(reference: str, callsign: str) -> dict[str, Any]:
    return {
        "type": "assign_unit",
        "idempotency_key": key(),
        "workstation": "ws-test",
        "reference": reference,
        "callsign": callsign,
    }


def http(backend: Backend) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=backend.url, headers=backend.headers(), timeout=TIMEOUT, trust_env=False
    )


def ws(backend: Backend, **kw: Any):
    return connect(
        backend.ws_url,
        subprotocols=[SUBPROTOCOL],
        additional_headers=backend.headers(),
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=2,
        ping_interval=None,
        **kw,
    )


async def post(client: httpx.AsyncClient, command: dict[str, Any]) -> dict[str, Any]:
    reply = await client.post("/v1/commands", json=command)
    assert reply.status_code == 200, reply.text
    return reply.json()


async def seed(client: httpx.AsyncClient, rounds: int = 2) -> list[str]:
    """Book units on, open incidents, assign and add notes; return the references."""
    references = []
    for r in range(rounds):
        callsign = f"AB{r:02d}"
        await post(client, book_on(callsign))
        reference = (await post(client, create_incident(f"{r} High Street")))["event"]["reference"]
        references.append(reference)
        await post(client, add_note(reference, f"note {r}"))
        await post(client, assign(reference, callsign))
        await post(client, add_note(reference, f"second note {r}"))
    return references


async def server_state(client: httpx.AsyncClient) -> DispatchState:
    reply = await client.get("/v1/state")
    assert reply.status_code == 200
    return DispatchState.model_validate(reply.json())


async def server_events(client: httpx.AsyncClient, after: int = 0) -> list[Event]:
    reply = await client.get("/v1/events", params={"after": after, "limit": 5000})
    assert reply.status_code == 200
    return [EVENT_ADAPTER.validate_python(e) for e in reply.json()]


async def subscribe(conn: ClientConnection, since: int | None) -> None:
    frame: dict[str, Any] = {"type": "subscribe"}
    if since is not None:
        frame["since"] = since
    await conn.send(json.dumps(frame))


async def next_frame(conn: ClientConnection) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return SERVER_FRAME_ADAPTER.validate_json(await conn.recv())


@dataclass
class Received:
    """What one subscriber was sent up to caught_up, and the picture it folds to."""

    state: DispatchState
    snapshot: Snapshot | None = None
    events: list[Event] = field(default_factory=list)
    caught_up: int | None = None

    def take(self, frame: Any) -> None:
        """Fold one frame into the picture, checking the order rules as it goes."""
        if isinstance(frame, Snapshot):
            assert self.snapshot is None and not self.events, "snapshot must come first"
            self.snapshot = frame
            self.state = frame.state.model_copy(deep=True)
        elif isinstance(frame, EventFrame):
            assert frame.event.seq == self.state.seq + 1, "events must be gap-free and in order"
            self.events.append(frame.event)
            apply(self.state, frame.event)
        elif isinstance(frame, CaughtUp):
            assert self.caught_up is None, "one caught_up per subscription"
            assert frame.seq == self.state.seq, "caught_up names the seq the replay reached"
            self.caught_up = frame.seq
        elif not isinstance(frame, Heartbeat):
            raise AssertionError(f"unexpected frame {frame!r}")


async def catch_up(
    conn: ClientConnection, since: int | None, base: DispatchState | None = None
) -> Received:
    """Subscribe after `since` on `conn` and fold everything up to caught_up."""
    received = Received(state=base.model_copy(deep=True) if base else DispatchState())
    await subscribe(conn, since)
    for _ in range(100_000):
        received.take(await next_frame(conn))
        if received.caught_up is not None:
            return received
    raise AssertionError("no caught_up")


async def resume(backend: Backend, since: int | None, base: DispatchState | None = None):
    """Open a stream, subscribe after `since`, fold to caught_up and close."""
    async with ws(backend) as conn:
        return await catch_up(conn, since, base)


def dump(state: DispatchState) -> dict[str, Any]:
    return state.model_dump(mode="json")


# --- resume rules ------------------------------------------------------------------------


async def test_since_zero_replays_everything_then_caught_up(backend: Backend) -> None:
    async with http(backend) as client:
        await seed(client)
        state = await server_state(client)
        stored = await server_events(client)
    received = await resume(backend, 0)
    assert received.snapshot is None
    assert [e.seq for e in received.events] == list(range(1, state.seq + 1))
    assert received.events == stored
    assert received.caught_up == state.seq == 10
    assert dump(received.state) == dump(state)


async def test_since_mid_replays_only_later_events(backend: Backend) -> None:
    async with http(backend) as client:
        await seed(client)
        state = await server_state(client)
        stored = await server_events(client)
    for mid in (1, 4, state.seq - 1):
        base = fold(stored[:mid])
        received = await resume(backend, mid, base)
        assert received.snapshot is None
        assert [e.seq for e in received.events] == list(range(mid + 1, state.seq + 1))
        assert received.caught_up == state.seq
        assert dump(received.state) == dump(state)


async def test_since_head_is_just_caught_up(backend: Backend) -> None:
    async with http(backend) as client:
        await seed(client)
        state = await server_state(client)
    received = await resume(backend, state.seq, state)
    assert received.snapshot is None
    assert received.events == []
    assert received.caught_up == state.seq
    assert dump(received.state) == dump(state)


async def test_since_zero_on_empty_server_is_just_caught_up(backend: Backend) -> None:
    received = await resume(backend, 0)
    assert (received.snapshot, received.events, received.caught_up) == (None, [], 0)


@pytest.mark.parametrize("past", [1, 1000])
async def test_since_past_head_gets_snapshot_ahead_of_server(backend: Backend, past: int) -> None:
    async with http(backend) as client:
        await seed(client)
        state = await server_state(client)
    # The client claims a picture the server never had: its own must be thrown away.
    stale = DispatchState(seq=state.seq + past)
    received = await resume(backend, state.seq + past, stale)
    assert received.snapshot is not None
    assert received.snapshot.reason == "ahead_of_server"
    assert received.events == []
    assert received.caught_up == state.seq
    assert dump(received.state) == dump(state)


async def test_no_since_gets_requested_snapshot_equal_to_state(backend: Backend) -> None:
    async with http(backend) as client:
        await seed(client)
        state = await server_state(client)
    received = await resume(backend, None)
    assert received.snapshot is not None
    assert received.snapshot.reason == "requested"
    assert dump(received.snapshot.state) == dump(state)
    assert received.events == []
    assert received.caught_up == state.seq
    assert dump(received.state) == dump(state)


async def test_no_since_on_empty_server_gets_empty_snapshot(backend: Backend) -> None:
    received = await resume(backend, None)
    assert received.snapshot is not None and received.snapshot.reason == "requested"
    assert dump(received.state) == dump(DispatchState())
    assert received.caught_up == 0


async def test_since_older_than_retention_gets_snapshot(backend_factory) -> None:
    backend = backend_factory(
        make_config(retain_events=5, snapshot_every=10, limits=Limits(command_burst=100))
    )
    pictures: dict[int, DispatchState] = {}
    async with http(backend) as client:
        await post(client, book_on("RT1"))
        reference = (await post(client, create_incident()))["event"]["reference"]
        for n in range(38):
            seq = (await post(client, add_note(reference, f"note {n}")))["seq"]
            if seq in (35, 38):
                pictures[seq] = await server_state(client)
        state = await server_state(client)
        assert state.seq == 40
        # A snapshot is written at 40, off the command path (on the upkeep thread), and
        # then everything up to 40 - 5 is pruned: wait for that, not for a guess of time.
        for _ in range(500):  # at most ~10 s
            stored = await server_events(client)
            if stored[0].seq == 36:
                break
            await asyncio.sleep(0.02)
    first_kept = stored[0].seq
    assert first_kept == 36
    assert [e.seq for e in stored] == list(range(first_kept, 41))

    for since in (0, 1, first_kept - 2):
        received = await resume(backend, since)
        assert received.snapshot is not None, since
        assert received.snapshot.reason == "older_than_retention"
        assert received.events == []
        assert received.caught_up == 40
        assert dump(received.state) == dump(state)

    # From the event just before the oldest kept (or later), the rest is replayed.
    for since in (35, 38):
        received = await resume(backend, since, pictures[since])
        assert received.snapshot is None
        assert [e.seq for e in received.events] == list(range(since + 1, 41))
        assert dump(received.state) == dump(state)
    # At head there is nothing to send at all, pruned or not.
    received = await resume(backend, 40, state)
    assert (received.snapshot, received.events, received.caught_up) == (None, [], 40)


# --- live events -------------------------------------------------------------------------


async def test_live_events_follow_caught_up(backend: Backend) -> None:
    async with http(backend) as client, ws(backend) as conn:
        references = await seed(client, rounds=1)
        received = await catch_up(conn, 0)
        head = received.caught_up
        for n in range(5):
            await post(client, add_note(references[0], f"live {n}"))
        async with asyncio.timeout(TIMEOUT):
            while received.state.seq < head + 5:
                received.take(await next_frame(conn))
        assert [e.seq for e in received.events[-5:]] == list(range(head + 1, head + 6))
        assert dump(received.state) == dump(await server_state(client))


async def test_two_subscribers_see_the_same_events(backend: Backend) -> None:
    async with http(backend) as client, ws(backend) as first, ws(backend) as second:
        references = await seed(client, rounds=1)
        one = await catch_up(first, None)
        two = await catch_up(second, 3, fold((await server_events(client))[:3]))
        raw: dict[str, list[str]] = {"first": [], "second": []}
        for n in range(6):
            await post(client, add_note(references[0], f"for both {n}"))
        async with asyncio.timeout(TIMEOUT):
            for name, conn in (("first", first), ("second", second)):
                while len(raw[name]) < 6:
                    text = await conn.recv()
                    if json.loads(text)["type"] == "event":
                        raw[name].append(text)
        assert raw["first"] == raw["second"]
        for received, name in ((one, "first"), (two, "second")):
            for text in raw[name]:
                received.take(SERVER_FRAME_ADAPTER.validate_json(text))
        state = await server_state(client)
        assert dump(one.state) == dump(two.state) == dump(state)


async def test_subscribers_joining_while_commands_flow_miss_nothing(backend_factory) -> None:
    """No gap or duplicate at the seam between replay (or snapshot) and live events."""
    backend = backend_factory(make_config(limits=Limits(command_rate=1000, command_burst=1000)))
    rng = random.Random(7)
    total = 120
    async with http(backend) as client:
        await post(client, book_on("SEAM1"))
        reference = (await post(client, create_incident()))["event"]["reference"]

        async def writer() -> None:
            for n in range(total):
                await post(client, add_note(reference, f"flow {n}"))
                if n % 10 == 0:
                    await asyncio.sleep(0)

        async def reader(since_choice: str) -> DispatchState:
            await asyncio.sleep(rng.uniform(0, 0.3))
            stored = await server_events(client)
            head = stored[-1].seq if stored else 0
            since = None if since_choice == "none" else rng.randint(0, head)
            base = fold(stored[:since]) if since else None
            async with ws(backend) as conn:
                received = await catch_up(conn, since, base)
                async with asyncio.timeout(TIMEOUT * 3):
                    while received.state.seq < total + 2:
                        received.take(await next_frame(conn))
            return received.state

        writing = asyncio.create_task(writer())
        try:
            pictures = await asyncio.gather(*(reader(c) for c in ["none", "since"] * 4))
        finally:
            await writing
        state = await server_state(client)
    assert state.seq == total + 2
    for picture in pictures:
        assert dump(picture) == dump(state)


async def test_heartbeats_on_a_quiet_stream(backend_factory) -> None:
    backend = backend_factory(make_config(limits=Limits(heartbeat_interval=0.2)))
    async with http(backend) as client:
        await seed(client, rounds=1)
        head = (await server_state(client)).seq
    async with ws(backend) as conn:
        await catch_up(conn, 0)
        beats = []
        async with asyncio.timeout(TIMEOUT):
            while len(beats) < 3:
                frame = await next_frame(conn)
                assert isinstance(frame, Heartbeat), frame
                beats.append(frame)
    assert all(beat.seq == head for beat in beats)
    assert all(beat.interval == pytest.approx(0.2) for beat in beats)
    assert beats[0].at <= beats[1].at <= beats[2].at


async def test_no_subscribe_in_time_is_closed_4008(backend_factory) -> None:
    backend = backend_factory(make_config(limits=Limits(subscribe_timeout=0.3)))
    async with ws(backend) as conn:
        async with asyncio.timeout(TIMEOUT):
            with pytest.raises(ConnectionClosed) as info:
                await conn.recv()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == CloseCode.SUBSCRIBE_TIMEOUT
    # A client that does subscribe in time is served as usual.
    received = await resume(backend, None)
    assert received.caught_up == 0


# --- slow subscribers --------------------------------------------------------------------


def _small_socket(backend: Backend) -> socket.socket:
    """A connected socket with a tiny receive buffer, so a client that stops reading
    pushes back on the server after a few frames rather than after megabytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect((backend.host, backend.port))
    sock.setblocking(False)
    return sock


async def test_slow_subscriber_is_cut_off_and_fast_one_is_not(backend_factory) -> None:
    backend = backend_factory(
        make_config(limits=Limits(subscriber_queue=20, command_rate=100_000, command_burst=100_000))
    )
    # Incompressible 4 KB notes: the slow client's buffers fill after a few hundred.
    rng = random.Random(1)
    max_commands = 5000
    async with http(backend) as client:
        await post(client, book_on("SLOW1"))
        reference = (await post(client, create_incident()))["event"]["reference"]
        async with (
            ws(backend) as fast,
            # max_queue=1 and no compression: once one frame is buffered the client stops
            # reading the socket, and what is queued in the kernel is the full size.
            ws(backend, sock=_small_socket(backend), max_queue=1, compression=None) as slow,
        ):
            fast_received = await catch_up(fast, None)
            slow_received = await catch_up(slow, None)
            fast_seen: list[int] = []

            async def read_fast() -> None:
                while True:
                    frame = SERVER_FRAME_ADAPTER.validate_json(await fast.recv())
                    fast_received.take(frame)
                    if isinstance(frame, EventFrame):
                        fast_seen.append(frame.event.seq)

            reading = asyncio.create_task(read_fast())
            try:
                posted = 0
                cut = False
                async with asyncio.timeout(120):
                    while posted < max_commands and not cut:
                        text = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz ", k=4000))
                        await post(client, add_note(reference, text))
                        posted += 1
                        if posted % 20 == 0:
                            cut = (await client.get("/v1/health")).json()["cut_off"] >= 1
                assert cut, f"the slow subscriber was not cut off after {posted} events"
                # The fast subscriber is still live: new events reach it promptly.
                for n in range(5):
                    await post(client, add_note(reference, f"after the cut {n}"))
                head = (await server_state(client)).seq
                async with asyncio.timeout(TIMEOUT * 3):
                    while fast_received.state.seq < head:
                        await asyncio.sleep(0.02)
                        assert not reading.done(), reading
            finally:
                reading.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await reading
            assert fast_seen == list(range(3, head + 1))
            assert dump(fast_received.state) == dump(await server_state(client))
            health = (await client.get("/v1/health")).json()
            assert health["cut_off"] == 1
            assert health["subscribers"] == 1, "only the fast subscriber is left"

            # When the slow client reads at last it gets a gap-free prefix, then 4000.
            with pytest.raises(ConnectionClosed) as info:
                async with asyncio.timeout(TIMEOUT * 3):
                    for _ in range(max_commands + 100):
                        slow_received.take(SERVER_FRAME_ADAPTER.validate_json(await slow.recv()))
            assert info.value.rcvd is not None
            assert info.value.rcvd.code == CloseCode.RESUME
            assert slow_received.state.seq < head
            assert [e.seq for e in slow_received.events] == list(
                range(3, slow_received.state.seq + 1)
            )
        # Resuming from what it applied brings the slow client up to date.
        since = slow_received.state.seq
        received = await resume(backend, since, slow_received.state)
        assert dump(received.state) == dump(await server_state(client))
