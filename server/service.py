"""The dispatch service: the one writer of truth.

Commands are handled one at a time: check the idempotency key, authorise, apply the
rules, append the resulting event durably, fold it into the in-memory picture and only
then publish it. Because the event is on disk before anyone hears of it, an
acknowledged command survives a crash; because the fold runs on the event loop between
awaits, a new subscriber's snapshot is always consistent with the events that follow.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from cadterm.protocol.commands import Command, CommandResult, may_issue
from cadterm.protocol.domain import Operator
from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState, apply
from cadterm.protocol.frames import EventFrame
from cadterm.protocol.problems import Problem, ProblemCode

from .config import ServerConfig
from .hub import Hub
from .live_config import LiveConfig
from .rules import Codes, Refused, decide
from .store.base import EventStore, StoredCommand

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


def _log_snapshot_failure(future: asyncio.Future[None]) -> None:
    # A snapshot only speeds up the next start; the log is the truth. Say so and go on.
    if not future.cancelled() and future.exception() is not None:
        log.error("snapshot not saved (the event log is intact): %s", future.exception())


class DispatchService:
    """Holds the picture, the store and the hub, and executes commands against them."""

    def __init__(
        self,
        store: EventStore,
        config: ServerConfig,
        *,
        clock: Callable[[], datetime] = utc_now,
        live: LiveConfig | None = None,
    ) -> None:
        self.store = store
        self.config = config
        # Operators and workstations, swapped whole when the config file is reloaded.
        self.live = live if live is not None else LiveConfig(config)
        self.codes = Codes(config.incident_types, config.closing_codes, config.timezone)
        self.clock = clock
        self.hub = Hub(config.limits.subscriber_queue)
        self.state = self._rebuild()
        self._lock = asyncio.Lock()
        # One writer thread keeps appends in order; readers get their own threads so a
        # long replay never holds up a command.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="cadterm-store-writer")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="cadterm-store-reader")
        self._since_snapshot = 0
        self._snapshot_cache: tuple[int, str] | None = None

    def _rebuild(self) -> DispatchState:
        """Load the newest snapshot and fold every event after it."""
        state = self.store.load_snapshot() or DispatchState()
        for event in self.store.events_after(state.seq):
            apply(state, event)
        log.info("picture rebuilt at seq %d", state.seq)
        return state

    @property
    def head(self) -> int:
        """Seq of the newest event applied."""
        return self.state.seq

    async def run_read(self, fn, *args):
        """Run a blocking store read off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

    async def execute(self, command: Command, operator: Operator) -> Outcome:
        """Carry out one command for `operator` and return the answer to send."""
        if not may_issue(operator.role, command.type):
            return _problem_outcome(
                Problem.of(
                    ProblemCode.FORBIDDEN,
                    f"operator {operator.id} ({operator.role.value}) may not {command.type}",
                )
            )
        # Before the key is looked at: a refused workstation leaves no trace to retry.
        refusal = self.live.roster.workstation_problem(operator, command.workstation)
        if refusal is not None:
            return _problem_outcome(refusal)
        print_ = fingerprint(command)
        loop = asyncio.get_running_loop()
        async with self._lock:
            stored = await loop.run_in_executor(
                self._writer, self.store.find_command, operator.id, command.idempotency_key
            )
            if stored is not None:
                return self._replay(stored, operator, print_)
            try:
                event = decide(self.state, command, operator, self.clock(), self.codes)
            except Refused as refused:
                outcome = _problem_outcome(refused.problem)
                record = StoredCommand(
                    command.idempotency_key, operator.id, print_, outcome.status, outcome.body, None
                )
                await loop.run_in_executor(self._writer, self.store.remember_refusal, record)
                return outcome
            result = CommandResult(
                idempotency_key=command.idempotency_key, seq=event.seq, event=event
            )
            outcome = Outcome(200, result.model_dump_json())
            record = StoredCommand(
                command.idempotency_key, operator.id, print_, 200, outcome.body, event.seq
            )
            await loop.run_in_executor(self._writer, self.store.append, event, record)
            self._publish(event)
            await self._maybe_snapshot()
            return outcome

    async def record(
        self, build: Callable[[DispatchState, int, datetime], Event | None]
    ) -> Event | None:
        """Record an event of the server's own (archiving), not caused by a command.

        `build` is called under the command lock with the picture, the next seq and the
        time, and returns the event to record or None for nothing to do. The event is
        appended, folded and published exactly as a command's is.
        """
        loop = asyncio.get_running_loop()
        async with self._lock:
            event = build(self.state, self.state.seq + 1, self.clock())
            if event is None:
                return None
            # The store keeps an answer with every event; this one is under an operator
            # id no token can carry, so no retry can ever find it.
            record = StoredCommand(f"server-{event.seq}", "@server", "", 200, "{}", event.seq)
            await loop.run_in_executor(self._writer, self.store.append, event, record)
            self._publish(event)
            await self._maybe_snapshot()
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

    def _publish(self, event: Event) -> None:
        apply(self.state, event)
        self.hub.publish(EventFrame(event=event).model_dump_json())
        self._since_snapshot += 1

    async def _maybe_snapshot(self) -> None:
        if self._since_snapshot < self.config.snapshot_every:
            return
        self._since_snapshot = 0
        seq = self.state.seq
        text = self.state.model_dump_json()
        self._snapshot_cache = (seq, text)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._writer, self.store.save_snapshot_json, seq, text)
        future.add_done_callback(_log_snapshot_failure)

    def _save_snapshot(self, text: str) -> None:
        self.store.save_snapshot_json(self.state.seq, text)

    def snapshot_json(self) -> str:
        """The current picture as JSON, cached while nothing changes."""
        cached = self._snapshot_cache
        if cached is not None and cached[0] == self.state.seq:
            return cached[1]
        text = self.state.model_dump_json()
        self._snapshot_cache = (self.state.seq, text)
        return text

    async def close(self) -> None:
        """Write a final snapshot and release the store (clean shutdown)."""
        async with self._lock:
            if self._since_snapshot:
                text = self.state.model_dump_json()
                await asyncio.get_running_loop().run_in_executor(
                    self._writer, self._save_snapshot, text
                )
            self._writer.shutdown(wait=True)
            self._readers.shutdown(wait=True)
            self.store.close()
