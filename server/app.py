"""The HTTP API and the WebSocket stream, on one port.

``POST /v1/commands`` takes a command; ``GET /v1/...`` answers queries (both in
`routes`); ``POST /v1/intake/reports`` takes online reports (`intake_routes`);
``/v1/stream`` is the live event stream (see docs/protocol.md and `stream`).
The guard runs in front of all of them; every refusal is a problem document of a
documented code (`refusals`), and no bad request can take the server down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket

from cadterm.protocol.frames import SUBPROTOCOL

from .config import ServerConfig
from .guard import GuardMiddleware, TokenBucket
from .history_routes import register_history
from .intake_routes import register_intake
from .ratelimit import CommandRateLimit
from .refusals import answer_refusals
from .routes import dispatch_routes
from .safety_routes import register_safety
from .service import DispatchService
from .stream import serve_stream

__all__ = ["create_app"]


def create_app(service: DispatchService, config: ServerConfig) -> FastAPI:
    """Build the ASGI app serving `service` with the limits and operators in `config`."""
    limits = config.limits
    # Swapped whole on a config reload; the guard and the stream both ask it.
    authenticator = service.live
    bad_requests = TokenBucket(limits.bad_request_rate, limits.bad_request_burst)
    streams: set[asyncio.Task[Any]] = set()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
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
    register_safety(app, config)
    register_intake(app, service, config)
    app.add_middleware(
        GuardMiddleware, authenticator=authenticator, limits=limits, bad_requests=bad_requests
    )
    answer_refusals(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _typed_documents(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    app.include_router(dispatch_routes(service, CommandRateLimit(limits), history))

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
