"""The SQLite event store: round trips, refusals, atomicity, durability and pruning."""

from __future__ import annotations

import json
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cadterm.protocol.domain import (
    Caller,
    Capability,
    Grade,
    Location,
    Position,
    SourceChannel,
    UnitState,
    UnitType,
)
from cadterm.protocol.events import (
    Event,
    IncidentCreated,
    NoteAdded,
    UnitAssigned,
    UnitBookedOn,
    UnitStateChanged,
)
from cadterm.protocol.fold import DispatchState, fold
from cadterm.server.store import (
    Accepted,
    EventStore,
    SequenceConflict,
    SQLiteEventStore,
    StoredCommand,
    StoreError,
)
from cadterm.server.store.sqlite import _MIGRATIONS, SCHEMA_VERSION

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
REF = "0001-27NOV26"


def _at(seq: int) -> datetime:
    return T0 + timedelta(seconds=seq)


def _common(seq: int) -> dict:
    return {"seq": seq, "at": _at(seq), "operator": "op1", "workstation": "ws1"}


def history(n: int) -> list[Event]:
    """`n` events (n >= 2) that fold cleanly: a unit, an incident, then a mix after it."""
    events: list[Event] = [
        UnitBookedOn(
            **_common(1),
            callsign="AB12",
            unit_type=UnitType.PATROL_CAR,
            capabilities=[Capability.FIRST_AID, Capability.TASER],
            position=Position(lat=51.5074, lon=-0.1278),
        ),
        IncidentCreated(
            **_common(2),
            reference=REF,
            grade=Grade.EMERGENCY,
            incident_type="RTC",
            description="Two cars, one on its roof",
            location=Location(address="1 High St", position=Position(lat=51.5, lon=-0.12)),
            caller=Caller(name="A. Caller", phone="07700900000"),
            source=SourceChannel.EMERGENCY_999,
        ),
    ]
    for seq in range(3, n + 1):
        if seq == 3:
            events.append(UnitAssigned(**_common(seq), reference=REF, callsign="AB12"))
        elif seq == 4:
            events.append(
                UnitStateChanged(**_common(seq), callsign="AB12", state=UnitState.AT_SCENE)
            )
        else:
            events.append(NoteAdded(**_common(seq), reference=REF, text=f"update {seq}: café ✓"))
    return events[:n]


def command(key: str, seq: int | None, status: int = 201) -> StoredCommand:
    body = json.dumps({"seq": seq} if seq is not None else {"title": "refused"})
    return StoredCommand(key, "op1", f"fp-{key}", status, body, seq)


def append_all(store: SQLiteEventStore, events: list[Event]) -> None:
    for event in events:
        store.append(event, command(f"key-{event.seq}", event.seq))


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "events.db"


@pytest.fixture
def store(path: Path):
    with SQLiteEventStore(path) as opened:
        yield opened


@contextmanager
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection to the file behind the store's back, closed on exit.

    (sqlite3's own `with connection:` only commits; it never closes.)
    """
    conn = sqlite3.connect(path)
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()


# --- basics -----------------------------------------------------------------------------


def test_satisfies_the_protocol(store: SQLiteEventStore) -> None:
    as_protocol: EventStore = store
    assert as_protocol.head() == 0


def test_empty_store(store: SQLiteEventStore, path: Path) -> None:
    assert path.exists()  # parent folders were created
    assert store.head() == 0
    assert store.first_retained() == 1
    assert store.read(0, 10) == []
    assert store.load_snapshot() is None
    assert store.find_command("op1", "nope") is None
    assert list(store.events_after(0)) == []


def test_append_read_round_trip(store: SQLiteEventStore) -> None:
    events = history(6)
    append_all(store, events)

    got = store.read(0, 100)
    assert got == events
    assert [type(e) for e in got] == [type(e) for e in events]
    assert got[0].at.utcoffset() == timedelta(0)
    assert store.head() == 6
    assert store.first_retained() == 1
    assert store.read(2, 2) == events[2:4]
    assert store.read(6, 10) == []
    assert store.read(0, 0) == []
    assert store.read(0, -1) == []  # SQLite would read LIMIT -1 as "everything"


def test_rows_hold_type_time_and_json(store: SQLiteEventStore, path: Path) -> None:
    append_all(store, history(2))
    with raw(path) as conn:
        rows = conn.execute("SELECT seq, type, at, body FROM events ORDER BY seq").fetchall()
    assert [(seq, kind) for seq, kind, _, _ in rows] == [
        (1, "unit_booked_on"),
        (2, "incident_created"),
    ]
    assert datetime.fromisoformat(rows[0][2]) == _at(1)
    assert json.loads(rows[1][3])["reference"] == REF


# --- refusals leave nothing behind --------------------------------------------------------


@pytest.mark.parametrize("bad_seq", [1, 2, 4, 10])
def test_bad_seq_rejected_and_nothing_written(store: SQLiteEventStore, bad_seq: int) -> None:
    append_all(store, history(2))
    event = NoteAdded(**_common(bad_seq), reference=REF, text="wrong place")

    with pytest.raises(SequenceConflict, match=rf"expected seq 3, got {bad_seq}"):
        store.append(event, command("late", bad_seq))

    assert store.head() == 2
    assert store.find_command("op1", "late") is None
    assert [e.seq for e in store.read(0, 100)] == [1, 2]


def test_first_event_must_be_seq_one(store: SQLiteEventStore) -> None:
    with pytest.raises(SequenceConflict, match="expected seq 1, got 2"):
        store.append(history(2)[1], command("k", 2))
    assert store.head() == 0


def test_duplicate_idempotency_key_rejected_and_event_not_written(
    store: SQLiteEventStore,
) -> None:
    first, second = history(2)
    store.append(first, command("same", 1))

    with pytest.raises(StoreError, match="already stored") as info:
        store.append(second, command("same", 2))
    assert not isinstance(info.value, SequenceConflict)

    assert store.head() == 1
    assert store.read(0, 10) == [first]
    assert store.find_command("op1", "same") == command("same", 1)
    store.append(second, command("other", 2))  # the log carries on at the same seq
    assert store.head() == 2


def test_refused_key_cannot_be_reused_for_an_append(store: SQLiteEventStore) -> None:
    store.remember_refusal(command("refused", None, status=409))
    with pytest.raises(StoreError, match="already stored"):
        store.append(history(1)[0], command("refused", 1))
    assert store.head() == 0
    assert store.read(0, 10) == []


def test_rollback_when_the_event_insert_fails_after_the_command_insert(path: Path) -> None:
    # Two stores on one file: the second's cached head is stale, so its head check passes,
    # its command row goes in, and the event row then collides. Both must be rolled back.
    with SQLiteEventStore(path) as a, SQLiteEventStore(path) as b:
        event = history(1)[0]
        a.append(event, command("from-a", 1))
        with pytest.raises(SequenceConflict, match="already stored"):
            b.append(event, command("from-b", 1))
        assert a.find_command("op1", "from-b") is None
        assert b.find_command("op1", "from-b") is None
        assert a.read(0, 10) == [event]


def test_command_seq_must_match_its_event(store: SQLiteEventStore) -> None:
    with pytest.raises(StoreError, match="claims seq 7"):
        store.append(history(1)[0], command("k", 7))
    assert store.head() == 0
    assert store.find_command("op1", "k") is None


def test_command_without_seq_is_stored_with_the_events_seq(store: SQLiteEventStore) -> None:
    store.append(history(1)[0], command("k", None))
    found = store.find_command("op1", "k")
    assert found is not None and found.seq == 1


# --- commands -----------------------------------------------------------------------------


def test_find_command_returns_accepted_and_refused_results(store: SQLiteEventStore) -> None:
    append_all(store, history(3))
    refusal = command("refused-1", None, status=422)
    store.remember_refusal(refusal)

    assert store.find_command("op1", "key-2") == command("key-2", 2)
    assert store.find_command("op1", "refused-1") == refusal
    assert store.find_command("op1", "refused-1").seq is None
    assert store.head() == 3  # a refusal is not an event


def test_remember_refusal_keeps_the_first_answer(store: SQLiteEventStore) -> None:
    first = command("r", None, status=409)
    store.remember_refusal(first)
    store.remember_refusal(StoredCommand("r", "op1", "other", 400, "{}", None))
    assert store.find_command("op1", "r") == first


def test_keys_are_scoped_to_the_operator(store: SQLiteEventStore) -> None:
    # Another operator's command under the same key is theirs: stored, found apart.
    mine = command("shared-key", None, status=409)
    theirs = StoredCommand("shared-key", "op2", "fp-theirs", 422, "{}", None)
    store.remember_refusal(mine)
    store.remember_refusal(theirs)
    store.append(history(1)[0], StoredCommand("shared-key", "op3", "fp", 201, "{}", 1))
    assert store.find_command("op1", "shared-key") == mine
    assert store.find_command("op2", "shared-key") == theirs
    assert store.find_command("op3", "shared-key").seq == 1
    assert store.find_command("op4", "shared-key") is None


def test_remember_refusal_leaves_an_accepted_answer_alone(store: SQLiteEventStore) -> None:
    store.append(history(1)[0], command("k", 1))
    store.remember_refusal(command("k", None, status=409))
    assert store.find_command("op1", "k") == command("k", 1)


def test_refusal_with_a_seq_is_a_bug(store: SQLiteEventStore) -> None:
    with pytest.raises(StoreError):
        store.remember_refusal(command("r", 1))
    assert store.find_command("op1", "r") is None


# --- on disk ------------------------------------------------------------------------------


def test_reopen_keeps_everything(path: Path) -> None:
    events = history(5)
    with SQLiteEventStore(path) as store:
        append_all(store, events)
        store.remember_refusal(command("refused", None, status=409))
        snapshot = fold(events[:4])
        store.save_snapshot(snapshot)

    with SQLiteEventStore(path) as store:
        assert store.head() == 5
        assert store.read(0, 100) == events
        assert store.find_command("op1", "key-3") == command("key-3", 3)
        assert store.find_command("op1", "refused") == command("refused", None, status=409)
        loaded = store.load_snapshot()
        assert loaded is not None and loaded.model_dump() == snapshot.model_dump()
        store.append(NoteAdded(**_common(6), reference=REF, text="after reopen"), command("k6", 6))
        assert store.head() == 6


def test_pragmas(store: SQLiteEventStore, path: Path) -> None:
    # synchronous and foreign_keys are per connection: ask the store's own connection.
    conn = store._conn
    assert conn is not None
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    # WAL and the schema version are in the file itself, so any connection sees them.
    with raw(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert other.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_migration_2_keeps_the_commands_of_a_version_1_file(path: Path) -> None:
    # A file exactly as schema version 1 left it: commands keyed by the key alone.
    path.parent.mkdir(parents=True, exist_ok=True)
    event = history(1)[0]
    with raw(path) as conn:
        for statement in _MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO events (seq, type, at, body) VALUES (1, ?, ?, ?)",
            (event.type, event.at.isoformat(), event.model_dump_json()),
        )
        conn.executemany(
            "INSERT INTO commands VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("key-1", "op1", "fp-key-1", 201, json.dumps({"seq": 1}), 1),
                ("refused", "op2", "fp-refused", 409, "{}", None),
            ],
        )
        conn.execute("PRAGMA user_version = 1")
        conn.commit()

    with SQLiteEventStore(path) as store:
        assert store.head() == 1
        assert store.find_command("op1", "key-1") == command("key-1", 1)
        assert store.find_command("op2", "refused") == StoredCommand(
            "refused", "op2", "fp-refused", 409, "{}", None
        )
        # Now scoped: op1 cannot see op2's key, and may store its own under it.
        assert store.find_command("op1", "refused") is None
        store.remember_refusal(command("refused", None, status=422))
        assert store.find_command("op1", "refused") == command("refused", None, status=422)
    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        columns = conn.execute("PRAGMA table_info(commands)").fetchall()
        assert [(c[1], c[5]) for c in columns if c[5]] == [("operator", 1), ("idempotency_key", 2)]
        assert conn.execute("SELECT COUNT(*) FROM commands").fetchone()[0] == 3


def test_newer_schema_version_refused_and_file_untouched(path: Path) -> None:
    path.parent.mkdir(parents=True)
    with raw(path) as conn:
        conn.execute("CREATE TABLE future (x)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")

    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade"):
        SQLiteEventStore(path)

    with raw(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"


def test_not_a_database_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite\n" * 100)
    with pytest.raises(StoreError, match="not an SQLite event store"):
        SQLiteEventStore(path)


def test_close_is_idempotent_and_later_calls_fail(path: Path) -> None:
    store = SQLiteEventStore(path)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.read(0, 10)
    with pytest.raises(StoreError, match="closed"):
        store.append(history(1)[0], command("k", 1))


def test_negative_retention_rejected(path: Path) -> None:
    with pytest.raises(ValueError):
        SQLiteEventStore(path, retain_events=-1)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_append_survives_sigkill_right_after_it_returned(tmp_path: Path, path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from datetime import UTC, datetime
        from cadterm.protocol.domain import UnitType
        from cadterm.protocol.events import UnitBookedOn
        from cadterm.server.store import SQLiteEventStore, StoredCommand

        store = SQLiteEventStore(sys.argv[1])
        event = UnitBookedOn(
            seq=1, at=datetime(2026, 11, 27, 9, 0, tzinfo=UTC), operator="op1",
            workstation="ws1", callsign="AB12", unit_type=UnitType.VAN,
        )
        store.append(event, StoredCommand("k1", "op1", "fp", 201, json.dumps({"seq": 1}), 1))
        print("appended", flush=True)
        sys.stdin.read()  # wait to be killed; exits by itself if the test goes away
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=20)
        assert ready, "child did not report the append in time"
        line = proc.stdout.readline()
        assert line == b"appended\n", proc.stderr.read() if proc.stderr else line
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    with SQLiteEventStore(path) as store:
        assert store.head() == 1
        [event] = store.read(0, 10)
        assert isinstance(event, UnitBookedOn) and event.callsign == "AB12"
        assert store.find_command("op1", "k1") == StoredCommand(
            "k1", "op1", "fp", 201, json.dumps({"seq": 1}), 1
        )


# --- snapshots and pruning ----------------------------------------------------------------


def snapshot_seqs(path: Path) -> list[int]:
    with raw(path) as conn:
        return [r[0] for r in conn.execute("SELECT seq FROM snapshots ORDER BY seq")]


def test_snapshot_round_trip_and_pruning(path: Path) -> None:
    events = history(10)
    with SQLiteEventStore(path, retain_events=3) as store:
        append_all(store, events)

        at6 = fold(events[:6])
        store.save_snapshot(at6)
        assert store.load_snapshot().model_dump() == at6.model_dump()
        assert store.first_retained() == 4  # 3 events up to the snapshot stay
        assert store.head() == 10
        assert [e.seq for e in store.read(0, 100)] == list(range(4, 11))

        at10 = fold(events)
        store.save_snapshot(at10)
        assert store.first_retained() == 8
        assert store.head() == 10

        store.save_snapshot(fold(events[:8]))  # an older one still counts as one of two
        assert snapshot_seqs(path) == [8, 10]
        assert store.load_snapshot().seq == 10
        assert store.first_retained() == 8  # pruning never moves backwards

        # The commands of pruned events stay: a late retry still finds its answer.
        assert store.find_command("op1", "key-1") == command("key-1", 1)


def test_rebuild_from_snapshot_and_events_after(path: Path) -> None:
    events = history(12)
    with SQLiteEventStore(path, retain_events=2) as store:
        append_all(store, events)
        store.save_snapshot(fold(events[:7]))

    with SQLiteEventStore(path, retain_events=2) as store:
        state = store.load_snapshot()
        assert state is not None and state.seq == 7
        rebuilt = fold(store.events_after(state.seq, batch=2), state)
    assert rebuilt.model_dump() == fold(events).model_dump()


def test_events_after_pages_in_batches(store: SQLiteEventStore) -> None:
    events = history(7)
    append_all(store, events)
    for batch in (1, 2, 3, 7, 100):
        assert list(store.events_after(0, batch=batch)) == events
        assert list(store.events_after(4, batch=batch)) == events[4:]
    with pytest.raises(ValueError):
        list(store.events_after(0, batch=0))


def test_events_after_refuses_to_skip_pruned_events(path: Path) -> None:
    with SQLiteEventStore(path, retain_events=2) as store:
        events = history(6)
        append_all(store, events)
        store.save_snapshot(fold(events))
        with pytest.raises(StoreError, match="pruned"):
            list(store.events_after(0))
        assert list(store.events_after(4)) == events[4:]


def test_prune_everything_keeps_the_head(path: Path) -> None:
    events = history(5)
    with SQLiteEventStore(path, retain_events=0) as store:
        append_all(store, events)
        store.save_snapshot(fold(events))
        assert store.read(0, 100) == []
        assert store.first_retained() == 6
        assert store.head() == 5

    # After reopening, the head comes from the snapshot because no event row is left.
    with SQLiteEventStore(path, retain_events=0) as store:
        assert store.head() == 5
        assert store.first_retained() == 6
        with pytest.raises(SequenceConflict, match="expected seq 6, got 5"):
            store.append(events[-1], command("again", 5))
        store.append(NoteAdded(**_common(6), reference=REF, text="next"), command("k6", 6))
        assert [e.seq for e in store.read(0, 10)] == [6]


def test_snapshot_past_the_head_rejected(store: SQLiteEventStore) -> None:
    append_all(store, history(2))
    with pytest.raises(StoreError, match="past the head"):
        store.save_snapshot(DispatchState(seq=3))
    assert store.load_snapshot() is None


def test_empty_snapshot_allowed(store: SQLiteEventStore) -> None:
    store.save_snapshot(DispatchState())
    assert store.load_snapshot() == DispatchState()
    assert store.head() == 0


# --- threads ------------------------------------------------------------------------------


def test_reads_from_another_thread_while_appending(store: SQLiteEventStore) -> None:
    events = history(40)
    stop = threading.Event()
    problems: list[BaseException] = []
    seen: list[int] = []

    def reader() -> None:
        try:
            while not stop.is_set():
                head = store.head()
                got = [e.seq for e in store.read(0, 1000)]
                # Every read is a gap-free prefix of the log, never behind the head seen
                # before it.
                assert got == list(range(1, len(got) + 1))
                assert len(got) >= head
                seen.append(len(got))
        except BaseException as exc:
            problems.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        append_all(store, events)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
    assert problems == []
    assert seen == sorted(seen)
    assert store.read(0, 1000) == events


def test_find_commands_answers_many_keys_in_one_look_up(store: SQLiteEventStore) -> None:
    events = history(450)
    store.commit(
        [Accepted(e, e.model_dump_json(), command(f"key-{e.seq}", e.seq)) for e in events],
        [command("refused", None, status=409)],
        at=1000.0,
    )
    # More keys than one query binds, with repeats, misses and another operator's key.
    asked = [("op1", f"key-{n}") for n in range(1, 460)] + [("op1", "key-7"), ("op2", "key-1")]
    found = store.find_commands([*asked, ("op1", "refused")])
    assert set(found) == {("op1", f"key-{n}") for n in range(1, 451)} | {("op1", "refused")}
    assert found[("op1", "key-450")] == command("key-450", 450)
    assert found[("op1", "refused")].seq is None


def test_commit_writes_a_batch_in_order_and_refuses_it_whole(store: SQLiteEventStore) -> None:
    first, second, third = history(3)
    batch = [
        Accepted(e, e.model_dump_json(), command(f"b-{e.seq}", e.seq)) for e in (first, second)
    ]
    store.commit(batch, [command("no", None, status=404)], at=50.0)
    assert store.head() == 2
    # A batch with a gap is refused whole: nothing of it is written.
    gap = [
        Accepted(third, third.model_dump_json(), command("c-3", 3)),
        Accepted(third, third.model_dump_json(), command("c-4", 3)),
    ]
    with pytest.raises(SequenceConflict):
        store.commit(gap, [command("late", None, status=404)], at=60.0)
    assert store.head() == 2
    assert store.find_command("op1", "c-3") is None
    assert store.find_command("op1", "late") is None
    assert store.read(0, 10) == [first, second]


def test_prune_commands_forgets_only_answers_older_than_the_cut(store: SQLiteEventStore) -> None:
    events = history(5000)
    for start, at in ((0, 100.0), (2500, 200.0)):
        chunk = events[start : start + 2500]
        store.commit(
            [Accepted(e, e.model_dump_json(), command(f"p-{e.seq}", e.seq)) for e in chunk],
            [],
            at=at,
        )
    assert store.prune_commands(100.0) == 0  # strictly older only
    assert store.prune_commands(150.0) == 2500  # more than one chunk's worth
    assert store.find_command("op1", "p-1") is None
    assert store.find_command("op1", "p-2501") is not None
    assert store.head() == 5000  # events are not touched
    frames, copied = store.checkpoint()
    assert copied <= frames


def test_find_commands_searches_the_key_not_the_table(store: SQLiteEventStore) -> None:
    # The look-up runs once per group commit: a scan would grow with every command kept.
    sent: list[str] = []
    with store._connection() as conn:
        conn.set_trace_callback(sent.append)
    store.find_commands([("op1", "a"), ("op1", "b"), ("op2", "a")])
    with store._connection() as conn:
        conn.set_trace_callback(None)
        selects = [sql for sql in sent if sql.lstrip().upper().startswith("SELECT")]
        plans = [str(conn.execute("EXPLAIN QUERY PLAN " + sql).fetchall()) for sql in selects]
    assert len(selects) == 2  # one per operator
    for plan in plans:
        assert "SEARCH commands USING" in plan and "SCAN commands" not in plan, plan
