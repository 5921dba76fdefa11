"""Search: the same words find an incident open in the picture or closed in the history.

First the matching rules on their own (`cadterm.domain.search`), then the history's
index on a real SQLite file (caller, phone digits, prefixes; a version-1 file re-indexed
when opened), then a real server that archives, and the console under Pilot: `f` lists
open and archived matches, "1 of N", Ctrl+N and Ctrl+P, and Enter opens a closed one
read only.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import make_config
from console_helpers import post_command
from test_console import open_console
from waiting import until

from cadterm.domain.search import caller_words, incident_matches, words_of
from cadterm.protocol.domain import (
    Caller,
    ChronologyEntry,
    Grade,
    Incident,
    IncidentStatus,
    Location,
    SourceChannel,
)
from cadterm.server.config import Limits
from cadterm.server.store.history import ArchiveRow, IncidentHistory
from cadterm.tui.incident_queue import short_reference

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def incident(
    reference: str = "0042-27NOV26",
    *,
    address: str = "37 Gasworks Lane, Brackley",
    caller: Caller | None = None,
    notes: tuple[str, ...] = (),
    closed: bool = True,
    description: str = "Two cars, one on its roof",
    closed_at: datetime = T0 + timedelta(hours=1),
) -> Incident:
    chronology = [
        ChronologyEntry(
            at=T0,
            seq=n + 1,
            version=n + 1,
            operator="disp1",
            workstation="ws-test",
            kind="note_added",
            text=note,
        )
        for n, note in enumerate(notes)
    ]
    return Incident(
        reference=reference,
        grade=Grade.PRIORITY,
        incident_type="RTC",
        description=description,
        location=Location(address=address),
        caller=caller,
        source=SourceChannel.EMERGENCY_999,
        created_at=T0,
        updated_at=T0,
        status=IncidentStatus.CLOSED if closed else IncidentStatus.OPEN,
        closing_code="RESOLVED" if closed else None,
        closed_at=closed_at if closed else None,
        chronology=chronology,
        version=len(chronology),
    )


SMITH = Caller(name="Jo Smíth", phone="07700 900123")


# --- the matching rules ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "gas 37",  # prefixes, any order
        "GASWORKS brackley",
        "0042-27NOV26",  # the reference whole
        "0042",
        "smith",  # the caller, accents ignored
        "07700 900123",
        "07700900123",  # the phone's digits alone
        "roof",  # the description
        "ladder",  # a note
        "jo ladder gas",  # words from different fields
    ],
)
def test_words_find_the_incident(query: str) -> None:
    found = incident(caller=SMITH, notes=("Ladder across the road",))
    assert incident_matches(found, query)


@pytest.mark.parametrize(
    "query",
    [
        "works",  # not the start of a word
        "gas 38",  # every word must match
        "0042-28NOV26",
        "nov26-0042",  # words with punctuation in between must come in that order
        "-",  # punctuation alone is no search
        "",
    ],
)
def test_words_that_do_not_find_it(query: str) -> None:
    assert not incident_matches(incident(caller=SMITH), query)


def test_words_are_letters_and_digits_without_case_or_accents() -> None:
    assert words_of("Café-Bar, 12a St. Mary's") == ["cafe", "bar", "12a", "st", "mary", "s"]
    assert caller_words(SMITH) == "Jo Smíth 07700 900123 07700900123"
    assert caller_words(None) == ""
    assert caller_words(Caller(name="Anon")) == "Anon"


# --- the history's index --------------------------------------------------------------------


@pytest.fixture
def history(tmp_path: Path):
    with IncidentHistory(tmp_path / "cad.db") as kept:
        yield kept


def refs(page) -> list[str]:
    return [Incident.model_validate_json(body).reference for body in page.incidents]


def test_history_finds_by_caller_phone_prefix_and_note(history: IncidentHistory) -> None:
    history.keep(
        [
            ArchiveRow.of(incident("0001-27NOV26", caller=SMITH, notes=("Ladder on the road",))),
            ArchiveRow.of(incident("0002-27NOV26", address="4 Mill Road")),
        ]
    )
    assert refs(history.search("smith")) == ["0001-27NOV26"]
    assert refs(history.search("07700900123")) == ["0001-27NOV26"]
    assert refs(history.search("07700 900")) == ["0001-27NOV26"]
    assert refs(history.search("gas 37 ladder")) == ["0001-27NOV26"]
    assert refs(history.search("0002-27NOV26")) == ["0002-27NOV26"]
    assert refs(history.search("mil")) == ["0002-27NOV26"]
    assert refs(history.search("roof")) == ["0002-27NOV26", "0001-27NOV26"]  # same close: ref
    assert refs(history.search("works")) == []


def test_history_and_picture_agree_on_what_matches(history: IncidentHistory) -> None:
    incidents = [
        incident("0001-27NOV26", caller=SMITH, notes=("Ladder on the road",)),
        incident("0002-27NOV26", address="4 Mill Road", description="Café window broken"),
        incident("0003-27NOV26", address="12 Gas Street", caller=Caller(phone="01280-700700")),
    ]
    history.keep(ArchiveRow.of(i) for i in incidents)
    for query in ("gas", "cafe", "01280 700700", "01280700700", "mill 4", "jo", "road", "12"):
        local = sorted(i.reference for i in incidents if incident_matches(i, query))
        assert sorted(refs(history.search(query, limit=200))) == local, query


def test_search_pages_run_newest_closed_first_without_gaps(history: IncidentHistory) -> None:
    # Kept out of closing order, some closed in the same millisecond.
    closings = [T0 + timedelta(minutes=(n * 7) % 13) for n in range(30)]
    history.keep(
        ArchiveRow.of(incident(f"{n + 1:04d}-27NOV26", closed_at=at))
        for n, at in enumerate(closings)
    )
    seen: list[str] = []
    after = None
    for _ in range(10):  # 30 matches, 7 a page: 5 pages
        page = history.search("gasworks", limit=7, after=after)
        seen += refs(page)
        after = page.next_after
        if after is None:
            break
    assert sorted(seen) == sorted(f"{n + 1:04d}-27NOV26" for n in range(30))
    closed = [Incident.model_validate_json(history.find(ref)).closed_at for ref in seen]
    assert closed == sorted(closed, reverse=True)


def test_search_cursor_of_a_forgotten_incident_still_pages_on(history: IncidentHistory) -> None:
    history.keep(
        ArchiveRow.of(incident(f"{n:04d}-27NOV26", closed_at=T0 + timedelta(minutes=n)))
        for n in range(1, 6)
    )
    first = history.search("gasworks", limit=2)
    assert refs(first) == ["0005-27NOV26", "0004-27NOV26"]
    history.forget(["0004-27NOV26"])  # reopened: it leaves the history
    assert refs(history.search("gasworks", limit=2, after=first.next_after)) == [
        "0003-27NOV26",
        "0002-27NOV26",
    ]


def test_version_1_history_is_reindexed_with_callers(tmp_path: Path) -> None:
    path = tmp_path / "cad.db"
    old = incident("0001-27NOV26", caller=SMITH)
    conn = sqlite3.connect(path)
    conn.executescript(
        """
        CREATE TABLE history_meta (version INTEGER NOT NULL);
        INSERT INTO history_meta VALUES (1);
        CREATE TABLE archived_incidents (
            id INTEGER PRIMARY KEY, reference TEXT NOT NULL UNIQUE,
            created_ms INTEGER NOT NULL, closed_ms INTEGER NOT NULL, body TEXT NOT NULL);
        CREATE VIRTUAL TABLE archived_text USING fts5 (
            reference, incident_type, description, address, chronology,
            tokenize = 'unicode61 remove_diacritics 2');
        """
    )
    conn.execute(
        "INSERT INTO archived_incidents VALUES (1, ?, 0, 0, ?)",
        (old.reference, old.model_dump_json()),
    )
    conn.execute(
        "INSERT INTO archived_text VALUES (?, 'RTC', ?, ?, '')",
        (old.reference, old.description, old.location.address),
    )
    conn.commit()
    conn.close()
    with IncidentHistory(path) as history:
        assert refs(history.search("smith")) == ["0001-27NOV26"]
        assert refs(history.search("gasworks")) == ["0001-27NOV26"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM history_meta").fetchone() == (2,)


# --- a real server, and the console ---------------------------------------------------------


def post(backend, kind: str, **fields: Any) -> dict:
    return post_command(backend, type=kind, **fields)


def history_search(backend, q: str) -> httpx.Response:
    return httpx.get(
        f"{backend.url}/v1/history/search", params={"q": q}, headers=backend.headers(), timeout=10
    )


def archived(backend, reference: str) -> bool:
    state = httpx.get(f"{backend.url}/v1/state", headers=backend.headers(), timeout=10).json()
    return reference not in state["incidents"]


@pytest.fixture
def archiving(backend_factory):
    """A backend that archives closed incidents half a second after they close."""
    return backend_factory(make_config(limits=Limits(closed_window=0.5, archive_interval=0.05)))


def open_gasworks(backend, caller: dict | None = None, address: str = "37 Gasworks Lane") -> str:
    fields: dict[str, Any] = {"location": {"address": address}}
    if caller:
        fields["caller"] = caller
    reply = post(backend, "create_incident", grade=2, incident_type="RTC", **fields)
    return reply["event"]["reference"]


async def test_f_lists_open_and_closed_matches_and_steps_through_them(archiving, tmp_path):
    old = open_gasworks(archiving, {"name": "Jo Smith", "phone": "07700 900123"})
    post(archiving, "add_note", reference=old, text="Ladder left on the verge")
    post(archiving, "close_incident", reference=old, closing_code="RESOLVED")
    await until(lambda: archived(archiving, old), timeout=10, what="the incident archived")
    current = open_gasworks(archiving, address="39 Gasworks Lane")
    response = history_search(archiving, "07700900123")
    assert [i["reference"] for i in response.json()["incidents"]] == [old]

    async with open_console(archiving.url, tmp_path, size=(170, 40)) as console:
        await console.until(lambda: current in console.client.state.incidents)
        assert old not in console.client.state.incidents
        await console.line("f gasworks")
        await console.until(lambda: "1 of 2" in console.detail, what="both matches listed")
        assert console.said.startswith("find 'gasworks': 1 of 1")  # the server had not said
        lines = console.detail.splitlines()
        assert lines[1].startswith(">  1 " + short_reference(current)) and " OPEN " in lines[1]
        assert lines[2].startswith("   2 " + short_reference(old)) and "ARCHIVED" in lines[2]
        assert lines[3] == "     caller Jo Smith 07700 900123"
        assert console.app.queue.cursor_key == current

        await console.keys.press("ctrl+n")
        await console.until(lambda: "2 of 2" in console.said, what="the next match")
        assert console.detail.splitlines()[2].startswith(">  2 " + short_reference(old))
        await console.line("")  # Enter opens it: read only, from the history's answer
        await console.until(lambda: console.app.showing("closed"), what="the closed detail")
        assert console.detail.startswith("CLOSED: read only")
        assert "Ladder left on the verge" in console.detail
        assert "Closed: RESOLVED" in console.detail

        await console.keys.press("ctrl+p")
        await console.until(lambda: "1 of 2" in console.said, what="the previous match")
        await console.keys.press("ctrl+p")  # wraps round
        await console.until(lambda: "2 of 2" in console.said, what="round to the last")
        await console.line("f")  # f alone: the next match
        await console.until(lambda: "1 of 2" in console.said, what="f alone steps on")

        await console.line("f 07700900123")  # the caller's phone, digits only
        await console.until(lambda: "1 of 1" in console.detail, what="the phone's match")
        assert short_reference(old) in console.detail
        assert short_reference(current) not in console.detail


async def test_f_says_when_the_history_cannot_be_searched(backend_factory, tmp_path):
    server = backend_factory()
    current = open_gasworks(server)
    async with open_console(server.url, tmp_path) as console:
        await console.until(lambda: current in console.client.state.incidents)
        backend_factory.stop(server)
        await console.line("f gasworks")
        await console.until(
            lambda: "Closed incidents not searched:" in console.detail, 15, what="the reason"
        )
        assert "not reachable" in console.detail
        assert "1 of 1" in console.detail  # the open one is still found


def test_bad_search_words_get_a_clear_answer(backend) -> None:
    too_long = history_search(backend, "x" * 201)
    assert too_long.status_code == 422
    assert too_long.json()["code"] == "invalid_query"
    odd = history_search(backend, '"* NEAR( -')
    assert odd.status_code == 200 and odd.json()["incidents"] == []


def test_a_long_list_shows_a_window_round_the_current_match() -> None:
    from cadterm.tui.detail import SEARCH_LINES, search_text
    from cadterm.tui.search_results import Match, SearchResults

    results = SearchResults(
        "gasworks", [Match(incident(f"{n:04d}-27NOV26")) for n in range(1, 301)], index=150
    )
    results.history = "done"
    lines = search_text(results).plain.splitlines()
    assert lines[0] == "Find 'gasworks': 151 of 300"
    first = 150 - SEARCH_LINES // 2  # the current match in the middle
    assert lines[1] == f"  ... {first} before"
    assert sum(1 for line in lines if line.startswith(">")) == 1
    assert next(line for line in lines if line.startswith(">")).startswith(">151 0151-27NOV")
    assert f"  ... {300 - first - SEARCH_LINES} after" in lines
