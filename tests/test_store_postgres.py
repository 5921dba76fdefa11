"""What only the PostgreSQL event store has: its schema, several nodes, an absent database.

Every test works in a fresh schema of its own on the local PostgreSQL (`pg.pg_url`) and
skips, saying why, when none answers. What every store must do is tested in
test_store_contract.py, which runs on PostgreSQL too. Here: the schema is created,
versioned and refused when newer; the tables go where the URL's search path says; two
stores on one schema (two nodes) append from several threads at once and the log stays
gap-free in seq order; an answer stored through one node is found through the other; a
database that is not there, or goes away, is `StoreUnavailable`; `EventWaker` wakes one
node when another commits.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from faultproxy import FaultProxy
from pg import PG_URL, in_schema, pg_url  # noqa: F401
from psycopg import sql
from test_store_contract import REF, accepted, append_all, command, common, history
from waiting import wait_for

from cadterm.protocol.events import NoteAdded
from cadterm.protocol.fold import fold
from cadterm.server.store import SequenceConflict, StoreError
from cadterm.server.store.base import StoreUnavailable
from cadterm.server.store.postgres import (
    _MIGRATIONS,
    SCHEMA_VERSION,
    EventWaker,
    PostgresEventStore,
)

#: Bounds a wait that should end at once; reached only on a failure.
TIMEOUT = 10.0
#: How long a notification may take to wake the other node.
WAKE_WAIT = 5.0


def tables(url: str) -> set[str]:
    """The tables in the schema `url`'s search path names, read behind the store's back."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        ).fetchall()
    return {name for (name,) in rows}


def schema_versions(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM cadterm_schema").fetchall()]


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port bound but not listening: every connection to it is refused."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def url(pg_url: str) -> str:  # noqa: F811
    """A PostgreSQL URL with a fresh schema of this test's own."""
    return pg_url


@pytest.fixture
def nodes(url: str) -> Iterator[tuple[PostgresEventStore, PostgresEventStore]]:
    """Two stores on one schema, as two server nodes sharing one log."""
    with (
        PostgresEventStore(url, timeout=TIMEOUT) as a,
        PostgresEventStore(url, timeout=TIMEOUT) as b,
    ):
        yield a, b


# --- the schema ---------------------------------------------------------------------------


def test_first_open_creates_and_versions_the_schema(url: str) -> None:
    assert tables(url) == set()
    with PostgresEventStore(url) as store:
        assert store.head() == 0
    assert {
        "cadterm_schema",
        "cadterm_head",
        "cadterm_events",
        "cadterm_commands",
        "cadterm_snapshots",
        "cadterm_archived",
    } <= tables(url)
    assert schema_versions(url) == [SCHEMA_VERSION]


def test_reopening_migrates_nothing_again(url: str) -> None:
    with PostgresEventStore(url) as store:
        append_all(store, history(3))
    before = tables(url)
    with PostgresEventStore(url) as store, PostgresEventStore(url) as other:
        assert store.head() == other.head() == 3
    assert tables(url) == before
    assert schema_versions(url) == [SCHEMA_VERSION]  # one row, not one per opening


def test_a_version_1_database_is_migrated_and_keeps_its_log(url: str) -> None:
    event = history(1)[0]
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE cadterm_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO cadterm_schema VALUES (1)")
        for statement in _MIGRATIONS[1]:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO cadterm_events VALUES (1, %s, %s, %s)",
            (event.type, event.at, event.model_dump_json()),
        )
        conn.execute("UPDATE cadterm_head SET seq = 1")
    with PostgresEventStore(url) as store:
        assert store.read(0, 10) == [event]
        assert store.head() == 1
    assert "cadterm_archived" in tables(url)
    assert schema_versions(url) == [SCHEMA_VERSION]


def test_a_newer_schema_is_refused_and_left_untouched(url: str) -> None:
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE cadterm_schema (version integer NOT NULL)")
        conn.execute("INSERT INTO cadterm_schema VALUES (%s)", (SCHEMA_VERSION + 1,))
        conn.execute("CREATE TABLE cadterm_future (x integer)")

    with pytest.raises(StoreError, match=rf"schema version {SCHEMA_VERSION + 1}.*upgrade") as info:
        PostgresEventStore(url)
    assert not isinstance(info.value, StoreUnavailable)

    assert tables(url) == {"cadterm_schema", "cadterm_future"}
    assert schema_versions(url) == [SCHEMA_VERSION + 1]


def test_tables_go_in_the_search_paths_schema_created_if_missing(url: str) -> None:
    name = f"cadterm_test_{uuid.uuid4().hex[:12]}"
    elsewhere = in_schema(PG_URL, name)
    try:
        with PostgresEventStore(elsewhere) as store:
            assert store.schema == name
            assert name in store.channel
            append_all(store, history(2))
        assert "cadterm_events" in tables(elsewhere)
        with psycopg.connect(elsewhere) as conn:
            (count,) = conn.execute(
                sql.SQL("SELECT COUNT(*) FROM {}.cadterm_events").format(sql.Identifier(name))
            ).fetchone()
        assert count == 2
        # The test's own schema got nothing: each schema is a log of its own.
        assert tables(url) == set()
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_the_first_schema_of_the_path_is_used_even_when_a_later_one_exists(url: str) -> None:
    # (`url` only so that this skips without a PostgreSQL; the schema here is another.)
    # public exists, the first schema does not: it is created, not passed over.
    name = f"cadterm_test_{uuid.uuid4().hex[:12]}"
    try:
        with PostgresEventStore(in_schema(PG_URL, f"{name},public")) as store:
            assert store.schema == name
            append_all(store, history(1))
        assert "cadterm_events" in tables(in_schema(PG_URL, name))
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


# --- several nodes ------------------------------------------------------------------------


def test_nodes_appending_at_once_keep_the_log_gap_free_in_seq_order(nodes) -> None:
    # Each writer holds its own head, as a node's picture does: in each turn it folds
    # what the others committed since (turn.missed) and appends right after it.
    writers, each = 4, 50
    deadline = time.monotonic() + 120
    problems: list[BaseException] = []
    done = threading.Event()

    def writer(number: int) -> None:
        store = nodes[number % 2]
        my_head = 0
        try:
            for n in range(each):
                if time.monotonic() > deadline:
                    raise AssertionError(f"writer {number} gave up after {n} appends")
                with store.write_turn(my_head) as turn:
                    missed = [seq for seq, _ in turn.missed]
                    assert missed == list(range(my_head + 1, turn.head + 1)), (my_head, missed)
                    seq = turn.head + 1
                    event = NoteAdded(**common(seq), reference=REF, text=f"w{number} {n}")
                    turn.commit([accepted(event, f"w{number}-{n}")], [], at=10.0)
                my_head = seq
        except BaseException as exc:
            problems.append(exc)

    # A reader polling "seq > last", as a node catching up does: if commit order ever
    # differed from seq order it would see a later seq before an earlier one.
    seen: list[int] = []

    def reader() -> None:
        try:
            while time.monotonic() < deadline:
                finished = done.is_set()  # read before the rows: then these are the last
                last = seen[-1] if seen else 0
                got = [seq for seq, _ in nodes[1].read_raw(last, 1000)]
                assert got == list(range(last + 1, last + 1 + len(got))), (last, got)
                seen.extend(got)
                if finished and not got:
                    return
            raise AssertionError(f"the reader saw only up to {seen[-1:]}")
        except BaseException as exc:
            problems.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()) + 1)
    done.set()
    watcher.join(timeout=max(0.0, deadline - time.monotonic()) + 1)
    assert not any(t.is_alive() for t in [*threads, watcher])
    assert problems == []

    total = writers * each
    assert seen == list(range(1, total + 1))
    a, b = nodes
    assert a.head() == b.head() == total
    events = a.read(0, total + 10)
    assert [e.seq for e in events] == list(range(1, total + 1))
    assert sorted(e.text for e in events) == sorted(
        f"w{i} {n}" for i in range(writers) for n in range(each)
    )
    keys = [("op1", f"w{i}-{n}") for i in range(writers) for n in range(each)]
    assert len(b.find_commands(keys)) == total


def test_an_answer_stored_through_one_node_is_found_through_the_other(nodes) -> None:
    a, b = nodes
    first, second = history(2)
    a.append(first, command("from-a", 1))
    assert b.find_command("op1", "from-a") == command("from-a", 1)
    b.remember_refusal(command("refused-on-b", None, status=409))
    assert a.find_command("op1", "refused-on-b") == command("refused-on-b", None, status=409)
    # A retry of a's command through b is caught by the key, not appended again.
    with pytest.raises(StoreError, match="already stored"):
        b.append(second, command("from-a", 2))
    assert a.head() == b.head() == 1


def test_a_unique_violation_writes_nothing_of_the_batch(nodes) -> None:
    # b's batch reuses a key a stored meanwhile, after an event that would have gone
    # in: the violation rolls back the whole transaction, that event and the refusal too.
    a, b = nodes
    first, second, third = history(3)
    a.append(first, command("taken", 1))
    with pytest.raises(StoreError, match="already stored") as info:
        b.commit(
            [accepted(second, "fresh"), accepted(third, "taken")],
            [command("refused", None, status=409)],
            at=20.0,
        )
    assert not isinstance(info.value, (SequenceConflict, StoreUnavailable))
    assert a.head() == b.head() == 1
    assert a.read(0, 10) == [first]
    assert a.find_commands([("op1", "fresh"), ("op1", "refused")]) == {}
    # The same key twice in one batch is refused whole as well.
    with pytest.raises(StoreError, match="already stored"):
        b.commit([accepted(second, "twice"), accepted(third, "twice")], [], at=20.0)
    assert a.head() == 1 and a.find_command("op1", "twice") is None


def test_an_error_in_a_turn_writes_nothing_it_committed(nodes) -> None:
    a, b = nodes
    first = history(1)[0]
    with pytest.raises(RuntimeError, match="decided badly"), a.write_turn(None) as turn:
        turn.commit([accepted(first)], [command("refused", None, status=409)], at=20.0)
        raise RuntimeError("decided badly")
    assert b.head() == 0 and b.read(0, 10) == []
    assert b.find_commands([("op1", "key-1"), ("op1", "refused")]) == {}


def test_a_turn_commits_once(url: str) -> None:
    first, second = history(2)
    with PostgresEventStore(url) as store:
        with pytest.raises(StoreError, match="commits once"), store.write_turn(None) as turn:
            turn.commit([accepted(first)], [], at=20.0)
            turn.commit([accepted(second)], [], at=20.0)
        assert store.head() == 0


def test_a_node_behind_pruned_events_is_told_so(url: str) -> None:
    # a keeps no events past its snapshots; b still has only seq 1 folded.
    events = history(3)
    with (
        PostgresEventStore(url, retain_events=0) as a,
        PostgresEventStore(url, retain_events=0) as b,
    ):
        append_all(a, events)
        a.save_snapshot(fold(events))
        assert a.read(0, 10) == []
        with (
            pytest.raises(StoreError, match=r"events 2\.\.3 have been pruned.*restart"),
            b.write_turn(1),
        ):
            pass
        with b.write_turn(3) as turn:  # caught up: nothing is missing
            assert list(turn.missed) == []


def test_events_pruned_by_another_node_while_read_are_not_skipped(url: str) -> None:
    events = history(10)
    with (
        PostgresEventStore(url, retain_events=2) as a,
        PostgresEventStore(url, retain_events=2) as b,
    ):
        append_all(a, events)
        reading = a.events_after(0, batch=2)
        assert [next(reading).seq, next(reading).seq] == [1, 2]  # the first page
        b.save_snapshot(fold(events))  # prunes up to seq 8 meanwhile
        with pytest.raises(StoreError, match=r"events 3\.\.8 were pruned"):
            next(reading)


# --- an absent database -------------------------------------------------------------------


def test_an_unreachable_database_is_unavailable_within_the_timeout(refused_port: int) -> None:
    url = f"postgresql://cadterm:s3cret-word@127.0.0.1:{refused_port}/cadterm"
    outcome: list[BaseException] = []

    def opening() -> None:
        try:
            PostgresEventStore(url, timeout=1.0).close()
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=opening)
    thread.start()
    thread.join(timeout=1.0 + TIMEOUT)
    assert not thread.is_alive(), "opening did not give up"
    [error] = outcome
    assert isinstance(error, StoreUnavailable)
    assert f"127.0.0.1:{refused_port}" in str(error)
    assert "refused" in str(error).lower()  # why, not only that it timed out
    assert "s3cret" not in str(error)  # the password stays out of messages and logs


def test_a_missing_database_says_so(url: str) -> None:
    name = f"cadterm_missing_{uuid.uuid4().hex[:12]}"
    with pytest.raises(StoreUnavailable, match=rf'database "{name}" does not exist'):
        PostgresEventStore(psycopg.conninfo.make_conninfo(url, dbname=name), timeout=1.0)


async def test_a_database_that_goes_away_is_unavailable_then_comes_back(url: str) -> None:
    info = psycopg.conninfo.conninfo_to_dict(url)
    proxy = await FaultProxy(info.get("host", "127.0.0.1"), int(info.get("port", 5432))).start()
    through = psycopg.conninfo.make_conninfo(url, host="127.0.0.1", port=str(proxy.port))
    store = await asyncio.to_thread(PostgresEventStore, through, timeout=1.0)
    try:
        await asyncio.to_thread(append_all, store, history(2))
        proxy.refuse(True)
        proxy.cut_all()
        with pytest.raises(StoreUnavailable, match="PostgreSQL"):
            await asyncio.to_thread(store.head)
        with pytest.raises(StoreUnavailable):
            await asyncio.to_thread(store.append, history(3)[2], command("k3", 3))
        proxy.refuse(False)

        async def answers() -> int | None:
            try:
                return await asyncio.to_thread(store.head)
            except StoreUnavailable:
                return None

        for _ in range(int(TIMEOUT * 10)):
            if await answers() is not None:
                break
            await asyncio.sleep(0.1)
        assert await answers() == 2  # nothing was written while it was away
        await asyncio.to_thread(store.append, history(3)[2], command("k3", 3))
        assert await asyncio.to_thread(store.head) == 3
    finally:
        await asyncio.to_thread(store.close)
        await proxy.stop()


# --- waking the other nodes ---------------------------------------------------------------


def test_a_commit_on_one_node_wakes_the_other(nodes) -> None:
    a, b = nodes
    woken = threading.Event()
    heads: list[int | None] = []

    def wake(head: int | None) -> None:
        heads.append(head)
        woken.set()

    # It polls less often than the wait below lasts: only the notification can wake it
    # in time. (Closing it then takes up to a poll.)
    waker = EventWaker(a, wake, poll=WAKE_WAIT + 3)
    waker.start()
    try:
        assert woken.wait(TIMEOUT), "the waker never started listening"  # its first wake
        woken.clear()
        b.append(history(1)[0], command("on-b", 1))
        assert woken.wait(WAKE_WAIT), "b's commit did not wake a"
        assert heads[-1] == 1, "the notification names the head b's commit reached"
    finally:
        waker.close()
    assert not waker._thread.is_alive()


def test_closing_the_watch_stops_its_thread(nodes) -> None:
    a, _ = nodes
    calls: list[int] = []
    waker = a.watch(lambda head: calls.append(1))
    wait_for(lambda: calls, TIMEOUT, "the waker's first wake")
    thread = waker._thread
    assert thread.is_alive()
    waker.close()
    assert not thread.is_alive()
