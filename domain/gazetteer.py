"""The gazetteer: a force's streets and places, for completing and matching locations.

A dispatcher types a location as a caller gives it: "37 Gasworks Row", "Market Sq",
"junction of Albion St and Mercer Row". `Gazetteer.complete` offers what the text could
become as it is typed; `Gazetteer.match` turns finished text into a `Match` (the
normalised address, its `Position` and sector), or None when the gazetteer does not know
it, in which case the caller keeps the text as typed and marks it unverified.

Entries are streets (with a centre, or a start and an end and the house numbers that run
between them) and places (landmarks, estates, stations: one point each). Junctions are
derived: two streets whose centre lines come within `JUNCTION_METRES` of each other
meet, at the midpoint of their closest approach (where they cross, that is the
crossing). A street known only by its centre has no line, so it has no junctions.

Text is compared folded: case, spacing, apostrophes and punctuation are ignored, and the
common abbreviations (St, Rd, Ave, Sq, ...) read as the words they stand for, on both the
entries and what is typed. "St" at the start of a name is "Saint" (St Wilfrid's Church);
anywhere else it is "Street".

Completion uses sorted keys and `bisect`, never a scan of every entry, so each keystroke
costs the same on a force's tens of thousands of entries as on the demo town's sixty
(`bench/bench_gazetteer.py` measures it). Building a gazetteer from a file is
`cadterm.domain.gazetteer_csv`.
"""

from __future__ import annotations

import bisect
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from cadterm.protocol.domain import Location, Position

from .geography import KM_PER_DEGREE_LATITUDE

__all__ = [
    "ABBREVIATIONS",
    "JUNCTION_METRES",
    "Entry",
    "EntryKind",
    "Gazetteer",
    "Junction",
    "Match",
    "MatchKind",
    "fold",
]

#: Two streets meet when their centre lines come this close (metres): wide enough for
#: a street drawn to the kerb of the road it joins, narrow enough that parallel streets
#: a block apart do not.
JUNCTION_METRES = 25.0

#: Abbreviations read as the word they stand for (after folding, so without the dot).
ABBREVIATIONS: dict[str, str] = {
    "st": "street",
    "rd": "road",
    "ave": "avenue",
    "av": "avenue",
    "ln": "lane",
    "cl": "close",
    "cres": "crescent",
    "cresc": "crescent",
    "dr": "drive",
    "sq": "square",
    "gdns": "gardens",
    "gdn": "garden",
    "ter": "terrace",
    "terr": "terrace",
    "pl": "place",
    "ct": "court",
    "gr": "grove",
    "gro": "grove",
    "pk": "park",
    "pde": "parade",
    "hwy": "highway",
    "wy": "way",
    "wk": "walk",
    "mt": "mount",
    "appr": "approach",
    "stn": "station",
    "hosp": "hospital",
    "sch": "school",
    "ctr": "centre",
    "ind": "industrial",
    "est": "estate",
    "n": "north",
    "s": "south",
    "e": "east",
    "w": "west",
    "gt": "great",
    "lt": "little",
}

# Words that open a junction, and the words that join its two streets ("/" and "&" too).
_JUNCTION = re.compile(
    r"^\s*(?:junction\s+of|junction|jct\s+of|jct|j/o)\s+(?P<rest>.*)$", re.IGNORECASE
)
_JOIN = re.compile(r"\s+(?:and|j/w)\s+|\s*[&/]\s*", re.IGNORECASE)
# A house number leading the text: 37, 37a, 37-39 (the first number places it).
_HOUSE = re.compile(
    r"^\s*(?P<number>\d{1,5})(?P<suffix>[a-z]?(?:-\d{1,5}[a-z]?)?)\s+(?P<rest>.*)$", re.IGNORECASE
)
_NOT_WORD = re.compile(r"[^\w\s]+")
_APOSTROPHES = str.maketrans("", "", "'\u2019\u2018`")

# At most this many index rows are read per completion tier: the bound that keeps a
# one-letter prefix on a force's gazetteer as quick as a long one.
_SCAN = 400


def fold(text: str) -> str:
    """`text` as the gazetteer compares it: lower case, single spaces, no punctuation,
    abbreviations written out ("St Wilfrid's Ch" -> "saint wilfrids ch")."""
    return " ".join(_expand(_words(text)))


def _words(text: str) -> list[str]:
    text = text.translate(_APOSTROPHES).replace("&", " and ").casefold()
    return _NOT_WORD.sub(" ", text).split()


def _expand(words: Sequence[str], *, more: bool = False) -> list[str]:
    """Abbreviations written out; `more` says further words will follow (a prefix)."""
    out = []
    for i, word in enumerate(words):
        if word == "st" and i == 0 and (len(words) > 1 or more):
            out.append("saint")
        else:
            out.append(ABBREVIATIONS.get(word, word))
    return out


def _fold_prefix(text: str) -> list[str]:
    """The folded forms a half-typed `text` may stand for (its last word may be unfinished
    or may be an abbreviation: "High Rd" is "high rd..." or "high road")."""
    words = _words(text)
    if not words:
        return [""]
    finished = text[-1:].isspace() or text.rstrip()[-1:] in ".,"
    if finished:
        return [" ".join(_expand(words, more=True)) + " "]
    head = [*_expand(words[:-1], more=True), words[-1]]
    forms = [" ".join(head)]
    for last in {_expand(words)[-1], _expand(words, more=True)[-1]} - {words[-1]}:
        forms.append(" ".join([*head[:-1], last]))
    return sorted(forms)


class EntryKind(StrEnum):
    """What a gazetteer entry is."""

    STREET = "street"
    PLACE = "place"


class MatchKind(StrEnum):
    """What a matched location is, which says how exact its position is."""

    HOUSE = "house"  # a house number within the street's range, placed along it
    STREET = "street"  # the street, at its middle (no number, or one outside its range)
    PLACE = "place"  # a landmark's own point
    JUNCTION = "junction"  # where two streets meet


@dataclass(frozen=True)
class Entry:
    """One street or place. A street's `position` is its start (or its centre when it has
    no `end`); its house numbers run from `first_house` at the start to `last_house` at
    the end. `locality` tells apart entries that share a name (High Street in two
    villages)."""

    kind: EntryKind
    name: str
    position: Position
    sector: str | None = None
    end: Position | None = None
    first_house: int | None = None
    last_house: int | None = None
    locality: str | None = None
    aliases: tuple[str, ...] = ()

    @property
    def centre(self) -> Position:
        """The middle of a street with two ends; otherwise its one point."""
        if self.end is None:
            return self.position
        return _between(self.position, self.end, 0.5)

    def has_house(self, number: int) -> bool:
        """Whether house `number` is within this street's known range."""
        if self.first_house is None or self.last_house is None:
            return False
        low, high = sorted((self.first_house, self.last_house))
        return low <= number <= high

    def house_position(self, number: int) -> Position:
        """Where house `number` is: interpolated from start to end (a straight street,
        houses evenly spaced; odd and even sides are not told apart)."""
        if self.end is None or self.first_house is None or self.last_house is None:
            return self.centre
        span = self.last_house - self.first_house
        share = 0.0 if span == 0 else (number - self.first_house) / span
        return _between(self.position, self.end, min(max(share, 0.0), 1.0))


@dataclass(frozen=True)
class Junction:
    """Where two streets meet."""

    first: Entry
    second: Entry
    position: Position


@dataclass(frozen=True)
class Match:
    """A location the gazetteer knows: the address to record, where it is, its sector."""

    address: str
    position: Position
    sector: str | None
    kind: MatchKind

    def location(self) -> Location:
        """The incident `Location` this match stands for."""
        return Location(address=self.address, position=self.position, sector=self.sector)


@dataclass
class _Index:
    """Sorted folded keys, each with the number of the entry it names."""

    keys: list[str] = field(default_factory=list)
    targets: list[int] = field(default_factory=list)

    @classmethod
    def build(cls, pairs: Iterable[tuple[str, int]]) -> _Index:
        rows = sorted(set(pairs))
        return cls([key for key, _ in rows], [target for _, target in rows])

    def starting(self, prefix: str) -> Iterable[tuple[str, int]]:
        """Rows whose key starts with `prefix`, in key order, at most `_SCAN` of them."""
        start = bisect.bisect_left(self.keys, prefix)
        for i in range(start, min(start + _SCAN, len(self.keys))):
            if not self.keys[i].startswith(prefix):
                return
            yield self.keys[i], self.targets[i]


class Gazetteer:
    """A force's streets and places, indexed for completion and matching.

    Built once (a force's 50,000 entries take a few seconds, most of it finding the
    junctions: build it off the UI path), then read-only and safe to share.
    `junction_metres` is how close two street lines must come to meet.
    """

    def __init__(self, entries: Iterable[Entry], *, junction_metres: float = JUNCTION_METRES):
        self.entries: tuple[Entry, ...] = tuple(entries)
        self._folded = [fold(entry.name) for entry in self.entries]
        shared: dict[str, int] = defaultdict(int)
        for key in self._folded:
            shared[key] += 1
        # A name shared by several entries is shown with its locality, to tell them apart.
        self._labels = [
            f"{e.name}, {e.locality}" if e.locality and shared[key] > 1 else e.name
            for e, key in zip(self.entries, self._folded, strict=True)
        ]
        self._folded_labels = [fold(label) for label in self._labels]
        self._exact: dict[str, list[int]] = defaultdict(list)
        names, words = [], []
        for i, entry in enumerate(self.entries):
            named = {self._folded[i], *(fold(alias) for alias in entry.aliases)}
            # With its locality the name is a key too ("high street otley"), but only the
            # name's own later words start a completion: "Otley" is not every Otley street.
            keys = named | {self._folded_labels[i]}
            if entry.locality:
                keys.add(fold(f"{entry.name} {entry.locality}"))
            for key in keys:
                self._exact[key].append(i)
                names.append((key, i))
            for key in named:
                parts = key.split(" ")
                words.extend((" ".join(parts[n:]), i) for n in range(1, len(parts)))
        self._names = _Index.build(names)
        self._words = _Index.build(words)
        meeting = list(self._find_junctions(junction_metres))
        self.junctions: tuple[Junction, ...] = tuple(
            Junction(self.entries[a], self.entries[b], where) for a, b, where in meeting
        )
        # street -> [(the street it meets, the junction's number)]
        self._meets: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for j, (a, b, _) in enumerate(meeting):
            self._meets[a].append((b, j))
            self._meets[b].append((a, j))
        for partners in self._meets.values():
            partners.sort(key=lambda pair: self._folded_labels[pair[0]])

    def __len__(self) -> int:
        return len(self.entries)

    # --- completion ---------------------------------------------------------------------

    def complete(self, prefix: str, limit: int = 10) -> list[str]:
        """What the half-typed location `prefix` could become, best first.

        An entry named exactly what is typed comes first; then names that start with it,
        then names with a later word that does ("Wilf" finds "St Wilfrid's Church" after
        any "Wilford Road"); alphabetical within each. A leading house number completes
        to streets, those that have that house first; "junction of A and B" completes to
        junctions that exist.
        """
        if limit <= 0 or not prefix.strip():
            return []
        if junction := _JUNCTION.match(prefix):
            found = self._complete_junction(junction.group("rest"), limit)
            if found:
                return found
        if house := _HOUSE.match(prefix):
            number = int(house.group("number"))
            written = house.group("number") + house.group("suffix")
            streets = [
                i
                for i in self._complete_entries(house.group("rest"), limit * 4)
                if self._is_street(i)
            ]
            if streets:
                streets.sort(key=lambda i: not self.entries[i].has_house(number))
                return [f"{written} {self._labels[i]}" for i in streets[:limit]]
        return [self._labels[i] for i in self._complete_entries(prefix, limit)]

    def _complete_entries(self, prefix: str, limit: int) -> list[int]:
        found = sorted(set(self._exact.get(fold(prefix), ())), key=self._sort_key)
        seen = set(found)
        forms = _fold_prefix(prefix)
        for index in (self._names, self._words):
            if len(found) >= limit:
                break
            tier = [row for form in forms for row in index.starting(form)]
            tier.sort(key=lambda row: (row[0], self._folded_labels[row[1]], row[1]))
            for _, i in tier:
                if i not in seen:
                    seen.add(i)
                    found.append(i)
        return found[:limit]

    def _complete_junction(self, rest: str, limit: int) -> list[str]:
        parts = _JOIN.split(rest, maxsplit=1)
        finished_first = len(parts) == 2
        second_text = parts[1] if finished_first else ""
        second_forms = _fold_prefix(second_text) if second_text.strip() else [""]
        out: list[str] = []
        for a in self._street_candidates(parts[0], exact_first=finished_first):
            for b, _ in self._meets.get(a, ()):
                key = self._folded_labels[b]
                if any(key.startswith(form) for form in second_forms):
                    text = f"junction of {self._labels[a]} and {self._labels[b]}"
                    if text not in out:
                        out.append(text)
                if len(out) >= limit:
                    return out
        return out

    def _street_candidates(self, text: str, *, exact_first: bool) -> list[int]:
        """Streets `text` names: the exact name when there is one and the text is
        finished, else every street it is the start of."""
        if exact_first:
            exact = [i for i in self._exact.get(fold(text), ()) if self._is_street(i)]
            if exact:
                return exact
        return [i for i in self._complete_entries(text, _SCAN) if self._is_street(i)]

    def _sort_key(self, i: int) -> tuple[str, int]:
        return self._folded_labels[i], i

    def _is_street(self, i: int) -> bool:
        return self.entries[i].kind is EntryKind.STREET

    # --- matching -----------------------------------------------------------------------

    def match(self, text: str) -> Match | None:
        """The location `text` names, or None when it names nothing known, or names
        several entries that nothing tells apart (a bare "High Street" in a county).

        A trailing ", town" is ignored when the text before it matches.
        """
        found = self._match(text)
        if found is None and "," in text:
            found = self._match(text.split(",", 1)[0])
        return found

    def _match(self, text: str) -> Match | None:
        if (junction := _JUNCTION.match(text)) and (
            found := self._match_junction(junction.group("rest"))
        ):
            return found
        if (house := _HOUSE.match(text)) and (
            street := self._one(house.group("rest"), streets_only=True)
        ) is not None:
            entry, label = self.entries[street], self._labels[street]
            number = int(house.group("number"))
            address = f"{house.group('number')}{house.group('suffix').upper()} {label}"
            if entry.has_house(number):
                position = entry.house_position(number)
                return Match(address, position, entry.sector, MatchKind.HOUSE)
            return Match(address, entry.centre, entry.sector, MatchKind.STREET)
        one = self._one(text, streets_only=False)
        if one is None:
            return None
        entry, label = self.entries[one], self._labels[one]
        if entry.kind is EntryKind.STREET:
            return Match(label, entry.centre, entry.sector, MatchKind.STREET)
        return Match(label, entry.position, entry.sector, MatchKind.PLACE)

    def _one(self, text: str, *, streets_only: bool) -> int | None:
        found = {
            i for i in self._exact.get(fold(text), ()) if not streets_only or self._is_street(i)
        }
        return found.pop() if len(found) == 1 else None

    def _match_junction(self, rest: str) -> Match | None:
        parts = _JOIN.split(rest, maxsplit=1)
        if len(parts) != 2:
            return None
        a = self._one(parts[0], streets_only=True)
        b = self._one(parts[1], streets_only=True)
        if a is None or b is None:
            return None
        for partner, j in self._meets.get(a, ()):
            if partner == b:
                sector = self.entries[a].sector or self.entries[b].sector
                address = f"junction of {self._labels[a]} and {self._labels[b]}"
                return Match(address, self.junctions[j].position, sector, MatchKind.JUNCTION)
        return None

    # --- junctions ----------------------------------------------------------------------

    def _find_junctions(self, metres: float) -> Iterable[tuple[int, int, Position]]:
        """Pairs of streets whose lines come within `metres`, and where: found through a
        grid of cells about 550 m across, so only streets near each other are compared."""
        margin = metres / 1000 / KM_PER_DEGREE_LATITUDE * 2  # degrees, generous in lon
        lines: list[tuple[int, Position, Position, tuple[float, float, float, float]]] = []
        for i, e in enumerate(self.entries):
            if e.kind is EntryKind.STREET and e.end is not None:
                lat0, lat1 = sorted((e.position.lat, e.end.lat))
                lon0, lon1 = sorted((e.position.lon, e.end.lon))
                box = (lat0 - margin, lat1 + margin, lon0 - margin, lon1 + margin)
                lines.append((i, e.position, e.end, box))
        cell = 0.005  # degrees: ~550 m of latitude, ~330 m of longitude at 53 N
        grid: dict[tuple[int, int], list[int]] = defaultdict(list)
        for n, (_, _, _, (lat0, lat1, lon0, lon1)) in enumerate(lines):
            for y in range(_cell(lat0, cell), _cell(lat1, cell) + 1):
                for x in range(_cell(lon0, cell), _cell(lon1, cell) + 1):
                    grid[(y, x)].append(n)
        pairs: set[tuple[int, int]] = set()
        for members in grid.values():
            for p, a in enumerate(members):
                box = lines[a][3]
                for b in members[p + 1 :]:
                    other = lines[b][3]
                    # Boxes apart (each grown by the margin): the lines cannot be close.
                    if (
                        box[0] <= other[1]
                        and other[0] <= box[1]
                        and box[2] <= other[3]
                        and other[2] <= box[3]
                    ):
                        pairs.add((a, b))
        for a, b in sorted(pairs):
            (i, a0, a1, _), (k, b0, b1, _) = lines[a], lines[b]
            if self._folded[i] == self._folded[k]:
                continue  # two stretches of one road do not make a junction
            gap, lat, lon = _closest_approach(a0, a1, b0, b1)
            if gap <= metres:
                yield i, k, Position(lat=round(lat, 6), lon=round(lon, 6))


def _cell(degrees: float, size: float) -> int:
    return math.floor(degrees / size)


def _between(a: Position, b: Position, share: float) -> Position:
    return Position(
        lat=round(a.lat + (b.lat - a.lat) * share, 6),
        lon=round(a.lon + (b.lon - a.lon) * share, 6),
    )


def _closest_approach(
    a0: Position, a1: Position, b0: Position, b1: Position
) -> tuple[float, float, float]:
    """The least distance in metres between segments a0-a1 and b0-b1, and the midpoint of
    their two closest points as (metres, lat, lon) (flat earth about a0: streets are
    short)."""
    metres = KM_PER_DEGREE_LATITUDE * 1000
    per_lon = math.cos(math.radians(a0.lat)) * metres
    lat_0, lon_0 = a0.lat, a0.lon
    p, q = _segment_closest(
        (0.0, 0.0),
        ((a1.lon - lon_0) * per_lon, (a1.lat - lat_0) * metres),
        ((b0.lon - lon_0) * per_lon, (b0.lat - lat_0) * metres),
        ((b1.lon - lon_0) * per_lon, (b1.lat - lat_0) * metres),
    )
    return (
        math.dist(p, q),
        lat_0 + (p[1] + q[1]) / 2 / metres,
        lon_0 + (p[0] + q[0]) / 2 / per_lon,
    )


def _segment_closest(
    p1: tuple[float, float],
    q1: tuple[float, float],
    p2: tuple[float, float],
    q2: tuple[float, float],
) -> tuple[tuple[float, float], tuple[float, float]]:
    """The closest points of two segments in the plane (Ericson, Real-Time Collision
    Detection, 5.1.9)."""
    d1 = (q1[0] - p1[0], q1[1] - p1[1])
    d2 = (q2[0] - p2[0], q2[1] - p2[1])
    r = (p1[0] - p2[0], p1[1] - p2[1])
    a = d1[0] ** 2 + d1[1] ** 2
    e = d2[0] ** 2 + d2[1] ** 2
    f = d2[0] * r[0] + d2[1] * r[1]
    eps = 1e-12
    if a <= eps and e <= eps:
        return p1, p2
    if a <= eps:
        s, t = 0.0, min(max(f / e, 0.0), 1.0)
    else:
        c = d1[0] * r[0] + d1[1] * r[1]
        if e <= eps:
            s, t = min(max(-c / a, 0.0), 1.0), 0.0
        else:
            b = d1[0] * d2[0] + d1[1] * d2[1]
            denom = a * e - b * b
            s = min(max((b * f - c * e) / denom, 0.0), 1.0) if denom > eps else 0.0
            t = (b * s + f) / e
            if t < 0.0:
                s, t = min(max(-c / a, 0.0), 1.0), 0.0
            elif t > 1.0:
                s, t = min(max((b - c) / a, 0.0), 1.0), 1.0
    return (p1[0] + d1[0] * s, p1[1] + d1[1] * s), (p2[0] + d2[0] * t, p2[1] + d2[1] * t)
