"""The HTTP API and the WebSocket stream, on one port.

``POST /v1/commands`` takes a command; ``GET /v1/...`` answers queries; ``/v1/stream``
is the live event stream (see docs/protocol.md and `stream`). Every refusal is a problem
document of a documented code, every route declares each status it can answer with,
and no bad request can take the server down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from cadterm.protocol.commands import COMMAND_TYPES, Command, CommandResult
from cadterm.protocol.domain import Incident, IncidentStatus, Operator, Unit
from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.frames import SUBPROTOCOL
from cadterm.protocol.problems import Problem, ProblemCode
from cadterm.protocol.types import normalise_callsign

from .config import ServerConfig
from .guard import GuardMiddleware, TokenBucket, mark_refused, retry_after
from .history_routes import register_history
from .responses import PROBLEM_JSON, problem_response
from .service import DispatchService, Outcome
from .stream import serve_stream

__all__ = ["create_app"]

log = logging.getLogger("cadterm.server")

#: The largest seq or count a query may name: SQLite's (and JSON Schema's int64) limit.
INT64_MAX = 2**63 - 1


class Health(BaseModel):
    """`GET /v1/health`: liveness, the head seq and the subscribers."""

    status: str
    seq: int
    subscribers: int
    cut_off: int


def _problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` declaring a problem document for each of `statuses`."""
    return {
        status: {
            "model": Problem,
            "description": "Problem document",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in sorted(statuses)
    }


def _links(responses: dict[int | str, dict[str, Any]], **links: dict[str, Any]):
    """`responses` with OpenAPI links from the 200 answer to the operations in `links`.

    The links say where an answer's references lead (the incident a command touched,
    the unit a list names), for clients and for schemathesis' stateful tests.
    """
    return {**responses, 200: {"description": "Successful Response", "links": links}}


def _link(operation: str, parameters: dict[str, str] | None = None, body: Any = None):
    link: dict[str, Any] = {"operationId": operation}
    if parameters:
        link["parameters"] = parameters
    if body is not None:
        link["requestBody"] = body
    return link


_GET_INCIDENT = "get_incident"
_GET_UNIT = "get_unit"
_POST_COMMAND = "post_command"


#: Statuses the guard can answer any authenticated route with: no or a bad token,
#: a body too large, too slow or not JSON, a bad query, too many refusals, a failure.
_GUARDED = (400, 401, 408, 413, 415, 422, 429, 500)


def _outcome_response(outcome: Outcome) -> Response:
    media = "application/json" if outcome.status < 400 else PROBLEM_JSON
    return Response(outcome.body, status_code=outcome.status, media_type=media)


def _operator(request: Request) -> Operator:
    return request.scope["state"]["operator"]


def create_app(service: DispatchService, config: ServerConfig) -> FastAPI:
    """Build the ASGI app serving `service` with the limits and operators in `config`."""
    limits = config.limits
    # Swapped whole on a config reload; the guard and the stream both ask it.
    authenticator = service.live
    limiter = TokenBucket(limits.command_rate, limits.command_burst)
    bad_requests = TokenBucket(limits.bad_request_rate, limits.bad_request_burst)
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
        # A redirect's Location would come from the Host header, and a client sent
        # elsewhere learns nothing: a path with a trailing slash is simply not found.
        redirect_slashes=False,
    )
    history = register_history(app, service, config)
    app.add_middleware(
        GuardMiddleware, authenticator=authenticator, limits=limits, bad_requests=bad_requests
    )

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _typed_documents(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        if any(err.get("type") == "json_invalid" for err in errors):
            mark_refused(request.scope)
            return problem_response(
                Problem.of(ProblemCode.MALFORMED_JSON, "request body is not valid JSON")
            )
        if all(err.get("loc", ("body",))[0] != "body" for err in errors):
            mark_refused(request.scope)
            return problem_response(_invalid(errors, ProblemCode.INVALID_QUERY))
        return problem_response(_invalid(errors, ProblemCode.INVALID_COMMAND))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        mark_refused(request.scope)
        headers = None
        if exc.status_code == 404:
            code, detail = ProblemCode.NOT_FOUND, f"no such path {request.url.path!r}"
        elif exc.status_code == 405:
            code, headers = ProblemCode.METHOD_NOT_ALLOWED, exc.headers
            detail = f"{request.method} is not allowed on {request.url.path}"
        elif exc.status_code < 500:
            code, detail = ProblemCode.MALFORMED_REQUEST, str(exc.detail)
        else:
            code, detail = ProblemCode.INTERNAL, str(exc.detail)
        return problem_response(Problem.of(code, detail), headers=headers)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        return problem_response(
            Problem.of(ProblemCode.INTERNAL, "internal error; the command was not applied")
        )

    @app.post(
        "/v1/commands",
        operation_id=_POST_COMMAND,
        response_model=CommandResult,
        responses=_links(
            _problems(*_GUARDED, 403, 404, 409),
            IncidentTouched=_link(_GET_INCIDENT, {"reference": "$response.body#/event/reference"}),
            UnitTouched=_link(_GET_UNIT, {"callsign": "$response.body#/event/callsign"}),
        ),
    )
    async def post_command(command: Command, request: Request) -> Response:
        """Execute one command. The reply carries the seq of the event it caused."""
        operator = _operator(request)
        wait = limiter.take(operator.id)
        if wait:
            seconds = retry_after(wait)  # one figure for the header and the words
            return problem_response(
                Problem.of(
                    ProblemCode.RATE_LIMITED,
                    f"more than {limits.command_rate:g} commands a second from "
                    f"{operator.id}; retry in {seconds} s",
                ),
                headers={"Retry-After": str(seconds)},
            )
        return _outcome_response(await service.execute(command, operator))

    @app.get(
        "/v1/state",
        operation_id="get_state",
        response_model=DispatchState,
        responses=_problems(*_GUARDED),
    )
    async def get_state() -> Response:
        """The whole picture, with the seq it is at."""
        return Response(service.snapshot_json(), media_type="application/json")

    @app.get(
        "/v1/incidents",
        operation_id="list_incidents",
        response_model=list[Incident],
        responses=_links(
            _problems(*_GUARDED),
            FirstIncident=_link(_GET_INCIDENT, {"reference": "$response.body#/0/reference"}),
        ),
    )
    async def list_incidents(status: IncidentStatus | None = None) -> list[Incident]:
        """Incidents, optionally only those with one status."""
        return [
            incident
            for incident in service.state.incidents.values()
            if status is None or incident.status == status
        ]

    @app.get(
        "/v1/incidents/{reference}",
        operation_id=_GET_INCIDENT,
        response_model=Incident,
        responses=_links(
            _problems(*_GUARDED, 404),
            AddNote=_link(
                _POST_COMMAND,
                body={
                    "type": "add_note",
                    "idempotency_key": "replace-with-a-fresh-key",
                    "reference": "$response.body#/reference",
                    "text": "Caller rang back: no change",
                },
            ),
        ),
    )
    async def get_incident(reference: str) -> Any:
        """One incident with its whole chronology."""
        # Looked up as stored, then as the door would have normalised it ("0042-27nov26").
        incidents = service.state.incidents
        incident = incidents.get(reference) or incidents.get(normalise_callsign(reference))
        if incident is None:  # closed long ago: archived out of the picture
            archived = await service.run_read(history.find, normalise_callsign(reference))
            if archived is not None:
                return Response(archived, media_type="application/json")
            return problem_response(
                Problem.of(ProblemCode.UNKNOWN_INCIDENT, f"no incident {reference!r}")
            )
        return incident

    @app.get(
        "/v1/units",
        operation_id="list_units",
        response_model=list[Unit],
        responses=_links(
            _problems(*_GUARDED),
            FirstUnit=_link(_GET_UNIT, {"callsign": "$response.body#/0/callsign"}),
        ),
    )
    async def list_units() -> list[Unit]:
        """Every unit known, on or off duty."""
        return list(service.state.units.values())

    @app.get(
        "/v1/units/{callsign}",
        operation_id=_GET_UNIT,
        response_model=Unit,
        responses=_links(
            _problems(*_GUARDED, 404),
            LocateUnit=_link(
                _POST_COMMAND,
                body={
                    "type": "locate_unit",
                    "idempotency_key": "replace-with-a-fresh-key",
                    "callsign": "$response.body#/callsign",
                    "position": {"lat": 52.4862, "lon": -1.8904},
                },
            ),
        ),
    )
    async def get_unit(callsign: str) -> Any:
        """One unit."""
        units = service.state.units
        unit = units.get(callsign) or units.get(normalise_callsign(callsign))
        if unit is None:
            return problem_response(
                Problem.of(ProblemCode.UNKNOWN_CALLSIGN, f"no unit with callsign {callsign!r}")
            )
        return unit

    @app.get(
        "/v1/events",
        operation_id="get_events",
        response_model=list[Event],
        responses=_problems(*_GUARDED),
    )
    async def get_events(
        after: int = Query(0, ge=0, le=INT64_MAX, description="Only events with a later seq."),
        limit: int = Query(
            1000, ge=1, le=INT64_MAX, description="At most this many (capped at 5000)."
        ),
    ) -> Response:
        """Stored events after seq `after` (at most `limit`, capped at 5000)."""
        events = await service.run_read(service.store.read, after, min(limit, 5000))
        body = "[" + ",".join(event.model_dump_json() for event in events) + "]"
        return Response(body, media_type="application/json")

    @app.get(
        "/v1/whoami",
        operation_id="whoami",
        response_model=Operator,
        responses=_problems(*_GUARDED),
    )
    async def whoami(request: Request) -> Operator:
        """The operator the bearer token belongs to."""
        return _operator(request)

    @app.get("/v1/health", operation_id="health", response_model=Health, responses=_problems(500))
    async def health() -> Health:
        """Liveness, the head seq and the number of live subscribers. No token needed."""
        return Health(
            status="ok",
            seq=service.head,
            subscribers=len(service.hub),
            cut_off=service.hub.cut_off,
        )

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket) -> None:
        """The live event stream; see docs/protocol.md for the frames and resume rules."""
        task = asyncio.current_task()
        if task is not None:
            streams.add(task)
        try:
            await serve_stream(websocket, service, config, authenticator)
        finally:
            if task is not None:
                streams.discard(task)

    return app


def _typed_documents(document: dict[str, Any]) -> dict[str, Any]:
    """Mark `type` required wherever a schema pins it to one value.

    Every command, event and frame names its `type`, and the server refuses a command
    without one; the models give it a default (so code can build them without
    repeating it), which would otherwise tell clients they may leave it out.
    """
    for component in document.get("components", {}).get("schemas", {}).values():
        kind = component.get("properties", {}).get("type")
        if isinstance(kind, dict) and "const" in kind:
            kind.pop("default", None)
            required = component.setdefault("required", [])
            if "type" not in required:
                required.insert(0, "type")
    return document


def _invalid(errors: list[dict[str, Any]], code: ProblemCode) -> Problem:
    """A problem document naming every invalid field of a command body or query."""
    cleaned: list[dict[str, Any]] = []
    for err in errors:
        # Drop the body root and the union tag so the path reads like the JSON sent.
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        if loc and loc[0] in COMMAND_TYPES:
            loc = loc[1:]
        cleaned.append({"field": ".".join(loc), "message": err.get("msg", "invalid")})
    first = cleaned[0] if cleaned else {"field": "", "message": "invalid command"}
    detail = "; ".join(f"{e['field'] or 'body'}: {e['message']}" for e in cleaned[:5])
    return Problem.of(code, detail, field=first["field"] or None, errors=cleaned)
