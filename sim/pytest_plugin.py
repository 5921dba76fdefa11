"""pytest fixtures for testing dispatch flows against a real backend.

Installed with cadterm as the ``pytest11`` entry point, or named in a test module::

    pytest_plugins = ["cadterm.sim.pytest_plugin"]

    async def test_nearest_unit_is_sent(cadterm_client, cadterm_force):
        created = await cadterm_client.execute(cadterm_client.command(
            "create_incident", grade=1, incident_type="RTC",
            location=BRACKLEY.location("Moor Road Roundabout")))
        ...

Fixtures (each test gets its own backend, an `EmbeddedBackend` that binds a 127.0.0.1
port of its own (port 0, so tests can run side by side, as under pytest-xdist), with its
own SQLite file under the test's `tmp_path`, stopped when the test ends):

- ``cadterm_backend``: a `CadtermBackend` with `url`, `token` (a dispatcher's),
  `simulator_token`, `db_path`, and `restart()`/`arestart()` for outage tests;
- ``cadterm_client``: a live `DispatchClient` on it (async; needs pytest-asyncio);
- ``cadterm_force``: the Brackley force (36 units) booked on through that client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# Installed as an entry point, this module is loaded by every pytest session: the client
# and the server stack are imported only when a test asks for a fixture.
if TYPE_CHECKING:
    from cadterm.client import DispatchClient
    from cadterm.server.embedded import EmbeddedBackend, Running

    from .force import UnitSpec

try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - only without pytest-asyncio
    pytest_asyncio = None

__all__ = ["CadtermBackend", "cadterm_backend", "cadterm_client", "cadterm_force"]


@dataclass(frozen=True)
class CadtermBackend:
    """A backend started for one test."""

    url: str
    token: str
    simulator_token: str
    db_path: Path
    embedded: EmbeddedBackend

    def restart(self, down_for: float = 0.0) -> Running:
        """Stop and start again on the same port and database (blocking)."""
        return self.embedded.restart(down_for)

    async def arestart(self, down_for: float = 0.0) -> Running:
        """`restart` from async code, letting clients on the loop close cleanly."""
        return await self.embedded.arestart(down_for)


@pytest.fixture
def cadterm_backend(tmp_path: Path) -> Iterator[CadtermBackend]:
    """A fresh cadterm backend on its own loopback port with its own SQLite file."""
    from cadterm.server.embedded import EmbeddedBackend

    embedded = EmbeddedBackend(tmp_path / "cadterm.db")
    with embedded as (url, tokens):
        yield CadtermBackend(url, tokens.dispatcher, tokens.simulator, embedded.db_path, embedded)


if pytest_asyncio is not None:
    _async_fixture = pytest_asyncio.fixture
else:  # pragma: no cover - only without pytest-asyncio

    def _async_fixture(function):
        @pytest.fixture(name=function.__name__)
        def needs_pytest_asyncio():
            pytest.fail(f"{function.__name__} is an async fixture: install pytest-asyncio")

        return needs_pytest_asyncio


@_async_fixture
async def cadterm_client(cadterm_backend: CadtermBackend) -> AsyncIterator[DispatchClient]:
    """A `DispatchClient` (dispatcher, workstation "pytest") whose picture is live."""
    from cadterm.client import DispatchClient

    async with DispatchClient(
        [cadterm_backend.url], cadterm_backend.token, workstation="pytest"
    ) as client:
        await client.wait_live()
        yield client


@_async_fixture
async def cadterm_force(cadterm_client: DispatchClient) -> tuple[UnitSpec, ...]:
    """The simulated force, all 36 units booked on and available at their start points."""
    from .force import FORCE, seed_force

    await seed_force(cadterm_client, FORCE)
    return FORCE
