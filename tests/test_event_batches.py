"""Events several to a frame: how the server cuts batches and how the client takes them.

Pure parts first (`cadterm.server.event_frames`, `LinkRules` on an ``events`` frame),
then a real backend on loopback read with a raw WebSocket client: negotiation at
subscribe, a client that does not ask, replays and resumes in batches, live backlogs.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from conftest import TOKENS, Backend, make_config
from pydantic import ValidationError
from test_stream import add_note, book_on, create_incident, http, post, server_state, ws
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from cadterm.client.link import Applied, LinkRules, Resume, Stop
from cadterm.client.store import LocalStore
from cadterm.client.stream import Subscription
from cadterm.protocol.domain import Role
from cadterm.protocol.events import NoteAdded, UnitBookedOn
from cadterm.protocol.fold import apply
from cadterm.protocol.frames import (
    MAX_BATCH_EVENTS,
    SERVER_FRAME_ADAPTER,
    SUBPROTOCOL,
    CloseCode,
    ErrorFrame,
    EventBatch,
    EventFrame,
    Subscribe,
    read_events,
)
from cadterm.server.config import Limits
from cadterm.server.event_frames import batch_frames, event_frame, take_frame
from cadterm.server.run import build_server, listen_socket

AT = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
TIMEOUT = 10.0


def booked(seq: int) -> UnitBookedOn:
    return UnitBookedOn(
        seq=seq, at=AT, operator="op", workstation="ws", callsign=f"U{seq}", unit_type="van"
    )


def body(seq: int) -> str:
    return booked(seq).model_dump_json()


def note(seq: int, text: str) -> str:
    return NoteAdded(
        seq=seq, at=AT, operator="op", workstation="ws", reference="0001-27NOV26", text=text
    ).model_dump_json()


def seqs_of(frame: str) -> list[int]:
    """The seqs a server frame carries, after validating it as the client would."""
    parsed = SERVER_FRAME_ADAPTER.validate_json(frame)
    if isinstance(parsed, EventFrame):
        return [parsed.event.seq]
    assert isinstance(parsed, EventBatch)
    return [event.seq for event in parsed.events]


# --- cutting batches ---------------------------------------------------------------------


def test_a_queue_is_sent_in_batches_of_at_most_the_asked_number_in_order() -> None:
    frames = deque(event_frame(body(n)) for n in range(1, 12))
    sent = []
    for _ in range(20):
        if not frames:
            break
        sent.append(take_frame(frames, 4, 256 * 1024))
    assert [seqs_of(f) for f in sent] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11]]
    assert json.loads(sent[0])["type"] == "events"


def test_without_batches_each_queued_frame_goes_as_it_was_queued() -> None:
    queued = [event_frame(body(n)) for n in range(1, 4)]
    frames = deque(queued)
    assert [take_frame(frames, 1, 256 * 1024) for _ in range(3)] == queued
    assert [json.loads(f)["type"] for f in queued] == ["event"] * 3


def test_a_lone_queued_frame_goes_as_an_event_frame() -> None:
    frames = deque([event_frame(body(1))])
    assert json.loads(take_frame(frames, 64, 256 * 1024))["type"] == "event"


@pytest.mark.parametrize("limit", [700, 1000, 4096])
def test_no_batch_passes_the_byte_limit(limit: int) -> None:
    # Counted in bytes, not characters: every other event has a note of 60 "é" (120 bytes).
    bodies = [body(n) if n % 2 else note(n, "é" * 60) for n in range(1, 60)]
    frames = deque(event_frame(b) for b in bodies)
    taken = []
    for _ in range(100):
        if not frames:
            break
        taken.append(take_frame(frames, MAX_BATCH_EVENTS, limit))
    cut = list(batch_frames(bodies, MAX_BATCH_EVENTS, limit))
    assert taken == cut
    assert all(len(f.encode()) <= limit for f in cut)
    assert [s for f in cut for s in seqs_of(f)] == list(range(1, 60))
    assert any(json.loads(f)["type"] == "events" for f in cut)


def test_an_event_larger_than_the_limit_goes_alone_and_whole() -> None:
    big = NoteAdded(
        seq=2, at=AT, operator="op", workstation="ws", reference="0001-27NOV26", text="é" * 40
    ).model_dump_json()
    bodies = [body(1), big, body(3)]
    limit = len(body(1)) + 40  # room for one small event in a batch, not two
    cut = list(batch_frames(bodies, 8, limit))
    assert [seqs_of(f) for f in cut] == [[1], [2], [3]]
    frames = deque(event_frame(b) for b in bodies)
    assert [take_frame(frames, 8, limit) for _ in range(3)] == cut


# --- taking batches ----------------------------------------------------------------------


def batch(*seqs: int) -> str:
    return EventBatch(events=[booked(n) for n in seqs]).model_dump_json()


def test_a_batch_is_applied_whole_with_one_change_signal() -> None:
    rules = LinkRules(LocalStore())
    rules.opened(0.0)
    assert rules.received(batch(1, 2, 3), 0.1) == [Applied()]
    assert rules.store.seq == 3 and sorted(rules.store.units) == ["U1", "U2", "U3"]


def test_a_gap_inside_a_batch_keeps_what_came_before_it_and_resumes() -> None:
    rules = LinkRules(LocalStore())
    rules.opened(0.0)
    effects = rules.received(batch(1, 2, 4, 5), 0.1)
    assert effects[0] == Applied() and isinstance(effects[1], Resume)
    assert "gap" in effects[1].reason
    assert rules.store.seq == 2 and sorted(rules.store.units) == ["U1", "U2"]


def test_a_batch_starting_with_a_duplicate_applies_nothing_and_resumes() -> None:
    rules = LinkRules(LocalStore())
    rules.opened(0.0)
    rules.received(batch(1, 2), 0.1)
    (effect,) = rules.received(batch(2, 3), 0.2)
    assert isinstance(effect, Resume)
    assert rules.store.seq == 2 and "U3" not in rules.store.units


def test_a_bad_event_in_a_batch_stops_as_a_bad_event_frame_does_and_applies_nothing() -> None:
    good = json.loads(batch(1, 2, 3))
    good["events"][1]["callsign"] = 7  # strict: a number is not a callsign
    single = {"type": "event", "event": good["events"][1]}
    refusals = []
    for frame in (good, single):
        rules = LinkRules(LocalStore())
        rules.opened(0.0)
        (effect,) = rules.received(json.dumps(frame), 0.1)
        assert isinstance(effect, Stop) and "callsign" in effect.reason
        assert rules.store.seq == 0
        refusals.append(effect.reason.split("callsign", 1)[1])
    assert refusals[0] == refusals[1]  # the same error, whichever frame carried it


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "events", "events": []},
        {"type": "events"},
        {"type": "events", "events": {}},
    ],
)
def test_a_malformed_batch_stops(frame: dict[str, Any]) -> None:
    rules = LinkRules(LocalStore())
    rules.opened(0.0)
    (effect,) = rules.received(json.dumps(frame), 0.1)
    assert isinstance(effect, Stop) and "unreadable" in effect.reason


def test_a_client_that_does_not_want_batches_does_not_ask() -> None:
    (send,) = LinkRules(LocalStore(), batch=None).opened(0.0)
    assert json.loads(send.text) == {"type": "subscribe"}


# --- over the wire -----------------------------------------------------------------------


async def read_to_caught_up(conn, since: int | None, **subscribe: Any) -> list[str]:
    """Subscribe and return every frame up to and including caught_up."""
    frame: dict[str, Any] = {"type": "subscribe", **subscribe}
    if since is not None:
        frame["since"] = since
    await conn.send(json.dumps(frame))
    frames = []
    for _ in range(10_000):
        async with asyncio.timeout(TIMEOUT):
            raw = await conn.recv()
        frames.append(raw)
        if json.loads(raw)["type"] == "caught_up":
            return frames
    raise AssertionError("no caught_up")


def events_in(frames: list[str]) -> list[int]:
    return [s for f in frames if json.loads(f)["type"] in ("event", "events") for s in seqs_of(f)]


async def notes(backend: Backend, count: int, text: str = "note") -> str:
    async with http(backend) as client:
        await post(client, book_on("BT1"))
        reference = (await post(client, create_incident()))["event"]["reference"]
        for n in range(count):
            await post(client, add_note(reference, f"{text} {n}"))
    return reference


def limited(**limits: Any):
    return make_config(limits=Limits(command_burst=1000, command_rate=1000, **limits))


async def test_a_replay_comes_in_batches_of_the_asked_size(backend_factory) -> None:
    backend = backend_factory(limited())
    await notes(backend, 40)  # seqs 1..42
    async with ws(backend) as conn:
        frames = await read_to_caught_up(conn, 0, batch=10)
    assert [json.loads(f)["type"] for f in frames] == ["events"] * 5 + ["caught_up"]
    assert [len(seqs_of(f)) for f in frames[:-1]] == [10, 10, 10, 10, 2]
    assert events_in(frames) == list(range(1, 43))


async def test_a_client_that_does_not_ask_gets_one_event_per_frame(backend_factory) -> None:
    backend = backend_factory(limited())
    await notes(backend, 20)
    for subscribe in ({}, {"batch": 1}):
        async with ws(backend) as conn:
            frames = await read_to_caught_up(conn, 0, **subscribe)
        kinds = {json.loads(f)["type"] for f in frames}
        assert kinds == {"event", "caught_up"}
        assert events_in(frames) == list(range(1, 23))
        for f in frames[:-1]:
            assert f.startswith('{"type":"event","event":{')


async def test_a_resume_replays_from_the_next_seq_in_batches(backend_factory) -> None:
    backend = backend_factory(limited())
    await notes(backend, 30)  # seqs 1..32
    async with ws(backend) as conn:
        frames = await read_to_caught_up(conn, 17, batch=MAX_BATCH_EVENTS)
    assert [json.loads(f)["type"] for f in frames] == ["events", "caught_up"]
    assert events_in(frames) == list(range(18, 33))
    assert json.loads(frames[-1]) == {"type": "caught_up", "seq": 32}


async def test_replay_batches_keep_to_the_frame_limit(backend_factory) -> None:
    backend = backend_factory(limited(snapshot_part_bytes=4096))
    await notes(backend, 30, text="x" * 900)  # four or so of these fill a frame
    async with ws(backend) as conn:
        frames = await read_to_caught_up(conn, 0, batch=MAX_BATCH_EVENTS)
    assert events_in(frames) == list(range(1, 33))
    assert max(len(f.encode()) for f in frames) <= 4096
    assert sum(json.loads(f)["type"] == "events" for f in frames) >= 5


async def test_live_events_queued_together_go_in_batches(backend_factory) -> None:
    backend = backend_factory(limited())
    reference = await notes(backend, 1)
    async with ws(backend) as conn, http(backend) as client:
        frames = await read_to_caught_up(conn, None, batch=MAX_BATCH_EVENTS)
        state = SERVER_FRAME_ADAPTER.validate_json(frames[0]).state  # type: ignore[union-attr]
        # Commands sent together are committed together and published in one go, so
        # they are all queued before the subscriber's sender runs again.
        live: list[str] = []
        for _round in range(5):
            await asyncio.gather(*(post(client, add_note(reference, f"b{i}")) for i in range(40)))
            head = (await server_state(client)).seq
            while (events_in(live) or [state.seq])[-1] < head:
                async with asyncio.timeout(TIMEOUT):
                    raw = await conn.recv()
                if json.loads(raw)["type"] != "heartbeat":
                    live.append(raw)
            if any(json.loads(f)["type"] == "events" for f in live):
                break
        assert any(json.loads(f)["type"] == "events" for f in live), "no burst was batched"
        assert events_in(live) == list(range(state.seq + 1, head + 1))
        for f in live:
            parsed = SERVER_FRAME_ADAPTER.validate_json(f)
            for event in parsed.events if isinstance(parsed, EventBatch) else [parsed.event]:
                apply(state, event)
        assert state.model_dump(mode="json") == (await server_state(client)).model_dump(mode="json")


@pytest.mark.parametrize("asked", [0, -1, MAX_BATCH_EVENTS + 1, "10", 2.5, True])
async def test_a_bad_batch_size_is_refused_with_4002(backend: Backend, asked: Any) -> None:
    async with ws(backend) as conn:
        await conn.send(json.dumps({"type": "subscribe", "batch": asked}))
        async with asyncio.timeout(TIMEOUT):
            error = SERVER_FRAME_ADAPTER.validate_json(await conn.recv())
        assert isinstance(error, ErrorFrame) and "batch" in error.detail
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(TIMEOUT):
                await conn.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.BAD_FRAME


def test_subscribe_schema_bounds_the_batch_size() -> None:
    schema = Subscribe.model_json_schema()["properties"]["batch"]
    bounds = next(option for option in schema["anyOf"] if option.get("type") == "integer")
    assert (bounds["minimum"], bounds["maximum"]) == (1, MAX_BATCH_EVENTS)


@pytest.mark.parametrize("asked", [None, 8, MAX_BATCH_EVENTS])
async def test_the_client_catches_up_and_follows_live_with_or_without_batches(
    backend_factory, asked: int | None
) -> None:
    backend = backend_factory(limited())
    reference = await notes(backend, 30)
    store = LocalStore()
    subscription = Subscription([backend.url], TOKENS[Role.DISPATCHER], store, batch=asked)
    subscription.start()
    try:
        await subscription.wait_live(TIMEOUT)
        async with http(backend) as client:
            await asyncio.gather(*(post(client, add_note(reference, f"l{i}")) for i in range(30)))
            state = await server_state(client)
        await subscription.wait_for_seq(state.seq, TIMEOUT)
        assert store.state.model_dump(mode="json") == state.model_dump(mode="json")
        assert subscription.resumes == 0
    finally:
        await subscription.stop()


async def test_the_stream_works_through_plain_asgi_without_the_direct_send(tmp_path) -> None:
    """Under a server whose protocol offers no direct send (plain uvicorn), frames go
    through ASGI ``websocket.send`` messages, batched all the same."""
    server = build_server(db=tmp_path / "plain.db", config=limited(), port=0)
    server.config.ws = "websockets-sansio"  # uvicorn's own: no cadterm.send_text
    sock = listen_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        for _ in range(200):  # up to ~10 s for the server to come up
            if server.started:
                break
            await asyncio.sleep(0.05)
        assert server.started
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {TOKENS[Role.DISPATCHER]}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, trust_env=False) as client:
            await post(client, book_on("PL1"))
            reference = (await post(client, create_incident()))["event"]["reference"]
            for n in range(10):
                await post(client, add_note(reference, f"plain {n}"))
        async with connect(
            f"ws://127.0.0.1:{port}/v1/stream",
            subprotocols=[SUBPROTOCOL],
            additional_headers=headers,
            proxy=None,
            open_timeout=TIMEOUT,
        ) as conn:
            frames = await read_to_caught_up(conn, 0, batch=5)
        assert [len(seqs_of(f)) for f in frames[:-1]] == [5, 5, 2]
        assert events_in(frames) == list(range(1, 13))
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
    assert not thread.is_alive()


# --- the fast way in: read_events --------------------------------------------------------


def test_read_events_gives_what_the_general_reader_gives() -> None:
    single = EventFrame(event=booked(4)).model_dump_json()
    several = batch(5, 6, 7)
    assert read_events(single) == [SERVER_FRAME_ADAPTER.validate_json(single).event]
    assert read_events(several) == SERVER_FRAME_ADAPTER.validate_json(several).events


@pytest.mark.parametrize(
    "frame",
    [
        # Anything but the event between the envelope's fixed text: refused both ways.
        '{"type":"event","event":' + body(1) + ',"extra":1}',
        '{"type":"events","events":[' + body(1) + '],"x":[1]}',
        '{"type":"events","events":[]}',
        '{"type":"events","events":[' + ",".join(body(n) for n in range(1, 514)) + "]}",
        '{"type":"event","event":' + body(1).replace('"U1"', "7") + "}",
        '{"type":"event","event":' + body(1).replace('"seq":1', '"seq":"1"') + "}",
    ],
)
def test_read_events_leaves_anything_invalid_to_the_general_reader(frame: str) -> None:
    assert read_events(frame) is None
    with pytest.raises(ValidationError):
        SERVER_FRAME_ADAPTER.validate_json(frame)


def test_a_frame_with_its_key_twice_is_left_to_the_general_reader() -> None:
    doubled = '{"type":"event","event":' + body(1) + ',"event":' + body(2) + "}"
    assert read_events(doubled) is None


def test_a_frame_written_another_way_takes_the_general_way_and_still_applies() -> None:
    spaced = json.dumps({"type": "event", "event": json.loads(body(1))}, indent=1)
    assert read_events(spaced) is None
    rules = LinkRules(LocalStore())
    rules.opened(0.0)
    assert rules.received(spaced, 0.1) == [Applied()]
    assert rules.received(spaced.encode(), 0.2)[0] != Applied()  # a duplicate now
    assert rules.store.seq == 1
