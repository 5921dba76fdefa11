"""How units move: speeds by unit type, travel times and positions along the way.

Units drive in straight lines between fixes (the city has no road graph); how long a trip
takes is the road-speed model of `cadterm.domain.travel`, the same one the console's
recommendations reckon with. Emergency (grade 1) trips run on blue lights, faster.
"""

from __future__ import annotations

from cadterm.domain.travel import ROAD_FACTOR, SPEEDS_KMH, speed_kmh, travel_seconds
from cadterm.protocol.domain import Position

__all__ = ["ROAD_FACTOR", "SPEEDS_KMH", "interpolate", "speed_kmh", "travel_seconds"]


def interpolate(origin: Position, destination: Position, share: float) -> Position:
    """The point `share` (0-1) of the way from `origin` to `destination`, to 6 decimals."""
    share = min(max(share, 0.0), 1.0)
    return Position(
        lat=round(origin.lat + (destination.lat - origin.lat) * share, 6),
        lon=round(origin.lon + (destination.lon - origin.lon) * share, 6),
    )
