"""Archived incidents in PostgreSQL, shared by every node of a cluster.

The same queries as `history.IncidentHistory` (by reference, by closing time, by text)
over one table beside the event log, so an incident archived by any node is found
through every node. Text search is PostgreSQL's full-text search over the same fields,
with the ``simple`` configuration (no stemming, no stop words: a street name or a
surname is matched as typed), each typed word as a prefix (``gas`` finds Gasworks), as
on SQLite. Accents and case are folded in Python before the text is
indexed and before a query is read, so "Zoë" finds "ZOE" on PostgreSQL as on SQLite
without needing a database extension.

Layout (part of the event store's schema, see `store.postgres`)::

    cadterm_archived(reference, created_ms, closed_ms, body, words)
        words = tsvector of the folded reference, type, description, address, caller
                (name, phone, the phone's digits alone), chronology; rows kept before
                the caller was indexed are found by the other fields
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime

from .history import MAX_PAGE, ArchivedPage, ArchiveRow, _page, _parse_cursor, to_ms
from .postgres import PostgresEventStore

__all__ = ["PostgresIncidentHistory", "fold_text"]

#: The most words of a query that count (as in the SQLite history).
_QUERY_WORDS = 16
_NOT_WORD = re.compile(r"[\W_]+")


def fold_text(text: str) -> str:
    """`text` without accents, case-folded, in words: what is indexed and searched for.

    Anything but a letter or a digit parts words, as in SQLite's tokenizer: PostgreSQL's
    own parser would read ``0001-27NOV26`` as ``0001``, ``-27`` and ``nov26``, and a
    search for the day (``27NOV26``) would find nothing.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return _NOT_WORD.sub(" ", plain)


def _searchable(row: ArchiveRow) -> str:
    return fold_text("\n".join(row.text_columns()))


class PostgresIncidentHistory:
    """Archived incidents in the event store's database; same API as `IncidentHistory`."""

    def __init__(self, store: PostgresEventStore) -> None:
        self._store = store

    def keep(self, rows: Iterable[ArchiveRow]) -> int:
        """Durably store closed incidents (replacing any earlier copy); return how many."""
        rows = list(rows)
        if not rows:
            return 0
        with self._store.connection() as conn, conn.transaction():
            conn.cursor().executemany(
                "INSERT INTO cadterm_archived (reference, created_ms, closed_ms, body, words)"
                " VALUES (%s, %s, %s, %s, to_tsvector('simple', %s))"
                " ON CONFLICT (reference) DO UPDATE SET created_ms = EXCLUDED.created_ms,"
                " closed_ms = EXCLUDED.closed_ms, body = EXCLUDED.body, words = EXCLUDED.words",
                [
                    (row.reference, row.created_ms, row.closed_ms, row.body, _searchable(row))
                    for row in rows
                ],
            )
        return len(rows)

    def forget(self, references: Iterable[str]) -> None:
        """Drop copies of incidents that turned out to stay in the picture (reopened)."""
        references = list(references)
        if references:
            with self._store.connection() as conn, conn.transaction():
                conn.execute(
                    "DELETE FROM cadterm_archived WHERE reference = ANY (%s)", (references,)
                )

    def find(self, reference: str) -> str | None:
        """The archived incident's JSON, or None if `reference` was never archived."""
        with self._store.connection() as conn:
            row = conn.execute(
                "SELECT body FROM cadterm_archived WHERE reference = %s", (reference,)
            ).fetchone()
        return row[0] if row else None

    def closed_between(
        self, start: datetime, end: datetime, *, limit: int = 50, after: str | None = None
    ) -> ArchivedPage:
        """Incidents closed at or after `start` and before `end`, oldest closing first."""
        limit = max(1, min(limit, MAX_PAGE))
        low, high = to_ms(start), to_ms(end)
        position = _parse_cursor(after) or (low, "")
        with self._store.connection() as conn:
            rows = conn.execute(
                "SELECT closed_ms, reference, body FROM cadterm_archived"
                " WHERE (closed_ms, reference) > (%s, %s) AND closed_ms >= %s"
                " AND closed_ms < %s ORDER BY closed_ms, reference LIMIT %s",
                (position[0], position[1], low, high, limit + 1),
            ).fetchall()
        return _page(rows, limit)

    def search(self, text: str, *, limit: int = 50, after: str | None = None) -> ArchivedPage:
        """Incidents holding every word of `text`, most recently closed first."""
        limit = max(1, min(limit, MAX_PAGE))
        words = fold_text(text).split()[:_QUERY_WORDS]
        position = _parse_cursor(after)
        if not words:
            return ArchivedPage([], None)
        # Folded words are letters and digits only, so nothing typed is query syntax;
        # each is a prefix, all must match.
        where, args = "words @@ to_tsquery('simple', %s)", [" & ".join(f"{w}:*" for w in words)]
        if position is not None:
            where += " AND (closed_ms, reference) < (%s, %s)"
            args += [position[0], position[1]]
        with self._store.connection() as conn:
            rows = conn.execute(
                f"SELECT closed_ms, reference, body FROM cadterm_archived WHERE {where}"
                " ORDER BY closed_ms DESC, reference DESC LIMIT %s",
                (*args, limit + 1),
            ).fetchall()
        return _page(rows, limit)

    def count(self) -> int:
        """How many incidents are archived."""
        with self._store.connection() as conn:
            return conn.execute("SELECT COUNT(*) FROM cadterm_archived").fetchone()[0]

    def close(self) -> None:
        """Nothing of its own to release: the event store's pool is closed with it."""

    def __enter__(self) -> PostgresIncidentHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
