"""The offline journal: on its own on a real SQLite file, and inside a client whose
backend goes away, comes back, and meanwhile moved on without it.

The integration tests play the control-room story: the backend is down, the operator
keeps working (commands are journalled with their time), the console is restarted, the
backend returns, and the journal is sent in order; what the backend refuses on arrival
waits for an operator instead of being dropped, and nothing is sent twice.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import stat
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import waiting
from conftest import TOKENS, Backend, make_config

from cadterm.client import (
    Backoff,
    DispatchClient,
    Journal,
    JournalEntry,
    JournalError,
    JournalStatus,
    LinkState,
    new_key,
)
from cadterm.client.queries import Queries
from cadterm.protocol.commands import AddNote, BookOn, CreateIncident, SetUnitState
from cadterm.protocol.domain import Location, Position, Role, UnitState
from cadterm.protocol.problems import Problem, ProblemCode
from cadterm.server.config import Limits

DISPATCHER = TOKENS[Role.DISPATCHER]
FAST = Backoff(base=0.02, cap=0.1)
TIMEOUT = 15.0
T0 = datetime(2026, 11, 27, 3, 14, 15, 926000, tzinfo=UTC)


def book_on(callsign: str = "AB12", **fields: Any) -> BookOn:
    fields.setdefault("workstation", "ws-offline")
    return BookOn(idempotency_key=new_key(), callsign=callsign, unit_type="van", **fields)


def note(reference: str = "0001-27NOV26", text: str = "caller rang back", **fields: Any) -> AddNote:
    fields.setdefault("workstation", "ws-offline")
    return AddNote(idempotency_key=new_key(), reference=reference, text=text, **fields)


def set_state(callsign: str, state: int | str) -> SetUnitState:
    return SetUnitState(
        idempotency_key=new_key(), callsign=callsign, state=state, workstation="ws-offline"
    )


def tally_matches_file(journal: Journal) -> None:
    """The journal's in-memory tally of waiting entries says what its file says."""
    pending = journal.pending()
    assert journal.pending_count == len(pending)
    assert journal.next_pending_key == (pending[0].key if pending else None)
    assert all(journal.is_pending(e.key) for e in pending)
    assert journal.rejected_keys == {e.key for e in journal.rejected()}
    assert journal.rejected_count == len(journal.rejected())
    assert not any(journal.is_pending(key) for key in journal.rejected_keys)


async def until(condition: Callable[[], object], timeout: float = TIMEOUT) -> None:
    """Poll `condition` until it holds; fail at once if it raises (`waiting.until`)."""
    await waiting.until(condition, timeout)


# --- the journal on its own --------------------------------------------------------------


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    journal = Journal(tmp_path / "journal.db")
    yield journal
    journal.close()


def test_add_keeps_order_time_and_command(journal: Journal) -> None:
    commands = [book_on("AB1"), note(), book_on("AB2")]
    added = [journal.add(c, T0 + timedelta(seconds=i)) for i, c in enumerate(commands)]
    assert [e.position for e in added] == sorted(e.position for e in added)
    assert len({e.position for e in added}) == 3
    pending = journal.pending()
    assert [e.command for e in pending] == commands
    assert [e.key for e in pending] == [c.idempotency_key for c in commands]
    assert [e.issued_at for e in pending] == [
        T0,
        T0 + timedelta(seconds=1),
        T0 + timedelta(seconds=2),
    ]
    assert all(e.status == JournalStatus.PENDING and e.attempts == 0 for e in pending)
    assert all(e.seq is None and e.problem is None for e in pending)
    assert pending == added
    assert journal.rejected() == []
    assert journal.pending_count == 3 and journal.rejected_keys == frozenset()


def test_sent_rejected_and_dismissed_leave_pending_but_stay_on_file(journal: Journal) -> None:
    first, second, third, fourth = (journal.add(book_on(f"AB{i}"), T0) for i in range(4))
    journal.mark_sent(first.key, 7)
    problem = Problem.of(ProblemCode.UNKNOWN_CALLSIGN, "no unit 'AB1'", field="callsign")
    journal.mark_rejected(second.key, problem)
    journal.mark_attempt(third.key)

    assert [e.key for e in journal.pending()] == [third.key, fourth.key]
    assert journal.pending()[0].attempts == 1
    assert journal.pending_count == 2 and journal.rejected_keys == {second.key}
    tally_matches_file(journal)
    [rejected] = journal.rejected()
    assert rejected.key == second.key
    assert rejected.status == JournalStatus.REJECTED
    assert rejected.problem == problem
    assert rejected.attempts == 1

    journal.dismiss(second.key)
    assert journal.rejected() == []
    assert journal.pending_count == 2 and journal.rejected_keys == frozenset()
    by_key = {e.key: e for e in journal.entries()}
    assert by_key[first.key].status == JournalStatus.SENT and by_key[first.key].seq == 7
    assert by_key[second.key].status == JournalStatus.DISMISSED
    assert by_key[second.key].problem == problem  # kept with the reason it was refused
    assert [e.key for e in journal.entries()] == [first.key, second.key, third.key, fourth.key]
    assert [e.key for e in journal.entries(JournalStatus.SENT, JournalStatus.DISMISSED)] == [
        first.key,
        second.key,
    ]


def test_dismissing_anything_but_a_rejected_entry_is_an_error(journal: Journal) -> None:
    pending = journal.add(book_on("AB1"), T0)
    sent = journal.add(book_on("AB2"), T0)
    journal.mark_sent(sent.key, 1)
    for key in (pending.key, sent.key, "no-such-key-0000"):
        with pytest.raises(JournalError):
            journal.dismiss(key)
    rejected = journal.add(book_on("AB3"), T0)
    journal.mark_rejected(rejected.key, Problem.of(ProblemCode.UNIT_ON_DUTY, "on duty"))
    journal.dismiss(rejected.key)
    with pytest.raises(JournalError):  # only once
        journal.dismiss(rejected.key)
    assert journal.pending()[0].key == pending.key
    tally_matches_file(journal)
    assert {e.key: e.status for e in journal.entries()} == {
        pending.key: JournalStatus.PENDING,
        sent.key: JournalStatus.SENT,
        rejected.key: JournalStatus.DISMISSED,
    }


def test_entries_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "console" / "journal.db"  # the folder is made on first use
    journal = Journal(path)
    kept = [
        journal.add(book_on("AB1", position=Position(lat=52.2, lon=-1.5)), T0),
        journal.add(note(text="lights seen at rear"), T0 + timedelta(minutes=1)),
        journal.add(set_state("AB1", 6), T0),
    ]
    journal.mark_sent(kept[0].key, 3)
    journal.mark_rejected(kept[1].key, Problem.of(ProblemCode.UNKNOWN_INCIDENT, "no incident"))
    journal.close()

    reopened = Journal(path)
    try:
        entries = reopened.entries()
        assert [e.command for e in entries] == [e.command for e in kept]
        assert [e.issued_at for e in entries] == [e.issued_at for e in kept]
        assert [e.status for e in entries] == [
            JournalStatus.SENT,
            JournalStatus.REJECTED,
            JournalStatus.PENDING,
        ]
        assert entries[0].seq == 3
        assert entries[1].problem is not None
        assert entries[1].problem.code == ProblemCode.UNKNOWN_INCIDENT
        assert entries[2].command.state == UnitState.AT_SCENE
        assert reopened.pending_count == 1 and reopened.rejected_keys == {kept[1].key}
        # New entries go after the old ones.
        later = reopened.add(book_on("AB9"), T0)
        assert later.position > entries[-1].position
        assert [e.key for e in reopened.pending()] == [kept[2].key, later.key]
        tally_matches_file(reopened)
    finally:
        reopened.close()


def test_a_command_journalled_before_todays_rules_is_set_aside_not_sent(tmp_path: Path) -> None:
    """An older console journalled a note with an escape sequence; today's door refuses
    it. Opening the journal never fails: the entry becomes a rejected one with the
    reason, so it is never sent as it stands, never lost, and an operator deals with it."""
    path = tmp_path / "journal.db"
    journal = Journal(path)
    old = journal.add(note(text="placeholder"), T0)
    kept = journal.add(book_on("AB1"), T0)
    journal.close()
    with sqlite3.connect(path) as conn:
        stored = json.loads(
            conn.execute(
                "SELECT command FROM entries WHERE position = ?", (old.position,)
            ).fetchone()[0]
        )
        stored["text"] = "wipe \x1b[2J"
        conn.execute(
            "UPDATE entries SET command = ? WHERE position = ?", (json.dumps(stored), old.position)
        )

    reopened = Journal(path)
    try:
        assert [e.key for e in reopened.pending()] == [kept.key]
        (rejected,) = reopened.rejected()
        assert rejected.key == old.key and rejected.kind == "add_note"
        assert reopened.pending_count == 1 and reopened.rejected_keys == {old.key}
        assert rejected.command is None
        assert rejected.problem is not None
        assert "older cadterm" in rejected.problem.detail
        assert "U+001B" in rejected.problem.detail
        reopened.dismiss(rejected.key)
        assert [e.status for e in reopened.entries()] == [
            JournalStatus.DISMISSED,
            JournalStatus.PENDING,
        ]
    finally:
        reopened.close()


def test_the_same_key_cannot_be_journalled_twice(journal: Journal) -> None:
    command = book_on("AB1")
    journal.add(command, T0)
    with pytest.raises(JournalError):
        journal.add(command, T0)
    assert len(journal.entries()) == 1


def test_an_unusable_journal_file_is_a_journal_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(JournalError):
        Journal(tmp_path / "not-a-db")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(JournalError):
        Journal(blocker / "journal.db")  # its folder is a file


# --- a client with a journal, against a real backend -------------------------------------


def journalled_client(backend: Backend, journal_path: Path, **options: Any) -> DispatchClient:
    options.setdefault("backoff", FAST)
    return DispatchClient(
        [backend.url], DISPATCHER, workstation="ws-offline", journal_path=journal_path, **options
    )


@contextlib.asynccontextmanager
async def live(backend: Backend, **options: Any) -> AsyncIterator[DispatchClient]:
    async with DispatchClient([backend.url], DISPATCHER, backoff=FAST, **options) as client:
        await client.wait_live(TIMEOUT)
        yield client


async def events(backend: Backend, after: int = 0) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=backend.url, headers=backend.headers(), timeout=TIMEOUT, trust_env=False
    ) as http:
        response = await http.get("/v1/events", params={"after": after, "limit": 5000})
        response.raise_for_status()
        return response.json()


def summary(entries: list[JournalEntry]) -> list[tuple[str, datetime, JournalStatus, int]]:
    return [(e.key, e.issued_at, e.status, e.attempts) for e in entries]


async def test_commands_journalled_offline_are_sent_in_order_when_the_backend_returns(
    backend_factory, tmp_path: Path
) -> None:
    # Before the outage: one incident and one unit, as the operator last saw them.
    backend = backend_factory()
    async with live(backend) as client:
        created = await client.execute(
            CreateIncident(
                idempotency_key=new_key(),
                workstation="ws-offline",
                grade=2,
                incident_type="BURGLARY",
                location=Location(address="4 Mill Lane"),
            )
        )
        reference = created.event.reference
        await client.execute(book_on("AB1"))
        seen_version = client.incidents[reference].version
        head = client.seq
    backend_factory.stop(backend)

    # The backend is down. The operator carries on; every command goes to the journal.
    journal_path = tmp_path / "console" / "journal.db"
    offline = journalled_client(backend, journal_path)
    offline.start()
    typed_at = datetime.now(UTC) - timedelta(minutes=3)  # written on paper, typed in later
    before = datetime.now(UTC)
    commands = [
        book_on("AB7", position=Position(lat=52.2, lon=-1.5)),
        note(reference, "neighbour saw two men leave by the rear", expected_version=seen_version),
        set_state("NOSUCH9", 4),
        set_state("AB1", "refs"),
        note(reference, "keyholder on the way"),
    ]
    submitted = [await offline.submit(commands[0], issued_at=typed_at)]
    submitted += [await offline.submit(command) for command in commands[1:]]
    after = datetime.now(UTC)

    assert all(e.status == JournalStatus.PENDING for e in submitted)
    assert offline.pending.unsent == offline.pending.count == 5
    pending = offline.pending.entries()
    # Each is journalled as typed, stamped with the time it was typed.
    assert [e.command.model_copy(update={"taken_at": None}) for e in pending] == commands
    assert [e.command.taken_at for e in pending] == [e.issued_at for e in pending]
    assert pending[0].issued_at == typed_at
    assert all(before <= e.issued_at <= after for e in pending[1:])
    assert [e.issued_at for e in pending[1:]] == sorted(e.issued_at for e in pending[1:])
    # The flusher, woken by each submit, has had its turn once the link has failed two
    # more times since: it found nothing live to send to.
    tried = offline.status.attempts
    await until(lambda: offline.status.attempts >= tried + 2)
    assert offline.status.state in (LinkState.CONNECTING, LinkState.RECONNECTING)
    assert summary(offline.pending.entries()) == summary(pending)
    assert offline.journal_entry(commands[2].idempotency_key) == pending[2]
    await offline.close()  # the console is restarted

    # After the restart, still down: the journal is read back as it was.
    restarted = journalled_client(backend, journal_path)
    async with restarted:
        assert summary(restarted.pending.entries()) == summary(pending)
        assert [e.command for e in restarted.pending.entries()] == [e.command for e in pending]
        await until(lambda: restarted.status.attempts >= 2)  # tried, and failed, to send
        assert summary(restarted.pending.entries()) == summary(pending)

    # The backend returns on the same port with the same data. Before this console
    # reconnects, a colleague elsewhere updates the incident.
    backend.start()
    async with live(backend) as colleague:
        await colleague.execute(
            note(reference, "caller rang back: door was forced", workstation="ws-colleague")
        )
        assert colleague.incidents[reference].version == seen_version + 1

    async with journalled_client(backend, journal_path) as console:
        await until(lambda: not console.pending.entries())
        assert console.pending.unsent == 0 and console.pending.rejected == 2
        entries = console.journal.entries()
        assert [e.key for e in entries] == [c.idempotency_key for c in commands]
        assert [e.status for e in entries] == [
            JournalStatus.SENT,
            JournalStatus.REJECTED,
            JournalStatus.REJECTED,
            JournalStatus.SENT,
            JournalStatus.SENT,
        ]
        sent = [entries[0], entries[3], entries[4]]
        assert [e.seq for e in sent] == [head + 2, head + 3, head + 4]
        assert all(e.attempts == 1 for e in entries)
        assert entries[0].issued_at == typed_at
        # Sent minutes after it was typed: recorded with both times, flagged.
        async with Queries(backend.url, TOKENS[Role.DISPATCHER]) as queries:
            booked = (await queries.events(after=head + 1, limit=1))[0]
        assert booked.back_entered and booked.taken_at == typed_at
        assert booked.at > typed_at

        # Refused on arrival: kept, with the server's reason, waiting for an operator.
        conflict, unknown = console.rejected()
        assert conflict.key == commands[1].idempotency_key
        assert conflict.problem is not None
        assert conflict.problem.code == ProblemCode.VERSION_CONFLICT
        assert conflict.problem.field == "expected_version"
        assert f"you expected {seen_version}" in conflict.problem.detail
        assert conflict.problem.changes and "door was forced" in conflict.problem.changes[0]
        assert unknown.key == commands[2].idempotency_key
        assert unknown.problem is not None
        assert unknown.problem.code == ProblemCode.UNKNOWN_CALLSIGN
        assert unknown.problem.field == "callsign"
        assert "NOSUCH9" in unknown.problem.detail

        # What the journal says it sent is what the picture shows.
        await until(lambda: console.seq == head + 4)
        assert console.units["AB7"].position == Position(lat=52.2, lon=-1.5)
        assert console.units["AB1"].state == UnitState.REFRESHMENTS
        texts = [entry.text for entry in console.incidents[reference].chronology]
        assert "keyholder on the way" in texts
        assert "neighbour saw two men leave by the rear" not in texts

        # An operator deals with the refusals; they stay on file.
        console.journal.dismiss(unknown.key)
        assert [e.key for e in console.rejected()] == [conflict.key]
        final = console.journal.entries()

    # The server got the journal in submission order, each command exactly once.
    after_outage = await events(backend, after=head)
    assert [(e["seq"], e["type"], e["workstation"]) for e in after_outage] == [
        (head + 1, "note_added", "ws-colleague"),
        (head + 2, "unit_booked_on", "ws-offline"),
        (head + 3, "unit_state_changed", "ws-offline"),
        (head + 4, "note_added", "ws-offline"),
    ]
    assert after_outage[1]["callsign"] == "AB7"
    assert after_outage[2]["callsign"] == "AB1"
    assert after_outage[3]["text"] == "keyholder on the way"

    # Another restart with the backend up sends nothing again.
    async with journalled_client(backend, journal_path) as again:
        await again.wait_live(TIMEOUT)
        marker = await again.submit(note(reference, "marker"))
        await until(lambda: again.journal_entry(marker.key).status == JournalStatus.SENT)
        assert summary(again.journal.entries()[:-1]) == summary(final)
        assert again.journal_entry(marker.key).seq == head + 5
    assert len(await events(backend, after=head)) == 5


async def test_submit_while_live_is_sent_at_once_and_applied(backend: Backend, tmp_path) -> None:
    async with journalled_client(backend, tmp_path / "journal.db") as client:
        await client.wait_live(TIMEOUT)
        entry = await client.submit(book_on("AB3"))
        assert entry.status == JournalStatus.PENDING
        await until(lambda: client.journal_entry(entry.key).status == JournalStatus.SENT)
        done = client.journal_entry(entry.key)
        assert done.seq == 1 and done.attempts == 1
        await until(lambda: client.seq == 1)
        assert "AB3" in client.units
        assert client.pending.entries() == [] and client.rejected() == []
        assert client.pending.count == 0 and client.pending.sent == frozenset()


async def test_rate_limiting_delays_the_journal_but_refuses_nothing(
    backend_factory, tmp_path: Path
) -> None:
    limits = Limits(command_rate=5, command_burst=2)
    backend = backend_factory(config=make_config(limits=limits))
    async with journalled_client(backend, tmp_path / "journal.db", command_attempts=1) as client:
        commands = [book_on(f"AB{i}") for i in range(5)]
        for command in commands:
            await client.submit(command)
        await until(lambda: not client.pending.entries(), timeout=20)
        entries = client.journal.entries()
        assert [e.status for e in entries] == [JournalStatus.SENT] * 5, [
            (e.status, e.problem) for e in entries
        ]
        assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert [e["callsign"] for e in await events(backend)] == [f"AB{i}" for i in range(5)]


async def test_submit_needs_a_journal(backend: Backend) -> None:
    async with DispatchClient([backend.url], DISPATCHER, backoff=FAST) as client:
        with pytest.raises(RuntimeError, match="journal_path"):
            await client.submit(book_on())
        assert client.pending.entries() == [] and client.rejected() == []
        assert client.journal_entry("anything-0000") is None


def test_the_journal_is_private_to_its_user(tmp_path: Path) -> None:
    path = tmp_path / "console" / "journal.db"
    journal = Journal(path)
    try:
        journal.add(note(text="caller: J Smith, 07700 900123"), T0)
        for made in (path, Path(f"{path}-wal")):
            assert stat.S_IMODE(made.stat().st_mode) == 0o600, made
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    finally:
        journal.close()


def test_a_journal_from_before_cad_down_mode_opens_with_its_entries(tmp_path: Path) -> None:
    """Journals written before entries recorded waiting and resolutions gain the columns."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.executescript(
            """
            CREATE TABLE entries (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                idempotency_key TEXT NOT NULL UNIQUE,
                command TEXT NOT NULL,
                issued_at TEXT NOT NULL,
                status TEXT NOT NULL,
                problem TEXT,
                seq INTEGER,
                attempts INTEGER NOT NULL DEFAULT 0
            );
            """
        )
        old.execute(
            "INSERT INTO entries (idempotency_key, command, issued_at, status) VALUES (?,?,?,?)",
            (
                "old-key-1",
                '{"type":"book_off","idempotency_key":"old-key-1","workstation":"ws-1",'
                '"callsign":"B1"}',
                "2026-11-30T09:00:00+00:00",
                "pending",
            ),
        )
    journal = Journal(path)
    try:
        [entry] = journal.pending()
        assert entry.key == "old-key-1" and not entry.waited and entry.resolution is None
        journal.mark_waiting("old-key-1")
        assert journal.pending()[0].waited
    finally:
        journal.close()
