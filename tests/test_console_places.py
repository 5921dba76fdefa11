"""Typed locations and the gazetteer: Tab completes a street, a match places the incident."""

from __future__ import annotations

from functools import cache

from test_console import open_console, server_incident

from cadterm.domain.gazetteer import Gazetteer
from cadterm.domain.gazetteer_csv import read_gazetteer_csv
from cadterm.protocol.codes import CLOSING_CODES, INCIDENT_TYPES
from cadterm.sim.gazetteer import BRACKLEY_CSV
from cadterm.tui.grammar import Dispatch, ParseContext, complete, parse


@cache
def brackley() -> Gazetteer:
    return read_gazetteer_csv(BRACKLEY_CSV.read_text(encoding="utf-8"), "brackley.csv")


def context(places: Gazetteer | None) -> ParseContext:
    return ParseContext(
        selected="0001-01DEC26",
        references=["0001-01DEC26"],
        callsigns=["AB12"],
        incident_types=INCIDENT_TYPES,
        closing_codes=CLOSING_CODES,
        places=places,
    )


def test_a_half_typed_street_completes_from_the_gazetteer() -> None:
    line = "n 1 rtc 37 Gas"
    done = complete(line, context(brackley()))
    assert done.start == line.index("37")
    assert "37 Gasworks Row" in [c.text for c in done.candidates]
    assert complete(line, context(None)).candidates == ()  # no gazetteer, no guesses


def test_a_matched_location_gets_coordinates_and_a_sector() -> None:
    action = parse("n 1 rtc 37 gasworks row", context(brackley()))
    assert isinstance(action, Dispatch)
    [command] = action.commands
    assert command.location.address == "37 Gasworks Row"
    assert command.location.position is not None
    assert command.location.sector == "South"
    assert action.summary.endswith("(house in South)")


def test_an_unknown_location_is_kept_as_typed_and_called_unverified() -> None:
    action = parse("n 1 rtc 12 Nowhere Lane", context(brackley()))
    [command] = action.commands
    assert command.location.address == "12 Nowhere Lane"
    assert command.location.position is None
    assert "unverified" in action.summary
    # Coordinates typed by the dispatcher win over the gazetteer.
    given = parse("n 1 rtc 37 Gasworks Row pos=53.8,-1.5", context(brackley()))
    assert given.commands[0].location.position.lat == 53.8


async def test_tab_completes_a_demo_street_and_the_incident_is_placed(backend, tmp_path):
    async with open_console(backend.url, tmp_path, gazetteer=BRACKLEY_CSV) as console:
        await console.until(lambda: console.app.places is not None, what="the gazetteer")
        await console.keys.type("n 1 rtc 37 Gas")
        await console.keys.press("tab")
        assert console.input.value.rstrip() == "n 1 rtc 37 Gasworks Row"
        await console.keys.press("enter")
        await console.done("new grade 1")
        incidents = console.client.state.incidents
        await console.until(lambda: incidents, what="the incident")
        [incident] = incidents.values()
        stored = server_incident(backend, incident.reference)
        assert stored["location"]["position"] is not None
        assert stored["location"]["sector"] == "South"


async def test_a_gazetteer_that_cannot_be_read_is_said_and_the_console_goes_on(backend, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("not,a,gazetteer\n")
    async with open_console(backend.url, tmp_path, gazetteer=bad) as console:
        said = await console.refused()
        assert said.startswith("gazetteer not loaded (locations stay as typed)")
        assert console.app.places is None
