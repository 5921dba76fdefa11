"""The journal's sender outlives a journal that fails for a moment.

If reading the queued commands fails once (a full or locked disk), the sender must go
on: otherwise nothing queued afterwards would ever be sent until the console restarts.
"""

from __future__ import annotations

from pathlib import Path

from conftest import Backend
from test_journal import DISPATCHER, FAST, TIMEOUT, book_on
from waiting import until

from cadterm.client import DispatchClient, JournalStatus
from cadterm.client.errors import JournalError


async def test_a_failing_journal_read_does_not_stop_the_sender(
    backend: Backend, tmp_path: Path
) -> None:
    client = DispatchClient([backend.url], DISPATCHER, journal_path=tmp_path / "j.db", backoff=FAST)
    assert client.journal is not None
    real = client.journal.pending
    failures = []

    def pending_once_failing():
        if not failures:
            failures.append("disk full")
            raise JournalError("the journal cannot be read: database or disk is full")
        return real()

    client.journal.pending = pending_once_failing  # type: ignore[method-assign]
    async with client:
        await client.wait_live(TIMEOUT)
        entry = await client.submit(book_on("AB77"))
        await until(lambda: failures, timeout=TIMEOUT, what="the failing read")
        await until(
            lambda: client.journal_entry(entry.key).status == JournalStatus.SENT,
            timeout=TIMEOUT,
            what="the entry sent after the fault",
        )
        assert "AB77" in client.units
