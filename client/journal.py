"""The offline journal: commands written to disk before they are sent.

Every command the console issues through `DispatchClient.submit` is first appended
here (SQLite, WAL, synchronous=FULL) with the operator's time, then sent in order
whenever a backend is reachable. An entry ends as `sent` (with the seq of its event),
or as `rejected` with the server's problem document, where it stays until an operator
deals with it (`dismiss` keeps it, marked dismissed; a corrected command is a new entry).
Nothing is ever deleted, so the journal is also the record of what was done while the
backend was away.

The file is the truth; the keys of the entries still waiting (pending, or rejected and
not yet dealt with) are also kept in memory, updated with every write, so that a console
can show how many there are as often as it likes without reading the file.

Every method does file I/O (a write waits for the disk: synchronous=FULL), so a console
calls them from a thread, never on its UI loop; the counts and keys read from memory
are the exception, and are safe to read anywhere.

When the file cannot be written the error is a `JournalFault` (a `JournalError`) that
says in plain words what happened (`what`) and what an operator can do about it
(`remedy`): the disk is full, the file is read-only, or another program holds it locked.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from pydantic import ValidationError

from cadterm.protocol.commands import COMMAND_ADAPTER, Command
from cadterm.protocol.problems import Problem, ProblemCode

from .errors import JournalError

__all__ = ["Journal", "JournalEntry", "JournalFault", "JournalStatus", "Resolution"]


class JournalStatus(StrEnum):
    """Where a journalled command is."""

    PENDING = "pending"  # not yet acknowledged by a backend
    SENT = "sent"  # acknowledged; `seq` names its event
    REJECTED = "rejected"  # refused by the backend; needs an operator
    DISMISSED = "dismissed"  # a rejected entry an operator has seen and set aside


class Resolution(StrEnum):
    """What an operator did about an entry a backend refused after it waited."""

    APPLIED_ANYWAY = "applied anyway"  # sent again as a fresh command, as it stood
    ADAPTED = "adapted"  # replaced by a corrected command the operator typed
    WITHDRAWN = "withdrawn"  # not done after all, for the reason recorded
    SET_ASIDE = "set aside"  # dismissed without a decision recorded


class JournalFault(JournalError):
    """The journal file could not be written or read: what happened, and what to do.

    `what` and `remedy` are plain words for the person at the console; the message
    also carries SQLite's own error, for whoever reads the log afterwards.
    """

    def __init__(self, doing: str, path: Path, error: sqlite3.Error) -> None:
        #: "add to" (a new command was not recorded, so it was not sent), "update" (what
        #: became of a command was not recorded) or "read".
        self.doing = doing
        self.what, self.remedy = _plain_words(error, path)
        self.error = error
        super().__init__(f"cannot {doing} journal {path}: {self.what} [{error}]")


def _plain_words(error: sqlite3.Error, path: Path) -> tuple[str, str]:
    """What an SQLite error means for the person at the console, and what they can do."""
    # SQLite's messages are stable and are all Python exposes portably before 3.11's
    # sqlite_errorname; the names are checked first where present.
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error).lower()
    if name == "SQLITE_FULL" or "disk is full" in text:
        return (
            "the disk is full",
            f"free space on the disk that holds {path.parent}",
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in text or "read-only" in text:
        return (
            "the journal file is read-only",
            f"make {path} and its folder writable for this user",
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text:
        return (
            "another program holds the journal locked",
            "close the other cadterm using this journal, or start this console with its "
            "own --journal",
        )
    return (f"the journal file failed ({error})", f"check the disk that holds {path}")


@dataclass(frozen=True)
class JournalEntry:
    """One command in the journal."""

    position: int
    #: None when the stored command no longer passes the protocol's rules (it was
    #: journalled by an older cadterm): the entry is then rejected and never sent.
    command: Command | None
    issued_at: datetime
    status: JournalStatus
    problem: Problem | None = None
    seq: int | None = None
    attempts: int = 0
    #: The command's idempotency key and type, also known for an unreadable command.
    key: str = ""
    kind: str = ""
    #: It waited in the journal because no backend answered when it was typed.
    waited: bool = False
    resolution: Resolution | None = None
    resolution_note: str | None = None

    def __post_init__(self) -> None:
        if self.command is not None:
            object.__setattr__(self, "key", self.command.idempotency_key)
            object.__setattr__(self, "kind", self.command.type)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    command TEXT NOT NULL,
    issued_at TEXT NOT NULL,
    status TEXT NOT NULL,
    problem TEXT,
    seq INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_status ON entries(status, position);
CREATE TABLE IF NOT EXISTS provisional_references (
    idempotency_key TEXT PRIMARY KEY,
    provisional TEXT NOT NULL UNIQUE,
    reference TEXT
);
"""

#: Columns added to `entries` since the first journals: (name, declaration). A journal
#: written by an older cadterm gains them on opening, its entries untouched.
_ADDED_COLUMNS = (
    # The entry waited in the journal (no backend answered when it was typed): on the
    # console's picture it was provisional, and on recovery it counts in the summary.
    ("waited", "INTEGER NOT NULL DEFAULT 0"),
    # What an operator did about a refused entry: see `Resolution`.
    ("resolution", "TEXT"),
    ("resolution_note", "TEXT"),
)


class Journal:
    """A durable, ordered list of commands and what became of them."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            # The journal holds what callers said (notes, names, phone numbers): a folder
            # made here is 0700, and the file is made 0600 before SQLite opens it (its
            # -wal and -shm files take the same mode).
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
            have = {row[1] for row in self._conn.execute("PRAGMA table_info(entries)")}
            for name, declaration in _ADDED_COLUMNS:
                if name not in have:
                    self._conn.execute(f"ALTER TABLE entries ADD COLUMN {name} {declaration}")
        except (OSError, sqlite3.Error) as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc}") from None
        self._lock = threading.Lock()
        # Keys of the entries still waiting, by status, in journal order (a dict keeps
        # the order keys were added in, and entries are added in order); changed only
        # under `_lock`.
        self._waiting: dict[JournalStatus, dict[str, None]] = {
            JournalStatus.PENDING: {},
            JournalStatus.REJECTED: {},
        }
        self._set_aside_unreadable()
        for entry in self.entries(JournalStatus.PENDING, JournalStatus.REJECTED):
            self._waiting[entry.status][entry.key] = None

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()

    def _write(
        self,
        sql: str,
        args: tuple,
        key: str | None = None,
        now: JournalStatus | None = None,
        doing: str = "update",
    ) -> sqlite3.Cursor:
        """Run one write; if it changed entry `key`, record that the entry is `now` in
        the in-memory tally (None: no longer waiting)."""
        try:
            with self._lock:
                cursor = self._conn.execute(sql, args)
                if key is not None and cursor.rowcount:
                    for keys in self._waiting.values():
                        keys.pop(key, None)
                    if now in self._waiting:
                        self._waiting[now][key] = None
                return cursor
        except sqlite3.Error as exc:
            raise JournalFault(doing, self.path, exc) from None

    @property
    def pending_count(self) -> int:
        """How many commands are not yet acknowledged (from memory, not the file)."""
        return len(self._waiting[JournalStatus.PENDING])

    def is_pending(self, key: str) -> bool:
        """Whether the command with idempotency key `key` is still to be sent (from memory)."""
        return key in self._waiting[JournalStatus.PENDING]

    @property
    def next_pending_key(self) -> str | None:
        """The key of the oldest command not yet acknowledged: the next to send."""
        with self._lock:
            return next(iter(self._waiting[JournalStatus.PENDING]), None)

    @property
    def rejected_count(self) -> int:
        """How many refused commands wait for an operator (from memory, not the file)."""
        return len(self._waiting[JournalStatus.REJECTED])

    @property
    def rejected_keys(self) -> frozenset[str]:
        """Idempotency keys of the rejected entries waiting for an operator (from memory)."""
        with self._lock:
            return frozenset(self._waiting[JournalStatus.REJECTED])

    def add(self, command: Command, issued_at: datetime) -> JournalEntry:
        """Durably append `command` as pending; returns once it is on disk."""
        cursor = self._write(
            "INSERT INTO entries (idempotency_key, command, issued_at, status) VALUES (?, ?, ?, ?)",
            (
                command.idempotency_key,
                command.model_dump_json(exclude_none=True),
                issued_at.isoformat(),
                JournalStatus.PENDING.value,
            ),
            command.idempotency_key,
            JournalStatus.PENDING,
            doing="add to",
        )
        position = cursor.lastrowid or 0  # always set after an INSERT
        return JournalEntry(position, command, issued_at, JournalStatus.PENDING)

    def mark_waiting(self, key: str) -> None:
        """Record that the entry waits: no backend answered when it was typed."""
        self._write("UPDATE entries SET waited = 1 WHERE idempotency_key = ?", (key,))

    def mark_sent(self, key: str, seq: int, *, waited: bool = False) -> None:
        """Record that the backend acknowledged the command with event `seq`.

        `waited`: it was sent from the journal, after waiting, not as it was typed.
        """
        self._write(
            "UPDATE entries SET status = ?, seq = ?, attempts = attempts + 1,"
            " waited = MAX(waited, ?) WHERE idempotency_key = ?",
            (JournalStatus.SENT.value, seq, int(waited), key),
            key,
            JournalStatus.SENT,
        )

    def mark_rejected(
        self, key: str, problem: Problem, *, seen: bool = False, waited: bool = False
    ) -> None:
        """Record the backend's refusal; the entry waits for an operator.

        `seen`: the operator was told of the refusal as it happened, so the entry is
        recorded as dismissed (the problem kept with it), not left waiting.
        """
        status = JournalStatus.DISMISSED if seen else JournalStatus.REJECTED
        self._write(
            "UPDATE entries SET status = ?, problem = ?, attempts = attempts + 1,"
            " waited = MAX(waited, ?) WHERE idempotency_key = ?",
            (status.value, problem.model_dump_json(exclude_none=True), int(waited), key),
            key,
            status,
        )

    def mark_attempt(self, key: str) -> None:
        """Count a try that got no definite answer; the entry stays pending."""
        self._write("UPDATE entries SET attempts = attempts + 1 WHERE idempotency_key = ?", (key,))

    def dismiss(
        self,
        key: str,
        resolution: Resolution = Resolution.SET_ASIDE,
        note: str | None = None,
    ) -> None:
        """Set a rejected entry aside after an operator has dealt with it (kept on file).

        `resolution` and `note` record what they did about it and why.
        """
        # rowcount, not lastrowid: the latter keeps the id of this connection's last
        # INSERT, so it would make every dismiss look successful.
        changed = self._write(
            "UPDATE entries SET status = ?, resolution = ?, resolution_note = ?"
            " WHERE idempotency_key = ? AND status = ?",
            (
                JournalStatus.DISMISSED.value,
                resolution.value,
                note,
                key,
                JournalStatus.REJECTED.value,
            ),
            key,
            JournalStatus.DISMISSED,
        ).rowcount
        if not changed:
            raise JournalError(f"no rejected journal entry with key {key!r}")

    def entries(self, *statuses: JournalStatus) -> list[JournalEntry]:
        """Entries in the order they were issued, optionally only those with `statuses`."""
        sql = (
            "SELECT position, command, issued_at, status, problem, seq, attempts,"
            " idempotency_key, waited, resolution, resolution_note FROM entries"
        )
        args: tuple = ()
        if statuses:
            sql += f" WHERE status IN ({','.join('?' * len(statuses))})"
            args = tuple(s.value for s in statuses)
        sql += " ORDER BY position"
        try:
            with self._lock:
                rows = self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise JournalFault("read", self.path, exc) from None
        return [_entry(row) for row in rows]

    def _set_aside_unreadable(self) -> None:
        """Reject pending commands an older cadterm journalled that today's rules refuse.

        They are never sent as they stand and never dropped: an operator sees each among
        the rejected entries, with the reason, and types it again or dismisses it.
        """
        for entry in self.pending():
            if entry.command is None and entry.problem is not None:
                self._write(
                    "UPDATE entries SET status = ?, problem = ? WHERE idempotency_key = ?",
                    (
                        JournalStatus.REJECTED.value,
                        entry.problem.model_dump_json(exclude_none=True),
                        entry.key,
                    ),
                )

    # --- provisional references --------------------------------------------------------

    def hold_provisional(self, key: str, provisional: str) -> None:
        """Record that entry `key` opens the incident shown as `provisional` until sent.

        Written before the entry itself, so a console that stops in between never
        journals a command whose provisional reference it has forgotten.
        """
        self._write(
            "INSERT INTO provisional_references (idempotency_key, provisional) VALUES (?, ?)",
            (key, provisional),
            doing="add to",
        )

    def map_reference(self, key: str, reference: str) -> None:
        """The incident entry `key` opened got the log reference `reference`."""
        self._write(
            "UPDATE provisional_references SET reference = ? WHERE idempotency_key = ?",
            (reference, key),
        )

    def provisional_references(self) -> list[tuple[str, str, str | None]]:
        """Every provisional reference: (entry key, provisional, log reference or None)."""
        try:
            with self._lock:
                return self._conn.execute(
                    "SELECT idempotency_key, provisional, reference FROM provisional_references"
                    " ORDER BY rowid"
                ).fetchall()
        except sqlite3.Error as exc:
            raise JournalFault("read", self.path, exc) from None

    def pending(self) -> list[JournalEntry]:
        """Commands not yet acknowledged, oldest first: the order they must be sent in."""
        return self.entries(JournalStatus.PENDING)

    def rejected(self) -> list[JournalEntry]:
        """Commands the backend refused, waiting for an operator."""
        return self.entries(JournalStatus.REJECTED)


def _entry(row: tuple) -> JournalEntry:
    position, command, issued_at, status, problem, seq, attempts, key, waited = row[:9]
    resolution, note = row[9:]
    stored_problem = Problem.model_validate_json(problem) if problem else None
    try:
        parsed: Command | None = COMMAND_ADAPTER.validate_json(command)
        kind = parsed.type
    except ValidationError as exc:
        parsed, kind = None, _stored_type(command)
        if stored_problem is None:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"][1:]) or "command"
            stored_problem = Problem.of(
                ProblemCode.INVALID_COMMAND,
                f"journalled by an older cadterm and refused by today's rules "
                f"({where}: {first['msg']}); it was not sent: type it again or dismiss it",
            )
    return JournalEntry(
        position=position,
        command=parsed,
        issued_at=datetime.fromisoformat(issued_at),
        status=JournalStatus(status),
        problem=stored_problem,
        seq=seq,
        attempts=attempts,
        key=key,
        kind=kind,
        waited=bool(waited),
        resolution=Resolution(resolution) if resolution else None,
        resolution_note=note,
    )


def _stored_type(command: str) -> str:
    """The `type` of a stored command that no longer validates, or "command"."""
    try:
        data = json.loads(command)
    except ValueError:
        return "command"
    kind = data.get("type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) and kind.isidentifier() else "command"
