"""The pytest fixtures: a dispatch-flow test against a real backend in a few lines."""

from __future__ import annotations

import asyncio

from cadterm.client import DispatchClient
from cadterm.client.queries import fetch_state
from cadterm.protocol.domain import IncidentStatus, UnitState
from cadterm.sim.city import BRACKLEY

pytest_plugins = ["cadterm.sim.pytest_plugin"]


async def test_nearest_unit_is_sent_and_books_at_scene(cadterm_client, cadterm_force) -> None:
    client = cadterm_client
    made = await client.execute(
        client.command(
            "create_incident",
            grade=1,
            incident_type="RTC",
            location=BRACKLEY.location("Moor Road Roundabout"),
        )
    )
    reference = made.event.reference
    await client.execute(client.command("assign_unit", reference=reference, callsign="RP3"))
    await client.execute(client.command("set_unit_state", callsign="RP3", state="at scene"))
    assert client.incidents[reference].status == IncidentStatus.AT_SCENE
    assert len(cadterm_force) == len(client.units) == 36


def test_backend_fixture_gives_url_token_and_database(cadterm_backend, tmp_path) -> None:
    assert cadterm_backend.url.startswith("http://127.0.0.1:")
    assert cadterm_backend.db_path == tmp_path / "cadterm.db"
    assert cadterm_backend.db_path.exists()
    state = fetch_state(cadterm_backend.url, cadterm_backend.token)
    assert state.seq == 0


async def test_backend_restart_keeps_port_and_data(cadterm_backend, cadterm_client) -> None:
    client = cadterm_client
    await client.execute(client.command("book_on", callsign="X1", unit_type="patrol_car"))
    url = cadterm_backend.url
    live_again = asyncio.Event()
    client.add_status_listener(
        lambda status: status.live and client.subscription.resumes and live_again.set()
    )
    await cadterm_backend.arestart(down_for=0.2)
    assert cadterm_backend.url == url
    await asyncio.wait_for(live_again.wait(), 10)
    await client.execute(client.command("set_unit_state", callsign="X1", state=4))
    assert client.units["X1"].state == UnitState.REFRESHMENTS
    async with DispatchClient(url, cadterm_backend.simulator_token) as other:
        await other.wait_live()
        assert other.state == client.state
