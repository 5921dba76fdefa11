"""The map's ground and raster: where a position falls on a grid of terminal cells.

A `MapWindow` is what part of the ground a map of `columns` by `rows` cells shows: a
centre and a zoom level (ground metres per cell's width). Positions are projected flat
(equirectangular about the centre: at town scale the error is far below a cell) and a
terminal cell is taken to be twice as tall as it is wide, so a square block of ground is
drawn square.

Sectors have no drawn boundaries in the picture: a `SectorField` derives their areas
from points known to lie in each sector (the gazetteer's streets and places, incident
locations). The ground is cut into bins; a bin takes the sector most of its points lie
in, and empty bins near known ground take their nearest seeded bin's sector. A boundary
is then wherever neighbouring dots fall in different sectors (or at the edge of known
ground), drawn with Braille dots (eight to a cell) or, on an ASCII terminal, with
``-``, ``|`` and ``.``.

Nothing here draws on a screen: `sector_canvas` returns one string per row and the
sector names to label, for `cadterm.domain.map_markers` and the console's map view.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from cadterm.domain.geography import KM_PER_DEGREE_LATITUDE
from cadterm.protocol.domain import Position

__all__ = [
    "CELL_ASPECT",
    "ZOOM_METRES",
    "Canvas",
    "MapWindow",
    "SectorField",
    "fit_window",
    "scale_words",
    "sector_canvas",
]

#: A terminal cell's height over its width, near enough for every common font.
CELL_ASPECT = 2.0

#: Ground metres across one cell, from the widest zoom (a county) to the closest (a street).
ZOOM_METRES: tuple[float, ...] = (2000, 1000, 500, 250, 125, 60, 30, 15)

_FOUR = ((-1, 0), (1, 0), (0, -1), (0, 1))
_EIGHT = (*_FOUR, (-1, -1), (-1, 1), (1, -1), (1, 1))

_BRAILLE = 0x2800
# Braille dot bits by (column, row) within a cell of 2 x 4 dots (Unicode's dot order).
_DOT_BIT = (
    (0x01, 0x02, 0x04, 0x40),
    (0x08, 0x10, 0x20, 0x80),
)


@dataclass(frozen=True)
class MapWindow:
    """The ground a map of `columns` x `rows` cells shows, around `centre`.

    `zoom` indexes `ZOOM_METRES`: higher is closer.
    """

    centre: Position
    zoom: int
    columns: int
    rows: int

    @property
    def metres_per_column(self) -> float:
        """Ground width of one cell."""
        return ZOOM_METRES[self.zoom]

    def _km(self) -> tuple[float, float, float]:
        """Kilometres per degree of longitude, and per cell across and down."""
        per_lon = KM_PER_DEGREE_LATITUDE * math.cos(math.radians(self.centre.lat))
        across = self.metres_per_column / 1000
        return per_lon, across, across * CELL_ASPECT

    def point(self, position: Position) -> tuple[float, float]:
        """Where `position` falls, in cells from the top-left corner (fractional)."""
        per_lon, across, down = self._km()
        x = self.columns / 2 + (position.lon - self.centre.lon) * (per_lon / across)
        y = self.rows / 2 - (position.lat - self.centre.lat) * (KM_PER_DEGREE_LATITUDE / down)
        return x, y

    def cell(self, position: Position) -> tuple[int, int] | None:
        """The cell `position` falls in, or None when it is off the map."""
        return self.projector()(position)

    def projector(self) -> Callable[[Position], tuple[int, int] | None]:
        """`cell` with the window's constants worked out once, for many positions."""
        per_lon, across, down = self._km()
        x0, y0 = self.columns / 2, self.rows / 2
        lat0, lon0 = self.centre.lat, self.centre.lon
        per_x, per_y = per_lon / across, KM_PER_DEGREE_LATITUDE / down
        columns, rows = self.columns, self.rows
        floor = math.floor

        def cell(position: Position) -> tuple[int, int] | None:
            column = floor(x0 + (position.lon - lon0) * per_x)
            row = floor(y0 - (position.lat - lat0) * per_y)
            if 0 <= column < columns and 0 <= row < rows:
                return column, row
            return None

        return cell

    def ground(self, x: float, y: float) -> tuple[float, float]:
        """The latitude and longitude at `x`, `y` cells from the top-left corner."""
        per_lon, across, down = self._km()
        lon = self.centre.lon + (x - self.columns / 2) * across / per_lon
        lat = self.centre.lat - (y - self.rows / 2) * down / KM_PER_DEGREE_LATITUDE
        return lat, lon

    def position_at(self, column: int, row: int) -> Position:
        """The ground at the middle of a cell."""
        lat, lon = self.ground(column + 0.5, row + 0.5)
        return Position(lat=max(-90.0, min(90.0, lat)), lon=_wrap(lon))

    def panned(self, columns: float, rows: float) -> MapWindow:
        """The window moved by `columns` across (east positive) and `rows` down."""
        return replace(self, centre=self.position_at_offset(columns, rows))

    def position_at_offset(self, columns: float, rows: float) -> Position:
        """The ground `columns` across and `rows` down from the centre."""
        lat, lon = self.ground(self.columns / 2 + columns, self.rows / 2 + rows)
        return Position(lat=max(-85.0, min(85.0, lat)), lon=_wrap(lon))

    def zoomed(self, steps: int) -> MapWindow:
        """Closer (`steps` > 0) or wider, kept within the zoom levels."""
        return replace(self, zoom=max(0, min(len(ZOOM_METRES) - 1, self.zoom + steps)))

    def centred(self, position: Position) -> MapWindow:
        """The same zoom, centred on `position`."""
        return replace(self, centre=position)

    def sized(self, columns: int, rows: int) -> MapWindow:
        """The same ground centre and zoom on a map of another size."""
        return replace(self, columns=max(0, columns), rows=max(0, rows))


def _wrap(lon: float) -> float:
    return (lon + 180.0) % 360.0 - 180.0 if not -180.0 <= lon <= 180.0 else lon


def fit_window(positions: Iterable[Position], columns: int, rows: int) -> MapWindow | None:
    """The closest zoom that shows every position, centred on them; None with none."""
    points = list(positions)
    if not points:
        return None
    south, north = min(p.lat for p in points), max(p.lat for p in points)
    west, east = min(p.lon for p in points), max(p.lon for p in points)
    centre = Position(lat=(south + north) / 2, lon=(west + east) / 2)
    for zoom in range(len(ZOOM_METRES) - 1, -1, -1):
        window = MapWindow(centre, zoom, columns, rows)
        corners = (Position(lat=south, lon=west), Position(lat=north, lon=east))
        if all(window.cell(corner) is not None for corner in corners):
            return window
    return MapWindow(centre, 0, columns, rows)


def scale_words(window: MapWindow) -> str:
    """The map's scale for its legend: ``1 col = 250 m`` or ``1 col = 2 km``."""
    metres = window.metres_per_column
    if metres >= 1000:
        return f"1 col = {metres / 1000:g} km"
    return f"1 col = {metres:g} m"


class SectorField:
    """Which sector any point lies in, derived from points known to lie in each sector.

    `reach_km` is how far beyond the last known point a sector's area runs (by default a
    sixth of the points' span, at least a kilometre); beyond it the ground is in no
    sector. Looking a point up is two multiplications and an index.
    """

    def __init__(
        self,
        points: Iterable[tuple[Position, str]],
        *,
        bin_km: float | None = None,
        reach_km: float | None = None,
    ) -> None:
        seeds = [(p, s) for p, s in points if s]
        self.sectors: tuple[str, ...] = tuple(sorted({s for _, s in seeds}))
        self._grid: list[list[int]] = []
        if not seeds:
            self._origin = (0.0, 0.0)
            self._step = (1.0, 1.0)
            return
        south = min(p.lat for p, _ in seeds)
        north = max(p.lat for p, _ in seeds)
        west = min(p.lon for p, _ in seeds)
        east = max(p.lon for p, _ in seeds)
        middle = math.radians((south + north) / 2)
        per_lon = KM_PER_DEGREE_LATITUDE * max(math.cos(middle), 0.01)
        span = max((north - south) * KM_PER_DEGREE_LATITUDE, (east - west) * per_lon)
        # At most ~400 bins a side, whatever the force's size: the grid is built once.
        step_km = bin_km if bin_km is not None else max(0.1, span / 400)
        # A few points far apart (a picture's incidents, no gazetteer) need a longer
        # reach than a gazetteer's hundreds of streets to show an area at all.
        reach = reach_km if reach_km is not None else max(1.0, span / 6)
        margin = math.ceil(reach / step_km)
        self._step = (step_km / KM_PER_DEGREE_LATITUDE, step_km / per_lon)
        self._origin = (north + margin * self._step[0], west - margin * self._step[1])
        height = int((north - south) / self._step[0]) + 2 * margin + 1
        width = int((east - west) / self._step[1]) + 2 * margin + 1
        votes: dict[tuple[int, int], Counter[int]] = {}
        number = {name: i for i, name in enumerate(self.sectors)}
        for position, sector in seeds:
            key = self.bin_of(position.lat, position.lon)
            votes.setdefault(key, Counter())[number[sector]] += 1
        grid = [[-1] * width for _ in range(height)]
        queue: deque[tuple[int, int, int]] = deque()
        for (row, column), count in votes.items():
            # Most points win; a tie goes to the first sector by name, so it is stable.
            best = min(count.items(), key=lambda item: (-item[1], item[0]))[0]
            grid[row][column] = best
            queue.append((row, column, 0))
        while queue:  # nearest seeded bin, out to the reach
            row, column, distance = queue.popleft()
            if distance >= margin:
                continue
            # Four neighbours then eight, turn about: the spread is an octagon, near a
            # circle, where four alone would grow diamonds and eight squares.
            steps = _EIGHT if distance % 2 else _FOUR
            for dr, dc in steps:
                r, c = row + dr, column + dc
                if 0 <= r < height and 0 <= c < width and grid[r][c] == -1:
                    grid[r][c] = grid[row][column]
                    queue.append((r, c, distance + 1))
        self._grid = grid

    def bin_of(self, lat: float, lon: float) -> tuple[int, int]:
        """The bin (row, column) a point falls in; it may lie off the grid."""
        return (
            math.floor((self._origin[0] - lat) / self._step[0]),
            math.floor((lon - self._origin[1]) / self._step[1]),
        )

    def sector_at(self, lat: float, lon: float) -> str | None:
        """The sector at a point, or None off the known ground."""
        index = self.index_at(*self.bin_of(lat, lon))
        return self.sectors[index] if index >= 0 else None

    def index_at(self, row: int, column: int) -> int:
        """The sector number of a bin (an index into `sectors`), -1 for none."""
        if 0 <= row < len(self._grid) and 0 <= column < len(self._grid[0]):
            return self._grid[row][column]
        return -1

    def __bool__(self) -> bool:
        return bool(self._grid)


@dataclass(frozen=True)
class Canvas:
    """A map's background: one string per row, and where each sector's name goes."""

    rows: tuple[str, ...]
    labels: tuple[tuple[int, int, str], ...]  # column, row, sector name


def sector_canvas(window: MapWindow, field: SectorField, *, unicode: bool = True) -> Canvas:
    """Sector boundaries across `window`, in Braille (or ASCII), and the sector labels.

    Each cell holds 2 x 4 dots; a dot is on when the ground under it is in another
    sector than the dot to its right or the dot below it.
    """
    columns, rows = window.columns, window.rows
    if columns <= 0 or rows <= 0:
        return Canvas((), ())
    if not field:
        return Canvas(tuple(" " * columns for _ in range(rows)), ())
    # Projection is separable: each dot column has one bin column, each dot row one bin row.
    dot_columns = [field.bin_of(window.centre.lat, window.ground((x + 0.5) / 2, 0)[1])[1]
                   for x in range(2 * columns + 1)]  # fmt: skip
    dot_rows = [field.bin_of(window.ground(0, (y + 0.5) / 4)[0], window.centre.lon)[0]
                for y in range(4 * rows + 1)]  # fmt: skip
    grid = [[field.index_at(r, c) for c in dot_columns] for r in dot_rows]
    sums: dict[int, list[int]] = {}
    lines = []
    for row in range(rows):
        chars = []
        for column in range(columns):
            bits = 0
            dots: list[tuple[int, int]] = []
            for dy in range(4):
                line, below = grid[4 * row + dy], grid[4 * row + dy + 1]
                for dx in range(2):
                    x = 2 * column + dx
                    here = line[x]
                    if here != line[x + 1] or here != below[x]:
                        bits |= _DOT_BIT[dx][dy]
                        dots.append((dx, dy))
            sector = grid[4 * row + 2][2 * column + 1]
            if sector >= 0:
                tally = sums.setdefault(sector, [0, 0, 0])
                tally[0] += column
                tally[1] += row
                tally[2] += 1
            chars.append(_cell_char(bits, dots, unicode))
        lines.append("".join(chars))
    labels = []
    for sector, (column_sum, row_sum, count) in sorted(sums.items()):
        name = field.sectors[sector]
        column = round(column_sum / count) - len(name) // 2
        labels.append((max(0, min(columns - len(name), column)), round(row_sum / count), name))
    return Canvas(tuple(lines), tuple(labels))


def _cell_char(bits: int, dots: Sequence[tuple[int, int]], unicode: bool) -> str:
    if not bits:
        return " "
    if unicode:
        return chr(_BRAILLE + bits)
    if len({dy for _, dy in dots}) == 1 and len(dots) > 1:
        return "-"
    if len({dx for dx, _ in dots}) == 1 and len(dots) > 1:
        return "|"
    return "."
