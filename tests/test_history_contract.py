"""The incident history's queries, the same on SQLite and on PostgreSQL.

Each test runs once per history, on the archived-incident tables beside a fresh event
store (an SQLite file, or a fresh PostgreSQL schema; those runs skip, saying why, when
no server answers), opened as the server opens it (`location.open_history`). How the
archivist fills the history is tested in test_archive.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pg import pg_url  # noqa: F401

from cadterm.protocol.domain import (
    Caller,
    ChronologyEntry,
    Grade,
    Incident,
    IncidentStatus,
    Location,
    SourceChannel,
)
from cadterm.server.store import StoreError
from cadterm.server.store.history import MAX_PAGE, ArchivedPage, ArchiveRow
from cadterm.server.store.location import DbLocation, open_history, open_store

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def incident(
    reference: str,
    closed_at: datetime | None,
    *,
    incident_type: str = "THEFT",
    description: str = "",
    address: str = "1 High Street",
    notes: tuple[str, ...] = (),
) -> Incident:
    """A closed incident (open with `closed_at` None) as it leaves the picture."""
    created = (closed_at or T0) - timedelta(hours=2)
    return Incident(
        reference=reference,
        grade=Grade.SCHEDULED,
        incident_type=incident_type,
        status=IncidentStatus.CLOSED if closed_at else IncidentStatus.OPEN,
        description=description,
        location=Location(address=address),
        source=SourceChannel.EMERGENCY_999,
        chronology=[
            ChronologyEntry(
                at=created,
                seq=n,
                version=n,
                operator="disp1",
                workstation="ws-1",
                kind="note_added",
                text=text,
            )
            for n, text in enumerate(notes, start=1)
        ],
        closing_code="RESOLVED" if closed_at else None,
        created_at=created,
        updated_at=closed_at or created,
        closed_at=closed_at,
    )


def row(reference: str, closed_at: datetime, **fields: object) -> ArchiveRow:
    return ArchiveRow.of(incident(reference, closed_at, **fields))


def references(page: ArchivedPage) -> list[str]:
    return [Incident.model_validate_json(body).reference for body in page.incidents]


class Shelf:
    """An event store and the history beside it, reopened on demand, closed at the end."""

    def __init__(self, location: DbLocation) -> None:
        self.location = location
        self._open: list = []

    def open(self):
        store = open_store(self.location, retain_events=100)
        history = open_history(store)
        self._open += [history, store]
        return history

    def close_all(self) -> None:
        for thing in self._open:
            thing.close()


@pytest.fixture(params=["sqlite", "postgres"])
def shelf(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shelf]:
    if request.param == "sqlite":
        opened = Shelf(DbLocation(path=tmp_path / "cad.db"))
    else:
        opened = Shelf(DbLocation(url=request.getfixturevalue("pg_url")))
    try:
        yield opened
    finally:
        opened.close_all()


@pytest.fixture
def history(shelf: Shelf):
    return shelf.open()


# --- keeping ------------------------------------------------------------------------------


def test_kept_incidents_are_found_by_reference(history) -> None:
    assert history.count() == 0
    assert history.keep([]) == 0
    wheelbarrow = incident("0001-27NOV26", T0, description="Wheelbarrow taken")
    bicycle = incident("0002-27NOV26", T0 + timedelta(minutes=5))
    assert history.keep([ArchiveRow.of(wheelbarrow), ArchiveRow.of(bicycle)]) == 2
    assert history.count() == 2
    found = history.find("0001-27NOV26")
    assert found is not None and Incident.model_validate_json(found) == wheelbarrow
    assert history.find("0003-27NOV26") is None


def test_kept_incidents_outlive_a_restart(shelf: Shelf) -> None:
    history = shelf.open()
    history.keep([row("0001-27NOV26", T0, notes=("Owner called back",))])
    shelf.close_all()
    history = shelf.open()
    assert history.count() == 1
    assert history.find("0001-27NOV26") is not None
    assert references(history.search("owner")) == ["0001-27NOV26"]


def test_keeping_again_replaces_the_earlier_copy(history) -> None:
    history.keep([row("0001-27NOV26", T0, description="Wheelbarrow taken")])
    history.keep([row("0001-27NOV26", T0 + timedelta(hours=1), description="Ladder taken")])
    assert history.count() == 1
    kept = Incident.model_validate_json(history.find("0001-27NOV26"))
    assert kept.description == "Ladder taken"
    assert references(history.search("ladder")) == ["0001-27NOV26"]
    assert history.search("wheelbarrow").incidents == []  # the old words are gone too
    assert references(history.closed_between(T0 + timedelta(hours=1), T0 + timedelta(hours=2))) == [
        "0001-27NOV26"
    ]
    assert history.closed_between(T0, T0 + timedelta(hours=1)).incidents == []


def test_forget_drops_copies_from_every_query(history) -> None:
    history.keep([row("0001-27NOV26", T0, description="ladder"), row("0002-27NOV26", T0)])
    history.forget(["0001-27NOV26", "0099-27NOV26"])  # one never archived: no error
    history.forget([])
    assert history.find("0001-27NOV26") is None
    assert history.search("ladder").incidents == []
    assert references(history.closed_between(T0, T0 + timedelta(days=1))) == ["0002-27NOV26"]
    assert history.count() == 1


def test_an_open_incident_is_not_archived() -> None:
    with pytest.raises(StoreError, match="not closed"):
        ArchiveRow.of(incident("0001-27NOV26", None))


# --- by closing time ----------------------------------------------------------------------


def test_closed_between_is_oldest_first_from_start_up_to_end(history) -> None:
    history.keep([row(f"000{n}-27NOV26", T0 + timedelta(minutes=10 * n)) for n in range(1, 6)])
    # Start counts, end does not: 10, 20 and 30 minutes past, not 40.
    page = history.closed_between(T0 + timedelta(minutes=10), T0 + timedelta(minutes=40))
    assert references(page) == ["0001-27NOV26", "0002-27NOV26", "0003-27NOV26"]
    assert page.next_after is None
    assert history.closed_between(T0, T0 + timedelta(minutes=10)).incidents == []
    # The same moments written with another offset are the same moments.
    plus_one = timezone(timedelta(hours=1))
    start, end = (T0.astimezone(plus_one) + timedelta(minutes=m) for m in (20, 31))
    assert references(history.closed_between(start, end)) == ["0002-27NOV26", "0003-27NOV26"]


def test_closed_between_pages_without_skipping_incidents_closed_together(history) -> None:
    # Three closed at the same millisecond: the cursor carries the reference too.
    same = T0 + timedelta(minutes=5)
    history.keep(
        [row("0001-27NOV26", T0)]
        + [row(f"000{n}-27NOV26", same) for n in (4, 2, 3)]
        + [row("0005-27NOV26", T0 + timedelta(minutes=9))]
    )
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = history.closed_between(T0, T0 + timedelta(hours=1), limit=2, after=after)
        assert len(page.incidents) <= 2
        seen += references(page)
        after = page.next_after
        if after is None:
            break
    assert seen == [f"000{n}-27NOV26" for n in range(1, 6)]


def test_a_page_is_never_more_than_max_page(history) -> None:
    history.keep([row(f"{n:04d}-27NOV26", T0 + timedelta(seconds=n)) for n in range(MAX_PAGE + 5)])
    page = history.closed_between(T0, T0 + timedelta(days=1), limit=10 * MAX_PAGE)
    assert len(page.incidents) == MAX_PAGE and page.next_after is not None
    rest = history.closed_between(T0, T0 + timedelta(days=1), limit=MAX_PAGE, after=page.next_after)
    assert len(rest.incidents) == 5 and rest.next_after is None
    assert len(history.closed_between(T0, T0 + timedelta(days=1), limit=0).incidents) == 1


@pytest.mark.parametrize("cursor", ["not-a-cursor", "12", "~0001", "x~0001"])
def test_a_cursor_it_did_not_give_out_is_refused(history, cursor: str) -> None:
    history.keep([row("0001-27NOV26", T0)])
    with pytest.raises(ValueError, match="not a history cursor"):
        history.closed_between(T0, T0 + timedelta(days=1), after=cursor)
    with pytest.raises(ValueError, match="not a history cursor"):
        history.search("theft", after=cursor)


# --- by text ------------------------------------------------------------------------------


@pytest.fixture
def garden_thefts(history):
    """Three archived thefts, closed an hour apart: wheelbarrow, bicycle, Zoë's mower."""
    history.keep(
        [
            row(
                "0001-27NOV26",
                T0,
                description="Wheelbarrow taken from a garden",
                address="Quarry Lane",
                notes=("Caller says the wheelbarrow was red",),
            ),
            row(
                "0002-27NOV26",
                T0 + timedelta(hours=1),
                incident_type="BURGLARY",
                description="Bicycle taken from a garden shed",
                address="7 Mill Road",
            ),
            row(
                "0003-28NOV26",
                T0 + timedelta(hours=2),
                description="Mower gone",
                address="Church Street",
                notes=("Owner Zoë Brontë called back",),
            ),
        ]
    )
    return history


def test_search_finds_every_field(garden_thefts) -> None:
    assert references(garden_thefts.search("red")) == ["0001-27NOV26"]  # chronology
    assert references(garden_thefts.search("burglary")) == ["0002-27NOV26"]  # type
    assert references(garden_thefts.search("shed")) == ["0002-27NOV26"]  # description
    assert references(garden_thefts.search("church")) == ["0003-28NOV26"]  # address
    assert references(garden_thefts.search("0003")) == ["0003-28NOV26"]  # reference


def test_search_wants_every_word_in_any_case_and_any_accent(garden_thefts) -> None:
    assert references(garden_thefts.search("RED Wheelbarrow")) == ["0001-27NOV26"]
    assert garden_thefts.search("red bicycle").incidents == []
    assert references(garden_thefts.search("zoe bronte")) == ["0003-28NOV26"]
    assert references(garden_thefts.search("ZOË")) == ["0003-28NOV26"]


def test_each_word_is_the_start_of_a_word(garden_thefts) -> None:
    assert references(garden_thefts.search("wheel")) == ["0001-27NOV26"]
    assert references(garden_thefts.search("wheel*")) == ["0001-27NOV26"]  # * is no word
    assert references(garden_thefts.search("qua la")) == ["0001-27NOV26"]
    assert garden_thefts.search("barrow").incidents == []  # inside a word is not a match


def test_search_finds_the_caller_by_name_and_phone(history) -> None:
    caller = Caller(name="Jo Smíth", phone="07700 900123")
    history.keep(
        [ArchiveRow.of(incident("0001-27NOV26", T0).model_copy(update={"caller": caller}))]
    )
    history.keep([row("0002-27NOV26", T0)])
    for typed in ("smith", "jo smi", "07700 900123", "07700900123", "0770090"):
        assert references(history.search(typed)) == ["0001-27NOV26"], typed


def test_search_finds_a_day_by_its_part_of_the_reference(garden_thefts) -> None:
    assert references(garden_thefts.search("27NOV26")) == ["0002-27NOV26", "0001-27NOV26"]
    assert references(garden_thefts.search("0001-27NOV26")) == ["0001-27NOV26"]


def test_search_is_newest_first_in_pages(garden_thefts) -> None:
    page = garden_thefts.search("taken", limit=1)
    assert references(page) == ["0002-27NOV26"] and page.next_after is not None
    page = garden_thefts.search("taken", limit=1, after=page.next_after)
    assert references(page) == ["0001-27NOV26"] and page.next_after is None
    assert references(garden_thefts.search("theft")) == ["0003-28NOV26", "0001-27NOV26"]


@pytest.mark.parametrize(
    "typed", ['" OR -wheelbarrow NEAR', "wheelbarrow OR mower", "barrow*", "NEAR(mower)"]
)
def test_nothing_typed_is_query_syntax(garden_thefts, typed: str) -> None:
    # Every word is a word to find: none of these texts is in any incident.
    assert garden_thefts.search(typed).incidents == []


@pytest.mark.parametrize("typed", ["\x00", "mower\x00", "\x00\"'\x1b[2J", "Zo\x00ë"])
def test_control_characters_are_no_part_of_a_word(garden_thefts, typed: str) -> None:
    # The fuzzer's find: a NUL ended SQLite's query string ("unterminated string", 500).
    assert isinstance(garden_thefts.search(typed), ArchivedPage)


@pytest.mark.parametrize("typed", ["", "   ", "\n\t", "-", "?! ..."])
def test_search_for_no_words_finds_nothing(garden_thefts, typed: str) -> None:
    assert garden_thefts.search(typed) == ArchivedPage([], None)
