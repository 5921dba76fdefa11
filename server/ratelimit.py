"""The per-operator command rate limit, and the intake one.

Each operator may send `Limits.command_rate` commands a second, in bursts of up to
`Limits.command_burst`; past that a command is refused with `429` and a `Retry-After`
that says when the next one will be taken. A batch of commands counts each one, and is
taken whole or not at all. An intake login (a force's website) has its
own budget for online reports, `Limits.intake_rate` and `Limits.intake_burst`
(`intake_limit`). Queries are not limited here: the guard already bounds what any one
address can cost.
"""

from __future__ import annotations

from fastapi.responses import Response

from cadterm.protocol.domain import Operator
from cadterm.protocol.problems import Problem, ProblemCode

from .config import Limits
from .guard import TokenBucket, retry_after
from .responses import problem_response

__all__ = ["CommandRateLimit", "intake_limit"]


class CommandRateLimit:
    """A token bucket per operator for `POST /v1/commands` (or, named, another route)."""

    def __init__(
        self,
        limits: Limits,
        *,
        rate: float | None = None,
        burst: int | None = None,
        what: str = "commands",
    ) -> None:
        self.rate = limits.command_rate if rate is None else rate
        self.what = what
        self._buckets = TokenBucket(self.rate, limits.command_burst if burst is None else burst)

    def refusal(self, operator: Operator, count: int = 1) -> Response | None:
        """Take `count` commands from `operator`'s bucket: None if allowed, else the 429.

        A batch of more commands than a burst holds could never be taken, so it is
        refused as such (422), not told to wait.
        """
        if count > self._buckets.burst:
            return problem_response(
                Problem.of(
                    ProblemCode.BATCH_OVER_BURST,
                    f"a batch of {count} {self.what} is more than the "
                    f"{self._buckets.burst} one operator may send at once; "
                    "send it as smaller batches",
                    field="commands",
                )
            )
        wait = self._buckets.take(operator.id, count)
        if not wait:
            return None
        seconds = retry_after(wait)  # one figure for the header and the words
        return problem_response(
            Problem.of(
                ProblemCode.RATE_LIMITED,
                f"more than {self.rate:g} {self.what} a second from "
                f"{operator.id}; retry in {seconds} s",
            ),
            headers={"Retry-After": str(seconds)},
        )


def intake_limit(limits: Limits) -> CommandRateLimit:
    """The bucket per intake login for `POST /v1/intake/reports`."""
    return CommandRateLimit(
        limits, rate=limits.intake_rate, burst=limits.intake_burst, what="reports"
    )
