"""`DispatchClient`: the live picture, commands and the offline journal in one object.

::

    async with DispatchClient(["http://127.0.0.1:8740"], token) as client:
        await client.wait_live()
        result = await client.execute(client.command("create_incident", ...))  # waits
        incident = client.incidents[result.event.reference]

Commands come in whole, or as drafts (`cadterm.protocol.drafts`) that the client keys:
it adds a fresh idempotency key and its workstation, and that is the only check they
get here; the server validates every command again, strictly, at its door.

Used by the console and by anyone scripting a dispatch flow; it never imports a UI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from cadterm.protocol.commands import COMMAND_TYPES, Command, CommandResult
from cadterm.protocol.domain import Incident, Unit
from cadterm.protocol.drafts import CommandDraft, draft
from cadterm.protocol.fold import Changes, DispatchState

from .commands import CommandSender, new_key
from .errors import BackendUnavailable, CommandError, JournalError, RateLimited, StreamStopped
from .journal import Journal, JournalEntry, JournalStatus
from .pending import Pending
from .picture_file import PictureFile, SavedPicture
from .store import LocalStore
from .stream import Backoff, LinkState, LinkStatus, Subscription

__all__ = ["DispatchClient", "Issued"]

log = logging.getLogger("cadterm.client")

#: Seconds after a refused reservation before the next is asked for (a new live link
#: asks at once). Without it every event folded would ask again: a workstation the
#: server does not know is refused each time, hundreds of requests a second.
RESERVE_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class Issued:
    """What became of a command issued through the journal, as far as known now."""

    entry: JournalEntry
    result: CommandResult | None = None
    error: CommandError | None = None
    queued: bool = False


class DispatchClient:
    """A connection to one or more dispatch backends, as a consumer sees it.

    - `state`, `incidents`, `units`: the live picture, folded from the stream;
    - `status`: the link's state, since when and why (`LinkStatus`);
    - `take_changes()` / `watch()`: which incidents and units changed since last look;
    - `execute()`: send a command now and wait until its event is applied locally;
    - `submit()`: journal a command durably and send it in order when a backend is up;
    - `issue()`: the console's way: journal it, and send it now if that keeps the order;
    - `pending`: what was issued and is not in the picture yet (`Pending`).
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        token: str,
        *,
        workstation: str = "cadterm",
        journal_path: str | os.PathLike[str] | None = None,
        picture_path: str | os.PathLike[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        backoff: Backoff | None = None,
        silence_after: float | None = None,
        command_timeout: float = 5.0,
        command_attempts: int = 4,
        on_status: Callable[[LinkStatus], None] | None = None,
        reserve: int = 0,
    ) -> None:
        urls = [urls] if isinstance(urls, str) else list(urls)
        self.workstation = workstation
        self.store = LocalStore()
        self._changed = asyncio.Event()
        self._status_listeners: list[Callable[[LinkStatus], None]] = (
            [on_status] if on_status is not None else []
        )
        self.subscription = Subscription(
            urls,
            token,
            self.store,
            on_status=self._status_changed,
            on_change=self._applied,
            backoff=backoff,
            silence_after=silence_after,
        )
        self.sender = CommandSender(
            urls,
            token,
            transport=transport,
            timeout=command_timeout,
            attempts=command_attempts,
            backoff=backoff,
        )
        self.journal = Journal(journal_path) if journal_path is not None else None
        # The last known picture: shown at start until a backend sends a real one, and
        # kept up to date on disk for the next start (see picture_file.py).
        self.picture_file = PictureFile(picture_path) if picture_path is not None else None
        self._saved: SavedPicture | None = None
        if self.picture_file is not None:
            self._saved = self.picture_file.load()
            if self._saved is not None:
                self.store.show_saved(self._saved.state)
            self.store.observers.append(self.picture_file)
        self.pending = Pending(lambda: self.store.seq, self.journal)
        self._flush_wakeup = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        #: How many incident references to hold for incidents opened while offline.
        self.reserve = reserve
        self._topping_up: asyncio.Task[None] | None = None
        self._reserve_refused_at: float | None = None  # loop time of the last refusal
        # Reserved references given to commands not yet accepted (journalled ones too).
        self._claimed: set[str] = set()
        if self.journal is not None:
            for entry in self.journal.entries(JournalStatus.PENDING):
                reference = getattr(entry.command, "reference", None)
                if entry.command.type == "create_incident" and reference:
                    self._claimed.add(reference)
        self._journal_lock = asyncio.Lock()

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> DispatchClient:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the live subscription (and the journal's sender) in the background."""
        self.subscription.start()
        if self.picture_file is not None:
            self.picture_file.start()
        if self.journal is not None and self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_journal(), name="cadterm-journal")

    async def close(self) -> None:
        """Stop everything and release the network and the journal file."""
        if self._topping_up is not None:
            self._topping_up.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._topping_up
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.subscription.stop()
        if self.picture_file is not None:
            await self.picture_file.close()
        await self.sender.aclose()
        if self.journal is not None:
            self.journal.close()

    def reconnect(self) -> bool:
        """Start the link again after it stopped; False when it is not stopped."""
        return self.subscription.reconnect()

    async def wait_live(self, timeout: float | None = 10.0) -> None:
        """Wait until the picture is live. Raises `StreamStopped` if it never can be."""
        await self.subscription.wait_live(timeout)
        if self.status.state == LinkState.STOPPED:
            raise StreamStopped(self.status.reason or "stopped")

    # --- the picture ---------------------------------------------------------------------

    @property
    def status(self) -> LinkStatus:
        """The link's state, since when, why, and when the last frame arrived."""
        return self.subscription.status

    @property
    def state(self) -> DispatchState:
        """The whole picture as last seen."""
        return self.store.state

    @property
    def seq(self) -> int:
        """Seq of the last event applied."""
        return self.store.seq

    @property
    def incidents(self) -> dict[str, Incident]:
        """Incidents by reference."""
        return self.store.incidents

    @property
    def units(self) -> dict[str, Unit]:
        """Units by callsign."""
        return self.store.units

    def take_changes(self) -> Changes:
        """Incidents and units changed since the last call."""
        self._changed.clear()
        return self.store.take_changes()

    async def watch(self) -> AsyncIterator[Changes]:
        """Yield batches of changes as they happen (a batch may hold many events).

        A batch with `replaced` set follows a snapshot that replaced the whole
        picture: re-read `state` then.
        """
        while True:
            await self._changed.wait()
            # A snapshot replaces the picture even when it holds nothing: `replaced`
            # makes that batch count, so a consumer hears of it and re-points its views.
            changes = self.take_changes()
            if changes:
                yield changes

    def _applied(self) -> None:
        self.pending.applied()
        self._changed.set()
        if self.reserve and self.status.state == LinkState.LIVE:
            held = len(self.store.state.reserved.get(self.workstation, ()))
            if held * 2 <= self.reserve:
                self._top_up_soon()

    def add_status_listener(self, listener: Callable[[LinkStatus], None]) -> None:
        """Call `listener` with the new `LinkStatus` whenever the link changes state."""
        self._status_listeners.append(listener)

    @property
    def saved_picture(self) -> SavedPicture | None:
        """The picture read from disk at start, while it is what is shown; else None.

        Its `heard_at` says how old it is: show it as the last known picture of then.
        """
        return None if self.store.synced else self._saved

    def _status_changed(self, status: LinkStatus) -> None:
        if self.picture_file is not None:
            self.picture_file.set_live(status.state == LinkState.LIVE, status.url or "")
        if status.state == LinkState.LIVE:
            self.sender.prefer(self.subscription.urls.index(self.subscription.url))
            self._flush_wakeup.set()
            self._reserve_refused_at = None  # a new link: a new server may know this desk
            self._top_up_soon()
        for listener in self._status_listeners:
            listener(status)

    # --- references for incidents opened offline ----------------------------------------

    @property
    def reserved_references(self) -> list[str]:
        """This workstation's reserved references not yet given to a command."""
        held = self.store.state.reserved.get(self.workstation, [])
        return [reference for reference in held if reference not in self._claimed]

    def claim_reserved_reference(self) -> str | None:
        """The next reserved reference, for an incident opened now; None if none is left.

        Once claimed it is given to no other command, across restarts (the journal keeps
        the command that holds it).
        """
        for reference in self.reserved_references:
            self._claimed.add(reference)
            return reference
        return None

    def _top_up_soon(self) -> None:
        if self.reserve <= 0 or (self._topping_up is not None and not self._topping_up.done()):
            return
        refused = self._reserve_refused_at
        if (
            refused is not None
            and asyncio.get_running_loop().time() - refused < RESERVE_RETRY_SECONDS
        ):
            return
        self._topping_up = asyncio.create_task(self._top_up(), name="cadterm-reserve")

    async def _top_up(self) -> None:
        """While live, keep `reserve` references in hand (asked for when half are gone)."""
        held = len(self.store.state.reserved.get(self.workstation, []))
        if held * 2 > self.reserve:
            return
        try:
            await self.execute(draft("reserve_references", count=self.reserve - held))
        except (CommandError, BackendUnavailable, TimeoutError) as exc:
            self._reserve_refused_at = asyncio.get_running_loop().time()
            log.warning(
                "could not reserve incident references (asking again in %g s): %s",
                RESERVE_RETRY_SECONDS,
                exc,
            )
        else:
            self._reserve_refused_at = None

    # --- commands ------------------------------------------------------------------------

    def command(self, type: str, **fields: Any) -> Command:
        """Build a command of `type` with a fresh idempotency key and this workstation."""
        cls = COMMAND_TYPES[type]
        fields.setdefault("idempotency_key", new_key())
        fields.setdefault("workstation", self.workstation)
        return cls(**fields)  # type: ignore[return-value]

    def keyed(self, command: Command | CommandDraft) -> Command:
        """`command` as sent: a draft gets a fresh idempotency key and this workstation."""
        if isinstance(command, CommandDraft):
            return command.keyed(new_key(), self.workstation)
        return command

    async def execute(
        self, command: Command | CommandDraft, *, wait: bool = True, timeout: float = 10.0
    ) -> CommandResult:
        """Send `command` now; by default wait until its event is applied locally.

        Raises a `CommandError` subclass if refused and `BackendUnavailable` if no
        backend answered. Waiting gives read-your-writes: when this returns, `incidents`
        and `units` already show the command's effect.
        """
        result = await self.sender.send(self.keyed(command))
        self.pending.accepted(result.seq)
        if wait:
            await self.pending.seen(result.seq, timeout)
        return result

    async def submit(
        self, command: Command | CommandDraft, issued_at: datetime | None = None
    ) -> JournalEntry:
        """Journal `command` durably, then send it in order as soon as a backend is up.

        Returns the pending entry at once; `journal_entry(key)` later says what became
        of it. Requires the client to have been given a `journal_path`.
        """
        if self.journal is None:
            raise RuntimeError("this client has no journal: pass journal_path")
        keyed, at = self.keyed(command), issued_at or datetime.now(UTC)
        if keyed.taken_at is None:
            # Stamped once, before it is journalled: every retry sends the same command,
            # and one that waited offline is recorded with the time it was typed.
            keyed = keyed.model_copy(update={"taken_at": at.astimezone(UTC)})
        entry = await asyncio.to_thread(self.journal.add, keyed, at)
        self._flush_wakeup.set()
        return entry

    def rejected(self) -> list[JournalEntry]:
        """Journalled commands the backend refused, waiting for an operator."""
        return self.journal.rejected() if self.journal is not None else []

    def dismiss(self, key: str) -> None:
        """Set the rejected entry `key` aside once an operator has dealt with it."""
        if self.journal is None:
            raise RuntimeError("this client has no journal: pass journal_path")
        self.journal.dismiss(key)

    def journal_entry(self, key: str) -> JournalEntry | None:
        """The journal entry for idempotency key `key`."""
        if self.journal is None:
            return None
        for entry in self.journal.entries():
            if entry.key == key:
                return entry
        return None

    async def issue(self, command: Command | CommandDraft) -> Issued:
        """Journal `command`, then send it now if that keeps the journal's order.

        The console's way to act: the command is on disk before anything is sent, so a
        crash mid-send loses nothing. When the link is live and nothing older is
        waiting, it is sent at once and the outcome returned (`result` or `error`);
        otherwise it waits in the journal (`queued` is true) and goes in order when a
        backend is reachable.
        """
        entry = await self.submit(command)
        async with self._journal_lock:
            assert self.journal is not None
            if self.journal.next_pending_key != entry.key:
                # Either older entries go first, or the journal's sender took this one
                # while we waited for the lock: report the entry as it stands.
                if self.journal.is_pending(entry.key):
                    return Issued(entry, queued=True)
                # Read off the loop: the journal may be long, and the UI waits on this.
                found = await asyncio.to_thread(self.journal_entry, entry.key)
                return Issued(found or entry)
            if self.status.state != LinkState.LIVE:
                return Issued(entry, queued=True)
            outcome = await self._send_entry(entry, answered_at_once=True)
        if isinstance(outcome, CommandResult):
            return Issued(entry, result=outcome)
        if isinstance(outcome, CommandError):
            return Issued(entry, error=outcome)
        return Issued(entry, queued=True)

    async def _send_entry(
        self, entry: JournalEntry, *, answered_at_once: bool = False
    ) -> CommandResult | CommandError | None:
        """Send one journal entry and record its outcome; None if it must wait and retry.

        `answered_at_once`: the sender is waiting for the answer (a live console line).
        Its refusal is then told there and then, so it is recorded as dealt with
        (dismissed, with the problem kept) rather than left for an operator to find: the
        rejected list is for commands refused later, after waiting in the journal.
        """
        assert self.journal is not None
        # Pending entries always hold a command: unreadable ones are set aside on opening.
        assert entry.command is not None
        try:
            result = await self.sender.send(entry.command)
        except RateLimited as limited:
            # "Not now", not "no": the entry stays pending, in order, and goes later.
            log.info("journal entry %s rate limited: %s", entry.key, limited)
            await asyncio.to_thread(self.journal.mark_attempt, entry.key)
            return None
        except CommandError as refused:
            await asyncio.to_thread(
                self.journal.mark_rejected, entry.key, refused.problem, seen=answered_at_once
            )
            self._changed.set()
            return refused
        except BackendUnavailable as exc:
            log.info("journal entry %s not delivered: %s", entry.key, exc)
            await asyncio.to_thread(self.journal.mark_attempt, entry.key)
            return None
        # Pending from here until the stream shows it: counted as sent before the journal
        # stops counting it as unsent, so the count never dips below the truth.
        self.pending.accepted(result.seq)
        await asyncio.to_thread(self.journal.mark_sent, entry.key, result.seq)
        self._changed.set()
        return result

    async def _flush_journal(self) -> None:
        """Send pending journal entries in order whenever the link is live."""
        assert self.journal is not None
        while True:
            await self._flush_wakeup.wait()
            self._flush_wakeup.clear()
            if self.status.state != LinkState.LIVE:
                continue
            try:
                async with self._journal_lock:
                    delivered = True
                    for entry in await asyncio.to_thread(self.journal.pending):
                        if await self._send_entry(entry) is None:
                            # Keep the order: stop at the first entry no backend took.
                            delivered = False
                            break
            except JournalError as exc:
                # A disk that is full or locked now may not be in a moment: the sender
                # must outlive it, or nothing queued later would ever be sent.
                log.error("journal unusable while sending queued commands: %s", exc)
                delivered = False
            if delivered:
                continue
            # Paused by an unreachable backend while the link still looks live: retry
            # after a short pause rather than waiting for the next status change.
            await asyncio.sleep(1.0)
            self._flush_wakeup.set()
