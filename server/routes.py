"""The HTTP routes: `POST /v1/commands` (and `/v1/commands/batch`) and the queries.

Every route declares each status it can answer with, and its OpenAPI links say where
an answer's references lead (the incident a command touched, the unit a list names),
for clients and for schemathesis' stateful tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from cadterm.protocol.commands import BatchResult, Command, CommandBatch, CommandResult
from cadterm.protocol.domain import Incident, IncidentStatus, Operator, Unit
from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState
from cadterm.protocol.problems import Problem, ProblemCode
from cadterm.protocol.types import normalise_callsign

from .ratelimit import CommandRateLimit
from .responses import GUARDED_STATUSES, PROBLEM_JSON, problem_response, problem_responses
from .service import DispatchService, Outcome
from .store.base import StoreError
from .store.history import IncidentHistory

__all__ = ["Health", "dispatch_routes"]

#: The largest seq or count a query may name: SQLite's (and JSON Schema's int64) limit.
INT64_MAX = 2**63 - 1

#: How long /v1/health waits for the store's head before calling the node unavailable.
HEALTH_STORE_TIMEOUT = 1.0

_GET_INCIDENT = "get_incident"
_GET_UNIT = "get_unit"
_POST_COMMAND = "post_command"


class Health(BaseModel):
    """`GET /v1/health`: this node, its head and lag, its store, its subscribers."""

    status: str  # "ok", or "unavailable" while the node cannot reach its event store
    node: str  # the node's id (`--node`), to tell the nodes of a cluster apart
    seq: int  # the newest event this node has folded and published
    store_seq: int | None  # the newest event in the store, None when it cannot be read
    lag: int | None  # store_seq - seq: events committed by other nodes not folded yet
    subscribers: int
    cut_off: int
    problem: str | None = None  # why the node is unavailable, in words


def _links(responses: dict[int | str, dict[str, Any]], **links: dict[str, Any]):
    """`responses` with OpenAPI links from the 200 answer to the operations in `links`."""
    return {**responses, 200: {"description": "Successful Response", "links": links}}


def _link(operation: str, parameters: dict[str, str] | None = None, body: Any = None):
    link: dict[str, Any] = {"operationId": operation}
    if parameters:
        link["parameters"] = parameters
    if body is not None:
        link["requestBody"] = body
    return link


def _outcome_response(outcome: Outcome) -> Response:
    media = "application/json" if outcome.status < 400 else PROBLEM_JSON
    return Response(outcome.body, status_code=outcome.status, media_type=media)


def _batch_response(outcomes: list[Outcome]) -> Response:
    # Each answer's body is already JSON (as stored for a retry): put together, not
    # parsed and dumped again.
    answers = ",".join(f'{{"status":{o.status},"body":{o.body}}}' for o in outcomes)
    return Response(f'{{"answers":[{answers}]}}', media_type="application/json")


def _operator(request: Request) -> Operator:
    # Set by the guard, which has already refused any request without a valid token.
    return request.scope["state"]["operator"]


def dispatch_routes(
    service: DispatchService, rate_limit: CommandRateLimit, history: IncidentHistory
) -> APIRouter:
    """The command and query routes over `service`, commands limited by `rate_limit`.

    An incident that has left the live picture is found in `history`.
    """
    router = APIRouter()

    @router.post(
        "/v1/commands",
        operation_id=_POST_COMMAND,
        response_model=CommandResult,
        responses=_links(
            problem_responses(*GUARDED_STATUSES, 403, 404, 409),
            IncidentTouched=_link(_GET_INCIDENT, {"reference": "$response.body#/event/reference"}),
            UnitTouched=_link(_GET_UNIT, {"callsign": "$response.body#/event/callsign"}),
        ),
    )
    async def post_command(command: Command, request: Request) -> Response:
        """Execute one command. The reply carries the seq of the event it caused."""
        operator = _operator(request)
        refusal = rate_limit.refusal(operator)
        if refusal is not None:
            return refusal
        return _outcome_response(await service.execute(command, operator))

    @router.post(
        "/v1/commands/batch",
        operation_id="post_commands",
        response_model=BatchResult,
        responses=problem_responses(*GUARDED_STATUSES),
    )
    async def post_commands(batch: CommandBatch, request: Request) -> Response:
        """Execute several commands in order; one answer each, as if sent one by one.

        Each command counts against the operator's rate limit; a batch is taken whole
        or refused whole.
        """
        operator = _operator(request)
        refusal = rate_limit.refusal(operator, len(batch.commands))
        if refusal is not None:
            return refusal
        return _batch_response(await service.execute_all(batch.commands, operator))

    @router.get(
        "/v1/state",
        operation_id="get_state",
        response_model=DispatchState,
        responses=problem_responses(*GUARDED_STATUSES),
    )
    async def get_state() -> Response:
        """The whole picture, with the seq it is at."""
        return Response(service.snapshot_json(), media_type="application/json")

    @router.get(
        "/v1/incidents",
        operation_id="list_incidents",
        response_model=list[Incident],
        responses=_links(
            problem_responses(*GUARDED_STATUSES),
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

    @router.get(
        "/v1/incidents/{reference}",
        operation_id=_GET_INCIDENT,
        response_model=Incident,
        responses=_links(
            problem_responses(*GUARDED_STATUSES, 404),
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

    @router.get(
        "/v1/units",
        operation_id="list_units",
        response_model=list[Unit],
        responses=_links(
            problem_responses(*GUARDED_STATUSES),
            FirstUnit=_link(_GET_UNIT, {"callsign": "$response.body#/0/callsign"}),
        ),
    )
    async def list_units() -> list[Unit]:
        """Every unit known, on or off duty."""
        return list(service.state.units.values())

    @router.get(
        "/v1/units/{callsign}",
        operation_id=_GET_UNIT,
        response_model=Unit,
        responses=_links(
            problem_responses(*GUARDED_STATUSES, 404),
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

    @router.get(
        "/v1/events",
        operation_id="get_events",
        response_model=list[Event],
        responses=problem_responses(*GUARDED_STATUSES),
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

    @router.get(
        "/v1/whoami",
        operation_id="whoami",
        response_model=Operator,
        responses=problem_responses(*GUARDED_STATUSES),
    )
    async def whoami(request: Request) -> Operator:
        """The operator the bearer token belongs to."""
        return _operator(request)

    @router.get(
        "/v1/health",
        operation_id="health",
        response_model=Health,
        responses={
            **problem_responses(500),
            503: {"model": Health, "description": "the node cannot reach its event store"},
        },
    )
    async def health() -> Response:
        """This node's id, head and lag behind the store; 503 while the store is away.

        No token needed: a load balancer asks it to decide where to send consoles.
        """
        store_seq: int | None = None
        problem = service.store_problem
        if problem is None:
            # A store already known to be away is not asked again: the answer must come
            # at once, while a request to it waits for its timeout.
            try:
                async with asyncio.timeout(HEALTH_STORE_TIMEOUT):
                    store_seq = await service.run_read(service.store.head)
            except StoreError as exc:
                problem = str(exc)
            except TimeoutError:
                problem = f"the event store did not answer within {HEALTH_STORE_TIMEOUT:g} s"
        healthy = problem is None
        answer = Health(
            status="ok" if healthy else "unavailable",
            node=service.node,
            seq=service.head,
            store_seq=store_seq,
            lag=None if store_seq is None else max(0, store_seq - service.head),
            subscribers=len(service.hub),
            cut_off=service.hub.cut_off,
            problem=None if healthy else problem,
        )
        return Response(
            answer.model_dump_json(),
            status_code=200 if healthy else 503,
            media_type="application/json",
        )

    return router
