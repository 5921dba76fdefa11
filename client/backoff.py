"""How long to wait before trying again: one jittered exponential backoff for every retry.

The live link waits on it between reconnects, the command sender between retries of a
command, and the simulator and the scenario runner while they ride out a backend outage.
The jitter (each delay is taken between half and all of its step) keeps many consoles
that lost the same backend from all coming back at the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Jittered exponential backoff: base * 2**n capped at `cap`, times 0.5-1.0."""

    base: float = 0.2
    cap: float = 10.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        return min(self.cap, self.base * 2 ** max(0, attempt - 1)) * rng.uniform(0.5, 1.0)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before retries 1, 2, 3... for ever (the caller bounds the loop)."""
        rng = rng or random.Random()
        attempt = 0
        while True:
            attempt += 1
            yield self.delay(attempt, rng)
