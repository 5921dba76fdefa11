"""Where the events live: an SQLite file path or a PostgreSQL URL, never confused.

`--db` takes either. Anything that looks like a URL (a scheme and a colon at the start)
must be one cadterm knows; a path that happens to start like one (``postgresql:x``,
``sqlite:data.db``) is refused rather than taken as a folder name, because a typo in a
cluster's URL must not quietly start a node on a file of its own.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .base import EventStore, StoreError
from .history import IncidentHistory

if TYPE_CHECKING:
    from .pg_history import PostgresIncidentHistory

__all__ = ["DbLocation", "StoreLocationError", "open_history", "open_store", "parse_db"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_POSTGRES_SCHEMES = ("postgresql", "postgres")


class StoreLocationError(ValueError):
    """`--db` names neither an SQLite file nor a PostgreSQL URL."""


@dataclass(frozen=True)
class DbLocation:
    """A parsed `--db`: exactly one of `path` (SQLite) and `url` (PostgreSQL)."""

    path: Path | None = None
    url: str | None = None

    @property
    def is_postgres(self) -> bool:
        """Whether the events live in PostgreSQL."""
        return self.url is not None

    def __str__(self) -> str:
        if self.path is not None:
            return str(self.path)
        from .postgres import describe_url

        return describe_url(self.url or "")


def parse_db(value: str | os.PathLike[str]) -> DbLocation:
    """Read a `--db` value; `StoreLocationError` says plainly what is wrong with it."""
    if isinstance(value, Path):
        return DbLocation(path=value)
    text = os.fspath(value)
    if not text.strip():
        raise StoreLocationError("--db is empty: give an SQLite file path or a postgresql:// URL")
    match = _SCHEME.match(text)
    if match is None:
        return DbLocation(path=Path(text))
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if scheme in _POSTGRES_SCHEMES:
        if not rest.startswith("//"):
            raise StoreLocationError(
                f"--db {text!r}: a PostgreSQL URL starts {scheme}:// (for example "
                "postgresql://cadterm@db-host:5432/cadterm)"
            )
        return DbLocation(url=text)
    if scheme == "sqlite":
        if not rest.startswith("///") or len(rest) == 3:
            raise StoreLocationError(
                f"--db {text!r}: an SQLite URL is sqlite:///absolute/path.db; or give the "
                "file's path on its own"
            )
        return DbLocation(path=Path(rest[2:]))
    if scheme == "file" and rest.startswith("//"):
        raise StoreLocationError(f"--db {text!r}: give the file's path on its own, not a file: URL")
    raise StoreLocationError(
        f"--db {text!r}: {scheme!r} is not a database cadterm knows; give an SQLite file "
        "path or a postgresql:// URL (a file name with a colon in it: write ./ before it)"
    )


def open_store(
    location: DbLocation, *, retain_events: int, checkpoint_on_commit: bool = False
) -> EventStore:
    """Open (creating or migrating) the event store at `location`."""
    if location.url is not None:
        try:
            from .postgres import PostgresEventStore  # psycopg is needed only for PostgreSQL
        except ImportError as exc:
            raise StoreError(
                f"--db names a PostgreSQL database, which needs psycopg ({exc}): install "
                "cadterm with its postgresql extra, pip install 'cadterm[postgresql]'"
            ) from exc
        return PostgresEventStore(location.url, retain_events=retain_events)
    from .sqlite import SQLiteEventStore

    assert location.path is not None
    return SQLiteEventStore(
        location.path, retain_events=retain_events, checkpoint_on_commit=checkpoint_on_commit
    )


def open_history(store: EventStore) -> IncidentHistory | PostgresIncidentHistory:
    """The archived incidents kept beside `store`'s log, in the same file or database."""
    from .sqlite import SQLiteEventStore

    # SQLite first: psycopg, which the PostgreSQL store needs, may not be installed.
    if isinstance(store, SQLiteEventStore):
        return IncidentHistory(store.path)
    from .postgres import PostgresEventStore

    if isinstance(store, PostgresEventStore):
        from .pg_history import PostgresIncidentHistory

        return PostgresIncidentHistory(store)
    raise TypeError(f"no incident history for {store!r}")
