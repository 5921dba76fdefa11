"""The event store interface: an append-only log with gap-free `seq`.

The server keeps the dispatch picture in memory and the store keeps the truth on disk:
every accepted command appends exactly one event, together with the command's stored
result under its operator and idempotency key, in one durable transaction. At start the server loads
the newest snapshot and folds the events after it.

Errors::

    StoreError           the store cannot do what was asked
    └── SequenceConflict an append's seq is not exactly head + 1
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState

__all__ = ["Accepted", "EventStore", "SequenceConflict", "StoreError", "StoredCommand"]


class StoreError(Exception):
    """The store cannot do what was asked."""


class SequenceConflict(StoreError):
    """An append's seq is not exactly one past the head: the log stays gap-free."""


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
