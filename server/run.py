"""Running the backend as a process: `cadterm server`."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import uvicorn

from .app import create_app
from .config import ConfigError, ServerConfig, ensure_config
from .connections import protocols
from .service import DispatchService
from .store.sqlite import SQLiteEventStore

__all__ = ["build_server", "serve"]

log = logging.getLogger("cadterm.server")


class _DenialNoiseFilter(logging.Filter):
    """Drops uvicorn's false alarm after a refused WebSocket handshake.

    uvicorn's websockets-sansio protocol logs "returned without completing handshake"
    even when the app refused the handshake properly with an HTTP denial response (it
    then correctly sends nothing more). The refusal is ours and deliberate, so the line
    would only teach operators to ignore errors in the log.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return "without completing handshake" not in record.getMessage()


logging.getLogger("uvicorn.error").addFilter(_DenialNoiseFilter())


def build_server(
    *,
    db_path: str | os.PathLike[str],
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8740,
    log_level: str = "warning",
) -> uvicorn.Server:
    """A uvicorn server running the backend on `db_path`; call `.serve()` in a loop."""
    store = SQLiteEventStore(db_path, retain_events=config.retain_events)
    service = DispatchService(store, config)
    app = create_app(service, config)
    # uvicorn's h11 and websockets-sansio protocols, with header and stream deadlines
    # and a connection cap (see connections.py).
    http_protocol, ws_protocol = protocols(config.limits)
    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=http_protocol,
        ws=ws_protocol,
        ws_max_size=config.limits.max_frame_bytes,
        ws_ping_interval=None,  # the protocol's own heartbeats keep the stream honest
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(uv_config)


def serve(
    *,
    db_path: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8740,
    log_level: str = "info",
) -> int:
    """Run the backend until SIGINT or SIGTERM; return the process exit status.

    On first start the config file is created with one dispatcher, whose token is
    printed once: it is stored only as a hash.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        config, token = ensure_config(config_path)
    except ConfigError as exc:
        print(f"cadterm server: {exc}", file=sys.stderr)
        return 2
    if token is not None:
        print(
            f"First start: created {config_path} with operator "
            f"{config.operators[0].id!r} (dispatcher).\n"
            f"Token (shown once, stored only as a hash):\n\n    {token}\n",
            flush=True,
        )
    Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    server = build_server(db_path=db_path, config=config, host=host, port=port, log_level=log_level)
    # The rebuilt picture lives as long as the process: keep it out of the cyclic
    # collector's full passes, which otherwise stall every command for ~100 ms with a
    # large picture and free nothing. Only here, in a process that is only the server.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    print(f"cadterm server on http://{host}:{port} (db {db_path})", flush=True)

    # uvicorn turns SIGINT/SIGTERM into a graceful shutdown: open streams are closed,
    # the lifespan writes a final snapshot and closes the store. Afterwards it re-raises
    # the signal under the handlers it found, which with the defaults would end the
    # process "killed by SIGTERM" (or a KeyboardInterrupt) instead of exiting 0. So the
    # handlers it finds (and restores) just ask the server to stop.
    def stop(sig: int, frame: object) -> None:
        server.should_exit = True

    handled = (signal.SIGINT, signal.SIGTERM)
    on_main = threading.current_thread() is threading.main_thread()  # else signals can't
    previous = {sig: signal.signal(sig, stop) for sig in handled} if on_main else {}
    try:
        asyncio.run(server.serve())
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
