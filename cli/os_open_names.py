"""A gazetteer from Ordnance Survey's OS Open Names: `cadterm gazetteer from-os-open-names`.

OS Open Names (free, Open Government Licence) lists Great Britain's named roads,
settlements and landmarks, each at one point in British National Grid metres
(``GEOMETRY_X`` easting, ``GEOMETRY_Y`` northing, on the OSGB36 datum). Converting a point
to the WGS84 latitude and longitude cadterm uses takes two steps, both written out here so
no projection library is needed:

1. the inverse Transverse Mercator projection of the National Grid (Airy 1830 ellipsoid,
   true origin 49 N 2 W, scale 0.9996012717, false origin -100 km N, 400 km E) gives
   OSGB36 latitude and longitude (Ordnance Survey, *A guide to coordinate systems in Great
   Britain*, annex C);
2. the Helmert transformation OSGB36 -> WGS84 (the guide's seven parameters, reversed)
   moves the point onto WGS84: good to about 5 m, ample to send a unit. (OSTN15, as used
   by `pyproj` with its grid installed, is good to 0.1 m where survey accuracy matters.)

What is kept: ``Named Road`` records become streets (at their one point: OS Open Names
has no ends or house numbers, so such streets match at their centre and make no
junctions); postcodes and numbered roads are left out; every other record (city, town,
village, suburban area, station, ...) becomes a place. ``NAME2`` (a Welsh or Gaelic
name) becomes an alias. The locality is ``POPULATED_PLACE`` (else ``DISTRICT_BOROUGH``),
and the sector is read from a chosen column until the force maps in its own sectors.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from cadterm.domain.gazetteer import Entry, EntryKind, fold
from cadterm.protocol.domain import Position

__all__ = ["Conversion", "bng_to_osgb36", "bng_to_wgs84", "convert_open_names"]

# Airy 1830 and the National Grid's projection (OS guide, annex A and C).
_AIRY_A, _AIRY_B = 6377563.396, 6356256.909
_F0 = 0.9996012717
_PHI0, _LAMBDA0 = math.radians(49.0), math.radians(-2.0)
_E0, _N0 = 400000.0, -100000.0
# GRS80 / WGS84.
_WGS_A, _WGS_B = 6378137.000, 6356752.3141
# OSGB36 -> WGS84: the guide's WGS84 -> OSGB36 parameters with their signs reversed.
_TX, _TY, _TZ = 446.448, -125.157, 542.060  # metres
_S = -20.4894e-6
_RX, _RY, _RZ = (math.radians(seconds / 3600) for seconds in (0.1502, 0.2470, 0.8421))

# The National Grid's extent, metres: a point outside it is not in Great Britain.
_GRID_EAST, _GRID_NORTH = 700_000, 1_300_000
_SKIPPED_TYPES = frozenset({"postcode", "numbered road", "section of numbered road"})
_STREET_TYPES = frozenset({"named road"})
_NOT_IDENTIFIER = re.compile(r"[^A-Za-z0-9._-]+")


def _meridional_arc(phi: float) -> float:
    n = (_AIRY_A - _AIRY_B) / (_AIRY_A + _AIRY_B)
    d, s = phi - _PHI0, phi + _PHI0
    return (
        _AIRY_B
        * _F0
        * (
            (1 + n + 5 / 4 * n**2 + 5 / 4 * n**3) * d
            - (3 * n + 3 * n**2 + 21 / 8 * n**3) * math.sin(d) * math.cos(s)
            + (15 / 8 * n**2 + 15 / 8 * n**3) * math.sin(2 * d) * math.cos(2 * s)
            - 35 / 24 * n**3 * math.sin(3 * d) * math.cos(3 * s)
        )
    )


def bng_to_osgb36(easting: float, northing: float) -> tuple[float, float]:
    """OSGB36 (latitude, longitude) in degrees of a National Grid point."""
    a, e2 = _AIRY_A, 1 - (_AIRY_B / _AIRY_A) ** 2
    phi = (northing - _N0) / (a * _F0) + _PHI0
    for _ in range(20):  # converges to 0.01 mm in a handful of rounds
        residual = northing - _N0 - _meridional_arc(phi)
        if abs(residual) < 1e-5:
            break
        phi += residual / (a * _F0)
    sin2 = math.sin(phi) ** 2
    nu = a * _F0 / math.sqrt(1 - e2 * sin2)
    rho = a * _F0 * (1 - e2) / (1 - e2 * sin2) ** 1.5
    eta2 = nu / rho - 1
    t, sec = math.tan(phi), 1 / math.cos(phi)
    vii = t / (2 * rho * nu)
    viii = t / (24 * rho * nu**3) * (5 + 3 * t**2 + eta2 - 9 * t**2 * eta2)
    ix = t / (720 * rho * nu**5) * (61 + 90 * t**2 + 45 * t**4)
    x = sec / nu
    xi = sec / (6 * nu**3) * (nu / rho + 2 * t**2)
    xii = sec / (120 * nu**5) * (5 + 28 * t**2 + 24 * t**4)
    xiia = sec / (5040 * nu**7) * (61 + 662 * t**2 + 1320 * t**4 + 720 * t**6)
    de = easting - _E0
    lat = phi - vii * de**2 + viii * de**4 - ix * de**6
    lon = _LAMBDA0 + x * de - xi * de**3 + xii * de**5 - xiia * de**7
    return math.degrees(lat), math.degrees(lon)


def bng_to_wgs84(easting: float, northing: float) -> tuple[float, float]:
    """WGS84 (latitude, longitude) in degrees of a National Grid point (to about 5 m)."""
    lat, lon = map(math.radians, bng_to_osgb36(easting, northing))
    # OSGB36 geodetic -> cartesian on Airy (height 0), Helmert, cartesian -> WGS84.
    e2 = 1 - (_AIRY_B / _AIRY_A) ** 2
    nu = _AIRY_A / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    x = nu * math.cos(lat) * math.cos(lon)
    y = nu * math.cos(lat) * math.sin(lon)
    z = (1 - e2) * nu * math.sin(lat)
    x, y, z = (
        _TX + (1 + _S) * x - _RZ * y + _RY * z,
        _TY + _RZ * x + (1 + _S) * y - _RX * z,
        _TZ - _RY * x + _RX * y + (1 + _S) * z,
    )
    e2 = 1 - (_WGS_B / _WGS_A) ** 2
    p = math.hypot(x, y)
    phi = math.atan2(z, p * (1 - e2))
    for _ in range(10):
        nu = _WGS_A / math.sqrt(1 - e2 * math.sin(phi) ** 2)
        phi = math.atan2(z + e2 * nu * math.sin(phi), p)
    return math.degrees(phi), math.degrees(math.atan2(y, x))


@dataclass
class Conversion:
    """What a conversion kept and what it left out, to print for the engineer."""

    entries: list[Entry] = field(default_factory=list)
    outside: int = 0  # not in the areas asked for
    not_kept: int = 0  # postcodes and numbered roads
    repeated: int = 0  # a second record of a name already kept in that locality
    unusable: list[str] = field(default_factory=list)  # why a record could not be used


def _sector(text: str) -> str | None:
    words = _NOT_IDENTIFIER.sub(" ", text.replace("'", "")).split()
    return " ".join(words)[:40].strip() or None


def convert_open_names(
    rows: Iterable[dict[str, str]], *, areas: Iterable[str] = (), sector_column: str
) -> Conversion:
    """Gazetteer entries from OS Open Names records (dicts keyed by its column names).

    `areas` keeps only records whose ``COUNTY_UNITARY`` or ``DISTRICT_BOROUGH`` is one
    of them (any case); empty keeps everything. The sector is `sector_column`'s value,
    cut down to what a sector may hold (letters, digits, single spaces, ``-._``).
    """
    wanted = {fold(area) for area in areas}
    done = Conversion()
    seen: set[tuple[EntryKind, str, str]] = set()
    for number, row in enumerate(rows, start=1):
        if (
            wanted
            and not {
                fold(row.get("COUNTY_UNITARY") or ""),
                fold(row.get("DISTRICT_BOROUGH") or ""),
            }
            & wanted
        ):
            done.outside += 1
            continue
        local_type = (row.get("LOCAL_TYPE") or "").strip().lower()
        if local_type in _SKIPPED_TYPES:
            done.not_kept += 1
            continue
        name = (row.get("NAME1") or "").strip()
        try:
            easting, northing = float(row["GEOMETRY_X"]), float(row["GEOMETRY_Y"])
            if not (0 <= easting <= _GRID_EAST and 0 <= northing <= _GRID_NORTH):
                raise ValueError("outside the National Grid")
            lat, lon = bng_to_wgs84(easting, northing)
        except (KeyError, TypeError, ValueError):
            done.unusable.append(f"record {number} ({name or 'no name'}): no usable GEOMETRY_X/Y")
            continue
        if not name or len(name) > 120:
            done.unusable.append(f"record {number}: NAME1 is empty or over 120 characters")
            continue
        kind = EntryKind.STREET if local_type in _STREET_TYPES else EntryKind.PLACE
        locality = (row.get("POPULATED_PLACE") or row.get("DISTRICT_BOROUGH") or "").strip()
        if kind is EntryKind.PLACE and fold(locality) == fold(name):
            locality = (row.get("DISTRICT_BOROUGH") or "").strip()
        key = (kind, fold(name), fold(locality))
        if key in seen:
            done.repeated += 1
            continue
        seen.add(key)
        alias = (row.get("NAME2") or "").strip()
        done.entries.append(
            Entry(
                kind=kind,
                name=name,
                position=Position(lat=round(lat, 6), lon=round(lon, 6)),
                sector=_sector(row.get(sector_column) or ""),
                locality=locality[:120] or None,
                aliases=(alias,) if alias and len(alias) <= 120 else (),
            )
        )
    return done


def open_names_rows(lines: Iterable[str], header: list[str] | None) -> Iterator[dict[str, str]]:
    """Records from one OS Open Names CSV file. The data files have no header line (it
    ships apart, as ``OS_Open_Names_Header.csv``): give it as `header`, or None when the
    file starts with its own (`ValueError` if it does not)."""
    reader = csv.reader(lines)
    columns = header
    for cells in reader:
        if columns is None:
            columns = [cell.strip().lstrip("\ufeff").upper() for cell in cells]
            if "NAME1" not in columns:
                raise ValueError(
                    "no header line (OS Open Names data files have none): give the header "
                    "file, Doc/OS_Open_Names_Header.csv, with --header"
                )
            continue
        yield dict(zip(columns, cells, strict=False))
