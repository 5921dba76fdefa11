"""Reading the backend's query API (`/v1/events`, `/v1/state`, `/v1/health`) with the stdlib.

The client library answers commands and keeps the live picture; recording a stream and
checking a run against the server's own state also need the plain GET queries. They are
read here with `urllib` (no proxies: the backend is usually on loopback), blocking, so
async callers wrap them in `asyncio.to_thread`.

Errors::

    QueryError     the backend refused the query or could not be reached
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from cadterm.protocol.events import EVENT_ADAPTER, Event
from cadterm.protocol.fold import DispatchState

__all__ = ["QueryError", "fetch_events", "fetch_head", "fetch_state", "get_json"]

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PAGE = 1000


class QueryError(Exception):
    """A GET query failed: the backend refused it (`status`) or did not answer (None)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def get_json(base_url: str, path: str, token: str, timeout: float = 10.0, **params: Any) -> Any:
    """GET `path` (with query `params`) from the backend at `base_url`; the decoded JSON."""
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    request = urllib.request.Request(
        base_url.rstrip("/") + path + query,
        headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()[:500].decode("utf-8", "replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = json.loads(detail).get("detail", detail)
        raise QueryError(f"GET {path}: HTTP {exc.code}: {detail}", exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise QueryError(f"GET {path}: backend at {base_url} not reachable: {reason}") from None


def fetch_events(base_url: str, token: str, after: int = 0, limit: int = PAGE) -> list[Event]:
    """One page of stored events after seq `after`."""
    page = get_json(base_url, "/v1/events", token, after=after, limit=limit)
    return [EVENT_ADAPTER.validate_python(item) for item in page]


def fetch_state(base_url: str, token: str) -> DispatchState:
    """The server's whole picture as it is now."""
    return DispatchState.model_validate(get_json(base_url, "/v1/state", token))


def fetch_head(base_url: str, token: str) -> int:
    """The seq of the newest event the server has applied."""
    return int(get_json(base_url, "/v1/health", token)["seq"])
