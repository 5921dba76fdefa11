"""Map markers: symbols that read without colour, no two in a cell, the selection marked."""

from __future__ import annotations

from datetime import UTC, date, datetime

from cadterm.domain.geography import offset
from cadterm.domain.map_grid import Canvas, MapWindow
from cadterm.domain.map_markers import (
    UNIT_LETTER,
    MapMarkers,
    Marker,
    MarkerLayout,
    compose_rows,
    incident_key,
    legend,
    marker_name,
    place_markers,
    unit_key,
)
from cadterm.protocol.domain import Location, Position, UnitState
from cadterm.protocol.events import (
    IncidentClosed,
    IncidentCreated,
    UnitBookedOn,
    UnitLocated,
    UnitStateChanged,
)
from cadterm.protocol.fold import fold

CENTRE = Position(lat=53.80, lon=-1.55)
AT = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
WINDOW = MapWindow(CENTRE, 3, 40, 10)


def _marker(key: str, position: Position = CENTRE, symbol: str = "A", rank: int = 7) -> Marker:
    return Marker(key, position, symbol, "unit-available", rank)


def _event(cls: type, seq: int, **fields):
    return cls(seq=seq, at=AT, operator="disp1", workstation="ws-1", **fields)


def _picture():
    events = [
        _event(
            IncidentCreated,
            1,
            reference="0001-27NOV26",
            log_day=date(2026, 11, 27),
            grade=1,
            incident_type="ASSAULT",
            location=Location(address="Market Square", position=CENTRE, sector="N"),
            source="999",
        ),
        _event(
            IncidentCreated,
            2,
            reference="0002-27NOV26",
            log_day=date(2026, 11, 27),
            grade=3,
            incident_type="THEFT",
            location=Location(address="somewhere unverified"),  # no position: not mapped
            source="999",
        ),
        _event(
            UnitBookedOn,
            3,
            callsign="AB12",
            unit_type="patrol_car",
            capabilities=[],
            home_sector="N",
            position=offset(CENTRE, 0.5, 0.5),
        ),
        _event(
            UnitBookedOn,
            4,
            callsign="AB13",
            unit_type="patrol_car",
            capabilities=[],
            home_sector="N",
        ),  # no fix yet: not mapped
    ]
    return events


def test_every_unit_state_but_off_duty_has_a_letter_and_emergency_is_a_sign() -> None:
    assert set(UNIT_LETTER) == set(UnitState) - {UnitState.OFF_DUTY}
    assert UNIT_LETTER[UnitState.EMERGENCY] == "!"
    assert UNIT_LETTER[UnitState.AVAILABLE_ON_PATROL] == "A"
    assert UNIT_LETTER[UnitState.EN_ROUTE] == "E"
    assert UNIT_LETTER[UnitState.AT_SCENE] == "S"


def test_markers_follow_the_picture_one_change_at_a_time() -> None:
    events = _picture()
    state = fold(events)
    markers = MapMarkers()
    markers.reload(state)
    assert set(markers.by_key) == {incident_key("0001-27NOV26"), unit_key("AB12")}
    assert markers.by_key[incident_key("0001-27NOV26")].symbol == "1"
    assert markers.by_key[unit_key("AB12")].symbol == "A"

    events.append(_event(UnitStateChanged, 5, callsign="AB12", state=UnitState.EMERGENCY))
    events.append(
        _event(UnitLocated, 6, callsign="AB13", position=CENTRE, fixed_at=AT)
    )  # a first fix: now mapped
    events.append(_event(IncidentClosed, 7, reference="0001-27NOV26", closing_code="NFA"))
    state = fold(events)
    changed = markers.update(state, ["0001-27NOV26", "0002-27NOV26"], ["AB12", "AB13"])
    assert changed == {incident_key("0001-27NOV26"), unit_key("AB12"), unit_key("AB13")}
    assert incident_key("0001-27NOV26") not in markers.by_key  # closed: off the map
    assert markers.by_key[unit_key("AB12")].symbol == "!"
    assert markers.update(state, ["0002-27NOV26"], ["AB12"]) == set()  # nothing new


def test_two_markers_never_share_a_cell_the_more_urgent_keeps_it() -> None:
    emergency = _marker("unit:AB15", symbol="!", rank=0)
    patrol = _marker("unit:AB12", symbol="A", rank=7)
    placement = place_markers(WINDOW, [patrol, emergency])
    assert placement.at["unit:AB15"] == WINDOW.cell(CENTRE)
    assert placement.at["unit:AB12"] != placement.at["unit:AB15"]
    column, row = placement.at["unit:AB12"]
    home = WINDOW.cell(CENTRE)
    assert abs(column - home[0]) <= 1 and abs(row - home[1]) <= 1  # beside it


def test_a_full_neighbourhood_counts_as_crowded_never_overdrawn() -> None:
    markers = [_marker(f"unit:U{i:02d}") for i in range(12)]
    placement = place_markers(WINDOW, markers)
    assert len(placement.at) == 9  # the cell and its eight neighbours
    assert placement.crowded == 3
    assert len({cell for cell in placement.at.values()}) == 9


def test_off_the_map_is_counted() -> None:
    far = _marker("unit:FAR", position=offset(CENTRE, 0.0, 50.0))
    placement = place_markers(WINDOW, [far, _marker("unit:NEAR")])
    assert placement.off_map == 1
    assert set(placement.at) == {"unit:NEAR"}


def test_the_selected_marker_is_bracketed_and_placed_first() -> None:
    grade_one = Marker("incident:0001", CENTRE, "1", "grade-1", 1)
    selected = _marker("unit:AB12")
    placement = place_markers(WINDOW, [grade_one, selected], selected="unit:AB12")
    column, row = placement.at["unit:AB12"]
    cells = placement.cells[row]
    assert cells[column] == ("A", "selected")
    assert cells[column - 1] == ("[", "selected-mark")
    assert cells[column + 1] == ("]", "selected-mark")
    assert placement.at["incident:0001"] not in {(column + d, row) for d in (-1, 0, 1)}


def test_reading_order_is_top_to_bottom_left_to_right() -> None:
    markers = [
        _marker("unit:LOW", offset(CENTRE, -1.0, -2.0)),
        _marker("unit:HIGH_RIGHT", offset(CENTRE, 1.0, 2.0)),
        _marker("unit:HIGH_LEFT", offset(CENTRE, 1.0, -2.0)),
    ]
    placement = place_markers(WINDOW, markers)
    assert placement.keys_in_reading_order() == ["unit:HIGH_LEFT", "unit:HIGH_RIGHT", "unit:LOW"]


def test_reading_order_holds_whatever_is_selected_and_reaches_crowded_markers() -> None:
    markers = [_marker(f"unit:U{i:02d}") for i in range(12)]
    order = place_markers(WINDOW, markers).keys_in_reading_order()
    assert len(order) == 12  # the three crowded out are still reachable
    crowded = place_markers(WINDOW, markers, selected="unit:U11")
    assert crowded.keys_in_reading_order() == order
    assert "unit:U11" in crowded.at  # selected, it is drawn


def test_rows_are_runs_of_the_window_width_with_markers_over_the_canvas() -> None:
    canvas = Canvas(tuple("\u2847" * 40 for _ in range(10)), ((2, 5, "NORTH"),))
    placement = place_markers(WINDOW, [_marker("unit:AB12")])
    rows = compose_rows(canvas, placement, 40, 10)
    assert len(rows) == 10
    for row in rows:
        assert sum(len(text) for text, _ in row) == 40
    column, row = placement.at["unit:AB12"]
    text = "".join(t for t, _ in rows[row])
    assert text[column] == "A"
    tags = [tag for t, tag in rows[row] for _ in t]
    assert tags[column] == "unit-available"
    assert tags[column - 1] == "boundary"


def test_a_label_moves_off_markers_rather_than_be_run_through() -> None:
    canvas = Canvas(tuple(" " * 40 for _ in range(10)), ((18, 5, "LS3"),))
    cell = WINDOW.cell(CENTRE)
    assert cell == (20, 5)  # the marker sits on the label's own row, inside it
    rows = compose_rows(canvas, place_markers(WINDOW, [_marker("unit:AB12")]), 40, 10)
    texts = ["".join(t for t, _ in row) for row in rows]
    assert "LS3" not in texts[5]
    assert "LS3" in texts[6]


def test_legend_fits_the_width_and_names_every_symbol() -> None:
    for width in (80, 160):
        line = legend(width)
        assert len(line) <= width
        for symbol in (*set(UNIT_LETTER.values()), "1-5", "[x]"):
            assert symbol in line


def test_marker_name() -> None:
    assert marker_name(incident_key("0001-27NOV26")) == ("incident", "0001-27NOV26")
    assert marker_name(unit_key("ARV 1")) == ("unit", "ARV 1")


def test_a_layout_places_as_place_markers_and_knows_when_a_move_changes_nothing() -> None:
    events = _picture()
    state = fold(events)
    markers = MapMarkers()
    markers.reload(state)
    layout = MarkerLayout(WINDOW, markers)
    assert layout.place("unit:AB12") == place_markers(WINDOW, markers, "unit:AB12")

    def move(seq: int, north_km: float, east_km: float) -> bool:
        where = offset(state.units["AB12"].position, north_km, east_km)
        events.append(_event(UnitLocated, seq, callsign="AB12", position=where, fixed_at=AT))
        before = dict(markers.by_key)
        changed = markers.update(fold(events), [], ["AB12"])
        assert changed == {unit_key("AB12")}
        return layout.follow(before, changed)

    home = WINDOW.cell(markers.by_key[unit_key("AB12")].position)
    column_left = WINDOW.point(markers.by_key[unit_key("AB12")].position)[0] - home[0]
    # A step too small to leave the cell (a tenth of its width, away from its edge).
    step = 0.025 if column_left < 0.8 else -0.025
    assert not move(5, 0.0, step)
    state = fold(events)
    assert move(6, 0.0, 1.0)  # four columns: another cell
    state = fold(events)
    assert layout.place() == place_markers(WINDOW, markers)
    far = offset(CENTRE, 0.0, 50.0)
    events.append(_event(UnitLocated, 7, callsign="AB12", position=far, fixed_at=AT))
    before = dict(markers.by_key)
    assert layout.follow(before, markers.update(fold(events), [], ["AB12"]))  # off the map
    assert layout.place().off_map == 1
