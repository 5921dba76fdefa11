"""The server's access log: one line per request, never with its query string.

uvicorn's own access log prints the whole request line, query string included, and a
query string may carry what should never reach a journal or a shipped log file (a
token pasted into a URL by mistake, a caller's number in a search). This log takes its
place (uvicorn's is switched off in `server.run`): method, path, status and duration,
on the ``cadterm.access`` logger at INFO::

    127.0.0.1:52814 POST /v1/commands 200 3.1ms
    127.0.0.1:52816 WS /v1/stream 101 8734.0ms

The path is percent-encoded again where it holds anything but plain URL characters, so
a request cannot write a line of its own into the log.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AccessLog", "DropUvicornWebSocketLines", "access_line"]

log = logging.getLogger("cadterm.access")

_SAFE = "/:@!$&'()*+,;=-._~"


def access_line(scope: Scope, status: int | None, seconds: float) -> str:
    """The log line for one request: client, method, path (no query), status, duration."""
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "-"
    method = "WS" if scope["type"] == "websocket" else scope.get("method", "-")
    path = quote(scope.get("path", ""), safe=_SAFE)
    shown = "-" if status is None else str(status)
    return f"{who} {method} {path} {shown} {seconds * 1000:.1f}ms"


class DropUvicornWebSocketLines(logging.Filter):
    """Drops uvicorn's own WebSocket access lines from the ``uvicorn.error`` logger.

    ``access_log=False`` silences uvicorn's HTTP access log only: it still logs each
    WebSocket handshake (``"WebSocket /v1/stream?..." [accepted]``) with its query
    string, on its error logger. `AccessLog` already writes those lines, without it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith('%s - "WebSocket %s"'))


class AccessLog:
    """ASGI wrapper writing `access_line` for every HTTP request and WebSocket."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None

        async def recording_send(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
            elif kind == "websocket.accept":
                status = 101
            elif kind == "websocket.close" and status is None:
                status = 403  # closed before accepting: uvicorn answers the handshake 403
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            if log.isEnabledFor(logging.INFO):
                log.info(access_line(scope, status, time.perf_counter() - started))
