"""The event store on SQLite: one file, written through a write-ahead log.

Layout (schema version 2)::

    events(seq, type, at, body)          one row per event, body = the event's JSON
    commands(operator, idempotency_key,  the first answer to every command, accepted
             fingerprint, status, body,  (seq set) or refused (seq NULL); keyed by
             seq)                        (operator, idempotency_key)
             stored_at)                  stored_at = epoch seconds, for pruning (v4)
    snapshots(seq, body)                 the newest two pictures, body = DispatchState JSON

`PRAGMA user_version` holds the schema version. Opening a file migrates it forward to
`SCHEMA_VERSION`; a file written by a newer cadterm is refused rather than guessed at.

Every write is one ``BEGIN IMMEDIATE ... COMMIT`` transaction with ``synchronous=FULL``
in WAL mode, so the commit has been fsynced to the log when a method returns. `commit`
writes a whole batch of commands in one such transaction: one fsync for all of them.

Three connections, each behind its own lock, so no kind of work queues behind another:
the writer (appends and idempotency look-ups), readers (replay, queries, start-up) and
upkeep (snapshots, pruning, WAL checkpoints). In WAL mode readers never wait for the
writer. With ``checkpoint_on_commit=False`` the writer never checkpoints the WAL inside
a commit; the owner calls `checkpoint` (PASSIVE, on the upkeep connection) instead.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState

from .base import Accepted, SequenceConflict, StoredCommand, StoreError
from .legacy import LegacyReport, repair_event, repair_state
from .reading import decoded_event, decoded_snapshot, paged_events

__all__ = ["SCHEMA_VERSION", "SQLiteEventStore"]


class _Turn:
    """A write turn on SQLite: the writer lock is held by whoever has this."""

    def __init__(self, store: SQLiteEventStore, head: int, missed: list[tuple[int, str]]) -> None:
        self.head = head
        self.missed = missed
        self._store = store

    def find_commands(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredCommand]:
        return self._store.find_commands(keys)

    def commit(
        self, accepted: Sequence[Accepted], refused: Sequence[StoredCommand], at: float
    ) -> None:
        self._store.commit(accepted, refused, at)


log = logging.getLogger("cadterm.server.store")


def _repair_legacy_values(conn: sqlite3.Connection) -> None:
    """Give naive times stored by an older server a UTC offset, and say what changed.

    Runs once, inside the migration's transaction, so the file is either repaired and
    at the new version or untouched.
    """
    report = LegacyReport()
    after = 0
    while True:
        rows = conn.execute(
            "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT 5000", (after,)
        ).fetchall()
        if not rows:
            break
        for seq, body in rows:
            data = json.loads(body)
            if repair_event(data, report):
                conn.execute(
                    "UPDATE events SET body = ?, at = ? WHERE seq = ?",
                    (json.dumps(data, separators=(",", ":")), data["at"], seq),
                )
        after = rows[-1][0]
    for seq, body in conn.execute("SELECT seq, body FROM snapshots").fetchall():
        data = json.loads(body)
        if repair_state(data, report):
            conn.execute(
                "UPDATE snapshots SET body = ? WHERE seq = ?",
                (json.dumps(data, separators=(",", ":")), seq),
            )
    if report:
        log.warning("event store migrated: values stored by an older cadterm: %s", report.summary())


# Each entry takes the schema from version n - 1 to n: SQL statements, or functions of
# the connection for data that SQL cannot repair. Add a new entry (never edit an old one)
# to change the schema; files opened later are migrated forward in order.
_Step = str | Callable[[sqlite3.Connection], None]
_MIGRATIONS: dict[int, tuple[_Step, ...]] = {
    1: (
        """
        CREATE TABLE events (
            seq  INTEGER PRIMARY KEY,
            type TEXT NOT NULL,
            at   TEXT NOT NULL,
            body TEXT NOT NULL
        )
        """,
        # No foreign key from commands.seq to events: events are pruned, and a command's
        # stored answer must outlive the event it caused so a late retry still matches.
        """
        CREATE TABLE commands (
            idempotency_key TEXT PRIMARY KEY,
            operator        TEXT NOT NULL,
            fingerprint     TEXT NOT NULL,
            status          INTEGER NOT NULL,
            body            TEXT NOT NULL,
            seq             INTEGER
        )
        """,
        """
        CREATE TABLE snapshots (
            seq  INTEGER PRIMARY KEY,
            body TEXT NOT NULL
        )
        """,
    ),
    # Idempotency keys belong to the operator who sent them: one operator can neither
    # use up nor detect another's key, so the key is unique per operator, not overall.
    2: (
        """
        CREATE TABLE commands_by_operator (
            operator        TEXT NOT NULL,
            idempotency_key TEXT NOT NULL,
            fingerprint     TEXT NOT NULL,
            status          INTEGER NOT NULL,
            body            TEXT NOT NULL,
            seq             INTEGER,
            PRIMARY KEY (operator, idempotency_key)
        )
        """,
        """
        INSERT INTO commands_by_operator
            (operator, idempotency_key, fingerprint, status, body, seq)
        SELECT operator, idempotency_key, fingerprint, status, body, seq FROM commands
        """,
        "DROP TABLE commands",
        "ALTER TABLE commands_by_operator RENAME TO commands",
    ),
    # Times without a UTC offset, accepted before the door refused them.
    3: (_repair_legacy_values,),
    # When each answer was stored, so answers older than the idempotency window can be
    # pruned. Answers stored before this version count as stored now.
    4: (
        "ALTER TABLE commands ADD COLUMN stored_at REAL",
        "UPDATE commands SET stored_at = CAST(strftime('%s', 'now') AS REAL)",
        "CREATE INDEX commands_stored_at ON commands (stored_at)",
    ),
}

#: Stored answers deleted per transaction when pruning: short enough that an append
#: waiting for the write lock waits a moment, not for the whole prune.
_PRUNE_CHUNK = 2000


def _private_file(path: Path) -> None:
    """Make sure the database exists readable by its owner only, in a private folder.

    The log holds callers' names, addresses and phone numbers. SQLite creates the -wal
    and -shm files with the database file's mode, so creating the file 0600 before SQLite
    opens it keeps all three private whatever the umask allows. A folder made here is
    0700; an existing folder is left as its owner set it.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    # A file from an older cadterm may be 0644: tighten it and its companions.
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            mode = os.stat(name).st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(name, mode & 0o700)


#: The schema version this code writes. Files with a higher `user_version` are refused.
SCHEMA_VERSION = max(_MIGRATIONS)

#: How many snapshots are kept: the newest, and one to fall back on.
_SNAPSHOTS_KEPT = 2


class SQLiteEventStore:
    """An `EventStore` in one SQLite file.

    Safe to call from several threads: one connection is shared behind a lock, so calls
    run one at a time. A read waits for an append's fsync, which is short next to the
    work the server does around it, and one connection means one cached `head` that can
    never disagree with what is on disk.

    Also a context manager that closes the store on exit.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        retain_events: int = 100_000,
        checkpoint_on_commit: bool = True,
    ) -> None:
        """Open the store at `path`, creating the file and its folders if needed.

        `retain_events` is how many events at or before a snapshot `save_snapshot` keeps;
        every event after the snapshot is always kept. With `checkpoint_on_commit` off,
        SQLite's automatic checkpoint is off on the writer: the caller must call
        `checkpoint` now and then, or the WAL grows until the store is closed. Raises
        `StoreError` if the file is not a cadterm store, was written by a newer schema,
        or cannot use WAL.
        """
        if retain_events < 0:
            raise ValueError("retain_events must be zero or more")
        self.path = Path(path)
        self.retain_events = retain_events
        # Re-entrant so append can hold it across its transaction and the head update.
        self._lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._upkeep_lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._upkeep: sqlite3.Connection | None = None
        try:
            _private_file(self.path)
            conn = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open event store {self.path}: {exc}") from exc
        try:
            self._head = self._open(conn)
            if not checkpoint_on_commit:
                conn.execute("PRAGMA wal_autocheckpoint=0")
            self._reader = self._connect()
            self._upkeep = self._connect()
            for other in (self._reader, self._upkeep):
                other.execute("PRAGMA synchronous=FULL")
                other.execute("PRAGMA wal_autocheckpoint=0")
        except sqlite3.Error as exc:
            self._close_all(conn)
            raise StoreError(f"cannot open event store {self.path}: {exc}") from exc
        except BaseException:
            self._close_all(conn)
            raise
        self._conn = conn

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: the module must not open transactions behind our back;
        # every write says BEGIN IMMEDIATE itself. check_same_thread=False: the locks,
        # not the thread that opened a connection, guard it.
        return sqlite3.connect(
            self.path, timeout=5.0, isolation_level=None, check_same_thread=False
        )

    def _close_all(self, conn: sqlite3.Connection | None) -> None:
        for each in (conn, self._reader, self._upkeep):
            if each is not None:
                each.close()
        self._reader = self._upkeep = None

    # --- opening -----------------------------------------------------------------------

    def _open(self, conn: sqlite3.Connection) -> int:
        """Check the version, set the pragmas, migrate, and return the head."""
        try:
            # Read the version before changing anything: a newer file must be left as is.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path} is not an SQLite event store: {exc}") from exc
        self._refuse_newer(version)
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"event store {self.path} cannot use write-ahead logging "
                    f"(journal mode {mode!r}); it needs a file on a local disk"
                )
            # FULL in WAL mode fsyncs the log on every commit: an append that returned
            # survives a crash or power cut, not only the server process dying.
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._migrate(conn)
            row = conn.execute(
                "SELECT MAX(seq) FROM (SELECT MAX(seq) AS seq FROM events"
                " UNION ALL SELECT MAX(seq) FROM snapshots)"
            ).fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open event store {self.path}: {exc}") from exc
        # Pruning may have removed every event up to the newest snapshot; the snapshot
        # still proves those seqs were used, so the head counts it.
        return row[0] or 0

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"event store {self.path} has schema version {version}, but this cadterm "
                f"only understands up to version {SCHEMA_VERSION}: upgrade cadterm to "
                "open it"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema up to `SCHEMA_VERSION`, one version per transaction."""
        while conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            conn.execute("BEGIN IMMEDIATE")
            try:
                # Read again under the write lock: another process may have migrated the
                # file between our look and now.
                current = conn.execute("PRAGMA user_version").fetchone()[0]
                self._refuse_newer(current)
                if current < SCHEMA_VERSION:
                    for step in _MIGRATIONS[current + 1]:
                        if callable(step):
                            step(conn)
                        else:
                            conn.execute(step)
                    # user_version lives in the file header and is written in this same
                    # transaction, so a crash leaves the schema and its number in step.
                    conn.execute(f"PRAGMA user_version = {current + 1:d}")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # --- plumbing ----------------------------------------------------------------------

    @contextmanager
    def _connection(self, role: str = "writer") -> Iterator[sqlite3.Connection]:
        """Hold one connection's lock (`role`: writer, reader or upkeep) and yield it.

        SQLite errors become `StoreError`.
        """
        lock = {"writer": self._lock, "reader": self._read_lock, "upkeep": self._upkeep_lock}
        with lock[role]:
            conn = {"writer": self._conn, "reader": self._reader, "upkeep": self._upkeep}[role]
            if conn is None or self._conn is None:
                raise StoreError(f"event store {self.path} is closed")
            try:
                yield conn
            except sqlite3.Error as exc:
                raise StoreError(f"event store {self.path}: {exc}") from exc

    @contextmanager
    def _transaction(self, role: str = "writer") -> Iterator[sqlite3.Connection]:
        """One write transaction, committed (and fsynced) on exit or rolled back on error."""
        with self._connection(role) as conn:
            # IMMEDIATE takes the write lock up front, so checks made inside the
            # transaction still hold when it commits.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # COMMIT itself may fail (disk full, I/O error); never leave it open.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # --- the EventStore protocol -------------------------------------------------------

    def head(self) -> int:
        """Seq of the newest event, 0 when the log is empty."""
        return self._head

    def first_retained(self) -> int:
        """Seq of the oldest event still kept (head + 1 when none are kept)."""
        with self._connection("reader") as conn:
            oldest = conn.execute("SELECT MIN(seq) FROM events").fetchone()[0]
            return oldest if oldest is not None else self._head + 1

    def append(self, event: Event, command: StoredCommand) -> None:
        """Durably append `event` (seq must be head + 1) with its command's result.

        Both rows are written in one transaction: either both are on disk when this
        returns or neither is. Raises `SequenceConflict` on a bad seq and `StoreError`
        if the idempotency key is already stored or `command.seq` names another event
        (``command.seq`` may be None; the event's seq is stored either way).
        """
        self.commit([Accepted(event, event.model_dump_json(), command)], [], time.time())

    def remember_refusal(self, command: StoredCommand) -> None:
        """Durably store the outcome of a refused command so a retry gets the same answer.

        The first answer stored under an operator's key wins; later calls with that
        operator and key do nothing.
        """
        self.commit([], [command], time.time())

    def commit(
        self, accepted: Sequence[Accepted], refused: Sequence[StoredCommand], at: float
    ) -> None:
        """Durably write a batch of commands in one transaction: one fsync for them all.

        `accepted` events must follow the head in order (head + 1, head + 2, ...); each
        one's command row is stored with the event's seq. `refused` answers are stored
        first-answer-wins. Every row is stamped `at` (epoch seconds) for
        `prune_commands`. Raises `SequenceConflict` on a bad seq and `StoreError` if an
        accepted command's key is already stored; then nothing of the batch is written.
        """
        for item in accepted:
            command = item.command
            if command.seq is not None and command.seq != item.event.seq:
                raise StoreError(
                    f"command {command.idempotency_key} claims seq {command.seq} "
                    f"but its event has seq {item.event.seq}"
                )
        for command in refused:
            if command.seq is not None:
                raise StoreError(
                    f"refused command {command.idempotency_key} cannot have caused "
                    f"seq {command.seq}"
                )
        if not accepted and not refused:
            return
        with self._lock:
            head = self._head
            with self._transaction() as conn:
                for item in accepted:
                    head = self._insert_accepted(conn, item, head + 1, at)
                if refused:
                    conn.executemany(
                        "INSERT OR IGNORE INTO commands (idempotency_key, operator,"
                        " fingerprint, status, body, seq, stored_at)"
                        " VALUES (?, ?, ?, ?, ?, NULL, ?)",
                        [
                            (c.idempotency_key, c.operator, c.fingerprint, c.status, c.body, at)
                            for c in refused
                        ],
                    )
            # Advance only once COMMIT returned (a failed commit leaves the head as it
            # was), still under the lock so no reader sees the row before the head does.
            self._head = head

    @contextmanager
    def write_turn(self, after: int | None) -> Iterator[_Turn]:
        """Hold the writer lock for one look-up-and-commit (see `EventStore.write_turn`).

        This process is the file's only writer, so nothing can have been committed behind
        the caller's back: `missed` holds whatever the log has after `after` all the same
        (normally nothing), read on the writer's connection.
        """
        with self._lock:
            missed: list[tuple[int, str]] = []
            if after is not None and self._head > after:
                with self._connection() as conn:
                    missed = conn.execute(
                        "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq", (after,)
                    ).fetchall()
            yield _Turn(self, self._head, missed)

    def watch(self, wake: Callable[[int | None], None]) -> None:
        """Nothing to watch: this process is the file's only writer."""
        return None

    def _insert_accepted(
        self, conn: sqlite3.Connection, item: Accepted, expected: int, at: float
    ) -> int:
        event, command = item.event, item.command
        if event.seq != expected:
            raise SequenceConflict(f"expected seq {expected}, got {event.seq}")
        try:
            conn.execute(
                "INSERT INTO commands (idempotency_key, operator, fingerprint, status, body,"
                " seq, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    command.idempotency_key,
                    command.operator,
                    command.fingerprint,
                    command.status,
                    command.body,
                    event.seq,
                    at,
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise StoreError(
                f"idempotency key {command.idempotency_key!r} of operator "
                f"{command.operator!r} is already stored"
            ) from exc
        try:
            conn.execute(
                "INSERT INTO events (seq, type, at, body) VALUES (?, ?, ?, ?)",
                (event.seq, event.type, event.at.isoformat(), item.body),
            )
        except sqlite3.IntegrityError as exc:
            # Only another writer on the same file can get here past the head check.
            raise SequenceConflict(
                f"expected seq {expected}, got {event.seq}: seq already stored"
            ) from exc
        return event.seq

    def prune_commands(self, before: float) -> int:
        """Forget stored answers recorded before `before` (epoch seconds); return how many.

        Runs on the upkeep connection a chunk per transaction, so an append waits for
        the write lock a moment at most, never for the whole prune.
        """
        pruned = 0
        while True:
            with self._transaction("upkeep") as conn:
                deleted = conn.execute(
                    "DELETE FROM commands WHERE rowid IN (SELECT rowid FROM commands"
                    " WHERE stored_at < ? LIMIT ?)",
                    (before, _PRUNE_CHUNK),
                ).rowcount
            pruned += deleted
            if deleted < _PRUNE_CHUNK:
                return pruned

    def checkpoint(self) -> tuple[int, int]:
        """Copy what the WAL holds into the database file, without waiting for anyone.

        A PASSIVE checkpoint on the upkeep connection: it never blocks the writer or a
        reader (it skips what it cannot copy yet). Returns the WAL's frames and how
        many of them are now in the database file.
        """
        with self._connection("upkeep") as conn:
            _busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return frames, copied

    def find_command(self, operator: str, idempotency_key: str) -> StoredCommand | None:
        """The stored outcome of `operator`'s command with this key, if any."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT idempotency_key, operator, fingerprint, status, body, seq"
                " FROM commands WHERE operator = ? AND idempotency_key = ?",
                (operator, idempotency_key),
            ).fetchone()
        if row is None:
            return None
        return StoredCommand(*row)

    def find_commands(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredCommand]:
        """`find_command` for many ``(operator, idempotency_key)`` pairs in one look-up."""
        by_operator: dict[str, list[str]] = {}
        for operator, key in dict.fromkeys(keys):
            by_operator.setdefault(operator, []).append(key)
        found: dict[tuple[str, str], StoredCommand] = {}
        with self._connection() as conn:
            for operator, idempotency_keys in by_operator.items():
                # One operator at a time, so SQLite searches the primary key; a row-value
                # IN over (operator, key) pairs would scan the whole table.
                for start in range(0, len(idempotency_keys), 400):
                    chunk = idempotency_keys[start : start + 400]
                    marks = ",".join("?" * len(chunk))
                    rows = conn.execute(
                        "SELECT idempotency_key, operator, fingerprint, status, body, seq"
                        f" FROM commands WHERE operator = ? AND idempotency_key IN ({marks})",
                        [operator, *chunk],
                    ).fetchall()
                    for row in rows:
                        found[(operator, row[0])] = StoredCommand(*row)
        return found

    def read(self, after: int, limit: int) -> list[Event]:
        """Up to `limit` events with seq > `after`, in order."""
        if limit <= 0:
            # SQLite reads a negative LIMIT as "no limit"; nobody asking for -1 means that.
            return []
        with self._connection("reader") as conn:
            rows = conn.execute(
                "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()
        return [self._decode(seq, body) for seq, body in rows]

    def read_raw(self, after: int, limit: int) -> list[tuple[int, str]]:
        """Like `read`, but the stored JSON text of each event, undecoded."""
        if limit <= 0:
            return []
        with self._connection("reader") as conn:
            return conn.execute(
                "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (after, limit),
            ).fetchall()

    def save_snapshot(self, state: DispatchState) -> None:
        """Durably store the picture at `state.seq` and prune events past retention.

        Events with seq <= ``state.seq - retain_events`` are deleted, so `retain_events`
        events up to the snapshot and every event after it stay. Only the newest two
        snapshots are kept. Raises `StoreError` if `state.seq` is past the head.
        """
        self.save_snapshot_json(state.seq, state.model_dump_json())

    def save_snapshot_json(self, seq: int, body: str) -> None:
        """`save_snapshot` for a picture already serialised (`DispatchState` JSON at `seq`).

        Written on the upkeep connection, so an append never queues behind it on this
        side of SQLite (SQLite itself still takes its one write lock for the commit).
        Nothing is decoded again.
        """
        state_seq = seq
        with self._transaction("upkeep") as conn:
            if state_seq > self._head:
                raise StoreError(
                    f"snapshot at seq {state_seq} is past the head of the log ({self._head})"
                )
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (seq, body) VALUES (?, ?)", (state_seq, body)
            )
            conn.execute("DELETE FROM events WHERE seq <= ?", (state_seq - self.retain_events,))
            conn.execute(
                "DELETE FROM snapshots WHERE seq NOT IN"
                " (SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)",
                (_SNAPSHOTS_KEPT,),
            )

    def load_snapshot(self) -> DispatchState | None:
        """The newest stored snapshot, if any."""
        with self._connection("reader") as conn:
            row = conn.execute(
                "SELECT seq, body FROM snapshots ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return decoded_snapshot(row, str(self.path))

    def close(self) -> None:
        """Release the store's file. Safe to call more than once."""
        with self._lock, self._read_lock, self._upkeep_lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                self._close_all(conn)

    # --- extras ------------------------------------------------------------------------

    def events_after(self, after: int, batch: int = 5000) -> Iterator[Event]:
        """Every event after `after`, in order; `StoreError` if some were pruned."""
        return paged_events(self.read, self.first_retained(), after, batch, str(self.path))

    def __enter__(self) -> SQLiteEventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._conn is None else f"head={self._head}"
        return f"SQLiteEventStore({str(self.path)!r}, {state})"

    def _decode(self, seq: int, body: str) -> Event:
        return decoded_event(seq, body, str(self.path))
