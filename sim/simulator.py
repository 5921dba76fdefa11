"""`Simulator`: runs a simulation against a backend, through the client only.

    async with DispatchClient(url, token, workstation="sim") as client:
        await client.wait_live()
        await seed_force(client)
        sim = Simulator(client, rng_seed=7, rate=1.0, clock=SimClock(speed=10))
        await sim.run(until=3600)            # one simulated hour in six real minutes

The decisions come from the pure `SimCore`; this module is the driver: it steps the core
at exactly the simulated times it asks for (so a run that falls behind real time still
decides the same things), sends each planned command with `client.execute` and tells the
core about refusals. When someone else changes the picture (a dispatcher assigning a
unit) it wakes early and steps at the current time, so units react at once.

A backend outage is ridden out: a command that no backend took is retried with the same
idempotency key once the link is live again, for up to `patience` real seconds, after
which `SimulatorError` is raised.

Errors::

    SimulatorError     the backend stayed unreachable longer than `patience`
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from cadterm.client import (
    BackendUnavailable,
    Backoff,
    CommandError,
    DispatchClient,
    RateLimited,
    StreamStopped,
)
from cadterm.protocol.events import Event

from .city import BRACKLEY, City
from .clock import SimClock
from .core import SimCore
from .planned import Planned, SimSettings

__all__ = ["Sent", "Simulator", "SimulatorError"]

log = logging.getLogger("cadterm.sim")

# Passes at one simulated instant before moving on (each pass reacts to the last one's
# commands; more than a handful means something keeps refusing).
_MAX_PASSES = 20

# Waits between tries of a command while the backend is away (the link's own reconnects
# have theirs); short, as a simulated shift goes on meanwhile.
_RETRY = Backoff(base=0.05, cap=1.0)


class SimulatorError(Exception):
    """The simulator cannot go on: the backend stayed unreachable too long."""


@dataclass(frozen=True)
class Sent:
    """A command the simulator sent: when (sim time), what, and how it ended.

    `event` (and its `seq`) is what the server recorded; `problem` the code if refused.
    """

    at: float
    command: dict[str, Any]
    problem: str | None = None
    seq: int | None = None
    event: Event | None = None


class Simulator:
    """Drives a `DispatchClient` with simulated calls and unit activity.

    `rng_seed` and `rate` (calls per simulated minute) fix what happens; `clock` sets how
    fast (default real time). With `auto_dispatch` the simulator also dispatches; units
    in `hands_off` (or every unit, with `play_units` off) are never played.
    `keep_transcript` keeps every `Sent` in `transcript`; `on_sent` is called with each
    one as it happens.
    """

    def __init__(
        self,
        client: DispatchClient,
        rng_seed: int | str = 0,
        rate: float = 1.0,
        clock: SimClock | None = None,
        *,
        auto_dispatch: bool = False,
        hands_off: Iterable[str] = (),
        play_units: bool = True,
        avl_every: float = 10.0,
        scene_time_factor: float = 1.0,
        emergency_chance: float = 0.03,
        city: City = BRACKLEY,
        keep_transcript: bool = False,
        on_sent: Callable[[Sent], None] | None = None,
        patience: float = 120.0,
        command_timeout: float = 10.0,
    ) -> None:
        settings = SimSettings(
            rate=rate,
            auto_dispatch=auto_dispatch,
            avl_every=avl_every,
            scene_time_factor=scene_time_factor,
            emergency_chance=emergency_chance,
            hands_off=frozenset(c.upper() for c in hands_off),
            play_units=play_units,
            city=city,
        )
        self.client = client
        self.core = SimCore(rng_seed, settings)
        self.clock = clock or SimClock(1.0)
        self.patience = patience
        self.command_timeout = command_timeout
        self.transcript: list[Sent] | None = [] if keep_transcript else None
        self.on_sent = on_sent
        self.sent: Counter[str] = Counter()  # commands applied, by type
        self.refused: Counter[str] = Counter()  # commands refused, by problem code
        self.now = 0.0
        self.task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None  # why a background run ended early
        self._own: set[int] = set()
        self._seen = 0
        # Look for other people's changes about once a simulated second (at most 5 times
        # a real second, at least 100): units react to an assignment without delay.
        self._poll = min(0.2, max(0.01, self.clock.real_seconds(1.0)))

    # --- control -----------------------------------------------------------------------

    def start(self, until: float | None = None) -> asyncio.Task[None]:
        """Run in the background (see `run`); `stop()` ends it.

        If the run fails (`SimulatorError`), the task ends and `failure` says why.
        """
        if self.task is None or self.task.done():
            self.failure = None
            self.task = asyncio.create_task(self.run(until), name="cadterm-simulator")
            self.task.add_done_callback(self._finished)
        return self.task

    def _finished(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failure = task.exception()
            log.error("simulator stopped: %s", self.failure)

    async def stop(self) -> None:
        """Stop a background run and wait until it has stopped (never raises its failure)."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def set_rate(self, rate: float) -> None:
        """Change the call rate from now on (calls per simulated minute, 0 or more)."""
        if rate < 0:
            raise ValueError(f"rate must be 0 or more calls a minute, not {rate}")
        self.core.configure(self.clock.now(), rate=rate)

    def hand_over(self, callsign: str) -> None:
        """Stop playing `callsign`: a person plays it from now on."""
        hands_off = self.core.settings.hands_off | {callsign.upper()}
        self.core.configure(self.clock.now(), hands_off=hands_off)

    def take_back(self, callsign: str) -> None:
        """Play `callsign` again."""
        hands_off = self.core.settings.hands_off - {callsign.upper()}
        self.core.configure(self.clock.now(), hands_off=hands_off)

    # --- the loop ----------------------------------------------------------------------

    async def run(self, until: float | None = None) -> None:
        """Simulate until simulated time `until` (None: until cancelled).

        Waits (up to `patience`) for the client's picture to be live first. The first
        step is at the clock's current whole second (0 on a fresh clock).
        """
        await self._wait_live()
        self.clock.start()
        self._seen = self.client.seq
        now = float(math.floor(self.clock.now()))
        while True:
            self.now = now
            await self._step(now)
            if until is not None and now >= until:
                return
            wake_at = max(self.core.next_due, now + 1e-3)
            if until is not None:
                wake_at = min(wake_at, until)
            wake = None if self.clock.virtual else self._foreign_change
            woken = await self.clock.sleep_until(wake_at, wake=wake, poll=self._poll)
            now = max(now, self.clock.now()) if woken else wake_at

    async def _step(self, now: float) -> None:
        """Step the core at `now` until it plans nothing more (bounded)."""
        for _ in range(_MAX_PASSES):
            planned = self.core.step(now, self.client.state)
            if not planned:
                return
            for item in planned:
                await self._send(item)
        log.warning("simulator still planning after %d passes at t=%.1f", _MAX_PASSES, now)

    async def _send(self, planned: Planned) -> None:
        command = self.client.command(planned.type, **planned.fields)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.patience
        delays = _RETRY.delays()
        problem: str | None = None
        event: Event | None = None
        while True:  # bounded by `give_up`
            try:
                result = await self.client.execute(command, timeout=self.command_timeout)
            except RateLimited as limited:
                wait, why = max(limited.retry_after, 0.05), str(limited)
            except CommandError as refused:
                problem = refused.code.value
                log.debug("refused %s (%s): %s", planned.type, planned.why, refused.detail)
                break
            except (BackendUnavailable, TimeoutError) as exc:
                wait, why = next(delays), str(exc) or type(exc).__name__
            else:
                event = result.event
                self._own.add(result.seq)
                break
            if loop.time() + wait > give_up:
                raise SimulatorError(f"gave up on {planned.type} after {self.patience:g} s: {why}")
            await asyncio.sleep(wait)
            await self._wait_live(give_up - loop.time())
        self.core.settle(planned, problem)
        if problem is None:
            self.sent[planned.type] += 1
        else:
            self.refused[problem] += 1
        seq = event.seq if event is not None else None
        sent = Sent(planned.at, planned.as_dict(), problem, seq, event)
        if self.transcript is not None:
            self.transcript.append(sent)
        if self.on_sent is not None:
            self.on_sent(sent)

    async def _wait_live(self, timeout: float | None = None) -> None:
        try:
            await self.client.wait_live(timeout=max(0.01, timeout or self.patience))
        except TimeoutError:
            return  # the next attempt reports the failure, or succeeds over HTTP anyway
        except StreamStopped as stopped:
            raise SimulatorError(f"the client's stream stopped: {stopped.reason}") from None

    def _foreign_change(self) -> bool:
        """Whether the picture holds events the simulator did not cause since last asked."""
        seq = self.client.seq
        if seq <= self._seen:
            return False
        foreign = seq - self._seen > 10_000 or any(
            s not in self._own for s in range(self._seen + 1, seq + 1)
        )
        self._seen = seq
        self._own = {s for s in self._own if s > seq}
        return foreign
