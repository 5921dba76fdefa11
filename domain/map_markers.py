"""What the map shows on its ground: incidents by grade, units by state, the selection.

Every marker reads without colour: an open incident is its grade's digit (``1`` to
``5``), a unit is its state's letter (`UNIT_LETTER`: ``A`` available, ``E`` en route,
``S`` at scene, ``!`` emergency, ...), and the selected one is shown reversed between
brackets (``[S]``). Colour only adds to that, through each marker's *tag*, which the
console turns into a theme's style.

Two markers never share a cell. They are placed most urgent first (`Marker.rank`: an
emergency, then grade 1s, ...); one whose cell is taken moves to the nearest free
neighbour, and one with none left is counted as *crowded*, never drawn over another.
`compose_rows` lays the placed markers over the sector canvas as runs of
``(text, tag)``, one tuple per screen row, so a view can tell which rows changed by
comparing tuples.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from cadterm.protocol.domain import Incident, IncidentStatus, Position, Unit, UnitState
from cadterm.protocol.fold import DispatchState

from .map_grid import Canvas, MapWindow

__all__ = [
    "UNIT_LETTER",
    "MapMarkers",
    "Marker",
    "MarkerLayout",
    "Placement",
    "Row",
    "compose_rows",
    "incident_key",
    "legend",
    "marker_name",
    "place_markers",
    "unit_key",
]

#: One letter (or sign) per unit state, so the map reads on a terminal without colour.
UNIT_LETTER: Mapping[UnitState, str] = {
    UnitState.EMERGENCY: "!",
    UnitState.ON_DUTY: "O",
    UnitState.AVAILABLE_ON_PATROL: "A",
    UnitState.AVAILABLE_AT_STATION: "A",
    UnitState.REFRESHMENTS: "R",
    UnitState.EN_ROUTE: "E",
    UnitState.AT_SCENE: "S",
    UnitState.COMMITTED_DEPLOYABLE: "C",
    UnitState.COMMITTED_NOT_DEPLOYABLE: "C",
    UnitState.PRISONER_ESCORT: "U",
    UnitState.AT_COURT: "U",
}

_UNIT_TAG = {
    UnitState.EMERGENCY: "unit-emergency",
    UnitState.ON_DUTY: "unit-available",
    UnitState.AVAILABLE_ON_PATROL: "unit-available",
    UnitState.AVAILABLE_AT_STATION: "unit-available",
    UnitState.REFRESHMENTS: "unit-unavailable",
    UnitState.EN_ROUTE: "unit-committed",
    UnitState.AT_SCENE: "unit-committed",
    UnitState.COMMITTED_DEPLOYABLE: "unit-committed",
    UnitState.COMMITTED_NOT_DEPLOYABLE: "unit-committed",
    UnitState.PRISONER_ESCORT: "unit-unavailable",
    UnitState.AT_COURT: "unit-unavailable",
}

# Which marker keeps a contested cell: lower first. An emergency is never crowded out.
_RANK_EMERGENCY = 0
_RANK_GRADE = 1  # + grade - 1: grade 1 is rank 1, grade 5 rank 5
_RANK_COMMITTED = 6
_RANK_OTHER_UNIT = 7

# Where a marker goes when its own cell is taken: beside it, then above and below.
_NEIGHBOURS = ((0, 0), (1, 0), (-1, 0), (0, -1), (0, 1), (1, -1), (-1, -1), (1, 1), (-1, 1))

_INCIDENT = "incident:"
_UNIT = "unit:"

#: One screen row of the map: runs of text, each with its style tag ("" for plain).
Row = tuple[tuple[str, str], ...]


def incident_key(reference: str) -> str:
    """The marker key of an incident."""
    return _INCIDENT + reference


def unit_key(callsign: str) -> str:
    """The marker key of a unit."""
    return _UNIT + callsign


def marker_name(key: str) -> tuple[str, str]:
    """A marker key as its kind (``incident`` or ``unit``) and its reference or callsign."""
    kind, _, name = key.partition(":")
    return kind, name


@dataclass(frozen=True, slots=True)
class Marker:
    """One incident or unit on the map: where, its one-character symbol, its style tag."""

    key: str
    position: Position
    symbol: str
    tag: str
    rank: int


def incident_marker(incident: Incident) -> Marker | None:
    """An open incident with a known position, as its grade's digit; else None."""
    position = incident.location.position
    if position is None or incident.status == IncidentStatus.CLOSED:
        return None
    grade = int(incident.grade)
    return Marker(
        incident_key(incident.reference),
        position,
        str(grade),
        f"grade-{grade}",
        _RANK_GRADE + grade - 1,
    )


def unit_marker(unit: Unit) -> Marker | None:
    """An on-duty unit with a last fix, as its state's letter; else None."""
    letter = UNIT_LETTER.get(unit.state)
    if unit.position is None or letter is None:
        return None
    tag = _UNIT_TAG[unit.state]
    if unit.state == UnitState.EMERGENCY:
        rank = _RANK_EMERGENCY
    elif tag == "unit-committed":
        rank = _RANK_COMMITTED
    else:
        rank = _RANK_OTHER_UNIT
    return Marker(unit_key(unit.callsign), unit.position, letter, tag, rank)


def _same(a: Marker, b: Marker) -> bool:
    # Field by field: comparing the two `Position` models whole is pydantic's slow path,
    # and two thousand moving units compare every marker they touch.
    return (
        a.position.lat == b.position.lat
        and a.position.lon == b.position.lon
        and a.symbol == b.symbol
        and a.tag == b.tag
        and a.rank == b.rank
    )


class MapMarkers:
    """The picture's markers by key, kept up to date one changed incident or unit at a time."""

    def __init__(self) -> None:
        self.by_key: dict[str, Marker] = {}

    def reload(self, state: DispatchState) -> None:
        """Every marker afresh from `state`."""
        self.by_key.clear()
        self.update(state, state.incidents.keys(), state.units.keys())

    def update(
        self, state: DispatchState, incidents: Iterable[str], units: Iterable[str]
    ) -> set[str]:
        """Follow changed incidents and units; returns the keys whose marker changed."""
        changed = set()
        for reference in incidents:
            incident = state.incidents.get(reference)
            changed |= self._put(
                incident_key(reference), incident_marker(incident) if incident else None
            )
        for callsign in units:
            unit = state.units.get(callsign)
            changed |= self._put(unit_key(callsign), unit_marker(unit) if unit else None)
        return changed

    def _put(self, key: str, marker: Marker | None) -> set[str]:
        before = self.by_key.get(key)
        if marker is None:
            if before is None:
                return set()
            del self.by_key[key]
        elif before is not None and _same(before, marker):
            return set()
        else:
            self.by_key[key] = marker
        return {key}

    def __iter__(self) -> Iterator[Marker]:
        return iter(self.by_key.values())

    def __len__(self) -> int:
        return len(self.by_key)


@dataclass
class Placement:
    """Where each marker landed on one window.

    `cells` maps a row to its columns' ``(character, tag)``; `at` maps a marker key to
    its cell; `crowded` counts markers in the window that found no free cell, `off_map`
    markers outside it.
    """

    cells: dict[int, dict[int, tuple[str, str]]] = field(default_factory=dict)
    at: dict[str, tuple[int, int]] = field(default_factory=dict)
    crowded: int = 0
    off_map: int = 0
    _in_window: list[tuple[int, int, str]] = field(default_factory=list)

    def keys_in_reading_order(self) -> list[str]:
        """Every marker in the window, top row first, left to right (for next/previous).

        By where each marker is, not where it was drawn, so the order does not shift as
        the selection moves; a crowded marker is in it too, and shows once selected.
        """
        return [key for _, _, key in sorted(self._in_window)]

    def _put(self, column: int, row: int, character: str, tag: str) -> None:
        self.cells.setdefault(row, {})[column] = (character, tag)


def place_markers(
    window: MapWindow, markers: Iterable[Marker], selected: str | None = None
) -> Placement:
    """Place `markers` on `window`, most urgent first; `selected` is bracketed."""
    cell_of = window.projector()
    ordered = sorted(markers, key=lambda m: (m.rank, m.key))
    return _place(window, [(m, cell_of(m.position)) for m in ordered], selected)


class MarkerLayout:
    """Every marker's home cell on one window, kept as markers change, placed on demand.

    Placing needs each marker's cell and the markers in order of urgency; working both
    out afresh for thousands of units every frame is most of the cost, so they are
    kept, and only a changed marker's cell is worked out again (`follow`).
    """

    def __init__(self, window: MapWindow, markers: MapMarkers) -> None:
        self.window = window
        self._markers = markers
        self._cell_of = window.projector()
        self._homes = {key: self._cell_of(m.position) for key, m in markers.by_key.items()}
        self._order: list[str] | None = None  # keys by urgency; None: sort again

    def follow(self, before: Mapping[str, Marker | None], changed: Iterable[str]) -> bool:
        """Take in changed markers (`before` holds what they were); whether the map may
        now look different. A marker that stays in its cell, looking the same, does not
        change the map, nor does one that moves about off it."""
        differs = False
        by_key = self._markers.by_key
        for key in changed:
            old, new = before.get(key), by_key.get(key)
            if new is None or old is None:  # gone or new: the order and the counts change
                self._order = None
                differs = True
                if new is None:
                    self._homes.pop(key, None)
                    continue
            elif old.rank != new.rank:
                self._order = None
            cell = self._cell_of(new.position)
            looks_changed = old is not None and (old.symbol, old.tag) != (new.symbol, new.tag)
            if looks_changed or cell != self._homes.get(key):
                differs = True
            self._homes[key] = cell
        return differs

    def place(self, selected: str | None = None) -> Placement:
        """Place every marker, most urgent first; `selected` is bracketed."""
        by_key = self._markers.by_key
        if self._order is None:
            self._order = sorted(by_key, key=lambda key: (by_key[key].rank, key))
        homes = self._homes
        return _place(self.window, [(by_key[key], homes[key]) for key in self._order], selected)


def _place(
    window: MapWindow,
    ordered: list[tuple[Marker, tuple[int, int] | None]],
    selected: str | None,
) -> Placement:
    placement = Placement()
    columns, rows = window.columns, window.rows
    cells, at, in_window = placement.cells, placement.at, placement._in_window
    chosen = next((pair for pair in ordered if pair[0].key == selected), None)
    if chosen is not None:
        marker, cell = chosen
        if cell is None:
            placement.off_map += 1
        else:
            column, row = cell
            in_window.append((row, column, marker.key))
            placement._put(column, row, marker.symbol, "selected")
            at[marker.key] = cell
            if column > 0:
                placement._put(column - 1, row, "[", "selected-mark")
            if column + 1 < columns:
                placement._put(column + 1, row, "]", "selected-mark")
    # Cells whose whole neighbourhood is taken: a marker there is crowded at once. Cells
    # are never freed while placing, so a full neighbourhood stays full; without this a
    # dense county at a wide zoom would search nine cells for each of thousands.
    full: set[tuple[int, int]] = set()
    for pair in ordered:
        if pair is chosen:
            continue
        marker, cell = pair
        if cell is None:
            placement.off_map += 1
            continue
        home_column, home_row = cell
        in_window.append((home_row, home_column, marker.key))
        if cell in full:
            placement.crowded += 1
            continue
        for dx, dy in _NEIGHBOURS:
            column, row = home_column + dx, home_row + dy
            if not (0 <= column < columns and 0 <= row < rows):
                continue
            line = cells.get(row)
            if line is None:
                line = cells[row] = {}
            elif column in line:
                continue
            line[column] = (marker.symbol, marker.tag)
            at[marker.key] = (column, row)
            break
        else:
            full.add(cell)
            placement.crowded += 1
    return placement


def _label_rows(
    canvas: Canvas, placement: Placement, rows: int
) -> dict[int, list[tuple[int, str]]]:
    """Where each sector's name goes: its own row, or the nearest with no marker in the way.

    A name run through by markers ("L43" for LS3 with a 4 and a 3 on it) misleads, so
    a label moves off them, or is left out when every nearby row is taken.
    """
    placed: dict[int, list[tuple[int, str]]] = {}
    for column, row, name in canvas.labels:
        for r in (row, row + 1, row - 1, row + 2, row - 2):
            if not 0 <= r < rows:
                continue
            taken = placement.cells.get(r, {})
            if not any(c in taken for c in range(column - 1, column + len(name) + 1)):
                placed.setdefault(r, []).append((column, name))
                break
    return placed


def compose_rows(canvas: Canvas, placement: Placement, columns: int, rows: int) -> list[Row]:
    """Every map row as runs of ``(text, tag)``: the canvas, labels, then the markers."""
    labels = _label_rows(canvas, placement, rows)
    out = []
    for row in range(rows):
        line = canvas.rows[row] if row < len(canvas.rows) else ""
        cells = [(c, "boundary" if c != " " else "") for c in line[:columns].ljust(columns)]
        for column, name in labels.get(row, ()):
            for i, character in enumerate(name[: max(0, columns - column)]):
                cells[column + i] = (character, "label")
        for column, cell in placement.cells.get(row, {}).items():
            cells[column] = cell
        out.append(_runs(cells))
    return out


def _runs(cells: list[tuple[str, str]]) -> Row:
    runs: list[tuple[str, str]] = []
    text: list[str] = []
    tag = None
    for character, cell_tag in cells:
        if cell_tag != tag and text:
            runs.append(("".join(text), tag or ""))
            text = []
        tag = cell_tag
        text.append(character)
    if text:
        runs.append(("".join(text), tag or ""))
    return tuple(runs)


def legend(width: int) -> str:
    """The key to the map's symbols, as much of it as fits in `width` cells."""
    long = (
        "incident: 1-5 grade   unit: A avail  O on duty  E en route  S scene  "
        "C committed  R refs  U unavail  ! EMERGENCY   [x] selected"
    )
    short = "1-5 grade  A avail O duty E enrt S scene C comm R refs U unav ! EMERG [x] sel"
    return long if len(long) <= width else short[:width]
