"""The event store interface: an append-only log with gap-free `seq`.

The server keeps the dispatch picture in memory and the store keeps the truth on disk:
every accepted command appends exactly one event, together with the command's stored
result under its operator and idempotency key, in one durable transaction. At start the server loads
the newest snapshot and folds the events after it.

Errors::

    StoreError           the store cannot do what was asked
    ├── SequenceConflict an append's seq is not exactly head + 1
    └── StoreUnavailable the store cannot be reached now (retry later)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState

__all__ = [
    "Accepted",
    "Closeable",
    "EventStore",
    "SequenceConflict",
    "StoreError",
    "StoreUnavailable",
    "StoredCommand",
    "WriteTurn",
]


class StoreError(Exception):
    """The store cannot do what was asked."""


class SequenceConflict(StoreError):
    """An append's seq is not exactly one past the head: the log stays gap-free."""


class StoreUnavailable(StoreError):
    """The store cannot be reached just now (its database is down or not answering).

    The same request may succeed later. Usually nothing was written; but a connection
    lost while the database was committing leaves it unknown whether the commit landed,
    so a retry must use the same idempotency key (it then gets the first answer), and a
    writer must read the log again rather than assume its batch is absent.
    """


@dataclass(frozen=True)
class StoredCommand:
    """The remembered outcome of a command, found again by its operator and key."""

    idempotency_key: str
    operator: str
    fingerprint: str  # hash of the command body, to spot a key reused for another command
    status: int  # HTTP status of the first answer
    body: str  # JSON text of the first answer (a CommandResult or a Problem)
    seq: int | None  # seq of the event it caused, if it was accepted


@dataclass(frozen=True)
class Accepted:
    """An accepted command ready to be written: its event, that event's JSON, its answer.

    The event is serialised once, by whoever decided it; the store writes `body` as is
    and the server sends the same text to subscribers.
    """

    event: Event
    body: str  # the event's JSON, exactly as stored and sent
    command: StoredCommand  # its seq is the event's


class Closeable(Protocol):
    """Something running that stops when closed."""

    def close(self) -> None:
        """Stop it and release what it holds."""
        ...


class WriteTurn(Protocol):
    """The store's append lock, held by one writer: see `EventStore.write_turn`."""

    #: Seq of the newest event in the log when the turn began.
    head: int
    #: ``(seq, event JSON)`` of every event after the turn's `after`, in order: events
    #: another writer committed that the caller has not folded yet.
    missed: Sequence[tuple[int, str]]

    def find_commands(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredCommand]:
        """`EventStore.find_commands`, seeing every answer committed before the turn."""
        ...

    def commit(
        self, accepted: Sequence[Accepted], refused: Sequence[StoredCommand], at: float
    ) -> None:
        """`EventStore.commit` inside the turn: durable once the turn ends without error.

        Accepted events must follow `head`. Called at most once per turn.
        """
        ...


class EventStore(Protocol):
    """What the server needs from a store. Calls may block: run them off the event loop."""

    def head(self) -> int:
        """Seq of the newest event, 0 when the log is empty."""
        ...

    def first_retained(self) -> int:
        """Seq of the oldest event still kept (head + 1 when none are kept)."""
        ...

    def append(self, event: Event, command: StoredCommand) -> None:
        """Durably append `event` (seq must be head + 1) with its command's result.

        Returns only once both are on disk. Raises `SequenceConflict` on a bad seq and
        `StoreError` if the operator's idempotency key is already stored.
        """
        ...

    def commit(
        self, accepted: Sequence[Accepted], refused: Sequence[StoredCommand], at: float
    ) -> None:
        """Durably write a batch of commands in one transaction: one fsync for them all.

        `accepted` events must follow the head in order (head + 1, head + 2, ...);
        `refused` answers are stored first-answer-wins, as `remember_refusal` does. Every
        record is stamped `at` (seconds since the epoch) for `prune_commands`. Either the
        whole batch is on disk when this returns or none of it is.
        """
        ...

    def write_turn(self, after: int | None) -> AbstractContextManager[WriteTurn]:
        """Take the append lock, shared by every writer of this log, until the block ends.

        Inside it the writer learns what others committed after `after` (nothing is read
        with None), looks up keys and commits one batch; no other writer can append
        meanwhile, so a decision made on the caught-up picture is still right when it
        commits. With one writer per log (SQLite) `missed` is always empty.
        """
        ...

    def watch(self, wake: Callable[[int | None], None]) -> Closeable | None:
        """Call `wake` (from any thread) whenever another writer may have appended.

        `wake(head)` names the seq a commit reached when the store knows it, else None.
        None when nobody else can write this log. Close what it returns to stop.
        """
        ...

    def checkpoint(self) -> tuple[int, int]:
        """Move the write-ahead log into the main file if the store has one to move.

        Returns the log's frames and how many of them were copied ((0, 0) when the
        database does this by itself).
        """
        ...

    def prune_commands(self, before: float) -> int:
        """Forget stored answers recorded before `before` (epoch seconds); return how many."""
        ...

    def remember_refusal(self, command: StoredCommand) -> None:
        """Durably store the outcome of a refused command so a retry gets the same answer."""
        ...

    def find_command(self, operator: str, idempotency_key: str) -> StoredCommand | None:
        """The stored outcome of `operator`'s command with this key, if any.

        Keys are scoped to the operator: another operator's command with the same key
        is not found, so nobody can use up or detect someone else's keys.
        """
        ...

    def find_commands(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredCommand]:
        """`find_command` for many ``(operator, idempotency_key)`` pairs in one look-up.

        Only the pairs that are stored appear in the answer.
        """
        ...

    def read(self, after: int, limit: int) -> list[Event]:
        """Up to `limit` events with seq > `after`, in order."""
        ...

    def events_after(self, after: int, batch: int = 5000) -> Iterator[Event]:
        """Every event after `after`, in order; `StoreError` if some were pruned."""
        ...

    def save_snapshot(self, state: DispatchState) -> None:
        """Durably store the picture at `state.seq` and prune events past retention."""
        ...

    def save_snapshot_json(self, seq: int, body: str) -> None:
        """`save_snapshot` for a picture already serialised as JSON, at `seq`."""
        ...

    def read_raw(self, after: int, limit: int) -> list[tuple[int, str]]:
        """`read`, but each event's stored JSON text with its seq, not decoded."""
        ...

    def load_snapshot(self) -> DispatchState | None:
        """The newest stored snapshot, if any."""
        ...

    def close(self) -> None:
        """Release the store's files."""
        ...
