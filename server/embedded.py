"""An embedded backend: the reference server in a thread of this process.

    backend = EmbeddedBackend()                  # SQLite in a temporary directory
    with backend as (url, tokens):
        ...DispatchClient(url, tokens.dispatcher)...
        backend.restart(down_for=2.0)            # same port, same database

It lives with the server so that the simulator, the scenarios, the pytest plugin, the
test suite and the benchmarks can start a backend while importing nothing else of it:
they still drive it over HTTP and the WebSocket stream, through the client.

The server binds its own listening socket before it starts, on 127.0.0.1 port 0 unless
another is given, and reads the port back: there is no window in which a port picked
as free can be taken by someone else. `restart` binds that same port again
(SO_REUSEADDR), with the same database.

The config is made up on the spot: one dispatcher ("dispatcher"), one simulator
("sim", also a dispatcher), one website ("website", of the intake role, for online
reports) and one supervisor ("supervisor"), each with a fresh random token, the workstations in
`EMBEDDED_WORKSTATIONS` (those the simulator, scenarios, replay, demo, pytest fixtures
and the client's default use; pass `workstations=` for more), and command-rate limits
raised so that a simulator at high speed is not throttled. A caller with its own
operators passes a whole `config=` instead (and `config_path=` for a server that
re-reads that file when it changes).

`start`, `stop` and `restart` block until the server is up or down; from async code use
`astart`, `astop` and `arestart`, which run them in a worker thread so that clients on
the event loop can finish their closing handshakes meanwhile.

Errors::

    EmbeddedBackendError     the server did not start or stop in time
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import uvicorn

from cadterm.protocol.domain import Role
from cadterm.server.auth import hash_token, new_token
from cadterm.server.config import Limits, OperatorEntry, ServerConfig, WorkstationEntry
from cadterm.server.run import build_server, listen_socket

__all__ = [
    "DISPATCHER_ID",
    "EMBEDDED_WORKSTATIONS",
    "INTAKE_ID",
    "SIMULATOR_ID",
    "SUPERVISOR_ID",
    "EmbeddedBackend",
    "EmbeddedBackendError",
    "EmbeddedTokens",
    "Running",
    "embedded_config",
]

DISPATCHER_ID = "dispatcher"
SIMULATOR_ID = "sim"
INTAKE_ID = "website"
SUPERVISOR_ID = "supervisor"
#: Workstations an embedded backend registers: the client's default ("cadterm") and the
#: names cadterm's own tools send from ("website": online reports).
EMBEDDED_WORKSTATIONS = (
    "cadterm",
    "console",
    "demo",
    "pytest",
    "replay",
    "scenario",
    "sim",
    "website",
)
_START_TIMEOUT = 15.0
_STOP_TIMEOUT = 15.0


class EmbeddedBackendError(RuntimeError):
    """The embedded server did not start, or did not stop, in time."""


class EmbeddedTokens(NamedTuple):
    """Bearer tokens for the embedded backend's operators (no intake login without one)."""

    dispatcher: str
    simulator: str
    intake: str | None = None
    supervisor: str | None = None


class Running(NamedTuple):
    """What `with EmbeddedBackend(...) as (url, tokens)` gives."""

    url: str
    tokens: EmbeddedTokens


def embedded_config(
    tokens: EmbeddedTokens,
    limits: Limits | None = None,
    workstations: Sequence[str] = EMBEDDED_WORKSTATIONS,
) -> ServerConfig:
    """The server config for an embedded backend holding `tokens` and `workstations`."""
    return ServerConfig(
        operators=[
            OperatorEntry(
                id=DISPATCHER_ID,
                name="Dispatcher",
                role=Role.DISPATCHER,
                token_sha256=hash_token(tokens.dispatcher),
            ),
            OperatorEntry(
                id=SIMULATOR_ID,
                name="Simulator",
                role=Role.DISPATCHER,
                token_sha256=hash_token(tokens.simulator),
            ),
            *(
                [
                    OperatorEntry(
                        id=INTAKE_ID,
                        name="Force website",
                        role=Role.INTAKE,
                        token_sha256=hash_token(tokens.intake),
                    )
                ]
                if tokens.intake
                else []
            ),
            *(
                [
                    OperatorEntry(
                        id=SUPERVISOR_ID,
                        name="Supervisor",
                        role=Role.SUPERVISOR,
                        token_sha256=hash_token(tokens.supervisor),
                    )
                ]
                if tokens.supervisor
                else []
            ),
        ],
        workstations=[WorkstationEntry(id=name) for name in dict.fromkeys(workstations)],
        limits=limits or Limits(command_rate=2000.0, command_burst=4000),
    )


class EmbeddedBackend:
    """The reference backend running in a background thread on a loopback port."""

    def __init__(
        self,
        db_path: str | os.PathLike[str] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: EmbeddedTokens | None = None,
        limits: Limits | None = None,
        workstations: Sequence[str] = (),
        config: ServerConfig | None = None,
        config_path: str | os.PathLike[str] | None = None,
        log_level: str = "warning",
        db_url: str | None = None,
        node: str | None = None,
    ) -> None:
        """`config` replaces the made-up config (`tokens`, `limits` and `workstations`
        then play no part); with `config_path` the server reloads from that file.

        With `db_url` (``postgresql://...``) the events live in that database, which
        other backends may share (each one a node of a cluster); `db_path` is unused.
        """
        self._tempdir: Path | None = None
        self.db_url = db_url
        self.node = node
        if db_path is None:
            self._tempdir = Path(tempfile.mkdtemp(prefix="cadterm-embedded-"))
            db_path = self._tempdir / "cadterm.db"
        self.db_path = Path(db_path)
        self.host = host
        self.port = port
        self.tokens = tokens or EmbeddedTokens(new_token(), new_token(), new_token(), new_token())
        self.config = config or embedded_config(
            self.tokens, limits, (*EMBEDDED_WORKSTATIONS, *workstations)
        )
        self.config_path = Path(config_path) if config_path is not None else None
        self.log_level = log_level
        self.restarts = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        """The backend's base URL (its port is fixed once it has first started)."""
        return f"http://{self.host}:{self.port}"

    @property
    def server(self) -> uvicorn.Server | None:
        """The uvicorn server while it runs (its `server_state` counts connections)."""
        return self._server

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._thread is not None and self._thread.is_alive()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> Running:
        """Start the server (on the same port as before, if it ran before)."""
        if self.running:
            return Running(self.url, self.tokens)
        if self.db_url is None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        sock = self._bind()
        self.port = sock.getsockname()[1]
        try:
            server = build_server(
                db=self.db_url if self.db_url is not None else self.db_path,
                node=self.node,
                config=self.config,
                host=self.host,
                port=self.port,
                log_level=self.log_level,
                config_path=self.config_path,
            )
        except BaseException:
            sock.close()
            raise
        self._server, self._failure = server, None
        self._thread = threading.Thread(
            target=self._serve, args=(server, sock), name="cadterm-embedded", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + _START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive():
                sock.close()
                raise EmbeddedBackendError(f"embedded backend did not start: {self._failure!r}")
            if time.monotonic() > deadline:
                self._halt()
                raise EmbeddedBackendError(f"embedded backend not up after {_START_TIMEOUT} s")
            time.sleep(0.01)
        return Running(self.url, self.tokens)

    def stop(self) -> None:
        """Stop the server gracefully (open streams are closed); keep port and database."""
        if self._thread is None:
            return
        self._halt()

    def restart(self, down_for: float = 0.0) -> Running:
        """Stop, stay down for `down_for` real seconds, start again on the same port and db."""
        self.stop()
        if down_for > 0:
            time.sleep(down_for)
        self.restarts += 1
        return self.start()

    async def astart(self) -> Running:
        """`start` without blocking the event loop."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """`stop` without blocking the event loop."""
        await asyncio.to_thread(self.stop)

    async def arestart(self, down_for: float = 0.0) -> Running:
        """`restart` without blocking the event loop (the wait is an async sleep)."""
        await self.astop()
        if down_for > 0:
            await asyncio.sleep(down_for)
        self.restarts += 1
        return await self.astart()

    def close(self) -> None:
        """Stop the server and remove the temporary directory, if one was made."""
        self.stop()
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> Running:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        try:
            return listen_socket(self.host, self.port)
        except OSError as exc:
            raise EmbeddedBackendError(f"cannot listen on {self.host}:{self.port}: {exc}") from exc

    def _serve(self, server, sock: socket.socket) -> None:
        try:
            asyncio.run(server.serve(sockets=[sock]))
        except BaseException as exc:  # SystemExit from uvicorn on a failed startup, too
            self._failure = exc
        finally:
            sock.close()

    def _halt(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=_STOP_TIMEOUT)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout=5.0)
        if thread.is_alive():
            raise EmbeddedBackendError("embedded backend did not stop in time")
        self._server = self._thread = None
