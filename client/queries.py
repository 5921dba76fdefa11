"""The backend's read side: stored events, the whole picture, the units, the head seq.

`DispatchClient` keeps a live picture from the stream; recording a shift, checking a run
against the server's own state and benchmarks also need the plain GET queries of
docs/protocol.md. They are here, over the same HTTP library as the commands::

    async with Queries(url, token) as queries:
        state = await queries.state()          # GET /v1/state
        page = await queries.events(after=0)   # GET /v1/events?after=0&limit=1000
        head = await queries.head()            # GET /v1/health, no token needed

The history API has its own reads: closed incidents by text, a unit's shift, the
safety-check cadence::

        page = await queries.search_history("gasworks smith")  # GET /v1/history/search
        shift = await queries.unit_history("AB12")            # GET /v1/history/units/AB12
        cadence = await queries.safety_cadence()              # GET /v1/safety-checks

`HistoryQueries` asks the same of a list of backends, the first that answers (the
console's way: it fails over as its stream does).

Blocking code (a command-line tool, a benchmark's set-up) uses the functions of the
same names instead: `fetch_state(url, token)`, `fetch_events(url, token, after)`,
`fetch_units`, `fetch_health`, `fetch_head`. Proxies from the environment are ignored:
the backend is usually on loopback or a control-room LAN.

Errors::

    QueryError     the backend refused the query (`status`) or could not be reached (None)
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from cadterm.protocol.answers import SafetyCadence, UnitHistory
from cadterm.protocol.domain import Incident, Unit
from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState

from .backend_url import check_backend_url, check_token
from .errors import ClientError

__all__ = [
    "PAGE",
    "ArchivedPage",
    "BackendHealth",
    "HistoryQueries",
    "Queries",
    "QueryError",
    "fetch_events",
    "fetch_head",
    "fetch_health",
    "fetch_state",
    "fetch_units",
]

#: Events asked for per page (the server sends at most 5000).
PAGE = 1000

_EVENTS = TypeAdapter(list[Event])
_UNITS = TypeAdapter(list[Unit])

_T = TypeVar("_T")


class ArchivedPage(BaseModel):
    """One page of archived incidents, most recently closed first, and the next cursor."""

    incidents: list[Incident]
    next_after: str | None


class QueryError(ClientError):
    """A GET query failed: the backend refused it (`status`) or did not answer (None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class BackendHealth(BaseModel):
    """`GET /v1/health`: the node, its head and lag behind its store, its subscribers."""

    status: str
    seq: int
    subscribers: int
    cut_off: int
    node: str | None = None  # None from a server older than the cluster
    store_seq: int | None = None
    lag: int | None = None
    problem: str | None = None


def _client_options(url: str, token: str | None, timeout: float) -> dict[str, Any]:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {check_token(token)}"
    return {
        "base_url": check_backend_url(url),
        "headers": headers,
        "timeout": timeout,
        "trust_env": False,
    }


def _unreachable(url: str, path: str, exc: httpx.TransportError) -> QueryError:
    reason = str(exc) or type(exc).__name__
    return QueryError(f"GET {path}: backend at {url} not reachable: {reason}")


def _body(response: httpx.Response, path: str) -> bytes:
    """The body of a 200 answer; a refusal as a `QueryError` with the server's detail."""
    if response.status_code == 200:
        return response.content
    detail: Any = response.text[:500]
    with contextlib.suppress(ValueError, AttributeError):  # not a problem document
        detail = json.loads(detail).get("detail", detail)
    raise QueryError(f"GET {path}: HTTP {response.status_code}: {detail}", response.status_code)


class Queries:
    """Reads of one backend's query API, sharing one connection pool (async)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(**_client_options(url, token, timeout), transport=transport)

    async def __aenter__(self) -> Queries:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _get(self, path: str, **params: Any) -> bytes:
        try:
            response = await self._http.get(path, params=params or None)
        except httpx.TransportError as exc:
            raise _unreachable(self.url, path, exc) from None
        return _body(response, path)

    async def events(self, after: int = 0, limit: int = PAGE) -> list[Event]:
        """One page of stored events with seq after `after`, oldest first."""
        return _EVENTS.validate_json(await self._get("/v1/events", after=after, limit=limit))

    async def all_events(self, after: int = 0, *, page: int = PAGE) -> list[Event]:
        """Every stored event after `after`, `page` at a time, up to the head seq of the start.

        Events stored while the pages are read may be included or not.
        """
        head = await self.head()
        events: list[Event] = []
        for _ in range(max(0, head - after) // page + 2):  # the head bounds the pages
            more = await self.events(events[-1].seq if events else after, page)
            if not more:
                break
            events += more
        return events

    async def state(self) -> DispatchState:
        """The server's whole picture as it is now."""
        return DispatchState.model_validate_json(await self._get("/v1/state"))

    async def units(self) -> list[Unit]:
        """Every unit the server knows, on or off duty."""
        return _UNITS.validate_json(await self._get("/v1/units"))

    async def health(self) -> BackendHealth:
        """Liveness and the head seq (needs no token)."""
        return BackendHealth.model_validate_json(await self._get("/v1/health"))

    async def head(self) -> int:
        """The seq of the newest event the server has applied."""
        return (await self.health()).seq

    async def search_history(
        self, text: str, limit: int = 50, after: str | None = None
    ) -> ArchivedPage:
        """Archived incidents holding every word of `text`, most recently closed first."""
        params: dict[str, Any] = {"q": text, "limit": limit}
        if after is not None:
            params["after"] = after
        return ArchivedPage.model_validate_json(await self._get("/v1/history/search", **params))

    async def unit_history(self, callsign: str, since: datetime | None = None) -> UnitHistory:
        """What the unit did from `since` (default: the server's last 12 hours)."""
        params = {"since": since.isoformat()} if since is not None else {}
        path = f"/v1/history/units/{quote(callsign, safe='')}"
        return UnitHistory.model_validate_json(await self._get(path, **params))

    async def safety_cadence(self) -> SafetyCadence:
        """The server's officer-safety check cadence."""
        return SafetyCadence.model_validate_json(await self._get("/v1/safety-checks"))


@dataclass
class HistoryQueries:
    """The history reads against the first of several backends that answers.

    A backend that is not reachable is passed over for the next; a refusal (an answer
    with a status) is final, as it would be from any of them.
    """

    urls: Sequence[str]
    token: str | None
    timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("give at least one backend URL")
        self._queries = [Queries(url, self.token, timeout=self.timeout) for url in self.urls]
        self._preferred = 0

    async def _first(self, ask: Callable[[Queries], Awaitable[_T]]) -> _T:
        failure: QueryError | None = None
        for attempt in range(len(self._queries)):
            index = (self._preferred + attempt) % len(self._queries)
            try:
                answer = await ask(self._queries[index])
            except QueryError as error:
                if error.status is not None:
                    raise
                failure = error
                continue
            self._preferred = index
            return answer
        assert failure is not None  # there is at least one URL
        raise failure

    async def search_history(
        self, text: str, limit: int = 50, after: str | None = None
    ) -> ArchivedPage:
        """See `Queries.search_history`."""
        return await self._first(lambda q: q.search_history(text, limit, after))

    async def unit_history(self, callsign: str, since: datetime | None = None) -> UnitHistory:
        """See `Queries.unit_history`."""
        return await self._first(lambda q: q.unit_history(callsign, since))

    async def safety_cadence(self) -> SafetyCadence:
        """See `Queries.safety_cadence`."""
        return await self._first(lambda q: q.safety_cadence())

    async def aclose(self) -> None:
        """Close every backend's connections."""
        for queries in self._queries:
            await queries.aclose()


# --- blocking ------------------------------------------------------------------------------


def _get(url: str, path: str, token: str | None, timeout: float, **params: Any) -> bytes:
    with httpx.Client(**_client_options(url, token, timeout)) as http:
        try:
            response = http.get(path, params=params or None)
        except httpx.TransportError as exc:
            raise _unreachable(url.rstrip("/"), path, exc) from None
    return _body(response, path)


def fetch_events(
    url: str, token: str, after: int = 0, limit: int = PAGE, *, timeout: float = 10.0
) -> list[Event]:
    """One page of stored events after seq `after` (blocking)."""
    return _EVENTS.validate_json(_get(url, "/v1/events", token, timeout, after=after, limit=limit))


def fetch_state(url: str, token: str, *, timeout: float = 10.0) -> DispatchState:
    """The server's whole picture as it is now (blocking)."""
    return DispatchState.model_validate_json(_get(url, "/v1/state", token, timeout))


def fetch_units(url: str, token: str, *, timeout: float = 10.0) -> list[Unit]:
    """Every unit the server knows (blocking)."""
    return _UNITS.validate_json(_get(url, "/v1/units", token, timeout))


def fetch_health(url: str, *, timeout: float = 10.0) -> BackendHealth:
    """Liveness and the head seq (blocking; needs no token)."""
    return BackendHealth.model_validate_json(_get(url, "/v1/health", None, timeout))


def fetch_head(url: str, *, timeout: float = 10.0) -> int:
    """The seq of the newest event the server has applied (blocking)."""
    return fetch_health(url, timeout=timeout).seq
