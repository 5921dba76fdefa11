"""The history queries: archived incidents by time range and by text; a unit's shift.

Closed incidents leave the live picture after `Limits.closed_window` (see
`server.archive`); these routes find them again in the `IncidentHistory`. Every answer
is one bounded page with a cursor for the next. ``GET /v1/incidents/{reference}`` finds
archived incidents too (through `IncidentHistory.find`). ``GET /v1/history/units/
{callsign}`` reads one unit's states, positions and incidents from the event log (see
`server.unit_history`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from cadterm.protocol.answers import UnitHistory
from cadterm.protocol.domain import Incident
from cadterm.protocol.problems import Problem, ProblemCode
from cadterm.protocol.types import UtcTime, normalise_callsign

from .archive import Archivist
from .config import ServerConfig
from .responses import GUARDED_STATUSES, problem_response, problem_responses
from .service import DispatchService
from .store.history import CURSOR_PATTERN, MAX_PAGE, ArchivedPage, IncidentHistory
from .store.location import open_history
from .unit_history import unit_history

#: How far back a unit's history goes when the query gives no `since`: a long shift.
SHIFT = timedelta(hours=12)

__all__ = ["ArchivedIncidents", "register_history"]


class ArchivedIncidents(BaseModel):
    """One page of archived incidents and the cursor for the next page."""

    incidents: list[Incident]
    next_after: str | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )


def _page_response(page: ArchivedPage) -> Response:
    # The bodies are stored as the incidents' JSON: join them, never decode them again.
    next_after = "null" if page.next_after is None else json.dumps(page.next_after)
    body = '{"incidents":[' + ",".join(page.incidents) + '],"next_after":' + next_after + "}"
    return Response(body, media_type="application/json")


def register_history(
    app: FastAPI, service: DispatchService, config: ServerConfig
) -> IncidentHistory:
    """Add the history routes and the archivist to `app`; return the history they read."""
    history = open_history(service.store)
    service.archive = history  # a reopen of an archived incident brings it back
    archivist = Archivist(
        service,
        history,
        window=config.limits.closed_window,
        interval=config.limits.archive_interval,
    )
    outer = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        # The archivist stops before the app's own shutdown closes the service.
        try:
            async with outer(app) as state, archivist.running():
                yield state
        finally:
            history.close()

    app.router.lifespan_context = lifespan

    limit_query = Query(50, ge=1, le=MAX_PAGE, description=f"At most this many (up to {MAX_PAGE}).")
    after_query = Query(
        None, pattern=CURSOR_PATTERN, description="The `next_after` of the last page."
    )

    @app.get(
        "/v1/history/incidents",
        operation_id="archived_incidents",
        response_model=ArchivedIncidents,
        responses=problem_responses(*GUARDED_STATUSES),
    )
    async def archived_incidents(
        closed_from: Annotated[UtcTime, Query(description="Closed at or after this time.")],
        closed_to: Annotated[UtcTime, Query(description="Closed before this time.")],
        limit: int = limit_query,
        after: str | None = after_query,
    ) -> Response:
        """Archived incidents closed in ``[closed_from, closed_to)``, oldest closing first."""
        try:
            page = await service.run_read(
                lambda: history.closed_between(closed_from, closed_to, limit=limit, after=after)
            )
        except ValueError as exc:
            return problem_response(Problem.of(ProblemCode.INVALID_QUERY, str(exc), field="after"))
        return _page_response(page)

    @app.get(
        "/v1/history/search",
        operation_id="search_archived_incidents",
        response_model=ArchivedIncidents,
        responses=problem_responses(*GUARDED_STATUSES),
    )
    async def search_archived_incidents(
        q: str = Query(min_length=1, max_length=200, description="Words that must all appear."),
        limit: int = limit_query,
        after: str | None = after_query,
    ) -> Response:
        """Archived incidents holding every word of `q`, most recently closed first."""
        try:
            page = await service.run_read(lambda: history.search(q, limit=limit, after=after))
        except ValueError as exc:
            return problem_response(Problem.of(ProblemCode.INVALID_QUERY, str(exc), field="q"))
        return _page_response(page)

    @app.get(
        "/v1/history/units/{callsign}",
        operation_id="unit_history",
        response_model=UnitHistory,
        responses=problem_responses(*GUARDED_STATUSES, 404),
    )
    async def get_unit_history(
        callsign: str,
        since: Annotated[
            UtcTime | None,
            Query(description="From this time (default: the last 12 hours)."),
        ] = None,
    ) -> Response:
        """A unit's states, positions, incidents and check-ins from `since`, oldest first."""
        units = service.state.units
        unit = units.get(callsign) or units.get(normalise_callsign(callsign))
        if unit is None:
            return problem_response(
                Problem.of(ProblemCode.UNKNOWN_CALLSIGN, f"no unit with callsign {callsign!r}")
            )
        start = since if since is not None else service.clock() - SHIFT
        answer = await service.run_read(unit_history, service.store, unit.callsign, start)
        return Response(answer.model_dump_json(), media_type="application/json")

    return history
