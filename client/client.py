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
from cadterm.protocol.domain import Incident, Operator, Role, Unit
from cadterm.protocol.drafts import CommandDraft, draft, draft_of
from cadterm.protocol.fold import Changes, DispatchState
from cadterm.protocol.problems import Problem, ProblemCode

from .backend_url import check_backend_url, check_token
from .commands import Answer, CommandSender, new_key
from .errors import BackendUnavailable, CommandError, JournalError, RateLimited, StreamStopped
from .journal import Journal, JournalEntry, JournalStatus, Resolution
from .outage import OutageSummary, write_summary
from .pending import Pending
from .picture_file import PictureFile, SavedPicture
from .provisional import ProvisionalPicture, provisional_picture
from .store import LocalStore
from .stream import Backoff, LinkState, LinkStatus, Subscription

__all__ = ["UNKNOWN_OPERATOR", "DispatchClient", "Issued"]

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
    #: For an incident opened while no backend answered: the reference it is shown
    #: under now (reserved, so final; or provisional, mapped to a log reference later).
    reference: str | None = None
    provisional_reference: bool = False


#: Who the provisional actions of a console that has never reached a backend are
#: recorded as, on its own picture only (the server records the token's operator).
UNKNOWN_OPERATOR = Operator(id="not-known-offline", name="not known offline", role=Role.DISPATCHER)


class DispatchClient:
    """A connection to one or more dispatch backends, as a consumer sees it.

    - `state`, `incidents`, `units`: the live picture, folded from the stream;
    - `status`: the link's state, since when and why (`LinkStatus`);
    - `take_changes()` / `watch()`: which incidents and units changed since last look;
    - `execute()`: send a command now and wait until its event is applied locally;
    - `submit()`: journal a command durably and send it in order when a backend is up;
    - `issue()`: the console's way: journal it, and send it now if that keeps the order;
    - `pending`: what was issued and is not in the picture yet (`Pending`);
    - `provisional`: in CAD-down mode, what the waiting commands did to the picture.

    While commands wait in the journal because no backend answered (CAD down),
    `state`, `incidents` and `units` show the picture with them applied by the
    server's own rules, and `provisional` says which incidents and units that changed;
    `confirmed` is always the picture as the backend last said it.
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
        # A URL or token no request could use is refused now, saying which and why.
        urls = [check_backend_url(url) for url in urls]
        token = check_token(token)
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
        #: The operator the token belongs to, once a backend has said (`whoami`): the
        #: name CAD-down actions are shown under on this console's picture.
        self.operator: Operator | None = None
        self._learning: asyncio.Task[None] | None = None
        # CAD-down mode: commands that waited in the journal, by key, in journal order,
        # until the picture shows their events; and the seq each was given once sent.
        self._waiting: dict[str, Command] = {}
        self._waiting_sent: dict[str, int] = {}
        # Provisional references: entry key -> (provisional, log reference once known).
        self._provisional_refs: dict[str, tuple[str, str | None]] = {}
        if self.journal is not None:
            for key, shown_as, reference in self.journal.provisional_references():
                self._provisional_refs[key] = (shown_as, reference)
            for entry in self.journal.pending():
                command = entry.command
                if command is None:
                    continue
                self._waiting[entry.key] = command
                if _opens_unnumbered(command) and entry.key not in self._provisional_refs:
                    # Journalled before it was known to wait (a crash in between): shown
                    # under a provisional reference, never a log number made up here.
                    shown_as = self._provisional_reference()
                    self.journal.hold_provisional(entry.key, shown_as)
                    self._provisional_refs[entry.key] = (shown_as, None)
        self._overlay: ProvisionalPicture | None = None
        self._overlay_dirty = True
        self._overlay_shown = False

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
        if self._learning is not None:
            self._learning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._learning
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
        """The whole picture as last seen, with CAD-down actions applied (`provisional`)."""
        overlay = self.provisional
        return overlay.state if overlay is not None else self.store.state

    @property
    def confirmed(self) -> DispatchState:
        """The picture as the backend last said it, without provisional actions."""
        return self.store.state

    @property
    def seq(self) -> int:
        """Seq of the last event applied from a backend."""
        return self.store.seq

    @property
    def incidents(self) -> dict[str, Incident]:
        """Incidents by reference."""
        return self.state.incidents

    @property
    def units(self) -> dict[str, Unit]:
        """Units by callsign."""
        return self.state.units

    @property
    def provisional(self) -> ProvisionalPicture | None:
        """What commands waiting since CAD went down did to the picture; None if none wait.

        Recomputed only after the picture or the waiting commands changed.
        """
        if not self._waiting:
            return None
        if self._overlay is None or self._overlay_dirty:
            self._overlay_dirty = False
            previous = self._overlay
            overlay = provisional_picture(
                self.store.state,
                list(self._waiting.values()),
                self.operator or UNKNOWN_OPERATOR,
                {key: shown for key, (shown, real) in self._provisional_refs.items() if not real},
            )
            if previous is not None and previous.state is not None:
                # Boards hold the picture object they were given: refill the same one,
                # so only the rows that changed are redrawn.
                _refill(previous.state, overlay.state)
                overlay.state = previous.state
                touched = previous.changes
                touched.update(overlay.changes)
                self.store.peek_changes().update(touched)
                self._changed.set()
            self._overlay = overlay
        return self._overlay

    @property
    def reference_map(self) -> dict[str, str]:
        """Provisional references of incidents opened offline -> their log references."""
        return {shown: real for shown, real in self._provisional_refs.values() if real}

    @property
    def changes_waiting(self) -> bool:
        """Whether changes wait to be taken: what `watch` yields next is already here."""
        return self._changed.is_set()

    def take_changes(self) -> Changes:
        """Incidents and units changed since the last call."""
        self._changed.clear()
        provisional = self.provisional  # recomputed first, so its changes are included
        changes = self.store.take_changes()
        if (provisional is not None) != self._overlay_shown:
            # Into or out of CAD-down mode: a different picture object is shown now.
            self._overlay_shown = provisional is not None
            if provisional is None and self._overlay is not None:
                changes.update(self._overlay.changes)
                self._overlay = None
            changes.replaced = True
        return changes

    def _waiting_changed(self) -> None:
        self._overlay_dirty = True
        self._changed.set()

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
        if self._waiting:
            self._overlay_dirty = True
            if self._waiting_sent:
                head = self.store.seq
                for key, seq in list(self._waiting_sent.items()):
                    if seq <= head:  # its real event is in the picture now
                        del self._waiting_sent[key]
                        self._waiting.pop(key, None)
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
        if (
            status.state == LinkState.LIVE
            and self.operator is None
            and self.journal is not None  # only CAD-down mode needs to know
            and (self._learning is None or self._learning.done())
        ):
            self._learning = asyncio.get_running_loop().create_task(
                self._learn_operator(), name="cadterm-whoami"
            )
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

    async def _learn_operator(self) -> None:
        """Who the token belongs to: provisional actions are recorded as them."""
        try:
            self.operator = await self.sender.whoami()
        except (CommandError, BackendUnavailable) as exc:
            log.info("who this token belongs to is not known yet: %s", exc)
            return
        self._overlay_dirty = True

    def _provisional_reference(self) -> str:
        """A reference for an incident opened offline once the reserved block is used up.

        ``P3-WS-03``: never a log reference (those start with the number), unique on this
        workstation, and mapped to the log reference the server gives it on recovery.
        """
        number = len(self._provisional_refs) + 1
        return f"P{number}-{self.workstation}".upper()[:40].rstrip(" ._-")

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

    async def execute_many(
        self,
        commands: Sequence[Command | CommandDraft],
        *,
        wait: bool = True,
        timeout: float = 10.0,
    ) -> list[Answer]:
        """Send `commands` now, in order and batched; by default wait for their events.

        For a feed with many commands at once (AVL fixes for a fleet, a scripted
        scenario): each keeps its own key and gets its own answer, a result or the
        typed error `execute` would have raised, in order. Not a transaction: a refusal
        of one leaves the others as they were decided. Raises only when the whole batch
        is refused or no backend answered.
        """
        answers = await self.sender.send_many([self.keyed(command) for command in commands])
        seqs = [answer.seq for answer in answers if isinstance(answer, CommandResult)]
        for seq in seqs:
            self.pending.accepted(seq)
        if wait and seqs:
            await self.pending.seen(max(seqs), timeout)
        return answers

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
        if self.status.state != LinkState.LIVE:
            await self._wait_offline(entry)
        self._flush_wakeup.set()
        return entry

    async def _wait_offline(self, entry: JournalEntry) -> None:
        """The entry waits for a backend: CAD-down mode applies it to the picture now."""
        assert self.journal is not None and entry.command is not None
        if entry.key not in self._waiting and self.journal.is_pending(entry.key):
            command = entry.command
            if _opens_unnumbered(command) and entry.key not in self._provisional_refs:
                # Opened while the link still looked up: it needs a reference to be
                # shown under, and only the server may give a log number.
                shown_as = self._provisional_reference()
                await asyncio.to_thread(self.journal.hold_provisional, entry.key, shown_as)
                self._provisional_refs[entry.key] = (shown_as, None)
            self._waiting[entry.key] = command
            self._waiting_changed()
            await asyncio.to_thread(self.journal.mark_waiting, entry.key)

    def rejected(self) -> list[JournalEntry]:
        """Journalled commands the backend refused, waiting for an operator."""
        return self.journal.rejected() if self.journal is not None else []

    def dismiss(
        self, key: str, resolution: Resolution = Resolution.SET_ASIDE, note: str | None = None
    ) -> None:
        """Set the rejected entry `key` aside once an operator has dealt with it.

        `resolution` and `note` say what they did about it (applied anyway, adapted,
        withdrawn and why); the outage summary on file is brought up to date.
        """
        if self.journal is None:
            raise RuntimeError("this client has no journal: pass journal_path")
        self.journal.dismiss(key, resolution, note)
        self.keep_outage_summary()

    # --- putting the record right after CAD was down ------------------------------------

    async def apply_anyway(self, entry: JournalEntry) -> Issued:
        """Send a refused entry again, as a fresh decision on the picture as it is now.

        A new command (new key, no expected version); the old entry is kept, marked
        applied anyway.
        """
        if entry.command is None:
            raise CommandError(
                Problem.of(
                    ProblemCode.INVALID_COMMAND,
                    f"the refused {entry.kind} cannot be read as stored: adapt it instead",
                )
            )
        again = draft_of(entry.command).model_copy(update={"expected_version": None})
        await asyncio.to_thread(self.dismiss, entry.key, Resolution.APPLIED_ANYWAY)
        return await self.issue(again)

    async def adapt(
        self, entry: JournalEntry, instead: Sequence[Command | CommandDraft]
    ) -> list[Issued]:
        """Do `instead` in place of a refused entry (kept, marked adapted)."""
        note = "; ".join(command.type for command in instead)
        await asyncio.to_thread(self.dismiss, entry.key, Resolution.ADAPTED, f"instead: {note}")
        return [await self.issue(command) for command in instead]

    async def withdraw(self, entry: JournalEntry, reason: str) -> Issued | None:
        """Record that a refused entry was not done after all, and why.

        The entry is kept, marked withdrawn with `reason`; the incident it was about
        (or its unit's incident) gets a note in its chronology saying so. Returns that
        note's outcome, or None when there is no incident to note it on.
        """
        await asyncio.to_thread(self.dismiss, entry.key, Resolution.WITHDRAWN, reason)
        note = self.withdrawal_note(entry, reason)
        return await self.issue(note) if note is not None else None

    def withdrawal_note(self, entry: JournalEntry, reason: str) -> CommandDraft | None:
        """The chronology note saying a refused entry was withdrawn, on the incident it
        was about (or its unit's incident); None when there is none to note it on."""
        command, state = entry.command, self.state
        reference = getattr(command, "reference", None)
        reference = self.reference_map.get(reference, reference)
        callsign = getattr(command, "callsign", None)
        if reference not in state.incidents and callsign in state.units:
            reference = state.units[callsign].incident
        if reference not in state.incidents:
            return None
        typed = command.taken_at if command and command.taken_at else entry.issued_at
        what = command.type.replace("_", " ") if command else entry.kind
        why = entry.problem.detail if entry.problem else "refused"
        text = (
            f"Withdrawn: {what} typed {typed.astimezone():%H:%M} on {self.workstation} "
            f"while CAD was down ({why}). Reason: {reason}"
        )
        return draft("add_note", reference=reference, text=text[:2000])

    def outage_summary(self) -> OutageSummary:
        """What became of the commands that waited while CAD was down (reads the journal)."""
        return OutageSummary.of(self.journal.entries()) if self.journal else OutageSummary()

    def keep_outage_summary(self) -> None:
        """Write the outage summary beside the journal, if any command ever waited."""
        if self.journal is None:
            return
        summary = self.outage_summary()
        if not summary.total:
            return
        try:
            write_summary(self.journal.path, summary, datetime.now(UTC))
        except OSError as exc:  # a copy for people: the journal itself is the record
            log.error("cannot write the outage summary beside %s: %s", self.journal.path, exc)

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
        backend is reachable, shown on the picture meanwhile as provisional.

        An incident opened while no backend answers gets its reference at once: the
        next of this workstation's reserved block (final), or when that is used up a
        provisional one, mapped to a log reference when a backend has it (`Issued`
        says which). Commands naming it by either reference reach the right incident.
        """
        keyed = self.keyed(command)
        reference = None
        if (
            _opens_unnumbered(keyed)
            and self.status.state != LinkState.LIVE
            and self.journal is not None
        ):
            # Offline: the next reserved reference, final; with none left, the entry is
            # given a provisional one when it is known to wait (`_wait_offline`).
            reference = self.claim_reserved_reference()
            if reference is not None:
                keyed = keyed.model_copy(update={"reference": reference})
        entry = await self.submit(keyed)
        async with self._journal_lock:
            assert self.journal is not None
            if self.journal.next_pending_key != entry.key:
                # Either older entries go first, or the journal's sender took this one
                # while we waited for the lock: report the entry as it stands.
                if self.journal.is_pending(entry.key):
                    await self._wait_offline(entry)
                    return self._queued(entry, reference)
                # Read off the loop: the journal may be long, and the UI waits on this.
                found = await asyncio.to_thread(self.journal_entry, entry.key)
                return Issued(found or entry)
            if self.status.state != LinkState.LIVE:
                await self._wait_offline(entry)
                return self._queued(entry, reference)
            outcome = await self._send_entry(entry, answered_at_once=True)
            if outcome is None:  # no backend took it after all: it waits, as offline
                await self._wait_offline(entry)
        if isinstance(outcome, CommandResult):
            return Issued(entry, result=outcome)
        if isinstance(outcome, CommandError):
            return Issued(entry, error=outcome)
        return self._queued(entry, reference)

    def _queued(self, entry: JournalEntry, reserved: str | None) -> Issued:
        """A queued entry, with the reference an incident it opens is shown under."""
        if reserved is not None:
            return Issued(entry, queued=True, reference=reserved)
        provisional = self._provisional_refs.get(entry.key)
        if provisional is not None:
            return Issued(entry, queued=True, reference=provisional[0], provisional_reference=True)
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
        waited = entry.key in self._waiting
        command, unopened = self._mapped(entry.command)
        if unopened is not None:
            problem = Problem.of(
                ProblemCode.UNKNOWN_INCIDENT,
                f"{unopened} was opened on this console while CAD was down, and its "
                "opening was refused, so there is no such incident: adapt or withdraw this",
                field="reference",
            )
            await asyncio.to_thread(
                self.journal.mark_rejected, entry.key, problem, seen=False, waited=waited
            )
            self._settled(entry.key)
            return CommandError(problem)
        try:
            result = await self.sender.send(command)
        except RateLimited as limited:
            # "Not now", not "no": the entry stays pending, in order, and goes later.
            log.info("journal entry %s rate limited: %s", entry.key, limited)
            await asyncio.to_thread(self.journal.mark_attempt, entry.key)
            return None
        except CommandError as refused:
            await asyncio.to_thread(
                self.journal.mark_rejected,
                entry.key,
                refused.problem,
                seen=answered_at_once,
                waited=waited,
            )
            self._settled(entry.key)
            return refused
        except BackendUnavailable as exc:
            log.info("journal entry %s not delivered: %s", entry.key, exc)
            await asyncio.to_thread(self.journal.mark_attempt, entry.key)
            return None
        # Pending from here until the stream shows it: counted as sent before the journal
        # stops counting it as unsent, so the count never dips below the truth.
        self.pending.accepted(result.seq)
        await asyncio.to_thread(self.journal.mark_sent, entry.key, result.seq, waited=waited)
        if entry.key in self._provisional_refs:
            shown_as = self._provisional_refs[entry.key][0]
            reference = result.event.reference  # type: ignore[union-attr]
            await asyncio.to_thread(self.journal.map_reference, entry.key, reference)
            self._provisional_refs[entry.key] = (shown_as, reference)
            log.info("incident opened offline as %s is %s", shown_as, reference)
        if waited and result.seq > self.store.seq:
            # Shown as provisional until the stream brings its event, then as confirmed.
            self._waiting_sent[entry.key] = result.seq
        else:
            self._settled(entry.key)
        self._changed.set()
        return result

    def _settled(self, key: str) -> None:
        """The entry no longer waits: the picture stops showing it as provisional."""
        self._waiting_sent.pop(key, None)
        if self._waiting.pop(key, None) is not None:
            self._waiting_changed()
        self._changed.set()

    def _mapped(self, command: Command) -> tuple[Command, str | None]:
        """`command` with provisional references replaced by the log references they got.

        The second value names a provisional reference that never got one (the command
        that opened it was refused): the command cannot be sent as it stands.
        """
        if not self._provisional_refs:
            return command, None
        pending = {shown: real for shown, real in self._provisional_refs.values()}
        update = {}
        for name in ("reference", "other"):
            value = getattr(command, name, None)
            if value in pending:
                real = pending[value]
                if real is None:
                    return command, value
                update[name] = real
        return (command.model_copy(update=update) if update else command), None

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
                    delivered, answered = True, 0
                    for entry in await asyncio.to_thread(self.journal.pending):
                        if await self._send_entry(entry) is None:
                            # Keep the order: stop at the first entry no backend took.
                            delivered = False
                            break
                        answered += 1
                    if answered:
                        await asyncio.to_thread(self.keep_outage_summary)
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


def _opens_unnumbered(command: Command) -> bool:
    """Whether `command` opens an incident the server is to give a log reference."""
    return command.type == "create_incident" and getattr(command, "reference", None) is None


def _refill(target: DispatchState, source: DispatchState) -> None:
    """Make `target` hold what `source` holds (its contents, not a copy of them)."""
    for name in DispatchState.model_fields:
        setattr(target, name, getattr(source, name))
