"""Archived incidents: closed incidents that have left the live picture, kept for good.

The live picture holds only today's work (see `server.archive`); an incident closed for
longer than the window is written here, whole, before the event that drops it from the
picture is recorded. This module keeps those incidents in their own tables in the event
store's file and answers the history queries: by reference, by closing time and by
text. It has its own connection, so a long search never holds up an append.

Layout (its own version, in ``history_meta``, independent of the event store's)::

    archived_incidents(id, reference, created_ms, closed_ms, body)
                                        body = the incident's JSON as it left the picture
                                        id = closed_ms * 4096 + n: in closing order
    archived_text(reference, incident_type, description, address, caller, chronology)
                                        FTS5 index, rowid = archived_incidents.id
                                        caller = name, phone, the phone's digits alone

Version 2 added the caller column and numbers incidents in closing order (a version 1
file is renumbered and re-indexed from the bodies when first opened). A search matches
each typed word as the start of a word, as the console's search of its own picture does
(`cadterm.domain.search`). Because ids follow closing time, the newest matches are the
highest rowids: the FTS5 index hands them over newest first and stops at the page, so
a word found in half the history costs what a rare one does.

Times are kept as UTC milliseconds so they compare as numbers, whatever offset the JSON
spelt them with. Indexes on (closed_ms, reference) and (created_ms, reference) make a
range query a seek, and the FTS5 index makes a text search a lookup, on a year of
history as on a day.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cadterm.domain.search import caller_words
from cadterm.protocol.domain import Incident

from .base import StoreError

__all__ = ["CURSOR_PATTERN", "MAX_PAGE", "ArchiveRow", "ArchivedPage", "IncidentHistory", "to_ms"]

#: The most incidents one history query answers with; ask again with `after` for more.
MAX_PAGE = 200

_VERSION = 2

#: Ids per closing millisecond: an incident's id is ``closed_ms * _TIES + n``.
_TIES = 4096

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS history_meta (version INTEGER NOT NULL)",
    """
    CREATE TABLE IF NOT EXISTS archived_incidents (
        id         INTEGER PRIMARY KEY,
        reference  TEXT NOT NULL UNIQUE,
        created_ms INTEGER NOT NULL,
        closed_ms  INTEGER NOT NULL,
        body       TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS archived_by_closed ON archived_incidents (closed_ms, reference)",
    "CREATE INDEX IF NOT EXISTS archived_by_created ON archived_incidents (created_ms, reference)",
    """
    CREATE VIRTUAL TABLE IF NOT EXISTS archived_text USING fts5 (
        reference, incident_type, description, address, caller, chronology,
        tokenize = 'unicode61 remove_diacritics 2', prefix = '3 5'
    )
    """,
)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(moment: datetime) -> int:
    """A moment as whole UTC milliseconds since the epoch (any year, any offset)."""
    if moment.tzinfo is None:
        raise ValueError("history times need a UTC offset")
    # Subtracting keeps to timedelta arithmetic: converting 0001-01-01T00:00+01:00 to
    # UTC would fall off the calendar.
    return (moment - _EPOCH) // _MS


@dataclass(frozen=True)
class ArchivedPage:
    """One page of archived incidents (JSON texts) and the cursor for the next, if any."""

    incidents: list[str]
    next_after: str | None


def _cursor(ms: int, reference: str) -> str:
    return f"{ms}~{reference}"


def _parse_cursor(after: str | None) -> tuple[int, str] | None:
    if not after:
        return None
    if re.fullmatch(CURSOR_PATTERN, after) is None:
        raise ValueError(f"not a history cursor: {after!r}")
    ms, _, reference = after.partition("~")
    return int(ms), reference


#: A cursor as `next_after` gives it out: closing time in ms, "~", the reference.
CURSOR_PATTERN = r"^-?\d{1,16}~.{0,64}$"


def _match_expression(text: str) -> str | None:
    """The words of `text` as an FTS5 query that finds incidents holding all of them.

    Each word is quoted, so nothing a dispatcher types is read as FTS5 syntax (``-``,
    ``OR``, ``NEAR``, a stray quote), and is a prefix: ``gas`` finds Gasworks Lane.
    A word of punctuation alone matches anything. None when `text` holds no word.
    """
    # Control characters are no part of any word, and SQLite ends a query string at a
    # NUL ("unterminated string"): drop them before quoting.
    words = ["".join(c for c in word if c.isprintable()) for word in text.split()]
    words = [word for word in words if word]
    if not words:
        return None
    return " ".join('"' + word.replace('"', '""') + '"*' for word in words[:16])


@dataclass(frozen=True)
class ArchiveRow:
    """One closed incident as the history stores it: its JSON and what is searched."""

    reference: str
    created_ms: int
    closed_ms: int
    body: str
    incident_type: str
    description: str
    address: str
    caller: str
    chronology: str

    @classmethod
    def of(cls, incident: Incident) -> ArchiveRow:
        """The row for a closed `incident`, taken now (the incident may change later)."""
        if incident.closed_at is None:
            raise StoreError(f"incident {incident.reference} is not closed")
        return cls(
            incident.reference,
            to_ms(incident.created_at),
            to_ms(incident.closed_at),
            incident.model_dump_json(),
            incident.incident_type,
            incident.description,
            incident.location.address,
            caller_words(incident.caller),
            "\n".join(entry.text for entry in incident.chronology),
        )

    def text_columns(self) -> tuple[str, str, str, str, str, str]:
        """What the text index holds for this incident, in its columns' order."""
        return (
            self.reference,
            self.incident_type,
            self.description,
            self.address,
            self.caller,
            self.chronology,
        )


class IncidentHistory:
    """Archived incidents in the SQLite file at `path` (the event store's own file).

    Safe to call from several threads: its one connection is used behind a lock. Also a
    context manager that closes it on exit.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            conn = sqlite3.connect(
                self.path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            # An archived incident must be on disk before the event that drops it from
            # the picture is recorded: fsync every commit, as the event store does.
            conn.execute("PRAGMA synchronous=FULL")
            self._migrate(conn)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open incident history in {self.path}: {exc}") from exc
        self._conn: sqlite3.Connection | None = conn

    @staticmethod
    def _migrate(conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA:
                conn.execute(statement)
            row = conn.execute("SELECT version FROM history_meta").fetchone()
            if row is None:
                conn.execute("INSERT INTO history_meta (version) VALUES (?)", (_VERSION,))
            elif row[0] > _VERSION:
                raise StoreError(
                    f"incident history has version {row[0]}; this cadterm understands "
                    f"up to {_VERSION}: upgrade cadterm to open it"
                )
            elif row[0] == 1:
                IncidentHistory._reindex_with_callers(conn)
                conn.execute("UPDATE history_meta SET version = ?", (_VERSION,))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @staticmethod
    def _reindex_with_callers(conn: sqlite3.Connection) -> None:
        """Version 1 to 2: number the incidents in closing order and rebuild the text
        index, with the caller column, from the bodies."""
        conn.execute("DROP TABLE archived_text")
        conn.execute(_SCHEMA[-1])
        bodies = conn.execute(
            "SELECT body FROM archived_incidents ORDER BY closed_ms, id"
        ).fetchall()
        conn.execute("DELETE FROM archived_incidents")
        for (body,) in bodies:
            IncidentHistory._insert(conn, ArchiveRow.of(Incident.model_validate(json.loads(body))))

    @staticmethod
    def _insert(conn: sqlite3.Connection, row: ArchiveRow) -> None:
        """Store one incident under the next id of its closing millisecond, and index it."""
        base = row.closed_ms * _TIES
        top = conn.execute(
            "SELECT MAX(id) FROM archived_incidents WHERE id >= ? AND id < ?",
            (base, base + _TIES),
        ).fetchone()[0]
        rowid = base if top is None else top + 1
        if rowid >= base + _TIES:
            raise StoreError(f"more than {_TIES} incidents closed in one millisecond")
        conn.execute(
            "INSERT INTO archived_incidents (id, reference, created_ms, closed_ms, body)"
            " VALUES (?, ?, ?, ?, ?)",
            (rowid, row.reference, row.created_ms, row.closed_ms, row.body),
        )
        conn.execute(
            "INSERT INTO archived_text (rowid, reference, incident_type, description,"
            " address, caller, chronology) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rowid, *row.text_columns()),
        )

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                raise StoreError(f"incident history in {self.path} is closed")
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StoreError(f"incident history in {self.path}: {exc}") from exc

    # --- writing -------------------------------------------------------------------------

    def keep(self, rows: Iterable[ArchiveRow]) -> int:
        """Durably store closed incidents (replacing any earlier copy); return how many.

        One transaction: all are on disk when this returns, or none.
        """
        rows = list(rows)
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for row in rows:
                    reference = row.reference
                    old = conn.execute(
                        "SELECT id FROM archived_incidents WHERE reference = ?", (reference,)
                    ).fetchone()
                    if old is not None:
                        conn.execute("DELETE FROM archived_text WHERE rowid = ?", old)
                        conn.execute("DELETE FROM archived_incidents WHERE id = ?", old)
                    self._insert(conn, row)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return len(rows)

    def forget(self, references: Iterable[str]) -> None:
        """Drop copies of incidents that turned out to stay in the picture (reopened)."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for reference in references:
                    conn.execute(
                        "DELETE FROM archived_text WHERE rowid IN"
                        " (SELECT id FROM archived_incidents WHERE reference = ?)",
                        (reference,),
                    )
                    conn.execute("DELETE FROM archived_incidents WHERE reference = ?", (reference,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # --- reading -------------------------------------------------------------------------

    def find(self, reference: str) -> str | None:
        """The archived incident's JSON, or None if `reference` was never archived."""
        with self._connection() as conn:
            row = conn.execute(
                "SELECT body FROM archived_incidents WHERE reference = ?", (reference,)
            ).fetchone()
        return row[0] if row else None

    def closed_between(
        self, start: datetime, end: datetime, *, limit: int = 50, after: str | None = None
    ) -> ArchivedPage:
        """Incidents closed at or after `start` and before `end`, oldest closing first.

        At most `limit` (capped at `MAX_PAGE`); pass the page's `next_after` as `after`
        for the next page. Raises `ValueError` for a cursor this did not give out.
        """
        limit = max(1, min(limit, MAX_PAGE))
        low, high = to_ms(start), to_ms(end)
        position = _parse_cursor(after) or (low, "")
        with self._connection() as conn:
            rows = conn.execute(
                "SELECT closed_ms, reference, body FROM archived_incidents"
                " WHERE (closed_ms, reference) > (?, ?) AND closed_ms >= ? AND closed_ms < ?"
                " ORDER BY closed_ms, reference LIMIT ?",
                (position[0], position[1], low, high, limit + 1),
            ).fetchall()
        return _page(rows, limit)

    def search(self, text: str, *, limit: int = 50, after: str | None = None) -> ArchivedPage:
        """Incidents whose reference, type, description, address, caller or chronology
        hold a word starting with each word of `text`, most recently closed first.

        At most `limit` (capped at `MAX_PAGE`); pass `next_after` as `after` for more.
        Raises `ValueError` for a cursor this did not give out.
        """
        limit = max(1, min(limit, MAX_PAGE))
        match = _match_expression(text)
        position = _parse_cursor(after)
        if match is None:
            return ArchivedPage([], None)
        where, args = "archived_text MATCH ?", [match]
        with self._connection() as conn:
            if position is not None:
                where += " AND archived_text.rowid < ?"
                args.append(self._below(conn, *position))
            # Newest first is highest id first: FTS5 walks its index in that order and
            # stops at the page, however many incidents hold the words.
            rows = conn.execute(
                "SELECT a.closed_ms, a.reference, a.body FROM archived_text"
                " JOIN archived_incidents AS a ON a.id = archived_text.rowid"
                f" WHERE {where} ORDER BY archived_text.rowid DESC LIMIT ?",
                (*args, limit + 1),
            ).fetchall()
        return _page(rows, limit)

    @staticmethod
    def _below(conn: sqlite3.Connection, closed_ms: int, reference: str) -> int:
        """The id a search page after the cursor (`closed_ms`, `reference`) stays below."""
        row = conn.execute(
            "SELECT id FROM archived_incidents WHERE reference = ? AND closed_ms = ?",
            (reference, closed_ms),
        ).fetchone()
        # The cursor's incident was dropped since (reopened): start below its millisecond.
        return row[0] if row is not None else closed_ms * _TIES

    def count(self) -> int:
        """How many incidents are archived."""
        with self._connection() as conn:
            return conn.execute("SELECT COUNT(*) FROM archived_incidents").fetchone()[0]

    def close(self) -> None:
        """Release the connection. Safe to call more than once."""
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()

    def __enter__(self) -> IncidentHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _page(rows: list[tuple[int, str, str]], limit: int) -> ArchivedPage:
    more = len(rows) > limit
    rows = rows[:limit]
    next_after = _cursor(rows[-1][0], rows[-1][1]) if more else None
    return ArchivedPage([body for _ms, _ref, body in rows], next_after)
