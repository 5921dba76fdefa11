"""The live event stream at ``/v1/stream``: handshake checks, subscribe, replay, fan-out.

See docs/protocol.md for the frames and the resume rules. Every frame the client sends
is checked before it is parsed; a bad one gets an `error` frame and close `4002`, never
a dropped connection the client would reconnect and resend it over.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import WebSocket
from pydantic import ValidationError
from starlette.websockets import WebSocketDisconnect

from cadterm.protocol.domain import Operator, Role
from cadterm.protocol.frames import (
    CLIENT_FRAME_ADAPTER,
    SUBPROTOCOL,
    CaughtUp,
    CloseCode,
    ErrorFrame,
    Heartbeat,
)
from cadterm.protocol.problems import Problem, ProblemCode

from .auth import Authenticator, bearer_token
from .config import ServerConfig
from .connections import SEND_NOW, SEND_TEXT
from .event_frames import batch_frames, take_frame
from .guard import json_fault, nesting_exceeds
from .hub import Subscriber
from .responses import problem_response
from .service import DispatchService, utc_now
from .store.base import StoreUnavailable

__all__ = ["serve_stream"]

log = logging.getLogger("cadterm.server")


def _origin_allowed(origin: str | None, config: ServerConfig) -> bool:
    # Consoles and scripts send no Origin; browsers always do, and only listed origins
    # may open a stream from a page.
    return origin is None or origin in config.allowed_origins


async def _deny(websocket: WebSocket, problem: Problem) -> None:
    """Refuse the handshake with an HTTP problem document."""
    await websocket.send_denial_response(problem_response(problem))


async def serve_stream(
    websocket: WebSocket,
    service: DispatchService,
    config: ServerConfig,
    authenticator: Authenticator,
) -> None:
    headers = websocket.headers
    if not _origin_allowed(headers.get("origin"), config):
        await _deny(
            websocket,
            Problem.of(
                ProblemCode.ORIGIN_NOT_ALLOWED,
                f"origin {headers.get('origin')!r} is not in the server's allowlist",
            ),
        )
        return
    if len(headers.getlist("authorization")) > 1:
        # A proxy that checks the first would let through whoever is named second.
        problem = Problem.of(
            ProblemCode.BAD_HANDSHAKE, "the Authorization header is sent more than once"
        )
        await _deny(websocket, problem)
        return
    operator = authenticator.operator_for(bearer_token(headers.get("authorization")))
    if operator is None:
        await _deny(
            websocket,
            Problem.of(
                ProblemCode.UNAUTHENTICATED,
                "a valid bearer token is required in the Authorization header",
            ),
        )
        return
    if operator.role == Role.INTAKE:
        await _deny(
            websocket,
            Problem.of(
                ProblemCode.FORBIDDEN,
                f"operator {operator.id} (intake) may only submit reports, not watch the stream",
            ),
        )
        return
    offered = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",")]
    if SUBPROTOCOL not in offered:
        await _deny(
            websocket,
            Problem.of(
                ProblemCode.BAD_HANDSHAKE,
                f"the stream speaks subprotocol {SUBPROTOCOL!r}; the client offered {offered}",
            ),
        )
        return
    await websocket.accept(subprotocol=SUBPROTOCOL)
    limits = config.limits
    try:
        try:
            message = await asyncio.wait_for(websocket.receive(), limits.subscribe_timeout)
        except TimeoutError:
            await websocket.close(CloseCode.SUBSCRIBE_TIMEOUT, "no subscribe frame in time")
            return
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:  # a binary frame: receive_text() would raise KeyError here
            await _bad_frame(websocket, "binary frames are not accepted; send JSON text frames")
            return
        if nesting_exceeds(text, limits.max_json_depth):
            await _bad_frame(websocket, _too_deep(limits.max_json_depth))
            return
        fault = json_fault(text)
        if fault is not None:
            await _bad_frame(websocket, f"frame {fault}")
            return
        try:
            subscribe = CLIENT_FRAME_ADAPTER.validate_json(text)
        except ValidationError as exc:
            await _bad_frame(websocket, _frame_error(text, exc))
            return
        batch = subscribe.batch or 1
        await _stream_events(websocket, service, operator, subscribe.since, batch, limits)
    except (WebSocketDisconnect, RuntimeError):
        # The client went away, possibly mid-send: nothing to clean but the subscription.
        pass


def _too_deep(limit: int) -> str:
    return f"frame nests arrays and objects more than {limit} deep"


def _frame_error(text: str, exc: ValidationError) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return "frame is not valid JSON"
    if not isinstance(data, dict) or "type" not in data:
        return "frame must be a JSON object with a 'type'"
    if data["type"] != "subscribe":
        return f"unknown or unexpected frame type {data['type']!r}; expected 'subscribe'"
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"invalid subscribe frame: {where}: {err['msg']}"


async def _bad_frame(
    websocket: WebSocket, reason: str, code: CloseCode = CloseCode.BAD_FRAME
) -> None:
    frame = ErrorFrame(code=code.name.lower(), detail=reason)
    with contextlib.suppress(Exception):
        await websocket.send_text(frame.model_dump_json())
    # Close reasons are limited to 123 bytes by the WebSocket protocol.
    await websocket.close(code, reason[:120])


async def _stream_events(
    websocket: WebSocket,
    service: DispatchService,
    operator: Operator,
    since: int | None,
    batch: int,
    limits: Any,
) -> None:
    hub = service.hub
    # Straight to the connection under cadterm's own server; through ASGI elsewhere.
    send_text = (websocket.scope.get("extensions") or {}).get(SEND_TEXT, websocket.send_text)
    if since is not None and since > service.head:
        # Resuming from another node of a cluster: fold what it had first.
        await service.reach(since)
    # Register and read the head in one step with no await between: every event after
    # `head` reaches the queue, every event up to it comes from the snapshot or replay.
    subscriber = hub.subscribe(operator, batch)
    head = service.head
    try:
        first_kept = await service.run_read(service.store.first_retained)
        reason = None
        if since is None:
            reason = "requested"
        elif since > head:
            reason = "ahead_of_server"
        elif since + 1 < first_kept and since < head:
            reason = "older_than_retention"
        if reason is not None:
            # Events may have been applied while the store was asked above: start the
            # queue afresh at the head the snapshot is taken at, with no await between.
            hub.unsubscribe(subscriber)
            subscriber = hub.subscribe(operator, batch)
            head = service.head
            # Every part is cut from the picture at `head` in this one call, with no
            # await before it: the parts make one picture at one seq.
            frames = hub.snapshot_frames(service.state, reason, limits.snapshot_part_bytes)
            for frame in frames:
                await send_text(frame)
        else:
            after = since
            while after < head:
                rows = await service.run_read(
                    service.store.read_raw, after, min(limits.replay_batch, head - after)
                )
                if not rows or rows[0][0] != after + 1:
                    # Events were pruned by a snapshot while we replayed: never send a
                    # gap. The client resumes and, being behind retention, gets a snapshot.
                    await websocket.close(CloseCode.RESUME, "replay overtaken by pruning")
                    return
                bodies = (body for _seq, body in rows)
                for frame in batch_frames(bodies, batch, limits.snapshot_part_bytes):
                    await send_text(frame)
                after = rows[-1][0]
        await send_text(CaughtUp(seq=head).model_dump_json())
        # In a task of its own: each wake-up then resumes a coroutine or two, not the
        # two dozen of the ASGI middleware stack this one runs under.
        await asyncio.create_task(_pump(websocket, send_text, subscriber, service, limits))
    except StoreUnavailable as exc:
        # This node cannot read its log just now (its database is away): the client
        # should come back shortly, here or on another node, and resume.
        log.warning("stream closed: event store not answering: %s", exc)
        await websocket.close(CloseCode.SERVICE_RESTART, "event store not answering")
    finally:
        hub.unsubscribe(subscriber)


async def _pump(
    websocket: WebSocket,
    send_text: Callable[[str], Awaitable[None]],
    subscriber: Subscriber,
    service: DispatchService,
    limits: Any,
) -> None:
    """Send queued frames and heartbeats until the client leaves or falls behind."""
    interval = limits.heartbeat_interval
    listener = asyncio.create_task(_listen(websocket, limits.max_json_depth))
    listener.add_done_callback(lambda _task: subscriber.wake())
    frames = subscriber.frames
    overflowed = subscriber.overflowed
    batch = subscriber.batch
    limit = limits.snapshot_part_bytes
    # Live from here: while this sender waits with nothing queued, the hub writes each
    # new event straight to the connection (under cadterm's own server).
    subscriber.frame_bytes = limit
    subscriber.direct = (websocket.scope.get("extensions") or {}).get(SEND_NOW)
    try:
        while True:
            ready = await subscriber.wait(interval)
            if overflowed.is_set():
                await websocket.close(CloseCode.RESUME, "fell behind; resume from last seq")
                return
            if listener.done():
                reason = listener.result()
                if reason == _ALREADY_SUBSCRIBED:
                    await _bad_frame(websocket, reason, CloseCode.UNEXPECTED_FRAME)
                elif reason is not None:
                    await _bad_frame(websocket, reason)
                return
            if ready:
                while frames and not overflowed.is_set():
                    # Everything queued while the last send went out goes in as few
                    # frames as the subscriber's batch size allows.
                    await send_text(take_frame(frames, batch, limit))
            else:
                beat = Heartbeat(seq=service.head, at=utc_now(), interval=interval)
                await send_text(beat.model_dump_json())
    finally:
        subscriber.direct = None
        listener.cancel()


_ALREADY_SUBSCRIBED = "already subscribed; open a new connection to resubscribe"


async def _listen(websocket: WebSocket, max_depth: int) -> str | None:
    """Wait for the client to leave (None) or to send a frame it should not (a reason)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is None:
        return "binary frames are not accepted; send JSON text frames"
    if nesting_exceeds(text, max_depth):
        return _too_deep(max_depth)
    try:
        data = json.loads(text)
    except ValueError:
        return "frame is not valid JSON"
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "subscribe":
        return _ALREADY_SUBSCRIBED
    return f"unknown or unexpected frame type {kind!r}"
