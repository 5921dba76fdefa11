"""Brackley: a fictional city for the simulator, its sectors, places and streets.

Everything is data in code, so every run, test and scenario sees the same map. The city
sits around 53.80 N, 1.55 W (it is made up: no real town of that name is modelled) and is
split into five sectors, each with named places (a station, a school, a retail park...)
and residential streets whose house numbers run from one end to the other.

A *place name* is what a caller or a scenario gives: a landmark ("Market Square") or a
street ("Albion Street"); `City.location` turns it into a `Location` with coordinates and
sector. Distances are small: the city is about 8 km across.
"""

from __future__ import annotations

import difflib
import math
import random
from dataclasses import dataclass

from cadterm.domain.geography import haversine_km, offset
from cadterm.protocol.domain import Location, Position

__all__ = ["BRACKLEY", "City", "Place", "Sector", "Street", "UnknownPlace"]


class UnknownPlace(KeyError):
    """A place name the city does not know; the message suggests near matches."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class Sector:
    """A policing sector: where units are based and how incidents are grouped."""

    name: str
    centre: Position
    radius_km: float


@dataclass(frozen=True)
class Place:
    """A named landmark. `kind` says what happens there (retail, road, park, ...)."""

    name: str
    sector: str
    position: Position
    kind: str


@dataclass(frozen=True)
class Street:
    """A residential street, straight from `start` (house 1) to `end` (house `houses`)."""

    name: str
    sector: str
    start: Position
    end: Position
    houses: int = 120

    def position_of(self, number: int) -> Position:
        """Where house `number` is along the street."""
        share = min(max((number - 1) / max(self.houses - 1, 1), 0.0), 1.0)
        return Position(
            lat=round(self.start.lat + (self.end.lat - self.start.lat) * share, 6),
            lon=round(self.start.lon + (self.end.lon - self.start.lon) * share, 6),
        )


class City:
    """A map of sectors, places and streets, with look-ups the simulator needs."""

    def __init__(
        self,
        name: str,
        sectors: tuple[Sector, ...],
        places: tuple[Place, ...],
        streets: tuple[Street, ...],
    ) -> None:
        self.name = name
        self.sectors = sectors
        self.places = places
        self.streets = streets
        self._sectors = {s.name: s for s in sectors}
        self._by_name: dict[str, Place | Street] = {}
        for item in (*places, *streets):
            key = _key(item.name)
            if key in self._by_name:
                raise ValueError(f"place name {item.name!r} is used twice")
            if item.sector not in self._sectors:
                raise ValueError(f"{item.name!r} is in unknown sector {item.sector!r}")
            self._by_name[key] = item

    @property
    def centre(self) -> Position:
        """The middle of the first sector (the city centre)."""
        return self.sectors[0].centre

    def sector(self, name: str) -> Sector:
        """The sector called `name` (exact name, e.g. "City Centre")."""
        return self._sectors[name]

    def find(self, name: str) -> Place | Street:
        """The place or street called `name` (case and spacing ignored).

        Raises `UnknownPlace` naming the closest known names.
        """
        found = self._by_name.get(_key(name))
        if found is None:
            names = [item.name for item in self._by_name.values()]
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownPlace(f"no place called {name!r} in {self.name}{hint}")
        return found

    def location(self, name: str, house: int | None = None) -> Location:
        """A `Location` for a place name; for a street, house `house` (default: midway)."""
        item = self.find(name)
        if isinstance(item, Street):
            number = house if house is not None else item.houses // 2
            return Location(
                address=f"{number} {item.name}, {self.name}",
                position=item.position_of(number),
                sector=item.sector,
            )
        return Location(
            address=f"{item.name}, {self.name}", position=item.position, sector=item.sector
        )

    def locate(self, address: str) -> Position | None:
        """Best-effort geocoding: the position of a known place or street named in `address`."""
        head = address.split(",")[0].strip()
        words = head.split()
        number = int(words[0]) if words and words[0].isdigit() else None
        name = " ".join(words[1:]) if number is not None else head
        item = self._by_name.get(_key(name))
        if item is None:
            return None
        if isinstance(item, Street):
            return item.position_of(number if number is not None else item.houses // 2)
        return item.position

    def sector_of(self, position: Position) -> str:
        """The sector whose centre is nearest to `position`."""
        return min(self.sectors, key=lambda s: haversine_km(s.centre, position)).name

    def random_point(self, rng: random.Random, sector: str | None = None) -> Position:
        """A point drawn uniformly from within a sector (default: the city centre sector)."""
        chosen = self._sectors[sector] if sector in self._sectors else self.sectors[0]
        distance = chosen.radius_km * math.sqrt(rng.random())
        bearing = rng.uniform(0, 2 * math.pi)
        return offset(chosen.centre, distance * math.cos(bearing), distance * math.sin(bearing))


def _key(name: str) -> str:
    return " ".join(name.lower().replace("'", "").split())


def _p(lat: float, lon: float) -> Position:
    return Position(lat=lat, lon=lon)


_SECTORS = (
    Sector("City Centre", _p(53.8000, -1.5500), 1.2),
    Sector("North", _p(53.8300, -1.5500), 2.0),
    Sector("East", _p(53.8000, -1.5050), 2.0),
    Sector("South", _p(53.7700, -1.5500), 2.0),
    Sector("West", _p(53.8000, -1.5950), 2.0),
)

_PLACES = (
    # City Centre
    Place("Market Square", "City Centre", _p(53.8000, -1.5500), "retail"),
    Place("Brackley Station", "City Centre", _p(53.7955, -1.5480), "transport"),
    Place("Bus Station", "City Centre", _p(53.7975, -1.5410), "transport"),
    Place("Corn Exchange", "City Centre", _p(53.7985, -1.5440), "retail"),
    Place("Town Hall", "City Centre", _p(53.8010, -1.5530), "civic"),
    Place("Victoria Shopping Centre", "City Centre", _p(53.7995, -1.5460), "retail"),
    Place("Brackley General Infirmary", "City Centre", _p(53.8040, -1.5560), "health"),
    Place("Canal Wharf", "City Centre", _p(53.7945, -1.5520), "night"),
    Place("The Crown and Anchor", "City Centre", _p(53.7990, -1.5485), "night"),
    Place("Headrow Gyratory", "City Centre", _p(53.8025, -1.5470), "road"),
    # North
    Place("Northfield Park", "North", _p(53.8320, -1.5530), "park"),
    Place("Moor Top Primary School", "North", _p(53.8360, -1.5460), "school"),
    Place("Aire Vale Retail Park", "North", _p(53.8260, -1.5600), "retail"),
    Place("St Wilfrid's Church", "North", _p(53.8290, -1.5410), "civic"),
    Place("Northfield Leisure Centre", "North", _p(53.8340, -1.5580), "civic"),
    Place("Moor Road Roundabout", "North", _p(53.8230, -1.5500), "road"),
    Place("The Fox and Hounds", "North", _p(53.8380, -1.5520), "night"),
    # East
    Place("Eastgate Retail Park", "East", _p(53.8010, -1.5000), "retail"),
    Place("Halton Moor Estate", "East", _p(53.7960, -1.5080), "residential"),
    Place("Eastfield Hospital", "East", _p(53.8070, -1.5030), "health"),
    Place("Killingbeck Fields", "East", _p(53.8050, -1.5120), "park"),
    Place("Ring Road East", "East", _p(53.7990, -1.4930), "road"),
    Place("Eastfield Academy", "East", _p(53.8030, -1.4980), "school"),
    Place("Osmond Lane Garage", "East", _p(53.7940, -1.5010), "retail"),
    # South
    Place("Low Moor Industrial Estate", "South", _p(53.7680, -1.5450), "industrial"),
    Place("Southfield Academy", "South", _p(53.7720, -1.5560), "school"),
    Place("Brackley City Football Ground", "South", _p(53.7750, -1.5600), "civic"),
    Place("Cross Green Depot", "South", _p(53.7660, -1.5380), "industrial"),
    Place("South Brackley Police Station", "South", _p(53.7710, -1.5490), "civic"),
    Place("Dewhirst Road Parade", "South", _p(53.7690, -1.5520), "retail"),
    Place("M621 Junction 4", "South", _p(53.7760, -1.5410), "road"),
    # West
    Place("Westholme Park", "West", _p(53.8010, -1.5920), "park"),
    Place("HMP Brackley", "West", _p(53.7970, -1.5880), "civic"),
    Place("Westholme Baths", "West", _p(53.8040, -1.5970), "civic"),
    Place("Abbey Mills", "West", _p(53.8080, -1.6010), "industrial"),
    Place("Westfield Retail Park", "West", _p(53.7950, -1.6000), "retail"),
    Place("Canal Road Lock", "West", _p(53.8060, -1.5900), "park"),
    Place("Westway Interchange", "West", _p(53.7990, -1.6080), "road"),
)

_STREETS = (
    # City Centre
    Street("Albion Street", "City Centre", _p(53.7970, -1.5510), _p(53.8020, -1.5505), 90),
    Street("Cloth Hall Street", "City Centre", _p(53.7960, -1.5450), _p(53.7965, -1.5390), 60),
    Street("Mercer Row", "City Centre", _p(53.8005, -1.5560), _p(53.8010, -1.5470), 70),
    Street("Vicar Lane", "City Centre", _p(53.7975, -1.5430), _p(53.8030, -1.5425), 80),
    # North
    Street("Moor Road", "North", _p(53.8180, -1.5500), _p(53.8420, -1.5510), 400),
    Street("Beckett Avenue", "North", _p(53.8300, -1.5620), _p(53.8310, -1.5450), 160),
    Street("Holly Bank", "North", _p(53.8350, -1.5400), _p(53.8400, -1.5440), 80),
    Street("Larch Close", "North", _p(53.8260, -1.5450), _p(53.8275, -1.5420), 40),
    # East
    Street("York Road", "East", _p(53.8000, -1.5300), _p(53.8020, -1.4850), 500),
    Street("Halton Crescent", "East", _p(53.7950, -1.5120), _p(53.7970, -1.5040), 90),
    Street("Temple Gardens", "East", _p(53.8080, -1.5090), _p(53.8100, -1.5010), 70),
    Street("Foundry Approach", "East", _p(53.7920, -1.5060), _p(53.7940, -1.4980), 60),
    # South
    Street("Dewhirst Road", "South", _p(53.7860, -1.5520), _p(53.7600, -1.5540), 380),
    Street("Gasworks Row", "South", _p(53.7700, -1.5430), _p(53.7705, -1.5370), 50),
    Street("Pottery Walk", "South", _p(53.7740, -1.5530), _p(53.7760, -1.5470), 60),
    Street("Tannery Lane", "South", _p(53.7650, -1.5500), _p(53.7640, -1.5430), 70),
    # West
    Street("Tong Road", "West", _p(53.7980, -1.5700), _p(53.7950, -1.6150), 450),
    Street("Abbey Terrace", "West", _p(53.8070, -1.5980), _p(53.8090, -1.6040), 60),
    Street("Weaver's Close", "West", _p(53.8020, -1.5850), _p(53.8030, -1.5810), 40),
    Street("Chapel Fold", "West", _p(53.7930, -1.5930), _p(53.7945, -1.5880), 50),
)

#: The simulator's default city.
BRACKLEY = City("Brackley", _SECTORS, _PLACES, _STREETS)
