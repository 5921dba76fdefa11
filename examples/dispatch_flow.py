"""Script a grade 1 dispatch with the cadterm client library (no console needed).

Creates an emergency incident with coordinates, sends the nearest deployable unit,
books it at scene, waits for the incident to show at scene, adds a note and closes the
incident as RESOLVED, printing each step. If the backend has no deployable unit with a
known position, it books on two demo units first.

    CADTERM_URL=http://127.0.0.1:8740 CADTERM_TOKEN=... python examples/dispatch_flow.py
    python examples/dispatch_flow.py http://127.0.0.1:8740 TOKEN

Commands are sent from the workstation in CADTERM_WORKSTATION, else this machine's host
name (the one `cadterm server` registers on first start); the server must know it
(`cadterm workstation add NAME`).

Exit status: 0 when the incident was closed, 1 when the backend refused or could not be
reached, 2 when no token was given.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import socket
import sys
from collections.abc import Callable, Iterable

from cadterm.client import ClientError, DispatchClient
from cadterm.protocol.domain import (
    DEPLOYABLE_STATES,
    Grade,
    IncidentStatus,
    Location,
    Position,
    Unit,
    UnitState,
    UnitType,
)

SCENE = Location(
    address="Junction of Broad Street and Cornmarket, Oxford",
    position=Position(lat=51.7543, lon=-1.2580),
)
# Booked on only when the backend has no deployable unit with a position.
DEMO_UNITS = {
    "OX11": Position(lat=51.7520, lon=-1.2460),  # about 0.9 km from the scene
    "OX22": Position(lat=51.7800, lon=-1.2100),  # about 4.4 km from the scene
}
EARTH_RADIUS_KM = 6371.0


def distance_km(a: Position, b: Position) -> float:
    """Straight-line (haversine) distance between two points, in kilometres."""
    lat1, lat2 = math.radians(a.lat), math.radians(b.lat)
    dlat, dlon = lat2 - lat1, math.radians(b.lon - a.lon)
    h = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


def deployable(units: Iterable[Unit]) -> list[Unit]:
    """Units that may be sent now: on duty, deployable, on no incident, position known."""
    return [
        unit
        for unit in units
        if unit.on_duty
        and unit.state in DEPLOYABLE_STATES
        and unit.incident is None
        and unit.position is not None
    ]


def nearest_deployable(units: Iterable[Unit], where: Position) -> Unit | None:
    """The deployable unit closest to `where` in a straight line, if there is one."""
    candidates = deployable(units)
    return min(candidates, key=lambda u: distance_km(u.position, where), default=None)


async def wait_until(
    client: DispatchClient, condition: Callable[[], bool], timeout: float = 10.0
) -> None:
    """Wait until `condition()` holds, checking again each time the picture changes."""
    async with asyncio.timeout(timeout), contextlib.aclosing(client.watch()) as changes:
        while not condition():
            await anext(changes)


async def dispatch(url: str, token: str, workstation: str) -> int:
    """Run the whole flow against the backend at `url`; returns the exit status."""
    async with DispatchClient([url], token, workstation=workstation) as client:
        await client.wait_live()
        print(
            f"live on {client.status.url} at seq {client.seq}: "
            f"{len(client.incidents)} incidents, {len(client.units)} units"
        )

        if not deployable(client.units.values()):
            for callsign, position in DEMO_UNITS.items():
                known = client.units.get(callsign)
                if known is None or not known.on_duty:
                    await client.execute(
                        client.command(
                            "book_on",
                            callsign=callsign,
                            unit_type=UnitType.PATROL_CAR,
                            position=position,
                        )
                    )
                    print(f"booked on {callsign} at {position.lat}, {position.lon}")

        result = await client.execute(
            client.command(
                "create_incident",
                grade=Grade.EMERGENCY,
                incident_type="RTC",
                location=SCENE,
                description="Two-car collision, one driver trapped",
            )
        )
        reference = result.event.reference
        incident = client.incidents[reference]  # read-your-writes: already in the picture
        print(f"created {reference}: grade {int(incident.grade)} {incident.incident_type}")

        assert SCENE.position is not None
        unit = nearest_deployable(client.units.values(), SCENE.position)
        if unit is None:
            print("no deployable unit with a known position", file=sys.stderr)
            return 1
        assert unit.position is not None
        away = distance_km(unit.position, SCENE.position)
        print(f"nearest deployable unit: {unit.callsign}, {away:.1f} km away")

        await client.execute(
            client.command(
                "assign_unit",
                reference=reference,
                callsign=unit.callsign,
                expected_version=client.incidents[reference].version,
            )
        )
        print(f"assigned {unit.callsign}: {client.units[unit.callsign].state.label.lower()}")

        await client.execute(
            client.command("set_unit_state", callsign=unit.callsign, state=UnitState.AT_SCENE)
        )
        await wait_until(
            client, lambda: client.incidents[reference].status == IncidentStatus.AT_SCENE
        )
        print(f"{unit.callsign} at scene; {reference} is now at_scene")

        await client.execute(
            client.command(
                "add_note",
                reference=reference,
                text=f"{unit.callsign} reports road cleared, driver freed and with ambulance",
            )
        )
        print(f"note added to {reference}")

        await client.execute(
            client.command(
                "close_incident",
                reference=reference,
                closing_code="RESOLVED",
                summary="Resolved at scene",
            )
        )
        closed = client.incidents[reference]
        print(f"closed {reference}: {closed.status.value} {closed.closing_code}")
        return 0


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("CADTERM_URL", "http://127.0.0.1:8740")
    token = argv[2] if len(argv) > 2 else os.environ.get("CADTERM_TOKEN", "")
    if not token:
        print(
            "usage: dispatch_flow.py [URL [TOKEN]] (or set CADTERM_URL, CADTERM_TOKEN)",
            file=sys.stderr,
        )
        return 2
    try:
        workstation = os.environ.get("CADTERM_WORKSTATION") or socket.gethostname()
        return asyncio.run(dispatch(url, token, workstation))
    except (ClientError, TimeoutError) as exc:
        print(f"dispatch failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
