"""The event store on PostgreSQL: one log that several server nodes share.

Layout (schema version in ``cadterm_schema``), in the first schema of the connection's
``search_path`` (``public`` unless the URL says otherwise)::

    cadterm_head(seq)                  one row: the newest seq; also the append lock
    cadterm_events(seq, type, at, body)
    cadterm_commands(operator, idempotency_key, fingerprint, status, body, seq, stored_at)
    cadterm_snapshots(seq, body)

**One writer at a time, in seq order.** A write turn begins a transaction and locks the
head row (``SELECT ... FOR UPDATE``), so appends from every node queue on that one row.
Under the lock the node reads the events it has not folded yet (committed by other
nodes), decides its commands against them, appends at head + 1, head + 2, ... and
commits. PostgreSQL makes a transaction's rows visible before it releases its locks, so
the next writer, and any reader, sees every event up to the head: seq is gap-free and
commit order is seq order, and a reader polling ``seq > last`` never skips an event
committed late (the failure a sequence with concurrent writers has).

**Waking the other nodes.** The turn sends ``NOTIFY`` on the schema's channel inside its
transaction, so the notification is delivered only if the events were committed. It
carries no events: a node that hears it reads the rows from the table (see `EventWaker`).

Every command answer, accepted or refused, is stored under (operator, key) in the same
transaction, so a command retried on another node gets the first answer. Connections
come from a pool; a connection that fails is replaced. When PostgreSQL cannot be
reached the store raises `StoreUnavailable`, and the server answers 503 until it can.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType

import psycopg
from psycopg import sql
from psycopg_pool import ConnectionPool, PoolTimeout

from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState

from .base import Accepted, SequenceConflict, StoredCommand, StoreError, StoreUnavailable
from .reading import decoded_event, decoded_snapshot, paged_events

__all__ = ["SCHEMA_VERSION", "EventWaker", "PostgresEventStore", "describe_url"]

log = logging.getLogger("cadterm.server.store")

# Each entry takes the schema from version n - 1 to n. Add entries; never edit one.
_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """
        CREATE TABLE cadterm_head (
            only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
            seq      bigint NOT NULL
        )
        """,
        "INSERT INTO cadterm_head (seq) VALUES (0)",
        """
        CREATE TABLE cadterm_events (
            seq  bigint PRIMARY KEY,
            type text NOT NULL,
            at   timestamptz NOT NULL,
            body text NOT NULL
        )
        """,
        # No foreign key to the events: they are pruned, and an answer must outlive the
        # event it caused so a late retry still matches.
        """
        CREATE TABLE cadterm_commands (
            operator        text NOT NULL,
            idempotency_key text NOT NULL,
            fingerprint     text NOT NULL,
            status          integer NOT NULL,
            body            text NOT NULL,
            seq             bigint,
            stored_at       double precision NOT NULL,
            PRIMARY KEY (operator, idempotency_key)
        )
        """,
        "CREATE INDEX cadterm_commands_stored_at ON cadterm_commands (stored_at)",
        """
        CREATE TABLE cadterm_snapshots (
            seq  bigint PRIMARY KEY,
            body text NOT NULL
        )
        """,
    ),
    # Archived incidents (see pg_history.py): closed incidents that left the picture.
    2: (
        """
        CREATE TABLE cadterm_archived (
            reference  text PRIMARY KEY,
            created_ms bigint NOT NULL,
            closed_ms  bigint NOT NULL,
            body       text NOT NULL,
            words      tsvector NOT NULL
        )
        """,
        "CREATE INDEX cadterm_archived_by_closed ON cadterm_archived (closed_ms, reference)",
        "CREATE INDEX cadterm_archived_by_created ON cadterm_archived (created_ms, reference)",
        "CREATE INDEX cadterm_archived_words ON cadterm_archived USING gin (words)",
    ),
}

#: The schema version this code writes; a database at a higher one is refused.
SCHEMA_VERSION = max(_MIGRATIONS)

#: How many snapshots are kept: the newest, and one to fall back on.
_SNAPSHOTS_KEPT = 2
#: Stored answers deleted per transaction when pruning, so an append waits briefly.
_PRUNE_CHUNK = 2000
#: Every node takes this advisory lock to migrate, so two starting at once take turns.
_MIGRATION_LOCK = 0x63616474  # "cadt"


def describe_url(url: str) -> str:
    """A PostgreSQL URL without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(unreadable URL)"
    host = info.get("host", "localhost")
    port = info.get("port", "5432")
    user = f"{info['user']}@" if info.get("user") else ""
    return f"postgresql://{user}{host}:{port}/{info.get('dbname', '')}"


def _conninfo(url: str, timeout: float) -> str:
    """`url` with cadterm's connection settings added to any the URL gives.

    A dead database is noticed within `timeout`, and no statement waits for ever behind
    a lock held by a node that hung (a node that died loses its locks at once). Options
    in the URL (a ``search_path``, say) are kept.
    """
    given = psycopg.conninfo.conninfo_to_dict(url).get("options") or ""
    # A write turn takes milliseconds: a session idle inside one for seconds is a node
    # that hung holding the append lock, and every node waits until it is ended.
    idle = int(max(2 * timeout, 5.0) * 1000)
    ours = f"-c lock_timeout={int(timeout * 1000)} -c idle_in_transaction_session_timeout={idle}"
    return psycopg.conninfo.make_conninfo(
        url, connect_timeout=max(1, round(timeout)), options=f"{given} {ours}".strip()
    )


def _why_not(conninfo: str, timed_out: PoolTimeout) -> str:
    """Why the pool could not connect, in libpq's words: refused, no such database...

    The pool only says it timed out (its workers log each attempt), so one more
    connection, bounded by the same connect timeout, is tried to learn the reason.
    """
    try:
        psycopg.connect(conninfo).close()
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return str(timed_out)


class WriteTurn:
    """The append lock, held: what the node missed, its look-ups and its one commit."""

    def __init__(
        self, conn: psycopg.Connection, head: int, missed: list[tuple[int, str]], channel: str
    ) -> None:
        self._conn = conn
        self.head = head
        #: (seq, event JSON) committed after the `after` the turn was asked for, in order.
        self.missed = missed
        self._channel = channel
        self._committed = False

    def find_commands(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredCommand]:
        """Stored answers for these (operator, key) pairs, as committed by any node."""
        return _find_commands(self._conn, keys)

    def commit(
        self, accepted: Sequence[Accepted], refused: Sequence[StoredCommand], at: float
    ) -> None:
        """Write the batch in this turn's transaction; it is durable when the turn ends."""
        if self._committed:
            raise StoreError("a write turn commits once")
        self._committed = True
        _check_batch(accepted, refused)
        head = self.head
        for item in accepted:
            if item.event.seq != head + 1:
                raise SequenceConflict(f"expected seq {head + 1}, got {item.event.seq}")
            head += 1
        with self._conn.cursor() as cur:
            if accepted:
                cur.executemany(
                    "INSERT INTO cadterm_events (seq, type, at, body) VALUES (%s, %s, %s, %s)",
                    [(a.event.seq, a.event.type, a.event.at, a.body) for a in accepted],
                )
                _insert_accepted_commands(cur, accepted, at)
            if refused:
                cur.executemany(
                    "INSERT INTO cadterm_commands (operator, idempotency_key, fingerprint,"
                    " status, body, seq, stored_at) VALUES (%s, %s, %s, %s, %s, NULL, %s)"
                    " ON CONFLICT DO NOTHING",
                    [
                        (c.operator, c.idempotency_key, c.fingerprint, c.status, c.body, at)
                        for c in refused
                    ],
                )
            if accepted:
                cur.execute("UPDATE cadterm_head SET seq = %s", (head,))
                # Delivered only if this transaction commits, and only as a wake-up.
                cur.execute("SELECT pg_notify(%s, %s)", (self._channel, str(head)))
        self.head = head


def _check_batch(accepted: Sequence[Accepted], refused: Sequence[StoredCommand]) -> None:
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
                f"refused command {command.idempotency_key} cannot have caused seq {command.seq}"
            )


def _insert_accepted_commands(cur: psycopg.Cursor, accepted: Sequence[Accepted], at: float) -> None:
    # No ON CONFLICT: a key stored already is a unique violation, which aborts the whole
    # transaction, so nothing of the batch is written (the caller checked keys first).
    cur.executemany(
        "INSERT INTO cadterm_commands (operator, idempotency_key, fingerprint, status, body,"
        " seq, stored_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        [
            (
                a.command.operator,
                a.command.idempotency_key,
                a.command.fingerprint,
                a.command.status,
                a.command.body,
                a.event.seq,
                at,
            )
            for a in accepted
        ],
    )


def _find_commands(
    conn: psycopg.Connection, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], StoredCommand]:
    unique = list(dict.fromkeys(keys))
    if not unique:
        return {}
    rows = conn.execute(
        "SELECT c.idempotency_key, c.operator, c.fingerprint, c.status, c.body, c.seq"
        " FROM cadterm_commands c"
        " JOIN unnest(%s::text[], %s::text[]) AS k(operator, idempotency_key)"
        " USING (operator, idempotency_key)",
        ([operator for operator, _ in unique], [key for _, key in unique]),
    ).fetchall()
    return {(row[1], row[0]): StoredCommand(*row) for row in rows}


class PostgresEventStore:
    """An `EventStore` in a PostgreSQL database, shareable by several server nodes.

    Safe to call from several threads: each call takes its own pooled connection.
    Also a context manager that closes the pool on exit.
    """

    def __init__(
        self,
        url: str,
        *,
        retain_events: int = 100_000,
        timeout: float = 3.0,
        pool_size: int = 6,
    ) -> None:
        """Connect to `url`, create or migrate the schema, and check its version.

        `timeout` bounds connecting, waiting for a pooled connection and waiting for a
        lock, so a database that has gone away is reported within it. Raises
        `StoreUnavailable` if the database cannot be reached and `StoreError` if its
        schema is newer than this cadterm.
        """
        if retain_events < 0:
            raise ValueError("retain_events must be zero or more")
        self.url = url
        try:
            self._conninfo = _conninfo(url, timeout)
        except psycopg.ProgrammingError as exc:
            raise StoreError(f"not a PostgreSQL URL cadterm can use: {exc}") from exc
        self.retain_events = retain_events
        self.timeout = timeout
        self._closed = False
        self._pool = ConnectionPool(
            self._conninfo,
            min_size=1,
            max_size=pool_size,
            check=ConnectionPool.check_connection,
            timeout=timeout,
            # Give up a reconnection attempt quickly: the next request starts a fresh one
            # at once, so a database that comes back is used again within a request,
            # not after a backoff that grew (to minutes) while it was away.
            reconnect_timeout=timeout,
            open=False,
            name="cadterm-store",
        )
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreUnavailable(
                f"cannot reach PostgreSQL at {self.describe()}: {_why_not(self._conninfo, exc)}"
            ) from exc
        try:
            self.schema, self.channel = self._open()
        except BaseException:
            self._pool.close()
            raise

    # --- opening -----------------------------------------------------------------------

    def describe(self) -> str:
        """The database's address without its password, for messages and logs."""
        return describe_url(self.url)

    def _open(self) -> tuple[str, str]:
        with self.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            schema = self._schema(conn)
            conn.execute("CREATE TABLE IF NOT EXISTS cadterm_schema (version integer NOT NULL)")
            row = conn.execute("SELECT version FROM cadterm_schema").fetchone()
            version = 0 if row is None else row[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"event store {self.describe()} has schema version {version}, but this "
                    f"cadterm only understands up to version {SCHEMA_VERSION}: upgrade "
                    "cadterm to open it"
                )
            for step in range(version + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[step]:
                    conn.execute(statement)
                log.info("event store %s migrated to schema version %d", self.describe(), step)
            if row is None:
                conn.execute("INSERT INTO cadterm_schema VALUES (%s)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                conn.execute("UPDATE cadterm_schema SET version = %s", (SCHEMA_VERSION,))
        return schema, f"cadterm_events:{schema}"[:63]

    @staticmethod
    def _schema(conn: psycopg.Connection) -> str:
        """The first schema of the search path, created if missing.

        Not simply ``current_schema()``: that is the first schema that exists, so with
        ``search_path=control_room,public`` and no control_room yet the tables would
        quietly go in public. The default path's ``"$user"`` is the exception: it
        names a schema most databases never have, and then public (the first that
        exists) is where they go.
        """
        path = conn.execute("SHOW search_path").fetchone()[0]
        first = path.split(",")[0].strip()
        if first.startswith('"') and first.endswith('"') and len(first) > 1:
            first = first[1:-1].replace('""', '"')
        else:
            first = first.lower()  # PostgreSQL folds an unquoted name
        if first and first != "$user":
            exists = conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (first,)
            ).fetchone()
            # Only when missing: CREATE SCHEMA IF NOT EXISTS still wants the CREATE
            # privilege on the database, which a node's role may well not have.
            if exists is None:
                conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(first)))
            return first
        current = conn.execute("SELECT current_schema()").fetchone()[0]
        if current is None:
            raise StoreError(f"no schema to create cadterm's tables in (search_path {path!r})")
        return current

    # --- plumbing ----------------------------------------------------------------------

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; database errors become `StoreError`/`StoreUnavailable`.

        For the tables that live beside the log (the incident history).
        """
        if self._closed:
            raise StoreError(f"event store {self.describe()} is closed")
        try:
            with self._pool.connection() as conn:
                yield conn
        except PoolTimeout as exc:
            raise StoreUnavailable(
                f"PostgreSQL at {self.describe()} is not answering: {exc}"
            ) from exc
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"PostgreSQL at {self.describe()}: {exc}") from exc
        except psycopg.errors.UniqueViolation as exc:
            raise StoreError(
                f"event store {self.describe()}: already stored ({exc.diag.message_detail})"
            ) from exc
        except psycopg.Error as exc:
            raise StoreError(f"event store {self.describe()}: {exc}") from exc

    # --- writing -----------------------------------------------------------------------

    @contextmanager
    def write_turn(self, after: int | None) -> Iterator[WriteTurn]:
        """Hold the append lock: yield what was committed after `after`, then commit.

        With `after` None nothing is read back (the caller knows the head). The batch
        written through the turn is durable (and the other nodes notified) once the
        ``with`` block ends without an error; on an error nothing is written.
        """
        with self.connection() as conn, conn.transaction():
            head = conn.execute("SELECT seq FROM cadterm_head FOR UPDATE").fetchone()[0]
            missed = []
            if after is not None and head > after:
                missed = self._rows_after(conn, after, head)
            yield WriteTurn(conn, head, missed, self.channel)

    def _rows_after(self, conn: psycopg.Connection, after: int, head: int) -> list[tuple[int, str]]:
        rows = conn.execute(
            "SELECT seq, body FROM cadterm_events WHERE seq > %s ORDER BY seq LIMIT %s",
            (after, head - after),
        ).fetchall()
        # No row at all is a gap too: every event up to the head has been pruned.
        first = rows[0][0] if rows else head + 1
        if first != after + 1:
            raise StoreError(
                f"events {after + 1}..{first - 1} have been pruned from "
                f"{self.describe()}; this node is too far behind: restart it"
            )
        return rows

    def commit(
        self, accepted: Sequence[Accepted], refused: Sequence[StoredCommand], at: float
    ) -> None:
        """Durably write a batch in one transaction (see `EventStore.commit`)."""
        if not accepted and not refused:
            return
        with self.write_turn(None) as turn:
            turn.commit(accepted, refused, at)

    def append(self, event: Event, command: StoredCommand) -> None:
        """Durably append `event` (seq must be head + 1) with its command's result."""
        accepted = Accepted(event, event.model_dump_json(), command)
        self.commit([accepted], [], datetime.now(UTC).timestamp())

    def remember_refusal(self, command: StoredCommand) -> None:
        """Durably store a refused command's answer; the first answer stored wins."""
        _check_batch([], [command])
        with self.connection() as conn, conn.transaction():
            conn.execute(
                "INSERT INTO cadterm_commands (operator, idempotency_key, fingerprint,"
                " status, body, seq, stored_at) VALUES (%s, %s, %s, %s, %s, NULL, %s)"
                " ON CONFLICT DO NOTHING",
                (
                    command.operator,
                    command.idempotency_key,
                    command.fingerprint,
                    command.status,
                    command.body,
                    datetime.now(UTC).timestamp(),
                ),
            )

    def prune_commands(self, before: float) -> int:
        """Forget stored answers recorded before `before` (epoch seconds), a chunk at a time."""
        pruned = 0
        while True:
            with self.connection() as conn, conn.transaction():
                deleted = conn.execute(
                    "DELETE FROM cadterm_commands WHERE ctid = ANY (ARRAY(SELECT ctid FROM"
                    " cadterm_commands WHERE stored_at < %s LIMIT %s))",
                    (before, _PRUNE_CHUNK),
                ).rowcount
            pruned += deleted
            if deleted < _PRUNE_CHUNK:
                return pruned

    def checkpoint(self) -> tuple[int, int]:
        """Nothing to do: PostgreSQL checkpoints its own write-ahead log."""
        return 0, 0

    def save_snapshot(self, state: DispatchState) -> None:
        """Durably store the picture at `state.seq` and prune events past retention."""
        self.save_snapshot_json(state.seq, state.model_dump_json())

    def save_snapshot_json(self, seq: int, body: str) -> None:
        """`save_snapshot` for a picture already serialised as JSON, at `seq`.

        Several nodes may each save theirs; the newest two are kept.
        """
        with self.connection() as conn, conn.transaction():
            head = conn.execute("SELECT seq FROM cadterm_head").fetchone()[0]
            if seq > head:
                raise StoreError(f"snapshot at seq {seq} is past the head of the log ({head})")
            conn.execute(
                "INSERT INTO cadterm_snapshots (seq, body) VALUES (%s, %s)"
                " ON CONFLICT (seq) DO NOTHING",
                (seq, body),
            )
            conn.execute("DELETE FROM cadterm_events WHERE seq <= %s", (seq - self.retain_events,))
            conn.execute(
                "DELETE FROM cadterm_snapshots WHERE seq NOT IN"
                " (SELECT seq FROM cadterm_snapshots ORDER BY seq DESC LIMIT %s)",
                (_SNAPSHOTS_KEPT,),
            )

    # --- reading -----------------------------------------------------------------------

    def head(self) -> int:
        """Seq of the newest event committed by any node, 0 when the log is empty."""
        with self.connection() as conn:
            return conn.execute("SELECT seq FROM cadterm_head").fetchone()[0]

    def first_retained(self) -> int:
        """Seq of the oldest event still kept (head + 1 when none are kept)."""
        with self.connection() as conn:
            oldest, head = conn.execute(
                "SELECT (SELECT MIN(seq) FROM cadterm_events), (SELECT seq FROM cadterm_head)"
            ).fetchone()
        return oldest if oldest is not None else head + 1

    def find_command(self, operator: str, idempotency_key: str) -> StoredCommand | None:
        """The stored outcome of `operator`'s command with this key, if any."""
        return self.find_commands([(operator, idempotency_key)]).get((operator, idempotency_key))

    def find_commands(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredCommand]:
        """`find_command` for many ``(operator, idempotency_key)`` pairs in one look-up."""
        if not keys:
            return {}
        with self.connection() as conn:
            return _find_commands(conn, keys)

    def read_raw(self, after: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` events with seq > `after`, as (seq, stored JSON), in order."""
        if limit <= 0:
            return []
        with self.connection() as conn:
            return conn.execute(
                "SELECT seq, body FROM cadterm_events WHERE seq > %s ORDER BY seq LIMIT %s",
                (after, limit),
            ).fetchall()

    def read(self, after: int, limit: int) -> list[Event]:
        """Up to `limit` events with seq > `after`, in order."""
        return [self._decode(seq, body) for seq, body in self.read_raw(after, limit)]

    def events_after(self, after: int, batch: int = 5000) -> Iterator[Event]:
        """Every event after `after`, in order; `StoreError` if some were pruned."""
        return paged_events(self.read, self.first_retained(), after, batch, self.describe())

    def load_snapshot(self) -> DispatchState | None:
        """The newest stored snapshot, if any."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT seq, body FROM cadterm_snapshots ORDER BY seq DESC LIMIT 1"
            ).fetchone()
        return decoded_snapshot(row, self.describe())

    def watch(self, wake: Callable[[int | None], None]) -> EventWaker:
        """Call `wake(head)` whenever a node commits (`wake(None)` every second)."""
        waker = EventWaker(self, wake)
        waker.start()
        return waker

    def close(self) -> None:
        """Close the pool. Safe to call more than once."""
        if not self._closed:
            self._closed = True
            self._pool.close()

    def __enter__(self) -> PostgresEventStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"schema={getattr(self, 'schema', '?')}"
        return f"PostgresEventStore({self.describe()!r}, {state})"

    def _decode(self, seq: int, body: str) -> Event:
        return decoded_event(seq, body, self.describe())


def _head_in(payload: str) -> int | None:
    try:
        return int(payload)
    except ValueError:
        return None


class EventWaker:
    """Calls `wake(head)` whenever a node commits, and `wake(None)` every `poll` seconds.

    `head` is the seq the commit reached, so a node can skip its own commits.

    A thread with its own connection LISTENs on the store's channel. The notification is
    only a wake-up: whoever is woken reads the new rows from the table, so a notification
    lost while the connection was down costs at most one `poll` of delay. When the
    database goes away the thread reconnects with a growing pause, waking `wake` on each
    poll all the same so the server notices the outage.
    """

    def __init__(
        self, store: PostgresEventStore, wake: Callable[[], None], *, poll: float = 1.0
    ) -> None:
        self._store = store
        self._wake = wake
        self._poll = poll
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cadterm-store-waker", daemon=True)

    def start(self) -> None:
        """Start listening."""
        self._thread.start()

    def close(self) -> None:
        """Stop listening and wait for the thread (at most a poll and a bit)."""
        self._stopping.set()
        self._thread.join(timeout=self._poll + self._store.timeout + 1)

    def _call_wake(self, head: int | None = None) -> None:
        # Whatever the callback does wrong, the node must go on hearing the others.
        try:
            self._wake(head)
        except Exception:
            log.exception("waking the server for other nodes' events failed")

    def _run(self) -> None:
        pause = 0.1
        failing = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._store._conninfo, autocommit=True) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._store.channel)))
                    if failing:
                        log.warning("listening for other nodes' events again")
                    pause, failing = 0.1, False
                    # Anything committed while we were not listening is read on this wake.
                    self._call_wake()
                    while not self._stopping.is_set():
                        heard = None
                        for notify in conn.notifies(timeout=self._poll, stop_after=1):
                            heard = _head_in(notify.payload)
                        # A notification names the head it committed (its waker may
                        # know it has that already); a quiet poll names nothing.
                        self._call_wake(heard)
            except psycopg.Error as exc:
                # Said once per outage; the retries go on quietly.
                (log.debug if failing else log.warning)(
                    "listening for other nodes' events failed (retrying): %s", exc
                )
                failing = True
                self._call_wake()
                self._stopping.wait(pause)
                pause = min(pause * 2, 2.0)
