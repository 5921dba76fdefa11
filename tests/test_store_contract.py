"""The `EventStore` contract, held by every store: SQLite and PostgreSQL alike.

Each test runs once per store on a log of its own (a fresh SQLite file, or a fresh
PostgreSQL schema; the PostgreSQL runs skip, saying why, when no server answers). What
only one store has (SQLite's pragmas and file migrations, PostgreSQL's schema table and
its several nodes) is tested in test_store_sqlite.py and test_store_postgres.py.

The events here fold cleanly, so a snapshot of them is a real picture: `history(n)`
gives n of them, `command` the stored answer of the command that caused one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pg import pg_url  # noqa: F401

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
    StoredCommand,
    StoreError,
)
from cadterm.server.store.location import DbLocation, open_store

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
REF = "0001-27NOV26"
#: Long enough for a thread that should finish at once; reached only on a failure.
TIMEOUT = 10.0


def _at(seq: int) -> datetime:
    return T0 + timedelta(seconds=seq)


def common(seq: int) -> dict:
    """The fields every event has, for the event at `seq`."""
    return {"seq": seq, "at": _at(seq), "operator": "op1", "workstation": "ws1"}


def history(n: int) -> list[Event]:
    """`n` events (n >= 2) that fold cleanly: a unit, an incident, then a mix after it."""
    events: list[Event] = [
        UnitBookedOn(
            **common(1),
            callsign="AB12",
            unit_type=UnitType.PATROL_CAR,
            capabilities=[Capability.FIRST_AID, Capability.TASER],
            position=Position(lat=51.5074, lon=-0.1278),
        ),
        IncidentCreated(
            **common(2),
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
            events.append(UnitAssigned(**common(seq), reference=REF, callsign="AB12"))
        elif seq == 4:
            events.append(
                UnitStateChanged(**common(seq), callsign="AB12", state=UnitState.AT_SCENE)
            )
        else:
            events.append(NoteAdded(**common(seq), reference=REF, text=f"update {seq}: café ✓"))
    return events[:n]


def command(key: str, seq: int | None, status: int = 201) -> StoredCommand:
    """op1's stored answer under `key`: accepted at `seq`, or refused with None."""
    body = json.dumps({"seq": seq} if seq is not None else {"title": "refused"})
    return StoredCommand(key, "op1", f"fp-{key}", status, body, seq)


def accepted(event: Event, key: str | None = None) -> Accepted:
    """`event` ready for `commit`, with its command's answer under `key`."""
    return Accepted(event, event.model_dump_json(), command(key or f"key-{event.seq}", event.seq))


def append_all(store: EventStore, events: list[Event]) -> None:
    """Append `events` one by one, each with its own command's answer."""
    for event in events:
        store.append(event, command(f"key-{event.seq}", event.seq))


class Place:
    """Where one test's log lives (an SQLite file or a PostgreSQL schema).

    Opens as many stores on it as the test asks for, to reopen it or to share it, and
    closes them all at the end.
    """

    def __init__(self, kind: str, location: DbLocation) -> None:
        self.kind = kind
        self.location = location
        self._opened: list[EventStore] = []

    def open(self, retain_events: int = 100_000) -> EventStore:
        store = open_store(self.location, retain_events=retain_events)
        self._opened.append(store)
        return store

    def snapshot_seqs(self) -> list[int]:
        """The seqs of the snapshots kept, read behind the stores' backs."""
        if self.location.path is not None:
            conn = sqlite3.connect(self.location.path)
            try:
                return [r[0] for r in conn.execute("SELECT seq FROM snapshots ORDER BY seq")]
            finally:
                conn.close()
        import psycopg

        assert self.location.url is not None
        with psycopg.connect(self.location.url) as conn:
            rows = conn.execute("SELECT seq FROM cadterm_snapshots ORDER BY seq").fetchall()
        return [r[0] for r in rows]

    def close_all(self) -> None:
        for store in self._opened:
            store.close()


@pytest.fixture(params=["sqlite", "postgres"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Place]:
    if request.param == "sqlite":
        # Nested, so opening must create the folders.
        opened = Place("sqlite", DbLocation(path=tmp_path / "nested" / "dir" / "events.db"))
    else:
        opened = Place("postgres", DbLocation(url=request.getfixturevalue("pg_url")))
    try:
        yield opened
    finally:
        opened.close_all()


@pytest.fixture
def store(place: Place) -> EventStore:
    return place.open()


# --- basics -----------------------------------------------------------------------------


def test_satisfies_the_protocol(store: EventStore) -> None:
    as_protocol: EventStore = store
    assert as_protocol.head() == 0


def test_empty_store(store: EventStore) -> None:
    assert store.head() == 0
    assert store.first_retained() == 1
    assert store.read(0, 10) == []
    assert store.read_raw(0, 10) == []
    assert store.load_snapshot() is None
    assert store.find_command("op1", "nope") is None
    assert store.find_commands([]) == {}
    assert list(store.events_after(0)) == []


def test_append_read_round_trip(store: EventStore) -> None:
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
    # The stored JSON is the event's own, byte for byte, as subscribers are sent it.
    assert store.read_raw(4, 10) == [(e.seq, e.model_dump_json()) for e in events[4:]]


# --- refusals leave nothing behind --------------------------------------------------------


@pytest.mark.parametrize("bad_seq", [1, 2, 4, 10])
def test_bad_seq_rejected_and_nothing_written(store: EventStore, bad_seq: int) -> None:
    append_all(store, history(2))
    event = NoteAdded(**common(bad_seq), reference=REF, text="wrong place")

    with pytest.raises(SequenceConflict, match=rf"expected seq 3, got {bad_seq}"):
        store.append(event, command("late", bad_seq))

    assert store.head() == 2
    assert store.find_command("op1", "late") is None
    assert [e.seq for e in store.read(0, 100)] == [1, 2]


def test_first_event_must_be_seq_one(store: EventStore) -> None:
    with pytest.raises(SequenceConflict, match="expected seq 1, got 2"):
        store.append(history(2)[1], command("k", 2))
    assert store.head() == 0


def test_duplicate_idempotency_key_rejected_and_event_not_written(store: EventStore) -> None:
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


def test_refused_key_cannot_be_reused_for_an_append(store: EventStore) -> None:
    store.remember_refusal(command("refused", None, status=409))
    with pytest.raises(StoreError, match="already stored"):
        store.append(history(1)[0], command("refused", 1))
    assert store.head() == 0
    assert store.read(0, 10) == []


def test_command_seq_must_match_its_event(store: EventStore) -> None:
    with pytest.raises(StoreError, match="claims seq 7"):
        store.append(history(1)[0], command("k", 7))
    assert store.head() == 0
    assert store.find_command("op1", "k") is None


def test_command_without_seq_is_stored_with_the_events_seq(store: EventStore) -> None:
    store.append(history(1)[0], command("k", None))
    found = store.find_command("op1", "k")
    assert found is not None and found.seq == 1


# --- commands -----------------------------------------------------------------------------


def test_find_command_returns_accepted_and_refused_results(store: EventStore) -> None:
    append_all(store, history(3))
    refusal = command("refused-1", None, status=422)
    store.remember_refusal(refusal)

    assert store.find_command("op1", "key-2") == command("key-2", 2)
    assert store.find_command("op1", "refused-1") == refusal
    assert store.find_command("op1", "refused-1").seq is None
    assert store.head() == 3  # a refusal is not an event


def test_remember_refusal_keeps_the_first_answer(store: EventStore) -> None:
    first = command("r", None, status=409)
    store.remember_refusal(first)
    store.remember_refusal(StoredCommand("r", "op1", "other", 400, "{}", None))
    assert store.find_command("op1", "r") == first


def test_keys_are_scoped_to_the_operator(store: EventStore) -> None:
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


def test_remember_refusal_leaves_an_accepted_answer_alone(store: EventStore) -> None:
    store.append(history(1)[0], command("k", 1))
    store.remember_refusal(command("k", None, status=409))
    assert store.find_command("op1", "k") == command("k", 1)


def test_refusal_with_a_seq_is_a_bug(store: EventStore) -> None:
    with pytest.raises(StoreError):
        store.remember_refusal(command("r", 1))
    assert store.find_command("op1", "r") is None


def test_find_commands_answers_many_keys_in_one_look_up(store: EventStore) -> None:
    events = history(450)
    store.commit([accepted(e) for e in events], [command("refused", None, status=409)], at=1000.0)
    # More keys than one SQLite query binds, with repeats, misses and another
    # operator's key.
    asked = [("op1", f"key-{n}") for n in range(1, 460)] + [("op1", "key-7"), ("op2", "key-1")]
    found = store.find_commands([*asked, ("op1", "refused")])
    assert set(found) == {("op1", f"key-{n}") for n in range(1, 451)} | {("op1", "refused")}
    assert found[("op1", "key-450")] == command("key-450", 450)
    assert found[("op1", "refused")].seq is None


def test_commit_writes_a_batch_in_order_and_refuses_it_whole(store: EventStore) -> None:
    first, second, third = history(3)
    batch = [accepted(e, f"b-{e.seq}") for e in (first, second)]
    store.commit(batch, [command("no", None, status=404)], at=50.0)
    assert store.head() == 2
    assert store.find_command("op1", "no") == command("no", None, status=404)
    # A batch with a gap is refused whole: nothing of it is written.
    gap = [accepted(third, "c-3"), accepted(third, "c-4")]
    with pytest.raises(SequenceConflict):
        store.commit(gap, [command("late", None, status=404)], at=60.0)
    assert store.head() == 2
    assert store.find_command("op1", "c-3") is None
    assert store.find_command("op1", "late") is None
    assert store.read(0, 10) == [first, second]


def test_commit_with_a_stored_key_writes_nothing_of_the_batch(store: EventStore) -> None:
    first, second, third = history(3)
    store.append(first, command("taken", 1))
    with pytest.raises(StoreError, match="already stored") as info:
        store.commit(
            [accepted(second, "fresh"), accepted(third, "taken")],
            [command("refused-too", None, status=409)],
            at=70.0,
        )
    assert not isinstance(info.value, SequenceConflict)
    assert store.head() == 1
    assert store.read(0, 10) == [first]
    assert store.find_commands([("op1", "fresh"), ("op1", "refused-too")]) == {}
    store.commit([accepted(second, "fresh")], [], at=80.0)  # and the log carries on
    assert store.head() == 2


def test_prune_commands_forgets_only_answers_older_than_the_cut(store: EventStore) -> None:
    events = history(5000)
    for start, at in ((0, 100.0), (2500, 200.0)):
        chunk = events[start : start + 2500]
        store.commit([accepted(e, f"p-{e.seq}") for e in chunk], [], at=at)
    assert store.prune_commands(100.0) == 0  # strictly older only
    assert store.prune_commands(150.0) == 2500  # more than one chunk's worth
    assert store.find_command("op1", "p-1") is None
    assert store.find_command("op1", "p-2501") is not None
    assert store.head() == 5000  # events are not touched
    frames, copied = store.checkpoint()
    assert copied <= frames


# --- reopening, snapshots and pruning -----------------------------------------------------


def test_reopen_keeps_everything(place: Place) -> None:
    events = history(5)
    store = place.open()
    append_all(store, events)
    store.remember_refusal(command("refused", None, status=409))
    snapshot = fold(events[:4])
    store.save_snapshot(snapshot)
    store.close()

    store = place.open()
    assert store.head() == 5
    assert store.read(0, 100) == events
    assert store.find_command("op1", "key-3") == command("key-3", 3)
    assert store.find_command("op1", "refused") == command("refused", None, status=409)
    loaded = store.load_snapshot()
    assert loaded is not None and loaded.model_dump() == snapshot.model_dump()
    store.append(NoteAdded(**common(6), reference=REF, text="after reopen"), command("k6", 6))
    assert store.head() == 6


def test_snapshot_round_trip_and_pruning(place: Place) -> None:
    events = history(10)
    store = place.open(retain_events=3)
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
    assert place.snapshot_seqs() == [8, 10]
    assert store.load_snapshot().seq == 10
    assert store.first_retained() == 8  # pruning never moves backwards

    # The commands of pruned events stay: a late retry still finds its answer.
    assert store.find_command("op1", "key-1") == command("key-1", 1)


def test_snapshot_json_is_stored_as_given(store: EventStore) -> None:
    events = history(4)
    append_all(store, events)
    picture = fold(events)
    store.save_snapshot_json(picture.seq, picture.model_dump_json())
    loaded = store.load_snapshot()
    assert loaded is not None and loaded.model_dump() == picture.model_dump()


def test_rebuild_from_snapshot_and_events_after(place: Place) -> None:
    events = history(12)
    store = place.open(retain_events=2)
    append_all(store, events)
    store.save_snapshot(fold(events[:7]))
    store.close()

    store = place.open(retain_events=2)
    state = store.load_snapshot()
    assert state is not None and state.seq == 7
    rebuilt = fold(store.events_after(state.seq, batch=2), state)
    assert rebuilt.model_dump() == fold(events).model_dump()


def test_events_after_pages_in_batches(store: EventStore) -> None:
    events = history(7)
    append_all(store, events)
    for batch in (1, 2, 3, 7, 100):
        assert list(store.events_after(0, batch=batch)) == events
        assert list(store.events_after(4, batch=batch)) == events[4:]
    with pytest.raises(ValueError):
        list(store.events_after(0, batch=0))


def test_events_after_refuses_to_skip_pruned_events(place: Place) -> None:
    store = place.open(retain_events=2)
    events = history(6)
    append_all(store, events)
    store.save_snapshot(fold(events))
    with pytest.raises(StoreError, match="pruned"):
        list(store.events_after(0))
    assert list(store.events_after(4)) == events[4:]


def test_prune_everything_keeps_the_head(place: Place) -> None:
    events = history(5)
    store = place.open(retain_events=0)
    append_all(store, events)
    store.save_snapshot(fold(events))
    assert store.read(0, 100) == []
    assert store.first_retained() == 6
    assert store.head() == 5
    store.close()

    # Reopened with no event row left, the head is still where the log ended.
    store = place.open(retain_events=0)
    assert store.head() == 5
    assert store.first_retained() == 6
    with pytest.raises(SequenceConflict, match="expected seq 6, got 5"):
        store.append(events[-1], command("again", 5))
    store.append(NoteAdded(**common(6), reference=REF, text="next"), command("k6", 6))
    assert [e.seq for e in store.read(0, 10)] == [6]


def test_snapshot_past_the_head_rejected(store: EventStore) -> None:
    append_all(store, history(2))
    with pytest.raises(StoreError, match="past the head"):
        store.save_snapshot(DispatchState(seq=3))
    assert store.load_snapshot() is None


def test_empty_snapshot_allowed(store: EventStore) -> None:
    store.save_snapshot(DispatchState())
    assert store.load_snapshot() == DispatchState()
    assert store.head() == 0


# --- closing ------------------------------------------------------------------------------


def test_close_is_idempotent_and_later_calls_fail(place: Place) -> None:
    store = place.open()
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.read(0, 10)
    with pytest.raises(StoreError, match="closed"):
        store.append(history(1)[0], command("k", 1))


def test_negative_retention_rejected(place: Place) -> None:
    with pytest.raises(ValueError):
        place.open(retain_events=-1)


# --- write turns --------------------------------------------------------------------------


def test_write_turn_knows_the_head_and_commits_inside_it(store: EventStore) -> None:
    events = history(4)
    append_all(store, events[:3])
    refusal = command("refused", None, status=409)
    with store.write_turn(None) as turn:
        assert turn.head == 3
        assert list(turn.missed) == []  # nothing is read back without an `after`
        assert turn.find_commands([("op1", "key-2"), ("op1", "nope"), ("op2", "key-2")]) == {
            ("op1", "key-2"): command("key-2", 2)
        }
        turn.commit([accepted(events[3])], [refusal], at=10.0)
    assert store.head() == 4
    assert store.read(0, 10) == events
    assert store.find_command("op1", "key-4") == command("key-4", 4)
    assert store.find_command("op1", "refused") == refusal


def test_write_turn_hands_over_the_events_after_after(store: EventStore) -> None:
    events = history(5)
    append_all(store, events)
    with store.write_turn(2) as turn:
        assert turn.head == 5
        assert list(turn.missed) == [(e.seq, e.model_dump_json()) for e in events[2:]]
    with store.write_turn(5) as turn:
        assert turn.head == 5 and list(turn.missed) == []
    assert store.head() == 5  # a turn that commits nothing writes nothing


def test_write_turn_refuses_a_bad_seq_and_writes_nothing(store: EventStore) -> None:
    events = history(3)
    append_all(store, events[:1])
    with pytest.raises(SequenceConflict), store.write_turn(None) as turn:
        # Skips seq 2: refused whole, the refusal with it.
        turn.commit([accepted(events[2])], [command("refused", None, status=409)], at=10.0)
    assert store.head() == 1
    assert store.find_commands([("op1", "key-3"), ("op1", "refused")]) == {}
    assert store.read(0, 10) == events[:1]


def test_write_turn_is_released_for_another_thread_after_an_error(store: EventStore) -> None:
    events = history(2)
    with pytest.raises(RuntimeError, match="the writer gave up"), store.write_turn(1):
        raise RuntimeError("the writer gave up")
    problems: list[BaseException] = []

    def other_writer() -> None:
        try:
            with store.write_turn(0) as turn:
                turn.commit([accepted(e) for e in events], [], at=10.0)
        except BaseException as exc:
            problems.append(exc)

    thread = threading.Thread(target=other_writer)
    thread.start()
    thread.join(timeout=TIMEOUT)
    assert not thread.is_alive(), "the append lock was still held"
    assert problems == []
    assert store.read(0, 10) == events


def test_turns_from_several_threads_queue_in_seq_order(store: EventStore) -> None:
    # Each writer learns the head under the lock and appends right after it: the log
    # comes out gap-free whatever order the threads get the lock in.
    writers, each = 3, 10
    problems: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for n in range(each):
                with store.write_turn(None) as turn:
                    seq = turn.head + 1
                    event = NoteAdded(**common(seq), reference=REF, text=f"{name} {n}")
                    turn.commit([accepted(event, f"{name}-{n}")], [], at=10.0)
        except BaseException as exc:
            problems.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=TIMEOUT * 3)
    assert not any(thread.is_alive() for thread in threads)
    assert problems == []
    got = store.read(0, 1000)
    assert [e.seq for e in got] == list(range(1, writers * each + 1))
    assert sorted(e.text for e in got) == sorted(
        f"w{i} {n}" for i in range(writers) for n in range(each)
    )


# --- threads ------------------------------------------------------------------------------


def test_reads_from_another_thread_while_appending(store: EventStore) -> None:
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
        thread.join(timeout=TIMEOUT)
    assert not thread.is_alive()
    assert problems == []
    assert seen == sorted(seen)
    assert store.read(0, 1000) == events
