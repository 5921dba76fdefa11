"""The demo town's gazetteer: Brackley's streets and places as a force would supply them.

`brackley_gazetteer` builds it from the simulator's city (`sim/city.py`), so a street the
simulator sends a call to is a street the console can complete and match, at the same
coordinates. The same entries ship as `sim/data/brackley.csv`, in the format a force's
file uses (`cadterm.domain.gazetteer_csv`): the console loads the demo's gazetteer the
way it loads a force's, and the file is a worked example of the format.
`tests/test_gazetteer.py` holds the file to what this module generates.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from cadterm.domain.gazetteer import Entry, EntryKind, Gazetteer
from cadterm.domain.gazetteer_csv import write_gazetteer_csv

from .city import BRACKLEY, City

__all__ = ["BRACKLEY_CSV", "brackley_csv_text", "brackley_gazetteer", "city_entries"]

#: The shipped copy of the demo town's gazetteer (inside the installed package).
BRACKLEY_CSV: Path = Path(str(files("cadterm.sim").joinpath("data", "brackley.csv")))

# Other names callers use for some of the town's places.
_ALIASES: dict[str, tuple[str, ...]] = {
    "Brackley General Infirmary": ("BGI", "The Infirmary"),
    "Brackley Station": ("Railway Station",),
    "Victoria Shopping Centre": ("The Victoria Centre",),
    "HMP Brackley": ("Brackley Prison",),
    "Brackley City Football Ground": ("The Football Ground",),
}


def city_entries(city: City = BRACKLEY) -> list[Entry]:
    """The gazetteer entries for `city`: each street from its house 1 to its last house,
    then each place at its point, with its sector."""
    streets = [
        Entry(
            kind=EntryKind.STREET,
            name=street.name,
            sector=street.sector,
            position=street.start,
            end=street.end,
            first_house=1,
            last_house=street.houses,
        )
        for street in city.streets
    ]
    places = [
        Entry(
            kind=EntryKind.PLACE,
            name=place.name,
            sector=place.sector,
            position=place.position,
            aliases=_ALIASES.get(place.name, ()),
        )
        for place in city.places
    ]
    return streets + places


def brackley_gazetteer() -> Gazetteer:
    """The demo town's gazetteer, built from the simulator's city."""
    return Gazetteer(city_entries(BRACKLEY))


def brackley_csv_text() -> str:
    """The demo town's gazetteer as CSV text (what `sim/data/brackley.csv` holds)."""
    return write_gazetteer_csv(city_entries(BRACKLEY))
