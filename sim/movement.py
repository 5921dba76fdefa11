"""How units move: speeds by unit type, travel times and positions along the way.

Units drive in straight lines between fixes (the city has no road graph), but the time a
trip takes is worked out on the straight-line distance times `ROAD_FACTOR`, because
roads wind. Emergency (grade 1) trips run on blue lights, faster.
"""

from __future__ import annotations

from cadterm.domain.geography import haversine_km
from cadterm.protocol.domain import Position, UnitType

__all__ = ["ROAD_FACTOR", "SPEEDS_KMH", "interpolate", "speed_kmh", "travel_seconds"]

#: Road distance over straight-line distance in a British city.
ROAD_FACTOR = 1.3

#: (normal, blue lights, patrolling) speeds in km/h, by unit type.
SPEEDS_KMH: dict[UnitType, tuple[float, float, float]] = {
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


def speed_kmh(unit_type: UnitType, *, blue_lights: bool = False, patrol: bool = False) -> float:
    """How fast a unit of `unit_type` goes: to an emergency, to other work, or on patrol."""
    normal, emergency, patrolling = SPEEDS_KMH.get(unit_type, (40, 60, 25))
    if patrol:
        return patrolling
    return emergency if blue_lights else normal


def travel_seconds(origin: Position, destination: Position, kmh: float) -> float:
    """Seconds to go from `origin` to `destination` by road at `kmh`."""
    return haversine_km(origin, destination) * ROAD_FACTOR / kmh * 3600.0


def interpolate(origin: Position, destination: Position, share: float) -> Position:
    """The point `share` (0-1) of the way from `origin` to `destination`, to 6 decimals."""
    share = min(max(share, 0.0), 1.0)
    return Position(
        lat=round(origin.lat + (destination.lat - origin.lat) * share, 6),
        lon=round(origin.lon + (destination.lon - origin.lon) * share, 6),
    )
