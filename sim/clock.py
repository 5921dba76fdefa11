"""Simulated time: seconds since the start of a run, at `speed` times real time.

    clock = SimClock(speed=30)      # half a simulated minute per real second
    clock.start()
    await clock.sleep_until(600)    # returns about 20 real seconds later

`SimClock(math.inf)` is a *virtual* clock: waiting jumps straight to the time waited for,
so a run goes as fast as the backend answers. Only one task may drive a virtual clock
(the simulator, in tests and load runs); scenarios, whose steps and simulator share one
clock, use a finite speed.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["SimClock"]


class SimClock:
    """Simulated seconds since `start()`, running `speed` times faster than real time."""

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError(f"speed must be more than 0, not {speed}")
        self.speed = speed
        self._started_at: float | None = None
        self._started_wall: datetime | None = None
        self._virtual_now = 0.0

    @property
    def virtual(self) -> bool:
        """True for a clock that jumps instead of waiting (infinite speed)."""
        return math.isinf(self.speed)

    @property
    def started(self) -> bool:
        """Whether `start()` has been called."""
        return self._started_at is not None

    def start(self) -> None:
        """Start counting (no-op when already started)."""
        if self._started_at is None:
            self._started_at = time.monotonic()
            self._started_wall = datetime.now(UTC)

    def now(self) -> float:
        """Simulated seconds since the start (0 before it)."""
        if self.virtual:
            return self._virtual_now
        if self._started_at is None:
            return 0.0
        return (time.monotonic() - self._started_at) * self.speed

    def real_seconds(self, sim_seconds: float) -> float:
        """Real seconds that `sim_seconds` simulated seconds take (0 on a virtual clock)."""
        return 0.0 if self.virtual else sim_seconds / self.speed

    def wall(self, sim_time: float) -> datetime:
        """The real (UTC) time at which simulated time `sim_time` comes round."""
        start = self._started_wall or datetime.now(UTC)
        return start + timedelta(seconds=self.real_seconds(sim_time))

    async def sleep_until(
        self, sim_time: float, *, wake: Callable[[], bool] | None = None, poll: float = 0.2
    ) -> bool:
        """Wait until simulated time `sim_time`; True if `wake()` cut the wait short.

        `wake` is checked every `poll` real seconds. A virtual clock jumps to `sim_time`
        (it never waits, and never wakes early). Waiting for ``inf`` without `wake` waits
        until cancelled.
        """
        if self.virtual:
            self._virtual_now = max(self._virtual_now, sim_time)
            await asyncio.sleep(0)
            return False
        self.start()
        while True:
            remaining = self.real_seconds(sim_time - self.now())
            if remaining <= 0:
                return False
            if wake is not None and wake():
                return True
            step = min(remaining, poll) if wake is not None else min(remaining, 3600.0)
            await asyncio.sleep(step)
