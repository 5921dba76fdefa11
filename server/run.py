"""Running the backend as a process: `cadterm server`."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import uvicorn

from .access_log import AccessLog, DropUvicornWebSocketLines
from .app import create_app
from .config import ConfigError, ServerConfig, ensure_config
from .config_edit import write_atomically
from .connections import protocols
from .live_config import LiveConfig
from .service import DispatchService
from .store.base import StoreError
from .store.location import DbLocation, StoreLocationError, open_store, parse_db

__all__ = ["build_server", "listen_socket", "serve"]

log = logging.getLogger("cadterm.server")

#: Where the first-start token goes, beside the config, when stdout is not a terminal.
FIRST_TOKEN_FILE = "first-token"


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
logging.getLogger("uvicorn.error").addFilter(DropUvicornWebSocketLines())


def listen_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host`:`port` (0: any free port), for `uvicorn.Server.serve`.

    Binding here rather than in uvicorn lets the caller read the port back at once, so a
    server asked for port 0 can say where it listens; SO_REUSEADDR lets a restarted
    server take its old port back while closed connections linger in TIME_WAIT.
    Raises OSError when the address cannot be had.
    """
    # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only when
    # it does, and without it every small reply waits 40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def build_server(
    *,
    db: str | os.PathLike[str] | DbLocation,
    config: ServerConfig,
    host: str = "127.0.0.1",
    port: int = 8740,
    log_level: str = "warning",
    config_path: str | os.PathLike[str] | None = None,
    live: LiveConfig | None = None,
    node: str | None = None,
) -> uvicorn.Server:
    """A uvicorn server running the backend on `db`; call `.serve()` in a loop.

    `db` is an SQLite file's path or a ``postgresql://`` URL (see `store.location`);
    `node` names this node in /v1/health and the log.

    With `config_path` (or a `live` config made from it) the server re-reads operators
    and workstations from that file whenever it changes; see `server.live_config`.
    """
    if live is None:
        live = LiveConfig(config, config_path)
    location = db if isinstance(db, DbLocation) else parse_db(db)
    # The service checkpoints SQLite's WAL itself, off the command path (see service.py).
    store = open_store(location, retain_events=config.retain_events)
    service = DispatchService(
        store, config, live=live, node=node or f"{socket.gethostname()}:{port}"
    )
    app = AccessLog(create_app(service, config))
    # uvicorn's httptools (C parser) and websockets-sansio protocols, with header and
    # stream deadlines and a connection cap (see connections.py).
    http_protocol, ws_protocol = protocols(config.limits)
    uv_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=http_protocol,
        ws=ws_protocol,
        # uvicorn's access log prints query strings; `AccessLog` writes ours without.
        access_log=False,
        ws_max_size=config.limits.max_frame_bytes,
        ws_ping_interval=None,  # the protocol's own heartbeats keep the stream honest
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(uv_config)


def _hand_over_first_token(config_path: Path, config: ServerConfig, token: str) -> None:
    """Give the first operator's token to the person starting the server, and no one else.

    On a terminal it is printed. Otherwise stdout is a journal, a pipe or a log file,
    which keep it for anyone who can read them: it goes to a 0600 file beside the config
    and only that file's path is printed.
    """
    who = f"operator {config.operators[0].id!r} (dispatcher)"
    if sys.stdout.isatty():
        print(
            f"First start: created {config_path} with {who}.\n"
            f"Token (shown once, stored only as a hash):\n\n    {token}\n",
            flush=True,
        )
        return
    token_path = config_path.parent / FIRST_TOKEN_FILE
    write_atomically(token_path, token + "\n")
    print(
        f"First start: created {config_path} with {who}. Its token is in {token_path} "
        "(readable by this user only): read it, then delete the file.",
        flush=True,
    )


async def _serve_reloading(
    server: uvicorn.Server, sock: socket.socket, live: LiveConfig, on_main: bool
) -> None:
    """Run `server`, reloading the config on SIGHUP (only the main thread gets signals)."""
    loop = asyncio.get_running_loop()
    if on_main:
        # Through the loop, not signal.signal: the reload then runs between requests,
        # never in the middle of one.
        loop.add_signal_handler(signal.SIGHUP, live.reload, "SIGHUP")
    try:
        await server.serve(sockets=[sock])
    finally:
        if on_main:
            loop.remove_signal_handler(signal.SIGHUP)


def serve(
    *,
    db: str | os.PathLike[str],
    config_path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8740,
    log_level: str = "info",
    node: str | None = None,
) -> int:
    """Run the backend until SIGINT or SIGTERM; return the process exit status.

    With `port` 0 the system picks a free port; the line "cadterm server on URL" printed
    at start names the port actually bound.
    On first start the config file is created with one dispatcher and one workstation;
    the dispatcher's token is handed over once (see `_hand_over_first_token`): it is
    stored only as a hash. SIGHUP re-reads operators and workstations from the config.
    """
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        location = parse_db(db)
    except StoreLocationError as exc:
        print(f"cadterm server: {exc}", file=sys.stderr)
        return 2
    try:
        config, token = ensure_config(config_path)
    except ConfigError as exc:
        print(f"cadterm server: {exc}", file=sys.stderr)
        return 2
    if token is not None:
        _hand_over_first_token(Path(config_path), config, token)
    live = LiveConfig(config, config_path)
    try:
        sock = listen_socket(host, port)
    except OSError as exc:
        print(f"cadterm server: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    port = sock.getsockname()[1]
    try:
        server = build_server(
            db=location,
            config=config,
            host=host,
            port=port,
            log_level=log_level,
            live=live,
            node=node,
        )
    except StoreError as exc:
        sock.close()
        print(f"cadterm server: {exc}", file=sys.stderr)
        return 1
    # The rebuilt picture lives as long as the process: keep it out of the cyclic
    # collector's full passes, which otherwise stall every command for ~100 ms with a
    # large picture and free nothing. Only here, in a process that is only the server.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    print(f"cadterm server on http://{host}:{port} (db {location})", flush=True)

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
        asyncio.run(_serve_reloading(server, sock, live, on_main))
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
