"""Shared fixtures: a real backend on a loopback port with a real SQLite file."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cadterm.protocol.domain import Role
from cadterm.server.auth import hash_token
from cadterm.server.config import Limits, OperatorEntry, ServerConfig, WorkstationEntry
from cadterm.server.run import build_server

TOKENS = {
    Role.DISPATCHER: "dispatcher-token-0123456789abcdef",
    Role.SUPERVISOR: "supervisor-token-0123456789abcdef",
    Role.READ_ONLY: "readonly-token-0123456789abcdef",
}
OPERATOR_IDS = {Role.DISPATCHER: "disp1", Role.SUPERVISOR: "sup1", Role.READ_ONLY: "view1"}

#: Workstations every test backend knows: the ones the tests send from, the client's
#: default ("cadterm"), and the control-room desks the strategies draw.
WORKSTATIONS = (
    "cadterm",
    "console",
    "history",
    "other",
    "replay",
    "sim",
    "ws",
    "ws-1",
    "ws-colleague",
    "ws-faults",
    "ws-offline",
    "ws-test",
    "ws1",
    "y",
    "CR1-WS01",
    "CR1-WS04",
    "CR1-WS07",
    "CR2-WS02",
    "FALLBACK-01",
)


def make_config(**overrides) -> ServerConfig:
    """A server config with one operator of each role, the tokens in `TOKENS` and the
    workstations in `WORKSTATIONS` (open to every operator) unless `workstations=` says."""
    limits = overrides.pop("limits", None) or Limits()
    overrides.setdefault("workstations", [WorkstationEntry(id=ws) for ws in WORKSTATIONS])
    return ServerConfig(
        operators=[
            OperatorEntry(
                id=OPERATOR_IDS[role],
                name=f"Test {role.value}",
                role=role,
                token_sha256=hash_token(token),
            )
            for role, token in TOKENS.items()
        ],
        limits=limits,
        **overrides,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Backend:
    """A running backend: where it listens and what it stores to."""

    host: str
    port: int
    db_path: Path
    config: ServerConfig
    server: object = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/stream"

    def headers(self, role: Role = Role.DISPATCHER) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[role]}"}


class BackendThread:
    """Runs a backend in its own thread and event loop, as a separate server would."""

    def __init__(
        self,
        db_path: Path,
        config: ServerConfig,
        port: int | None = None,
        config_path: Path | None = None,
    ) -> None:
        self.port = port or free_port()
        # With a config_path the server reloads operators and workstations from it.
        self.server = build_server(
            db_path=db_path, config=config, port=self.port, config_path=config_path
        )
        self.backend = Backend("127.0.0.1", self.port, db_path, config, self.server)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def __enter__(self) -> Backend:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("backend did not start")
            time.sleep(0.01)
        return self.backend

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "backend thread did not stop"


@pytest.fixture
def backend_factory(tmp_path: Path):
    """Start backends on demand; every one is stopped at the end of the test."""
    running: list[BackendThread] = []

    def start(
        config: ServerConfig | None = None, db_path: Path | None = None, port: int | None = None
    ) -> Backend:
        runner = BackendThread(db_path or tmp_path / "cad.db", config or make_config(), port)
        backend = runner.__enter__()
        running.append(runner)
        return backend

    def stop(backend: Backend) -> None:
        for runner in list(running):
            if runner.backend is backend:
                runner.__exit__(None, None, None)
                running.remove(runner)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for runner in reversed(running):
        runner.__exit__(None, None, None)


@pytest.fixture
def backend(backend_factory) -> Iterator[Backend]:
    """A fresh backend on a free loopback port with its own SQLite file."""
    yield backend_factory()
