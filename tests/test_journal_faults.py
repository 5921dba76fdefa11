"""Faults in the console's journal: a full disk, a read-only file, a locked database.

Each fault is a real SQLite error on the journal's real file in `tmp_path`: the disk
is filled up to a page limit (``PRAGMA max_page_count``), the file is reopened
read-only (the tests run as root, whom chmod does not stop), or another connection
holds it with ``BEGIN EXCLUSIVE``. The console must stay up, say in plain words what
happened and what the dispatcher can do, and log it; and it must never wait for the
journal on its UI loop.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from console_helpers import Keys, body_text, feedback, until
from textual.pilot import Pilot

from cadterm.cli.console import keep_a_log
from cadterm.client import DispatchClient
from cadterm.client.journal import Journal, JournalFault
from cadterm.protocol.commands import BookOn
from cadterm.protocol.problems import Problem, ProblemCode
from cadterm.tui.app import CadApp
from cadterm.tui.command_line import CommandInput
from cadterm.tui.settings import ConsoleSettings

URL = "http://127.0.0.1:9"  # never reached: these consoles do not connect
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@dataclass
class Console:
    app: CadApp
    pilot: Pilot
    client: DispatchClient
    keys: Keys
    log_path: Path

    @property
    def said(self) -> str:
        return body_text(feedback(self.app))

    async def says(self, *words: str) -> str:
        await until(self.pilot, lambda: all(w in self.said for w in words), what=f"{words} said")
        return self.said

    def log(self) -> str:
        for handler in logging.getLogger("cadterm").handlers:
            handler.flush()
        return self.log_path.read_text(encoding="utf-8")


def _rejected_entry(path: Path) -> None:
    """One command refused after it waited in the journal: `j dismiss 1` has work."""
    journal = Journal(path)
    try:
        command = BookOn(
            idempotency_key="k-refused-1", workstation="ws-1", callsign="AB1", unit_type="van"
        )
        journal.add(command, T0)
        journal.mark_rejected(command.idempotency_key, Problem.of(ProblemCode.UNIT_ON_DUTY, "on"))
    finally:
        journal.close()


@contextlib.asynccontextmanager
async def open_console(tmp_path: Path) -> AsyncIterator[Console]:
    journal_path = tmp_path / "journal.db"
    _rejected_entry(journal_path)
    log_path = tmp_path / "console.log"
    handler = keep_a_log(log_path)
    assert handler is not None
    client = DispatchClient([URL], "token", workstation="ws-1", journal_path=journal_path)
    settings = ConsoleSettings(url=[URL], token="token", workstation="ws-1")
    app = CadApp(client, settings, operator="disp1", connect=False)
    app.bell = lambda: None  # type: ignore[method-assign]
    try:
        async with app.run_test(size=(80, 24)) as pilot:
            yield Console(app, pilot, client, Keys(pilot), log_path)
            await pilot.pause()
    finally:
        await client.close()
        logging.getLogger("cadterm").removeHandler(handler)
        handler.close()


def _connection(client: DispatchClient) -> sqlite3.Connection:
    # The one way in for a fault that must come from SQLite itself, on the very
    # connection the console writes through.
    assert client.journal is not None
    return client.journal._conn


async def test_a_full_disk_says_so_and_what_to_do(tmp_path: Path) -> None:
    async with open_console(tmp_path) as console:
        journal = console.client.journal
        assert journal is not None
        connection = _connection(console.client)
        (pages,) = connection.execute("PRAGMA page_count").fetchone()
        connection.execute(f"PRAGMA max_page_count = {pages}")
        # Fill the pages there are: the disk is then as full as the limit allows.
        for n in range(5000):
            key, callsign = f"fill-key-{n}", f"F{n}"
            command = BookOn(
                idempotency_key=key, workstation="ws-1", callsign=callsign, unit_type="van"
            )
            try:
                journal.add(command, T0)
            except JournalFault as fault:
                assert fault.what == "the disk is full", fault
                break
            journal.mark_sent(command.idempotency_key, n + 1)
        else:
            raise AssertionError("the journal never filled up")

        await console.keys.line("on XY02 patrol_car")
        said = await console.says("NOT SENT", "the disk is full", "To do: free space")
        assert "paper" in said
        assert console.app.is_running and console.app.return_code is None
        assert "the disk is full" in console.log()
        assert "database or disk is full" in console.log()  # SQLite's words, for IT

        # Space freed: the next line is journalled again.
        connection.execute(f"PRAGMA max_page_count = {pages * 100}")
        await console.keys.line("on XY03 patrol_car")
        await console.says("journalled")
        assert journal.is_pending(journal.next_pending_key or "")


async def test_a_read_only_journal_says_so_and_what_to_do(tmp_path: Path) -> None:
    async with open_console(tmp_path) as console:
        journal = console.client.journal
        assert journal is not None
        writable = journal._conn
        journal._conn = sqlite3.connect(
            f"file:{journal.path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
        try:
            await console.keys.line("on XY02 patrol_car")
            await console.says("NOT SENT", "read-only", f"To do: make {journal.path}")

            # Setting a refused entry aside is a write too.
            await console.keys.line("j dismiss 1")
            await console.says("the journal cannot be written", "read-only")
            assert journal.rejected_count == 1  # still waiting: nothing was lost

            # Reading still works on a read-only file: F7 lists the entry.
            await console.pilot.press("f7")
            await until(console.pilot, lambda: console.app.showing("journal"), what="the list")
        finally:
            journal._conn.close()
            journal._conn = writable
        assert console.app.is_running and console.app.return_code is None
        assert console.log().count("the journal file is read-only") == 2


async def test_a_locked_journal_says_so_and_the_console_carries_on(tmp_path: Path) -> None:
    async with open_console(tmp_path) as console:
        journal = console.client.journal
        assert journal is not None
        # Waiting 5 s (sqlite3's default) for the lock is right for a real console;
        # a test need not wait that long to see the same error.
        _connection(console.client).execute("PRAGMA busy_timeout = 100")
        holder = sqlite3.connect(journal.path, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            await console.keys.line("on XY02 patrol_car")
            said = await console.says("NOT SENT", "another program holds the journal locked")
            assert "own --journal" in said
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        await console.keys.line("on XY03 patrol_car")
        await console.says("journalled")
        assert console.app.is_running and console.app.return_code is None
        assert "database is locked" in console.log()


async def test_the_journal_never_holds_up_the_screen(tmp_path: Path) -> None:
    """A journal write that takes as long as a slow disk likes: meanwhile the console
    still ticks and takes keys, and the outcome arrives when the write does."""
    async with open_console(tmp_path) as console:
        journal = console.client.journal
        assert journal is not None
        disk = threading.Event()
        waited: list[bool] = []
        dismiss = journal.dismiss

        def slow_dismiss(key: str, *how: object) -> None:
            # Bounded: a console that waited for this on its loop would never let the
            # test set the event, and the wait would end in a failure, not a hang.
            waited.append(disk.wait(10))
            dismiss(key, *how)

        journal.dismiss = slow_dismiss  # type: ignore[method-assign]
        await console.keys.line("j dismiss 1")
        ticks = console.app.ticks
        await until(console.pilot, lambda: console.app.ticks >= ticks + 1, what="a tick")
        await console.keys.type("xy")
        command_input = console.app.query_one(CommandInput)
        assert command_input.value == "xy"
        assert not waited  # the write is still on its way
        disk.set()
        await console.says("set aside")
        assert waited == [True]
        assert journal.rejected_count == 0
