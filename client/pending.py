"""What a client has issued that its picture does not show yet: the one place it is kept.

While live, the console never edits its picture optimistically: a command is *pending*
until the event it caused arrives on the stream. Two kinds are pending:

- sent: a backend accepted the command and named its event's seq, which the stream has
  not applied yet;
- unsent: the command is in the offline journal and no backend has acknowledged it.

`Pending` counts both from memory (the journal keeps its own tally of waiting entries),
so a status line may read it on every frame; and it wakes whoever waits for a seq.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .journal import Journal, JournalEntry

__all__ = ["Pending"]


class Pending:
    """Commands issued through one client and not yet seen on its stream."""

    def __init__(self, applied_seq: Callable[[], int], journal: Journal | None) -> None:
        self._applied_seq = applied_seq
        self._journal = journal
        self._sent: set[int] = set()
        # Checked after each applied change rather than woken through a condition, which
        # would cost a task per event at high rates.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def sent(self) -> frozenset[int]:
        """Seqs of events that accepted commands caused, not yet applied from the stream."""
        return frozenset(self._sent)

    @property
    def unsent(self) -> int:
        """Journalled commands no backend has acknowledged yet."""
        return self._journal.pending_count if self._journal is not None else 0

    @property
    def count(self) -> int:
        """Everything pending: sent and not yet seen, plus journalled and unsent."""
        return len(self._sent) + self.unsent

    @property
    def rejected_keys(self) -> frozenset[str]:
        """Keys of journalled commands a backend refused, waiting for an operator."""
        return self._journal.rejected_keys if self._journal is not None else frozenset()

    @property
    def rejected(self) -> int:
        """How many journalled commands were refused and wait for an operator."""
        return self._journal.rejected_count if self._journal is not None else 0

    def entries(self) -> list[JournalEntry]:
        """The unsent journal entries, oldest first (read from the journal's file)."""
        return self._journal.pending() if self._journal is not None else []

    def accepted(self, seq: int) -> None:
        """A backend accepted a command whose event is `seq`: pending until applied."""
        if seq > self._applied_seq():
            self._sent.add(seq)

    def applied(self) -> None:
        """The picture moved on: settle every seq it now includes."""
        head = self._applied_seq()
        if self._sent:
            self._sent = {seq for seq in self._sent if seq > head}
        if self._waiters:
            waiting = []
            for seq, future in self._waiters:
                if future.done():
                    continue
                if seq <= head:
                    future.set_result(None)
                else:
                    waiting.append((seq, future))
            self._waiters = waiting

    async def seen(self, seq: int, timeout: float | None = None) -> None:
        """Wait until the event with `seq` has been applied (`TimeoutError` after `timeout`)."""
        if self._applied_seq() >= seq:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, future))
        await asyncio.wait_for(future, timeout)
