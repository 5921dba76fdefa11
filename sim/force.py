"""The simulated force: 36 units on shift in Brackley, and how to book them all on.

Callsigns follow a common UK pattern: a sector letter (C city centre, N, E, S, W), a
role letter (C car, V van, F foot) and a number, plus force-wide specialists (armed
response ARV1-3, dogs DOG1-2, roads policing RP1-3 and motorcycles RPM1-2, sergeants
SGT1-2 and the duty inspector INSP1). Each unit has a home sector and starts at a fixed
point near a named place, so recommendations in scenarios are reproducible.

    async with DispatchClient(url, token) as client:
        await client.wait_live()
        booked = await seed_force(client)     # ["CC11", "CC12", ...]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cadterm.client import DispatchClient
from cadterm.protocol.domain import Capability, Position, UnitType

from .city import BRACKLEY, City, offset

__all__ = ["FORCE", "UnitSpec", "book_on_fields", "build_force", "seed_force"]


@dataclass(frozen=True)
class UnitSpec:
    """One unit of the simulated force as it books on at the start of a shift."""

    callsign: str
    unit_type: UnitType
    capabilities: tuple[Capability, ...]
    home_sector: str
    start: Position


# callsign | unit type | home sector | starts near | km north, east of it | capabilities
_ROSTER = """
CC11  | patrol_car     | City Centre | Town Hall            |   0.1  -0.2 | taser first_aid
CC12  | patrol_car     | City Centre | Bus Station          |   0.2   0.1 | first_aid
CC13  | patrol_car     | City Centre | Canal Wharf          |  -0.1   0.2 | first_aid
NC11  | patrol_car     | North       | Moor Road            |   0.3   0.0 | taser first_aid
NC12  | patrol_car     | North       | Northfield Park      |   0.2   0.4 | first_aid
NC13  | patrol_car     | North       | Holly Bank           |  -0.3  -0.2 | first_aid
EC11  | patrol_car     | East        | York Road            |   0.1   0.5 | taser first_aid
EC12  | patrol_car     | East        | Halton Moor Estate   |   0.2   0.2 | first_aid
EC13  | patrol_car     | East        | Temple Gardens       |  -0.2   0.3 | first_aid
SC11  | patrol_car     | South       | Dewhirst Road        |   0.0   0.3 | taser first_aid
SC12  | patrol_car     | South       | Gasworks Row         |   0.2  -0.1 | first_aid
SC13  | patrol_car     | South       | Tannery Lane         |  -0.1  -0.3 | first_aid
WC11  | patrol_car     | West        | Tong Road            |   0.2   0.3 | taser first_aid
WC12  | patrol_car     | West        | Abbey Terrace        |  -0.2   0.1 | first_aid
CV21  | van            | City Centre | Vicar Lane           |   0.0   0.1 | public_order first_aid
CV22  | van            | City Centre | Mercer Row           |   0.1   0.0 | public_order taser
NV21  | van            | North       | Beckett Avenue       |   0.0   0.2 | public_order
EV21  | van            | East        | Foundry Approach     |   0.1   0.0 | public_order
SV21  | van            | South       | Pottery Walk         |   0.1   0.1 | public_order
WV21  | van            | West        | Chapel Fold          |   0.1  -0.1 | public_order
CF31  | foot           | City Centre | Market Square        |  0.05  0.05 | first_aid
CF32  | foot           | City Centre | Corn Exchange        | -0.05   0.0 | first_aid
CF33  | foot           | City Centre | Brackley Station     |   0.0 -0.05 |
SGT1  | supervisor     | City Centre | Albion Street        |   0.0   0.0 | taser first_aid
SGT2  | supervisor     | East        | Killingbeck Fields   |   0.1   0.0 | taser first_aid
INSP1 | supervisor     | South       | Dewhirst Road Parade |   0.0   0.0 | first_aid
ARV1  | armed_response | City Centre | Headrow Gyratory     |   0.2   0.2 | firearms taser first_aid
ARV2  | armed_response | North       | Moor Road Roundabout |   0.0   0.3 | firearms taser first_aid
ARV3  | armed_response | West        | Westway Interchange  |   0.2   0.2 | firearms taser first_aid
DOG1  | dog            | East        | Eastgate Retail Park |  -0.2  -0.3 | dog
DOG2  | dog            | West        | Westholme Park       |   0.3   0.1 | dog
RP1   | traffic        | South       | M621 Junction 4      |   0.1   0.1 | traffic first_aid
RP2   | traffic        | East        | Ring Road East       |   0.0  -0.2 | traffic first_aid
RP3   | traffic        | North       | Moor Road Roundabout |  -0.2  -0.2 | traffic first_aid
RPM1  | motorcycle     | West        | Westway Interchange  |  -0.1   0.3 | traffic
RPM2  | motorcycle     | City Centre | Headrow Gyratory     |  -0.1  -0.1 | traffic
"""


def build_force(city: City = BRACKLEY) -> tuple[UnitSpec, ...]:
    """The roster with start positions worked out on `city`'s map."""
    force = []
    for line in _ROSTER.strip().splitlines():
        callsign, unit_type, sector, place, shift, capabilities = (
            field.strip() for field in line.split("|")
        )
        north, east = (float(km) for km in shift.split())
        anchor = city.location(place).position
        assert anchor is not None  # every place and street in the city has coordinates
        force.append(
            UnitSpec(
                callsign,
                UnitType(unit_type),
                tuple(Capability(c) for c in capabilities.split()),
                sector,
                offset(anchor, north, east),
            )
        )
    return tuple(force)


#: The default force: 36 units.
FORCE: tuple[UnitSpec, ...] = build_force()


def book_on_fields(spec: UnitSpec) -> dict:
    """The `book_on` command fields (JSON-ready) that put `spec` on duty."""
    return {
        "callsign": spec.callsign,
        "unit_type": spec.unit_type.value,
        "capabilities": [c.value for c in spec.capabilities],
        "home_sector": spec.home_sector,
        "state": 2,
        "position": {"lat": spec.start.lat, "lon": spec.start.lon},
    }


async def seed_force(client: DispatchClient, force: Iterable[UnitSpec] = FORCE) -> list[str]:
    """Book on every unit of `force` that is not on duty already; return their callsigns.

    Safe to call on a backend that already has the force: units on duty are left as
    they are. Each book-on waits until it is in the client's picture.
    """
    booked = []
    for spec in force:
        current = client.units.get(spec.callsign)
        if current is not None and current.on_duty:
            continue
        await client.execute(client.command("book_on", **book_on_fields(spec)))
        booked.append(spec.callsign)
    return booked
