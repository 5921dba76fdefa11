"""The HTTP API and the WebSocket stream, on one port.

``POST /v1/commands`` takes a command; ``GET /v1/...`` answers queries; ``/v1/stream``
is the live event stream (see docs/protocol.md). Every refusal is a problem document
and no bad request can take the server down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocketDisconnect

from cadterm.protocol.commands import COMMAND_TYPES, Command, CommandResult
from cadterm.protocol.domain import Incident, IncidentStatus, Operator, Unit
from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState
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
from .service import DispatchService, Outcome, utc_now

__all__ = ["create_app"]

log = logging.getLogger("cadterm.server")

PROBLEM_JSON = "application/problem+json"
_PUBLIC_PATHS = frozenset({"/v1/health", "/openapi.json", "/docs", "/docs/oauth2-redirect"})


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    """A problem document as an HTTP response."""
    return Response(
        problem.model_dump_json(exclude_none=True),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


def _outcome_response(outcome: Outcome) -> Response:
    media = "application/json" if outcome.status < 400 else PROBLEM_JSON
    return Response(outcome.body, status_code=outcome.status, media_type=media)


class TokenBucket:
    """Per-operator command rate limit: `rate` per second with bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Take one token; return 0 if allowed, else the seconds until one is free."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1:
            self._buckets[key] = (tokens - 1, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1 - tokens) / self.rate


class GuardMiddleware:
    """Authenticates HTTP requests under /v1 and bounds their body size.

    Runs before routing and body parsing, so an anonymous or oversized request is
    refused without the server reading more than the limit.
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator, max_body: int) -> None:
        self.app = app
        self.authenticator = authenticator
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        operator = self.authenticator.operator_for(bearer_token(headers.get("authorization")))
        if operator is None:
            detail = (
                "missing bearer token: send 'Authorization: Bearer <token>'"
                if "authorization" not in headers
                else "the bearer token is not valid"
            )
            response = problem_response(
                Problem.of(ProblemCode.UNAUTHENTICATED, detail),
                headers={"WWW-Authenticate": 'Bearer realm="cadterm"'},
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["operator"] = operator
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await self._too_large(scope, receive, send)
                return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        problem = Problem.of(
            ProblemCode.BODY_TOO_LARGE, f"request body is larger than {self.max_body} bytes"
        )
        await problem_response(problem, headers={"Connection": "close"})(scope, receive, send)


def _operator(request: Request) -> Operator:
    return request.scope["state"]["operator"]


def create_app(service: DispatchService, config: ServerConfig) -> FastAPI:
    """Build the ASGI app serving `service` with the limits and operators in `config`."""
    # Swapped whole on a config reload; the guard and the stream both ask it.
    authenticator = service.live
    limiter = TokenBucket(config.limits.command_rate, config.limits.command_burst)
    streams: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for task in list(streams):
            task.cancel()
        await service.close()

    app = FastAPI(
        title="cadterm dispatch backend",
        version="1",
        description="Commands and queries over HTTP; live events over the WebSocket "
        f"`/v1/stream` (subprotocol `{SUBPROTOCOL}`). See docs/protocol.md.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(
        GuardMiddleware, authenticator=authenticator, max_body=config.limits.max_body_bytes
    )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            return problem_response(
                Problem.of(ProblemCode.MALFORMED_JSON, "request body is not valid JSON")
            )
        return problem_response(_invalid(errors))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: ProblemCode.NOT_FOUND, 405: ProblemCode.METHOD_NOT_ALLOWED}.get(
            exc.status_code, ProblemCode.INVALID_COMMAND
        )
        problem = Problem.of(code, str(exc.detail))
        problem.status = exc.status_code
        return problem_response(problem)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem.of(ProblemCode.INTERNAL, "internal error; the command was not applied")
        )

    problems: dict[int | str, dict[str, Any]] = {
        status: {"model": Problem, "description": "Problem document"}
        for status in (400, 401, 403, 404, 409, 413, 422, 429)
    }

    @app.post("/v1/commands", response_model=CommandResult, responses=problems)
    async def post_command(command: Command, request: Request) -> Response:
        """Execute one command. The reply carries the seq of the event it caused."""
        operator = _operator(request)
        wait = limiter.take(operator.id)
        if wait:
            return problem_response(
                Problem.of(
                    ProblemCode.RATE_LIMITED,
                    f"more than {config.limits.command_rate:g} commands a second from "
                    f"{operator.id}; retry in {wait:.1f} s",
                ),
                headers={"Retry-After": str(max(1, round(wait + 0.5)))},
            )
        return _outcome_response(await service.execute(command, operator))

    @app.get("/v1/state", response_model=DispatchState, responses=problems)
    async def get_state() -> Response:
        """The whole picture, with the seq it is at."""
        return Response(service.snapshot_json(), media_type="application/json")

    @app.get("/v1/incidents", response_model=list[Incident], responses=problems)
    async def list_incidents(status: IncidentStatus | None = None) -> list[Incident]:
        """Incidents, optionally only those with one status."""
        return [
            incident
            for incident in service.state.incidents.values()
            if status is None or incident.status == status
        ]

    @app.get("/v1/incidents/{reference}", response_model=Incident, responses=problems)
    async def get_incident(reference: str) -> Any:
        """One incident with its whole chronology."""
        incident = service.state.incidents.get(reference) or service.state.incidents.get(
            reference.upper()
        )
        if incident is None:
            return problem_response(
                Problem.of(ProblemCode.UNKNOWN_INCIDENT, f"no incident {reference!r}")
            )
        return incident

    @app.get("/v1/units", response_model=list[Unit], responses=problems)
    async def list_units() -> list[Unit]:
        """Every unit known, on or off duty."""
        return list(service.state.units.values())

    @app.get("/v1/units/{callsign}", response_model=Unit, responses=problems)
    async def get_unit(callsign: str) -> Any:
        """One unit."""
        unit = service.state.units.get(callsign) or service.state.units.get(callsign.upper())
        if unit is None:
            return problem_response(
                Problem.of(ProblemCode.UNKNOWN_CALLSIGN, f"no unit with callsign {callsign!r}")
            )
        return unit

    @app.get("/v1/events", response_model=list[Event], responses=problems)
    async def get_events(after: int = 0, limit: int = 1000) -> Response:
        """Stored events after seq `after` (at most `limit`, capped at 5000)."""
        limit = max(1, min(limit, 5000))
        events = await service.run_read(service.store.read, max(0, after), limit)
        body = "[" + ",".join(event.model_dump_json() for event in events) + "]"
        return Response(body, media_type="application/json")

    @app.get("/v1/whoami", response_model=Operator, responses=problems)
    async def whoami(request: Request) -> Operator:
        """The operator the bearer token belongs to."""
        return _operator(request)

    @app.get("/v1/health")
    async def health() -> dict[str, Any]:
        """Liveness, the head seq and the number of live subscribers. No token needed."""
        return {
            "status": "ok",
            "seq": service.head,
            "subscribers": len(service.hub),
            "cut_off": service.hub.cut_off,
        }

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        """The live event stream; see docs/protocol.md for the frames and resume rules."""
        task = asyncio.current_task()
        if task is not None:
            streams.add(task)
        try:
            await _serve_stream(websocket, service, config, authenticator)
        finally:
            if task is not None:
                streams.discard(task)

    return app


def _invalid(errors: list[dict[str, Any]]) -> Problem:
    """A problem document naming every invalid field of a command body."""
    cleaned: list[dict[str, Any]] = []
    for err in errors:
        # Drop the body root and the union tag so the path reads like the JSON sent.
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        if loc and loc[0] in COMMAND_TYPES:
            loc = loc[1:]
        cleaned.append({"field": ".".join(loc), "message": err.get("msg", "invalid")})
    first = cleaned[0] if cleaned else {"field": "", "message": "invalid command"}
    detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in cleaned[:5])
    return Problem.of(
        ProblemCode.INVALID_COMMAND, detail, field=first["field"] or None, errors=cleaned
    )


# --- the stream ------------------------------------------------------------------------


def _origin_allowed(origin: str | None, config: ServerConfig) -> bool:
    # Consoles and scripts send no Origin; browsers always do, and only listed origins
    # may open a stream from a page.
    return origin is None or origin in config.allowed_origins


async def _deny(websocket: WebSocket, problem: Problem) -> None:
    """Refuse the handshake with an HTTP problem document."""
    await websocket.send_denial_response(problem_response(problem))


async def _serve_stream(
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
        try:
            subscribe = CLIENT_FRAME_ADAPTER.validate_json(text)
        except ValidationError as exc:
            await _bad_frame(websocket, _frame_error(text, exc))
            return
        await _stream_events(websocket, service, operator, subscribe.since, limits)
    except (WebSocketDisconnect, RuntimeError):
        # The client went away, possibly mid-send: nothing to clean but the subscription.
        pass


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
    limits: Any,
) -> None:
    hub = service.hub
    # Register and read the head in one step with no await between: every event after
    # `head` reaches the queue, every event up to it comes from the snapshot or replay.
    subscriber = hub.subscribe(operator)
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
            subscriber = hub.subscribe(operator)
            head = service.head
            snapshot = await _snapshot_at(service, head)
            await websocket.send_text(
                '{"type":"snapshot","reason":"' + reason + '","state":' + snapshot + "}"
            )
        else:
            after = since
            while after < head:
                batch = await service.run_read(
                    service.store.read_raw, after, min(limits.replay_batch, head - after)
                )
                if not batch or batch[0][0] != after + 1:
                    # Events were pruned by a snapshot while we replayed: never send a
                    # gap. The client resumes and, being behind retention, gets a snapshot.
                    await websocket.close(CloseCode.RESUME, "replay overtaken by pruning")
                    return
                for _seq, body in batch:
                    await websocket.send_text('{"type":"event","event":' + body + "}")
                after = batch[-1][0]
        await websocket.send_text(CaughtUp(seq=head).model_dump_json())
        await _pump(websocket, subscriber, service, limits.heartbeat_interval)
    finally:
        hub.unsubscribe(subscriber)


async def _snapshot_at(service: DispatchService, head: int) -> str:
    """The picture at exactly `head`, taken before any later event was folded."""
    text = service.snapshot_json()
    if service.head != head:  # pragma: no cover - snapshot_json never awaits
        raise RuntimeError("picture moved while taking a snapshot")
    return text


async def _pump(websocket: WebSocket, subscriber, service: DispatchService, interval: float):
    """Send queued frames and heartbeats until the client leaves or falls behind."""
    listener = asyncio.create_task(_listen(websocket))
    listener.add_done_callback(lambda _task: subscriber.wake())
    frames = subscriber.frames
    overflowed = subscriber.overflowed
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
                    await websocket.send_text(frames.popleft())
            else:
                beat = Heartbeat(seq=service.head, at=utc_now(), interval=interval)
                await websocket.send_text(beat.model_dump_json())
    finally:
        listener.cancel()


_ALREADY_SUBSCRIBED = "already subscribed; open a new connection to resubscribe"


async def _listen(websocket: WebSocket) -> str | None:
    """Wait for the client to leave (None) or to send a frame it should not (a reason)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        return None
    text = message.get("text")
    if text is None:
        return "binary frames are not accepted; send JSON text frames"
    try:
        data = json.loads(text)
    except ValueError:
        return "frame is not valid JSON"
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "subscribe":
        return _ALREADY_SUBSCRIBED
    return f"unknown or unexpected frame type {kind!r}"
