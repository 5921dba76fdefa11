"""Shared fixtures: a real backend on a loopback port with a real SQLite file."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import uvicorn
from waiting import wait_for

from cadterm.protocol.domain import Role
from cadterm.server.auth import hash_token
from cadterm.server.config import Limits, OperatorEntry, ServerConfig, WorkstationEntry
from cadterm.server.embedded import EmbeddedBackend

TOKENS = {
    Role.DISPATCHER: "dispatcher-token-0123456789abcdef",
    Role.SUPERVISOR: "supervisor-token-0123456789abcdef",
    Role.READ_ONLY: "readonly-token-0123456789abcdef",
    Role.INTAKE: "intake-token-0123456789abcdef",
}
OPERATOR_IDS = {
    Role.DISPATCHER: "disp1",
    Role.SUPERVISOR: "sup1",
    Role.READ_ONLY: "view1",
    Role.INTAKE: "web1",
}

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
    "website",
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


@dataclass
class Backend:
    """A running backend: where it listens and what it stores to.

    It is an `EmbeddedBackend` (the runner the pytest plugin ships) with the test
    config: it binds port 0 itself, and `stop`/`start` keep that port and the database.
    """

    embedded: EmbeddedBackend = field(repr=False)

    @property
    def host(self) -> str:
        return self.embedded.host

    @property
    def port(self) -> int:
        return self.embedded.port

    @property
    def db_path(self) -> Path:
        return self.embedded.db_path

    @property
    def config(self) -> ServerConfig:
        return self.embedded.config

    @property
    def server(self) -> uvicorn.Server | None:
        """The uvicorn server while it runs (for tests that look at its connections)."""
        return self.embedded.server

    @property
    def url(self) -> str:
        return self.embedded.url

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}/v1/stream"

    def headers(self, role: Role = Role.DISPATCHER) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[role]}"}

    def stop(self) -> None:
        """Stop the server (open streams are closed); the port and database stay ours."""
        self.embedded.stop()

    def start(self) -> Backend:
        """Start again on the same port and database after `stop`."""
        self.embedded.start()
        return self


class BackendThread:
    """A backend in its own thread and event loop, as a separate server would be;
    a context manager giving the `Backend`. With `config_path` the server reloads
    operators and workstations from that file."""

    def __init__(
        self, db_path: Path, config: ServerConfig, config_path: Path | None = None
    ) -> None:
        self.backend = Backend(EmbeddedBackend(db_path, config=config, config_path=config_path))

    def __enter__(self) -> Backend:
        self.backend.embedded.start()
        return self.backend

    def __exit__(self, *exc: object) -> None:
        self.backend.embedded.close()


@pytest.fixture
def backend_factory(tmp_path: Path):
    """Start backends on demand; every one is stopped at the end of the test.

    `backend_factory.stop(backend)` stops one early (`backend.start()` brings it back
    on the same port and database).
    """
    running: list[BackendThread] = []

    def start(config: ServerConfig | None = None, db_path: Path | None = None) -> Backend:
        runner = BackendThread(db_path or tmp_path / "cad.db", config or make_config())
        running.append(runner)
        return runner.__enter__()

    def stop(backend: Backend) -> None:
        backend.stop()

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for runner in reversed(running):
        runner.__exit__(None, None, None)


@pytest.fixture
def backend(backend_factory) -> Iterator[Backend]:
    """A fresh backend on its own loopback port with its own SQLite file."""
    yield backend_factory()


@pytest.fixture
def refused_url() -> Iterator[str]:
    """The URL of a loopback port where nothing listens, held for the test.

    The port is bound but never listened on, so connecting is refused at once, and
    nobody else can start listening there while the test runs.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.fixture(autouse=True)
def own_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own HOME and no CADTERM_* or XDG_* settings from outside.

    The console and the server fall back to platform directories under HOME: tests that
    run side by side (pytest-xdist) must not share a config, journal or log there, nor
    pick up a developer's own CADTERM_URL or token.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in list(os.environ):
        if name.startswith(("CADTERM_", "XDG_")) and name != "XDG_RUNTIME_DIR":
            monkeypatch.delenv(name)
    return home


SERVER_ON = re.compile(r"cadterm server on (http://\S+) ")


def started_server_url(
    proc: subprocess.Popen, output: Callable[[], str], timeout: float = 30.0
) -> str:
    """The URL a `cadterm server --port 0` subprocess says it listens on.

    `output()` reads what the process has printed so far (a file it writes to).
    Fails at once if the process exits first.
    """

    def announced() -> str | None:
        assert proc.poll() is None, f"cadterm server exited:\n{output()}"
        found = SERVER_ON.search(output())
        return found.group(1) if found else None

    return wait_for(announced, timeout, "cadterm server to say where it listens")
