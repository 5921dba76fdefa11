"""The map's ground: projection onto cells, zoom and pan, sector areas, the boundary canvas."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cadterm.domain.geography import haversine_km, offset
from cadterm.domain.map_grid import (
    ZOOM_METRES,
    MapWindow,
    SectorField,
    fit_window,
    scale_words,
    sector_canvas,
)
from cadterm.protocol.domain import Position

CENTRE = Position(lat=53.80, lon=-1.55)


def window(zoom: int = 3, columns: int = 80, rows: int = 20) -> MapWindow:
    return MapWindow(CENTRE, zoom, columns, rows)


def test_the_centre_is_the_middle_cell_north_is_up_east_is_right() -> None:
    w = window()
    assert w.cell(CENTRE) == (40, 10)
    # Ground a little past a cell's edge, so rounding to six decimals cannot cross it.
    north = offset(CENTRE, north_km=1.1, east_km=0.0)
    east = offset(CENTRE, north_km=0.0, east_km=1.1)
    assert w.cell(north) == (40, 7)  # 1.1 km at 500 m a row: 2.2 rows up
    assert w.cell(east) == (44, 10)  # 1.1 km at 250 m a column: 4.4 columns right


def test_a_square_of_ground_is_drawn_square() -> None:
    """A cell is twice as tall as wide: a kilometre north spans half the cells of one east."""
    w = window()
    x0, y0 = w.point(CENTRE)
    x1, _ = w.point(offset(CENTRE, 0.0, 2.0))
    _, y1 = w.point(offset(CENTRE, 2.0, 0.0))
    assert x1 - x0 == pytest.approx(2 * (y0 - y1), rel=1e-3)


def test_off_the_map_is_none() -> None:
    w = window()
    assert w.cell(offset(CENTRE, 0.0, 11.0)) is None  # 80 columns of 250 m: 10 km each way
    assert w.cell(offset(CENTRE, -6.0, 0.0)) is None


@given(
    columns=st.floats(min_value=0, max_value=79.99),
    rows=st.floats(min_value=0, max_value=19.99),
    zoom=st.integers(min_value=0, max_value=len(ZOOM_METRES) - 1),
)
def test_a_cells_ground_projects_back_into_that_cell(
    columns: float, rows: float, zoom: int
) -> None:
    w = window(zoom)
    cell = (int(columns), int(rows))
    assert w.cell(w.position_at(*cell)) == cell


def test_pan_moves_the_centre_by_cells_and_zoom_stays_within_levels() -> None:
    w = window()
    east = w.panned(20, 0)
    assert haversine_km(CENTRE, east.centre) == pytest.approx(20 * 0.25, rel=1e-3)
    assert east.centre.lon > CENTRE.lon
    south = w.panned(0, 5)
    assert south.centre.lat < CENTRE.lat
    assert w.zoomed(100).zoom == len(ZOOM_METRES) - 1
    assert w.zoomed(-100).zoom == 0
    assert w.zoomed(1).metres_per_column == w.metres_per_column / 2


def test_fit_shows_every_point_at_the_closest_zoom_that_holds_them() -> None:
    points = [offset(CENTRE, 3.0, -4.0), offset(CENTRE, -2.0, 5.0), CENTRE]
    fitted = fit_window(points, 80, 20)
    assert fitted is not None
    assert all(fitted.cell(p) is not None for p in points)
    closer = fitted.zoomed(1)
    assert closer.zoom == fitted.zoom + 1
    assert any(closer.cell(p) is None for p in points)
    assert fit_window([], 80, 20) is None


def test_scale_words() -> None:
    assert scale_words(window(3)) == "1 col = 250 m"
    assert scale_words(window(0)) == "1 col = 2 km"


def _two_sectors() -> SectorField:
    """West of the centre is WEST, east is EAST: a line of points each side."""
    points = []
    for north in range(-5, 6):
        points.append((offset(CENTRE, north * 0.2, -1.0), "WEST"))
        points.append((offset(CENTRE, north * 0.2, 1.0), "EAST"))
    return SectorField(points, bin_km=0.1, reach_km=1.5)


def test_sector_field_places_points_in_the_nearest_known_sector() -> None:
    field = _two_sectors()
    assert field.sectors == ("EAST", "WEST")
    west = offset(CENTRE, 0.0, -0.7)
    east = offset(CENTRE, 0.0, 0.6)
    assert field.sector_at(west.lat, west.lon) == "WEST"
    assert field.sector_at(east.lat, east.lon) == "EAST"
    far = offset(CENTRE, 0.0, 5.0)  # beyond the reach: no sector
    assert field.sector_at(far.lat, far.lon) is None


def test_a_bin_goes_to_the_sector_most_of_its_points_are_in() -> None:
    points = [(CENTRE, "A"), (CENTRE, "B"), (CENTRE, "B")]
    field = SectorField(points, bin_km=0.1, reach_km=0.2)
    assert field.sector_at(CENTRE.lat, CENTRE.lon) == "B"


def test_canvas_draws_the_boundary_between_two_sectors_and_labels_them() -> None:
    w = window(4)  # 125 m a column: the 2 km between the lines is 16 columns
    canvas = sector_canvas(w, _two_sectors())
    assert len(canvas.rows) == 20
    assert all(len(row) == 80 for row in canvas.rows)
    # The boundary runs north-south through the middle column.
    assert canvas.rows[10][39] != " " or canvas.rows[10][40] != " "
    assert all("\u2800" <= c <= "\u28ff" or c == " " for row in canvas.rows for c in row)
    names = {name for _, _, name in canvas.labels}
    assert names == {"EAST", "WEST"}
    west = next(column for column, _, name in canvas.labels if name == "WEST")
    east = next(column for column, _, name in canvas.labels if name == "EAST")
    assert west < 40 < east


def test_ascii_canvas_has_only_ascii_and_draws_the_same_cells() -> None:
    w = window(4)
    braille = sector_canvas(w, _two_sectors())
    ascii_ = sector_canvas(w, _two_sectors(), unicode=False)
    assert all(c in " -|." for row in ascii_.rows for c in row)
    for b_row, a_row in zip(braille.rows, ascii_.rows, strict=True):
        assert [c == " " for c in b_row] == [c == " " for c in a_row]
    # A north-south boundary reads as a vertical line.
    assert "|" in "".join(ascii_.rows)


def test_no_known_sector_is_a_blank_canvas() -> None:
    canvas = sector_canvas(window(), SectorField(()))
    assert canvas.rows == tuple(" " * 80 for _ in range(20))
    assert canvas.labels == ()
    assert sector_canvas(window(columns=0), _two_sectors()).rows == ()
