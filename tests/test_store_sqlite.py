"""What only the SQLite event store has: its file, pragmas, migrations and durability.

What every store must do is in test_store_contract.py, which runs on SQLite too.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from test_store_contract import REF, append_all, command, history

from cadterm.protocol.events import UnitBookedOn
from cadterm.server.store import SequenceConflict, SQLiteEventStore, StoredCommand, StoreError
from cadterm.server.store.sqlite import _MIGRATIONS, SCHEMA_VERSION


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


# --- the file -----------------------------------------------------------------------------


def test_opening_creates_the_folders_and_the_file(path: Path) -> None:
    assert not path.parent.exists()
    with SQLiteEventStore(path) as store:
        assert path.is_file()
        assert store.head() == 0


def test_rows_hold_type_time_and_json(store: SQLiteEventStore, path: Path) -> None:
    append_all(store, history(2))
    with raw(path) as conn:
        rows = conn.execute("SELECT seq, type, at, body FROM events ORDER BY seq").fetchall()
    assert [(seq, kind) for seq, kind, _, _ in rows] == [
        (1, "unit_booked_on"),
        (2, "incident_created"),
    ]
    assert datetime.fromisoformat(rows[0][2]) == history(1)[0].at
    assert json.loads(rows[1][3])["reference"] == REF


# --- one writer per file ------------------------------------------------------------------


def test_nobody_else_writes_so_there_is_nothing_to_watch(store: SQLiteEventStore) -> None:
    assert store.watch(lambda head: None) is None


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


# --- on disk ------------------------------------------------------------------------------


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


# --- look-ups -----------------------------------------------------------------------------


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
