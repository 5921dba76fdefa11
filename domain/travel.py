"""How long a unit takes to get somewhere: the road-speed model cadterm reckons with.

There is no road graph. A trip's road distance is the straight-line distance times
`ROAD_FACTOR` (roads wind: 1.3 is typical of a British town), driven at a speed that
depends on the kind of unit and whether it runs on blue lights (grade 1 trips do). The
console's recommendations and the simulator's units use this same model, so the unit
recommended as nearest is the one that would arrive first, given where it last was.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from cadterm.protocol.domain import Position, UnitType

from .geography import haversine_km

__all__ = ["ROAD_FACTOR", "SPEEDS_KMH", "speed_kmh", "travel_seconds"]

#: Road distance over straight-line distance in a British town.
ROAD_FACTOR = 1.3

#: (normal, blue lights, patrolling) speeds in km/h, by unit type.
SPEEDS_KMH: Mapping[UnitType, tuple[float, float, float]] = MappingProxyType(
    {
        UnitType.PATROL_CAR: (40, 60, 25),
        UnitType.VAN: (35, 55, 20),
        UnitType.ARMED_RESPONSE: (45, 70, 30),
        UnitType.DOG: (40, 60, 25),
        UnitType.TRAFFIC: (45, 75, 35),
        UnitType.MOTORCYCLE: (45, 70, 30),
        UnitType.FOOT: (5, 6, 4),
        UnitType.SUPERVISOR: (40, 60, 25),
        UnitType.CID: (40, 50, 25),
    }
)
_UNLISTED = (40.0, 60.0, 25.0)


def speed_kmh(unit_type: UnitType, *, blue_lights: bool = False, patrol: bool = False) -> float:
    """How fast a unit of `unit_type` goes: to an emergency, to other work, or on patrol."""
    normal, emergency, patrolling = SPEEDS_KMH.get(unit_type, _UNLISTED)
    if patrol:
        return patrolling
    return emergency if blue_lights else normal


def travel_seconds(origin: Position, destination: Position, kmh: float) -> float:
    """Seconds to go from `origin` to `destination` by road at `kmh`."""
    return haversine_km(origin, destination) * ROAD_FACTOR / kmh * 3600.0
