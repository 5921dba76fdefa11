"""The backend's read side: stored events, the whole picture, the units, the head seq.

`DispatchClient` keeps a live picture from the stream; recording a shift, checking a run
against the server's own state and benchmarks also need the plain GET queries of
docs/protocol.md. They are here, over the same HTTP library as the commands::

    async with Queries(url, token) as queries:
        state = await queries.state()          # GET /v1/state
        page = await queries.events(after=0)   # GET /v1/events?after=0&limit=1000
        head = await queries.head()            # GET /v1/health, no token needed

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
from typing import Any

import httpx
from pydantic import BaseModel, TypeAdapter

from cadterm.protocol.domain import Unit
from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState

from .errors import ClientError

__all__ = [
    "PAGE",
    "BackendHealth",
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
        headers["Authorization"] = f"Bearer {token}"
    return {
        "base_url": url.rstrip("/"),
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
