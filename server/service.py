"""The dispatch service: the one writer of truth.

Commands are checked (role, workstation) on arrival, then queued for the committer.
The committer takes every command waiting, and in one call on the writer thread looks
up each idempotency key, decides each command on a draft of the picture (so each sees
the ones before it), and writes the whole batch in one transaction: one fsync for all
(group commit). Only then, back on the event loop, are the events folded into the
picture, published and answered. Because an event is on disk before anyone hears of
it, an acknowledged command survives a crash; because the real picture only moves on
the event loop between awaits, a new subscriber's snapshot is always consistent with
the events that follow.

Snapshots and upkeep (pruning old idempotency answers, WAL checkpoints) run on their
own thread and store connection, so a command never waits behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cadterm.domain.rules import Codes, Refused, decide
from cadterm.protocol.commands import Command, may_issue
from cadterm.protocol.domain import Incident, Operator
from cadterm.protocol.events import EVENT_ADAPTER, Event
from cadterm.protocol.fold import DispatchState, apply
from cadterm.protocol.problems import Problem, ProblemCode

from .config import ServerConfig
from .draft import draft_of
from .event_frames import event_frame
from .hub import Hub
from .live_config import LiveConfig
from .picture_json import PictureJson, PictureParts
from .store.base import (
    Accepted,
    Closeable,
    EventStore,
    StoredCommand,
    StoreError,
    StoreUnavailable,
    WriteTurn,
)

__all__ = ["DispatchService", "Outcome", "utc_now"]

log = logging.getLogger("cadterm.server")


def utc_now() -> datetime:
    """The server clock (UTC, millisecond precision so times survive JSON unchanged)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class Outcome:
    """The answer to a command: an HTTP status and the JSON body to send."""

    status: int
    body: str


def _problem_outcome(problem: Problem) -> Outcome:
    return Outcome(problem.status, problem.model_dump_json(exclude_none=True))


def fingerprint(command: Command) -> str:
    """A hash of the command's content, to tell a retry from a reused key."""
    return hashlib.sha256(command.model_dump_json().encode()).hexdigest()


def _log_upkeep_failure(future: asyncio.Future[None]) -> None:
    # A snapshot only speeds up the next start; the log is the truth. Say so and go on.
    if not future.cancelled() and future.exception() is not None:
        log.error("store upkeep failed (the event log is intact): %s", future.exception())


@dataclass
class _Pending:
    """A command waiting for the committer, and where its answer goes."""

    command: Command
    operator: Operator
    fingerprint: str
    answer: asyncio.Future[Outcome]
    # For a reopen of an incident no longer in the picture: as the history holds it.
    archived: Incident | None = None


class Archive(Protocol):
    """Where incidents closed long ago are kept (`server.store.history`)."""

    def find(self, reference: str) -> str | None:
        """The archived incident's JSON, or None."""

    def forget(self, references: Iterable[str]) -> None:
        """Drop the copies of incidents that are back in the picture."""


@dataclass
class _Recording:
    """An event of the server's own (archiving) waiting for the committer."""

    build: Callable[[DispatchState, int, datetime], Event | None]
    answer: asyncio.Future[Event | None]


@dataclass
class _Batch:
    """What one group commit decided: the answers, and the events now durable."""

    # In batch order: a command's Outcome, or a recording's Event (None: nothing to do).
    outcomes: list[Outcome | Event | None] = field(default_factory=list)
    # Events other nodes committed before this batch, as (event, JSON), in seq order.
    missed: list[tuple[Event, str]] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)


_INTERNAL = Problem.of(ProblemCode.INTERNAL, "internal error; the command was not applied")
#: How many missed events one catch-up reads before folding them.
_CATCH_UP_BATCH = 5000


def _unavailable(exc: StoreUnavailable) -> Problem:
    return Problem.of(
        ProblemCode.STORE_UNAVAILABLE,
        f"the event store is not answering ({exc}); the command was not applied: "
        "retry with the same idempotency key",
    )


def _decoded(rows: Sequence[tuple[int, str]], after: int) -> list[tuple[Event, str]]:
    """Stored events after `after`, decoded, up to the first gap (there should be none)."""
    events: list[tuple[Event, str]] = []
    for seq, body in rows:
        if seq != after + 1:
            log.error("event log has a gap after seq %d (next is %d); stopping there", after, seq)
            break
        events.append((EVENT_ADAPTER.validate_json(body), body))
        after = seq
    return events


class DispatchService:
    """Holds the picture, the store and the hub, and executes commands against them."""

    def __init__(
        self,
        store: EventStore,
        config: ServerConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        live: LiveConfig | None = None,
        node: str = "cadterm",
    ) -> None:
        self.store = store
        #: This node's id, shown by /v1/health (several nodes may share one store).
        self.node = node
        self.config = config
        # Operators and workstations, swapped whole when the config file is reloaded.
        self.live = live if live is not None else LiveConfig(config)
        self.codes = Codes(
            config.incident_types,
            config.closing_codes,
            config.timezone,
            timedelta(seconds=config.back_entry_after),
        )
        self.clock = clock
        self.hub = Hub(config.limits.subscriber_queue)
        #: Incidents archived out of the picture, for reopening them (set by the app).
        self.archive: Archive | None = None
        self.state, folded = self._rebuild()
        # Each incident's and unit's JSON, so a snapshot re-serialises only what changed.
        self._json = PictureJson(self.state)
        # One writer thread keeps appends in order; readers get their own threads so a
        # long replay never holds up a command; upkeep (snapshots, pruning, checkpoints)
        # has its own so nothing it does is ever queued ahead of an append.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="cadterm-store-writer")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="cadterm-store-reader")
        self._upkeep = ThreadPoolExecutor(1, thread_name_prefix="cadterm-store-upkeep")
        self._pending: list[_Pending | _Recording] = []
        self._committer: asyncio.Task[None] | None = None
        self._upkeep_timer: asyncio.TimerHandle | None = None
        self._upkeep_running: asyncio.Future[None] | None = None
        # Events folded at start count as unsnapshotted: a long tail is snapshotted at
        # the first upkeep, so a crash soon after does not fold it all again.
        self._since_snapshot = folded
        self._bytes_since_snapshot = 0
        self._snapshot_bytes = 0  # the size of the last snapshot written
        self._last_snapshot = time.monotonic()
        self._snapshot_cache: tuple[int, str] | None = None
        # Set when another node may have committed events this one has not folded.
        self._catch_up_wanted = False
        #: Why the store last failed, or None while it answers (for /v1/health).
        self.store_problem: str | None = None
        self._watcher: Closeable | None = None
        # The newest seq this node committed itself (set on the writer thread).
        self._committed_head = 0
        # Set (and replaced) each time the head moves, for `reach`.
        self._advanced = asyncio.Event()

    def _rebuild(self) -> tuple[DispatchState, int]:
        """Load the newest snapshot and fold every event after it; say how many."""
        started = time.perf_counter()
        state = self.store.load_snapshot() or DispatchState()
        since = state.seq
        for event in self.store.events_after(state.seq):
            apply(state, event)
        log.info(
            "picture rebuilt at seq %d (snapshot at %d, %d events folded) in %.2f s",
            state.seq,
            since,
            state.seq - since,
            time.perf_counter() - started,
        )
        return state, state.seq - since

    @property
    def head(self) -> int:
        """Seq of the newest event applied."""
        return self.state.seq

    async def run_read(self, fn, *args):
        """Run a blocking store read off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

    async def execute(self, command: Command, operator: Operator) -> Outcome:
        """Carry out one command for `operator` and return the answer to send.

        Answered only once the command's event (or its refusal) is durable.
        """
        (outcome,) = await self.execute_all([command], operator)
        return outcome

    async def execute_all(self, commands: Sequence[Command], operator: Operator) -> list[Outcome]:
        """Carry out `commands` for `operator` in order; each one's answer, in order.

        Not a transaction: each command is decided on its own, after and seeing the
        effect of those before it (they join the same group commits, in order). Every
        answer is given only once its event (or refusal) is durable.
        """
        loop = asyncio.get_running_loop()
        answers: list[Outcome | _Pending] = []
        for command in commands:
            refusal = self._refusal(command, operator)
            if refusal is not None:
                answers.append(refusal)
                continue
            archived = await self._archived_for(command)
            print_ = fingerprint(command)
            answers.append(_Pending(command, operator, print_, loop.create_future(), archived))
        waiting = [answer for answer in answers if isinstance(answer, _Pending)]
        if not waiting:
            return answers  # type: ignore[return-value]  # every one was refused
        # All at once, after every look-up: nothing another request sends in the
        # meantime can land between two commands of this batch's order.
        self._pending.extend(waiting)
        self._start_committer()
        await asyncio.shield(asyncio.gather(*(pending.answer for pending in waiting)))
        await self._forget_reopened([p.archived for p in waiting if p.archived is not None])
        return [a.answer.result() if isinstance(a, _Pending) else a for a in answers]

    def _refusal(self, command: Command, operator: Operator) -> Outcome | None:
        """Why `operator` may not send `command` at all, before its key is looked at."""
        if not may_issue(operator.role, command.type):
            return _problem_outcome(
                Problem.of(
                    ProblemCode.FORBIDDEN,
                    f"operator {operator.id} ({operator.role.value}) may not {command.type}",
                )
            )
        # A refused workstation leaves no trace to retry.
        refusal = self.live.roster.workstation_problem(operator, command.workstation)
        return None if refusal is None else _problem_outcome(refusal)

    async def _forget_reopened(self, archived: list[Incident]) -> None:
        """Drop the history's copies of reopened incidents that are back in the picture."""
        back = [i.reference for i in archived if i.reference in self.state.incidents]
        if not back or self.archive is None:
            return
        # Back in the picture (this reopen or a retry's): the history's copy goes.
        # Should that fail, the copy is only stale: the picture is read first, and
        # archiving it again replaces it.
        try:
            await self.run_read(self.archive.forget, back)
        except Exception:
            log.exception("the reopened incidents %s stay in the history", ", ".join(back))

    async def _archived_for(self, command: Command) -> Incident | None:
        """The archived incident a `reopen_incident` names, if it left the picture."""
        if command.type != "reopen_incident" or self.archive is None:
            return None
        reference = command.reference.upper()
        if command.reference in self.state.incidents or reference in self.state.incidents:
            return None
        body = await self.run_read(self.archive.find, reference)
        return Incident.model_validate_json(body) if body is not None else None

    async def start(self) -> None:
        """Begin following other writers of the log, if the store has any (PostgreSQL)."""
        loop = asyncio.get_running_loop()

        def wake(head: int | None) -> None:
            # From the store's listening thread: a node committed up to `head`, or a poll.
            if head is not None and head <= max(self.state.seq, self._committed_head):
                return  # this node's own commit, or one it has folded already
            with contextlib.suppress(RuntimeError):  # the loop closed: we are stopping
                loop.call_soon_threadsafe(self._want_catch_up)

        self._watcher = self.store.watch(wake)
        # Upkeep from the start, not from the first command: a long tail folded at start
        # is snapshotted even if nobody sends anything.
        if self._upkeep_timer is None:
            self._schedule_upkeep()

    async def reach(self, seq: int, timeout: float = 2.0) -> bool:
        """Whether this node has folded `seq`, after catching up for up to `timeout` s.

        A console that fails over from another node may have seen events this node has
        not folded yet (they were committed a moment ago); it must be given them, not
        told it is ahead of the server. With one writer (SQLite) there is nobody to
        catch up with, so the answer is immediate.
        """
        if self.head >= seq or self._watcher is None:
            return self.head >= seq
        self._want_catch_up()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.head < seq:
                    await self._advanced.wait()
        return self.head >= seq

    def _want_catch_up(self) -> None:
        self._catch_up_wanted = True
        self._start_committer()

    def _start_committer(self) -> None:
        if self._committer is None or self._committer.done():
            self._committer = asyncio.get_running_loop().create_task(self._commit_waiting())

    async def _commit_waiting(self) -> None:
        """Group-commit every waiting command, batch after batch, until none wait.

        Also folds events other nodes committed: inside each batch's write turn, or on
        their own when a wake-up comes and nothing waits.
        """
        loop = asyncio.get_running_loop()
        limit = self.config.limits.commit_batch
        while self._pending or self._catch_up_wanted:
            self._catch_up_wanted = False
            batch, self._pending = self._pending[:limit], self._pending[limit:]
            try:
                if batch:
                    done = await loop.run_in_executor(self._writer, self._write_batch, batch)
                else:
                    done = await loop.run_in_executor(self._writer, self._read_missed)
                if self.store_problem is not None:
                    log.warning("event store answering again")
                self.store_problem = None
            except Exception as exc:
                self._commit_failed(batch, exc)
                continue
            try:
                # Durable now: fold, publish and answer with no await in between, so the
                # picture, the hub and the head move together. Other nodes' events come
                # first: this batch was decided after them.
                for event, body in done.missed:
                    self._fold_and_publish(event, body)
                for item in done.accepted:
                    self._fold_and_publish(item.event, item.body)
                if done.missed or done.accepted:
                    self._advanced.set()
                    self._advanced = asyncio.Event()
            finally:
                # The answers are true whatever happened after the commit: never leave
                # a sender waiting.
                for pending, outcome in zip(batch, done.outcomes, strict=True):
                    if not pending.answer.done():
                        pending.answer.set_result(outcome)
            self._maybe_snapshot()

    def _fold_and_publish(self, event: Event, body: str) -> None:
        if event.seq <= self.state.seq:
            return  # already folded (a catch-up and a batch both read it)
        self._json.touched(apply(self.state, event))
        self.hub.publish(event_frame(body))
        self._since_snapshot += 1
        self._bytes_since_snapshot += len(body)

    def _commit_failed(self, batch: list[_Pending | _Recording], exc: Exception) -> None:
        """Answer every command of a batch that could not be written: none was applied."""
        if isinstance(exc, StoreUnavailable):
            if self.store_problem is None or batch:
                log.warning("event store unavailable; %d commands refused: %s", len(batch), exc)
            self.store_problem = str(exc)
            outcome = _problem_outcome(_unavailable(exc))
        else:
            if isinstance(exc, StoreError):
                self.store_problem = str(exc)
            log.error("group commit of %d commands failed; none applied", len(batch), exc_info=exc)
            outcome = _problem_outcome(_INTERNAL)
        for pending in batch:
            if pending.answer.done():
                continue
            if isinstance(pending, _Recording):
                pending.answer.set_exception(RuntimeError(f"the commit failed: {exc}"))
            else:
                pending.answer.set_result(outcome)

    def _read_missed(self) -> _Batch:
        """On the writer thread: events committed by other nodes since our head."""
        done = _Batch()
        after = self.state.seq
        while True:
            rows = self.store.read_raw(after, _CATCH_UP_BATCH)
            events = _decoded(rows, after)
            done.missed.extend(events)
            if len(events) < _CATCH_UP_BATCH:
                return done
            after = events[-1][0].seq

    def _write_batch(self, batch: list[_Pending | _Recording]) -> _Batch:
        """On the writer thread: look up, decide and durably write one batch.

        The real picture is only read here (through a draft); it changes on the event
        loop, after this returns. A command that fails unexpectedly is answered 500
        and leaves no trace; the rest of the batch goes on.
        """
        with self.store.write_turn(self.state.seq) as turn:
            done = self._decide_batch(turn, batch)
        if done.accepted:
            # Committed: this node's own notification of it need not wake a catch-up.
            self._committed_head = done.accepted[-1].event.seq
        return done

    def _decide_batch(self, turn: WriteTurn, batch: list[_Pending | _Recording]) -> _Batch:
        """Inside the append lock: catch up, look up, decide, and commit the batch."""
        draft = draft_of(self.state)
        done = _Batch()
        # Events other nodes committed first: this batch is decided after them.
        done.missed = _decoded(turn.missed, self.state.seq)
        for event, _body in done.missed:
            apply(draft, event)
        refused: list[StoredCommand] = []
        # Answers stored before (by any node), found in one look-up, and those decided in
        # this batch (for a retry that arrives in the same batch).
        fresh = turn.find_commands(
            [(p.operator.id, p.command.idempotency_key) for p in batch if isinstance(p, _Pending)]
        )
        for pending in batch:
            if isinstance(pending, _Recording):
                try:
                    done.outcomes.append(self._record_in(draft, pending, done))
                except Exception:
                    log.exception("a server event could not be built; nothing recorded")
                    done.outcomes.append(None)
                continue
            command, operator = pending.command, pending.operator
            ident = (operator.id, command.idempotency_key)
            stored = fresh.get(ident)
            if stored is not None:
                done.outcomes.append(self._replay(stored, operator, pending.fingerprint))
                continue
            try:
                outcome, record, accepted = self._decide(draft, pending)
            except Exception:
                log.exception("command %s failed", command.idempotency_key)
                done.outcomes.append(_problem_outcome(_INTERNAL))
                continue
            fresh[ident] = record
            done.outcomes.append(outcome)
            if accepted is None:
                refused.append(record)
            else:
                done.accepted.append(accepted)
        turn.commit(done.accepted, refused, self.clock().timestamp())
        return done

    def _decide(
        self, draft: DispatchState, pending: _Pending
    ) -> tuple[Outcome, StoredCommand, Accepted | None]:
        """One command's answer and record, and its event if accepted (folded into `draft`)."""
        command, operator = pending.command, pending.operator
        key = command.idempotency_key
        try:
            event = decide(
                draft, command, operator, self.clock(), self.codes, archived=pending.archived
            )
        except Refused as refused:
            outcome = _problem_outcome(refused.problem)
            record = StoredCommand(
                key, operator.id, pending.fingerprint, outcome.status, outcome.body, None
            )
            return outcome, record, None
        apply(draft, event)
        body = event.model_dump_json()
        # A CommandResult around the event's JSON: the one serialisation of the event is
        # stored, answered and fanned out.
        quoted = json.dumps(key, ensure_ascii=False)
        outcome = Outcome(
            200, f'{{"idempotency_key":{quoted},"seq":{event.seq},"event":{body},"replayed":false}}'
        )
        record = StoredCommand(key, operator.id, pending.fingerprint, 200, outcome.body, event.seq)
        return outcome, record, Accepted(event, body, record)

    async def record(
        self, build: Callable[[DispatchState, int, datetime], Event | None]
    ) -> Event | None:
        """Record an event of the server's own (archiving), not caused by a command.

        `build` is called on the writer thread with the picture as the next command
        would see it, the next seq and the time, and returns the event to record or
        None for nothing to do. The event is committed with the commands around it, then
        folded and published exactly as a command's is.
        """
        loop = asyncio.get_running_loop()
        recording = _Recording(build, loop.create_future())
        self._pending.append(recording)
        self._start_committer()
        return await asyncio.shield(recording.answer)

    def _record_in(self, draft: DispatchState, recording: _Recording, done: _Batch) -> Event | None:
        event = recording.build(draft, draft.seq + 1, self.clock())
        if event is None:
            return None
        apply(draft, event)
        # The store keeps an answer with every event; this one is under an operator id
        # no token can carry, so no retry can ever find it.
        record = StoredCommand(f"server-{event.seq}", "@server", "", 200, "{}", event.seq)
        done.accepted.append(Accepted(event, event.model_dump_json(), record))
        return event

    def _replay(self, stored: StoredCommand, operator: Operator, print_: str) -> Outcome:
        """The first answer to a command this operator retried with the same key."""
        # Only this operator's own commands are found, so a mismatch can reveal nothing
        # about anyone else's.
        if stored.fingerprint != print_:
            return _problem_outcome(
                Problem.of(
                    ProblemCode.IDEMPOTENCY_KEY_REUSED,
                    f"idempotency key {stored.idempotency_key!r} was already used for a "
                    "different command; generate a new key for each command",
                    field="idempotency_key",
                )
            )
        if stored.seq is None:
            return Outcome(stored.status, stored.body)
        body = json.loads(stored.body)
        body["replayed"] = True
        return Outcome(stored.status, json.dumps(body))

    # --- snapshots and upkeep ----------------------------------------------------------

    def _snapshot_due(self) -> bool:
        if not self._since_snapshot:
            return False
        limits = self.config.limits
        # Writing a snapshot holds SQLite's write lock while the whole picture goes to
        # disk (about 25 ms for 7.7 MB): by event count alone a large picture would be
        # rewritten every few seconds under load, each time holding commands up.
        return (
            (
                self._since_snapshot >= self.config.snapshot_every
                and self._bytes_since_snapshot >= limits.snapshot_log_share * self._snapshot_bytes
            )
            or self._bytes_since_snapshot >= limits.snapshot_log_bytes
            or time.monotonic() - self._last_snapshot >= limits.snapshot_seconds
        )

    def _maybe_snapshot(self) -> None:
        """Start a snapshot on the upkeep thread when enough log or time has passed."""
        if self._upkeep_timer is None:
            self._schedule_upkeep()
        if not self._snapshot_due() or self._upkeep_busy():
            return
        self._since_snapshot = self._bytes_since_snapshot = 0
        self._last_snapshot = time.monotonic()
        # Only what changed since the last snapshot is serialised here; the texts are
        # joined and written on the upkeep thread.
        self._run_upkeep(self._save_and_tidy, self._json.parts())

    def _upkeep_busy(self) -> bool:
        return self._upkeep_running is not None and not self._upkeep_running.done()

    def _run_upkeep(self, fn, *args) -> None:
        future = asyncio.get_running_loop().run_in_executor(self._upkeep, fn, *args)
        future.add_done_callback(_log_upkeep_failure)
        self._upkeep_running = future

    def _schedule_upkeep(self) -> None:
        loop = asyncio.get_running_loop()
        self._upkeep_timer = loop.call_later(self.config.limits.upkeep_seconds, self._upkeep_tick)

    def _upkeep_tick(self) -> None:
        self._schedule_upkeep()
        if self._snapshot_due():
            self._maybe_snapshot()
        elif not self._upkeep_busy():
            self._run_upkeep(self._tidy)

    def _save_and_tidy(self, parts: PictureParts) -> None:
        body = parts.join()
        self.store.save_snapshot_json(parts.seq, body)
        self._snapshot_bytes = len(body)
        self._tidy()

    def _tidy(self) -> None:
        """Prune answers past the idempotency window and checkpoint the WAL."""
        window = self.config.limits.idempotency_window
        pruned = self.store.prune_commands(self.clock().timestamp() - window)
        if pruned:
            log.info("pruned %d command answers older than %g s", pruned, window)
        started = time.perf_counter()
        frames, copied = self.store.checkpoint()
        log.debug(
            "WAL checkpoint: %d of %d frames in %.1f ms",
            copied,
            frames,
            (time.perf_counter() - started) * 1e3,
        )

    def snapshot_json(self) -> str:
        """The current picture as JSON, cached while nothing changes."""
        cached = self._snapshot_cache
        if cached is not None and cached[0] == self.state.seq:
            return cached[1]
        text = self._json.parts().join()
        self._snapshot_cache = (self.state.seq, text)
        return text

    async def close(self) -> None:
        """Finish the waiting commands, write a final snapshot, release the store."""
        if self._watcher is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._watcher.close)
        if self._committer is not None:
            await asyncio.gather(self._committer, return_exceptions=True)
        if self._upkeep_timer is not None:
            self._upkeep_timer.cancel()
        loop = asyncio.get_running_loop()
        if self._upkeep_running is not None:
            await asyncio.gather(self._upkeep_running, return_exceptions=True)
        if self._since_snapshot:
            parts = self._json.parts()
            await loop.run_in_executor(
                self._upkeep, self.store.save_snapshot_json, parts.seq, parts.join()
            )
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        self._upkeep.shutdown(wait=True)
        self.store.close()
