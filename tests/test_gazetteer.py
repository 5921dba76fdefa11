"""The gazetteer: completing and matching locations, junctions, and the CSV a force supplies."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadterm.cli.main import main
from cadterm.domain.gazetteer import Entry, EntryKind, Gazetteer, MatchKind, fold
from cadterm.domain.gazetteer_csv import (
    GazetteerFileError,
    read_gazetteer_csv,
    write_gazetteer_csv,
)
from cadterm.domain.geography import haversine_km, offset
from cadterm.protocol.domain import Position
from cadterm.sim.city import BRACKLEY
from cadterm.sim.gazetteer import (
    BRACKLEY_CSV,
    brackley_csv_text,
    brackley_gazetteer,
    city_entries,
)

HEADER = "kind,name,sector,lat,lon,end_lat,end_lon,first_house,last_house,locality,aliases\n"


@pytest.fixture(scope="module")
def demo() -> Gazetteer:
    return brackley_gazetteer()


def street(name: str, start: Position, end: Position, **more) -> Entry:
    return Entry(EntryKind.STREET, name, start, sector="Town", end=end, **more)


def place(name: str, at: Position, **more) -> Entry:
    return Entry(EntryKind.PLACE, name, at, sector="Town", **more)


ORIGIN = Position(lat=53.8, lon=-1.55)


def metres(a: Position, b: Position) -> float:
    return haversine_km(a, b) * 1000


# --- completion --------------------------------------------------------------------------


def test_a_house_number_and_the_start_of_a_street_complete_to_a_demo_street(demo) -> None:
    assert demo.complete("37 Gas") == ["37 Gasworks Row"]


def test_completion_ignores_case_spacing_and_punctuation(demo) -> None:
    for typed in ("Market Sq", "market   sq", "MARKET SQ.", "  market s"):
        assert demo.complete(typed)[0] == "Market Square", typed
    assert demo.complete("weavers cl") == ["Weaver's Close"]
    assert demo.complete("the crown & anch") == ["The Crown and Anchor"]


def test_common_abbreviations_read_as_their_words(demo) -> None:
    assert demo.complete("Beckett Ave") == ["Beckett Avenue"]
    assert demo.complete("Vicar Ln") == ["Vicar Lane"]
    assert demo.complete("Halton Cres") == ["Halton Crescent"]
    assert demo.complete("Moor Rd R") == ["Moor Road Roundabout"]
    # "St" opening a name is Saint; anywhere else it is Street.
    assert demo.complete("St Wilf") == ["St Wilfrid's Church"]
    assert demo.complete("Saint Wilfrids") == ["St Wilfrid's Church"]
    assert demo.complete("Albion St") == ["Albion Street"]


def test_a_later_word_completes_after_names_that_start_with_it(demo) -> None:
    assert demo.complete("Wilfrid") == ["St Wilfrid's Church"]
    found = demo.complete("Abbey")
    assert found[:2] == ["Abbey Mills", "Abbey Terrace"]
    # Aliases complete to the name that is recorded.
    assert demo.complete("BGI") == ["Brackley General Infirmary"]
    assert demo.complete("The Infirm") == ["Brackley General Infirmary"]


def test_ranking_exact_then_start_then_later_word_alphabetical_within() -> None:
    g = Gazetteer(
        [
            place("Park Lane Stores", ORIGIN),
            place("Park", ORIGIN),
            place("Parkside", ORIGIN),
            place("Alder Park", ORIGIN),
            place("Ash Park", ORIGIN),
        ]
    )
    assert g.complete("park") == ["Park", "Park Lane Stores", "Parkside", "Alder Park", "Ash Park"]
    assert g.complete("park", limit=2) == ["Park", "Park Lane Stores"]
    assert g.complete("") == []
    assert g.complete("zzz") == []


def test_a_house_number_completes_streets_that_have_that_house_first() -> None:
    short = street("Mill Lane", ORIGIN, offset(ORIGIN, 0.3, 0), first_house=1, last_house=20)
    long = street("Mill Road", ORIGIN, offset(ORIGIN, 0, 0.6), first_house=1, last_house=200)
    g = Gazetteer([short, long, place("Mill Pond", ORIGIN)])
    assert g.complete("150 Mill") == ["150 Mill Road", "150 Mill Lane"]
    assert g.complete("12 Mill") == ["12 Mill Lane", "12 Mill Road"]
    assert g.complete("12b mill r") == ["12b Mill Road"]


def test_junctions_complete_from_either_street(demo) -> None:
    assert demo.complete("junction of Albion St and ") == [
        "junction of Albion Street and Mercer Row"
    ]
    assert demo.complete("junction of Albion St and Me") == [
        "junction of Albion Street and Mercer Row"
    ]
    assert demo.complete("junction of Mercer") == ["junction of Mercer Row and Albion Street"]
    assert demo.complete("j/o moor rd & beck") == ["junction of Moor Road and Beckett Avenue"]
    assert demo.complete("junction of Albion St and Tong") == []


# --- matching ----------------------------------------------------------------------------


def test_a_house_is_placed_where_the_simulator_puts_it(demo) -> None:
    for each in BRACKLEY.streets:
        for number in (1, each.houses // 2, each.houses):
            found = demo.match(f"{number} {each.name}")
            assert found is not None
            assert found.kind is MatchKind.HOUSE
            assert found.address == f"{number} {each.name}"
            assert found.position == each.position_of(number)
            assert found.sector == each.sector


def test_a_match_is_a_location_with_coordinates_and_sector(demo) -> None:
    found = demo.match("37 gasworks row")
    assert found is not None
    location = found.location()
    assert location.address == "37 Gasworks Row"
    assert location.position == BRACKLEY.location("Gasworks Row", 37).position
    assert location.sector == "South"


def test_house_numbers_are_interpolated_between_the_ends() -> None:
    end = offset(ORIGIN, 1.0, 0.0)
    g = Gazetteer([street("Long Road", ORIGIN, end, first_house=2, last_house=102)])
    middle = g.match("52 Long Road")
    assert middle is not None and middle.kind is MatchKind.HOUSE
    assert metres(middle.position, ORIGIN) == pytest.approx(500, abs=1)
    assert g.match("2 Long Rd").position == ORIGIN
    assert g.match("102 long road").position == end
    # A number the street does not have: the street is known, the house is not placed.
    beyond = g.match("500 Long Road")
    assert beyond is not None and beyond.kind is MatchKind.STREET
    assert beyond.address == "500 Long Road"
    assert metres(beyond.position, ORIGIN) == pytest.approx(500, abs=1)
    assert g.match("7a long road").address == "7A Long Road"


def test_places_streets_and_aliases_match(demo) -> None:
    square = demo.match("market sq")
    assert square is not None and square.kind is MatchKind.PLACE
    assert (square.address, square.sector) == ("Market Square", "City Centre")
    assert square.position == BRACKLEY.find("Market Square").position
    road = demo.match("Tong Rd")
    assert road is not None and road.kind is MatchKind.STREET and road.address == "Tong Road"
    assert demo.match("the infirmary").address == "Brackley General Infirmary"
    # The simulator's addresses end with the town: that part is not needed to match.
    assert demo.match("Town Hall, Brackley").address == "Town Hall"
    assert demo.match("12 Vicar Lane, Brackley").address == "12 Vicar Lane"


def test_junctions_match_in_either_order_where_the_streets_meet(demo) -> None:
    found = demo.match("junction of Mercer Row and Albion St")
    assert found is not None and found.kind is MatchKind.JUNCTION
    assert found.address == "junction of Mercer Row and Albion Street"
    assert found.sector == "City Centre"
    other = demo.match("j/o albion street / mercer row")
    assert other is not None and other.position == found.position
    albion, mercer = BRACKLEY.find("Albion Street"), BRACKLEY.find("Mercer Row")
    # Both streets run within a few metres of the junction (they cross there).
    for line in (albion, mercer):
        gap = min(metres(found.position, line.position_of(n)) for n in range(1, line.houses + 1))
        assert gap < 40


def test_nothing_known_is_no_match(demo) -> None:
    assert demo.match("Nowhere Lane") is None
    assert demo.match("37 Nowhere Lane") is None
    assert demo.match("") is None
    assert demo.match("Gasworks") is None  # a start is a completion, not a match
    assert demo.match("junction of Albion Street and Tong Road") is None  # they never meet
    assert demo.match("junction of Albion Street") is None


def test_shared_names_are_told_apart_by_locality_or_not_matched() -> None:
    a = street("High Street", ORIGIN, offset(ORIGIN, 0.5, 0), locality="Otley")
    b_start = offset(ORIGIN, 10, 10)
    b = street("High Street", b_start, offset(b_start, 0.5, 0), locality="Ilkley")
    g = Gazetteer([a, b])
    assert g.complete("High St") == ["High Street, Ilkley", "High Street, Otley"]
    assert g.match("High Street") is None  # which one? the dispatcher must say
    otley = g.match("High Street, Otley")
    assert otley is not None and otley.address == "High Street, Otley"
    assert otley.position == a.centre
    assert g.match("14 high st otley").position == a.centre  # no house numbers: the centre


def test_streets_meet_when_their_lines_come_within_the_junction_distance() -> None:
    main_road = street("Main Road", ORIGIN, offset(ORIGIN, 0, 1.0))
    # A side street ending 10 m short of Main Road, one 100 m away and parallel, one
    # crossing it, and a second stretch of Main Road itself.
    t_start = offset(ORIGIN, 0.01, 0.3)
    side = street("Side Street", t_start, offset(t_start, 0.4, 0))
    parallel = street("Back Lane", offset(ORIGIN, 0.1, 0), offset(ORIGIN, 0.1, 1.0))
    crossing = street("Cross Street", offset(ORIGIN, -0.2, 0.7), offset(ORIGIN, 0.2, 0.7))
    stretch = street("Main Road", offset(ORIGIN, 0, 1.0), offset(ORIGIN, 0, 2.0), locality="X")
    g = Gazetteer([main_road, side, parallel, crossing, stretch])
    pairs = {frozenset((j.first.name, j.second.name)) for j in g.junctions}
    assert frozenset(("Main Road", "Side Street")) in pairs
    assert frozenset(("Main Road", "Cross Street")) in pairs
    assert frozenset(("Main Road", "Back Lane")) not in pairs
    assert frozenset(("Main Road",)) not in pairs
    # (Two entries share the name Main Road, so a bare "Main Road" names neither.)
    assert g.match("junction of Main Road and Cross Street") is None
    crossed = Gazetteer([main_road, crossing]).match("junction of Main Road and Cross Street")
    assert crossed is not None
    assert metres(crossed.position, offset(ORIGIN, 0, 0.7)) < 1
    # A street known only by its centre has no line, so no junctions.
    centred = Gazetteer([main_road, Entry(EntryKind.STREET, "Dot Street", offset(ORIGIN, 0, 0.5))])
    assert centred.junctions == ()


# --- the property: every entry finds itself ---------------------------------------------

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=9)
_NAME = st.builds(
    lambda words, kind: " ".join(w.capitalize() for w in words) + kind,
    st.lists(_WORD, min_size=1, max_size=3),
    st.sampled_from(["", " Street", " Road", " Avenue", " Close", " Park"]),
)


@st.composite
def gazetteers(draw) -> list[Entry]:
    names = draw(st.lists(_NAME, min_size=1, max_size=40, unique_by=fold))
    entries = []
    for name in names:
        at = Position(lat=round(draw(st.floats(50, 55)), 6), lon=round(draw(st.floats(-3, 0)), 6))
        if draw(st.booleans()):
            end = offset(at, draw(st.floats(-1, 1)), draw(st.floats(-1, 1)))
            first = draw(st.integers(1, 50))
            entries.append(
                street(
                    name, at, end, first_house=first, last_house=first + draw(st.integers(1, 400))
                )
            )
        else:
            entries.append(place(name, at))
    return entries


@settings(max_examples=60, deadline=None)
@given(gazetteers())
def test_every_entry_completes_to_itself_and_matches_its_coordinates(entries) -> None:
    g = Gazetteer(entries)
    for entry in entries:
        assert g.complete(entry.name)[0] == entry.name
        assert g.complete(entry.name.upper(), limit=1) == [entry.name]
        found = g.match(entry.name)
        assert found is not None and found.address == entry.name
        assert found.position == entry.centre
        if entry.first_house is not None:
            first = g.match(f"{entry.first_house} {entry.name}")
            assert first is not None and first.position == entry.position
            assert g.complete(f"{entry.first_house} {entry.name}")[0] == (
                f"{entry.first_house} {entry.name}"
            )


_PIECES = [*"37 abcGASworksRw&/,.'-jo\t", "junction of ", " and ", "Albion St", "Mercer"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=12).map("".join), st.integers(1, 12))
def test_any_text_completes_and_matches_without_error(text, limit) -> None:
    demo = brackley_gazetteer()
    found = demo.complete(text, limit)
    assert len(found) <= limit and len(set(found)) == len(found)
    for completion in found:
        assert demo.match(completion) is not None, completion
    match = demo.match(text)
    assert match is None or match.address


# --- the CSV a force supplies ------------------------------------------------------------


def test_the_shipped_demo_file_is_what_the_simulators_city_generates() -> None:
    assert BRACKLEY_CSV.read_text(encoding="utf-8") == brackley_csv_text()
    loaded = read_gazetteer_csv(BRACKLEY_CSV.read_text(encoding="utf-8"), "brackley.csv")
    assert loaded.entries == tuple(city_entries())
    assert len(loaded) == len(BRACKLEY.streets) + len(BRACKLEY.places)


def test_writing_and_reading_back_keeps_every_field() -> None:
    entries = [
        street(
            "High Street",
            ORIGIN,
            offset(ORIGIN, 0.5, 0),
            first_house=1,
            last_house=99,
            locality="Otley",
        ),
        place("Market Cross", ORIGIN, aliases=("The Cross", "Buttercross"), locality="Otley"),
        Entry(EntryKind.STREET, "Dot Street", ORIGIN),
    ]
    assert read_gazetteer_csv(write_gazetteer_csv(entries)).entries == tuple(entries)


def test_columns_may_come_in_any_order_and_optional_ones_may_be_left_out() -> None:
    text = "\ufeffLon,Lat,Name,Kind\n-1.55,53.8,Market Square,place\n\n"
    g = read_gazetteer_csv(text)
    assert g.match("Market Square").position == Position(lat=53.8, lon=-1.55)
    assert g.match("Market Square").sector is None


def problems_of(text: str) -> list[str]:
    with pytest.raises(GazetteerFileError) as caught:
        read_gazetteer_csv(text, source="force.csv")
    assert str(caught.value).startswith("force.csv line ")
    return [str(problem) for problem in caught.value.problems]


def test_every_faulty_line_is_named_with_its_column() -> None:
    text = (
        HEADER
        + "street,Good Road,North,53.8,-1.55,53.81,-1.55,1,40,,\n"  # line 2 is fine
        + "street,Bad Lat Road,North,abc,-1.55,,,,,,\n"
        + "road,Odd Kind,North,53.8,-1.55,,,,,,\n"
        + "place,Far Place,North,53.8,-200,,,,,,\n"
        + "street,Half End Road,North,53.8,-1.55,53.81,,,,,\n"
        + "place,Numbered Place,North,53.8,-1.55,,,1,9,,\n"
        + "street,Bad House Road,North,53.8,-1.55,53.81,-1.55,1,9.5,,\n"
        + "place,,North,53.8,-1.55,,,,,,\n"
        + "place,Bad Sector,North!,53.8,-1.55,,,,,,\n"
        + "street,Good Road,North,53.8,-1.55,,,,,,\n"
        + "place,Short Line,North,53.8\n"
    )
    assert problems_of(text) == [
        "line 3, lat: Input should be a valid number, unable to parse string as a number "
        "(found 'abc')",
        "line 4, kind: Input should be 'street' or 'place' (found 'road')",
        "line 5, lon: Input should be greater than or equal to -180 (found '-200')",
        "line 6: end_lat and end_lon come together: give both or neither",
        "line 7: house numbers are for streets, not places",
        "line 8, last_house: Input should be a valid integer, unable to parse string as an "
        "integer (found '9.5')",
        "line 9, name: required: this cell may not be empty",
        "line 10, sector: sector may hold only ASCII letters, digits, single spaces, '-', '.' "
        "and '_'; found U+0021 EXCLAMATION MARK (found 'North!')",
        "line 11, name: street 'Good Road' is already on line 2; merge them, or give each a "
        "locality",
        "line 12: 4 cells where the header names 11 columns",
    ]


def test_a_bad_header_is_refused_before_any_row() -> None:
    assert problems_of("kind,name,lat,longitude\nplace,X,1,2\n") == [
        "line 1, longitude: unknown column; the columns are kind, name, sector, lat, lon, "
        "end_lat, end_lon, first_house, last_house, locality, aliases",
        "line 1, lon: this column is required",
    ]
    assert problems_of("kind,name,lat,lon,lat\n") == ["line 1, lat: this column is named twice"]
    assert problems_of("") == ["line 1: the file is empty"]
    assert problems_of('kind,name,lat,lon\nplace,"unclosed,1,2\n')[0].startswith(
        "line 2: not valid CSV"
    )


def test_a_long_report_says_how_many_more() -> None:
    text = "kind,name,lat,lon\n" + "place,X,north,2\n" * 30
    with pytest.raises(GazetteerFileError) as caught:
        read_gazetteer_csv(text, source="f.csv")
    assert len(caught.value.problems) == 30
    assert str(caught.value).splitlines()[-1] == "... and 10 more"


# --- cadterm gazetteer -------------------------------------------------------------------


def test_cli_demo_writes_the_file_check_counts_it_and_find_matches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "brackley.csv"
    assert main(["gazetteer", "demo", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == BRACKLEY_CSV.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["gazetteer", "check", str(out)]) == 0
    report = capsys.readouterr().out
    assert f"{out}: 58 entries" in report
    assert "streets:   20 (20 with both ends, 20 with house numbers)" in report
    assert "junctions: 3" in report
    assert main(["gazetteer", "find", str(out), "37 Gasworks Row"]) == 0
    assert "match: 37 Gasworks Row (house) at 53.770367, -1.538592, sector South" in (
        capsys.readouterr().out
    )
    assert main(["gazetteer", "find", str(out), "37 Gas"]) == 1
    shown = capsys.readouterr().out
    assert "  37 Gasworks Row" in shown and "match: none" in shown


def test_cli_check_reports_a_bad_file_by_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("kind,name,lat,lon\nplace,X,north,2\n", encoding="utf-8")
    assert main(["gazetteer", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad} line 2, lat: Input should be a valid number" in err
    assert main(["gazetteer", "check", str(tmp_path / "missing.csv")]) == 1
    assert "cannot read" in capsys.readouterr().err


# --- from OS Open Names ------------------------------------------------------------------

OS_HEADER = (
    "ID,NAMES_URI,NAME1,NAME1_LANG,NAME2,NAME2_LANG,TYPE,LOCAL_TYPE,GEOMETRY_X,GEOMETRY_Y,"
    "MOST_DETAIL_VIEW_RES,LEAST_DETAIL_VIEW_RES,MBR_XMIN,MBR_YMIN,MBR_XMAX,MBR_YMAX,"
    "POSTCODE_DISTRICT,POSTCODE_DISTRICT_URI,POPULATED_PLACE,POPULATED_PLACE_URI,"
    "POPULATED_PLACE_TYPE,DISTRICT_BOROUGH,DISTRICT_BOROUGH_URI,DISTRICT_BOROUGH_TYPE,"
    "COUNTY_UNITARY,COUNTY_UNITARY_URI,COUNTY_UNITARY_TYPE,REGION,REGION_URI,COUNTRY,"
    "COUNTRY_URI,RELATED_SPATIAL_OBJECT,SAME_AS_DBPEDIA,SAME_AS_GEONAMES\n"
)


def os_record(
    name: str,
    local_type: str,
    x: float,
    y: float,
    place: str,
    district: str,
    county: str,
    name2: str = "",
) -> str:
    cells = [""] * 34
    cells[2], cells[4], cells[7] = name, name2, local_type
    cells[8], cells[9] = str(x), str(y)
    cells[18], cells[21], cells[24] = place, district, county
    return ",".join(cells) + "\n"


def test_national_grid_converts_as_the_ordnance_surveys_worked_example() -> None:
    from cadterm.cli.os_open_names import bng_to_osgb36

    # OS, "A guide to coordinate systems in Great Britain", annex C: the inverse
    # projection of E 651409.903, N 313177.270 is 52 39 27.2531 N, 1 43 4.5177 E.
    lat, lon = bng_to_osgb36(651409.903, 313177.270)
    assert (lat - (52 + 39 / 60 + 27.2531 / 3600)) * 3600 == pytest.approx(0, abs=1e-3)
    assert (lon - (1 + 43 / 60 + 4.5177 / 3600)) * 3600 == pytest.approx(0, abs=1e-3)


def test_national_grid_to_wgs84_agrees_with_pyproj() -> None:
    pyproj = pytest.importorskip("pyproj")
    from cadterm.cli.os_open_names import bng_to_wgs84

    to_wgs84 = pyproj.Transformer.from_crs(27700, 4326, always_xy=True)
    for x, y in [(429000, 433500), (530000, 180000), (200000, 800000), (350000, 50000)]:
        lon, lat = to_wgs84.transform(x, y)
        ours = Position(**dict(zip(("lat", "lon"), bng_to_wgs84(x, y), strict=True)))
        # pyproj with the OSTN15 grid differs from the Helmert step by up to a few metres.
        assert metres(ours, Position(lat=lat, lon=lon)) < 6


def test_cli_builds_a_gazetteer_from_os_open_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    header = tmp_path / "OS_Open_Names_Header.csv"
    header.write_text(OS_HEADER, encoding="utf-8")
    data = tmp_path / "SE24.csv"
    data.write_text(
        os_record("Kirkgate", "Named Road", 420500, 445800, "Otley", "Leeds", "West Yorkshire")
        + os_record("Kirkgate", "Named Road", 420600, 445900, "Otley", "Leeds", "West Yorkshire")
        + os_record("Kirkgate", "Named Road", 429900, 433400, "Leeds", "Leeds", "West Yorkshire")
        + os_record("Otley", "Town", 420400, 445700, "Otley", "Leeds", "West Yorkshire")
        + os_record("LS21 1AA", "Postcode", 420500, 445800, "Otley", "Leeds", "West Yorkshire")
        + os_record("Skipton", "Town", 399000, 451700, "Skipton", "Craven", "North Yorkshire")
        + os_record("Caerdydd Road", "Named Road", "x", 1, "Otley", "Leeds", "West Yorkshire")
        + os_record("Far Road", "Named Road", 9e9, 1, "Otley", "Leeds", "West Yorkshire"),
        encoding="utf-8",
    )
    out = tmp_path / "force.csv"
    argv = ["gazetteer", "from-os-open-names", str(data), "--header", str(header)]
    assert main([*argv, "--out", str(out), "--area", "west yorkshire"]) == 0
    report = capsys.readouterr().out
    assert f"wrote 3 entries to {out}" in report
    assert "1 outside the areas, 1 postcodes" in report
    assert "1 repeats of a name in its locality" in report
    assert "record 7 (Caerdydd Road): no usable GEOMETRY_X/Y" in report
    assert "record 8 (Far Road): no usable GEOMETRY_X/Y" in report
    g = read_gazetteer_csv(out.read_text(encoding="utf-8"))
    assert g.complete("Kirk") == ["Kirkgate, Leeds", "Kirkgate, Otley"]
    kirkgate = g.match("Kirkgate, Otley")
    assert kirkgate is not None and kirkgate.kind is MatchKind.STREET
    assert kirkgate.sector == "Leeds"
    assert abs(kirkgate.position.lat - 53.905) < 0.01 and abs(kirkgate.position.lon + 1.69) < 0.01
    assert g.match("Otley").kind is MatchKind.PLACE


def test_the_example_in_the_deployment_guide_loads_and_means_what_it_says() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "deployment.md").read_text()
    example = guide.split("### The file", 1)[1].split("```csv\n", 1)[1].split("```", 1)[0]
    g = read_gazetteer_csv(example, source="deployment.md")
    assert g.complete("37 Gas") == ["37 Gasworks Row"]
    assert g.complete("high st") == ["High Street, Ilkley", "High Street, Otley"]
    assert g.match("BGI").address == "Brackley General Infirmary"


def test_cli_says_when_os_open_names_data_has_no_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "SE24.csv"
    data.write_text(
        os_record("Kirkgate", "Named Road", 420500, 445800, "Otley", "Leeds", "W"), "utf-8"
    )
    out = tmp_path / "force.csv"
    assert main(["gazetteer", "from-os-open-names", str(data), "--out", str(out)]) == 2
    assert "no header line" in capsys.readouterr().err
    assert not out.exists()
