"""Distances and offsets on the ground: the geography every part of cadterm shares.

Pure functions over `Position` (WGS84 latitude and longitude), with no I/O, so the
console's recommendations, the simulator's movement and the server reckon distances the
same way.
"""

from __future__ import annotations

import math

from cadterm.protocol.domain import Position

__all__ = ["EARTH_RADIUS_KM", "KM_PER_DEGREE_LATITUDE", "haversine_km", "offset"]

#: Mean Earth radius (IUGG), kilometres.
EARTH_RADIUS_KM = 6371.0088

#: Kilometres per degree of latitude on that sphere (2 * pi * R / 360, rounded).
KM_PER_DEGREE_LATITUDE = 111.195


def haversine_km(a: Position, b: Position) -> float:
    """Great-circle distance between two WGS84 points, in kilometres."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a.lat, a.lon, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(min(1.0, max(0.0, h))))


def offset(origin: Position, north_km: float, east_km: float) -> Position:
    """The point `north_km` north and `east_km` east of `origin` (flat-earth, town scale)."""
    lat = origin.lat + north_km / KM_PER_DEGREE_LATITUDE
    lon = origin.lon + east_km / (KM_PER_DEGREE_LATITUDE * math.cos(math.radians(origin.lat)))
    return Position(lat=round(lat, 6), lon=round(lon, 6))
