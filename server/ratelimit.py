"""The per-operator command rate limit.

Each operator may send `Limits.command_rate` commands a second, in bursts of up to
`Limits.command_burst`; past that a command is refused with `429` and a `Retry-After`
that says when the next one will be taken. Queries are not limited here: the guard
already bounds what any one address can cost.
"""

from __future__ import annotations

from fastapi.responses import Response

from cadterm.protocol.domain import Operator
from cadterm.protocol.problems import Problem, ProblemCode

from .config import Limits
from .guard import TokenBucket, retry_after
from .responses import problem_response

__all__ = ["CommandRateLimit"]


class CommandRateLimit:
    """A token bucket per operator for `POST /v1/commands`."""

    def __init__(self, limits: Limits) -> None:
        self.rate = limits.command_rate
        self._buckets = TokenBucket(limits.command_rate, limits.command_burst)

    def refusal(self, operator: Operator) -> Response | None:
        """Take one command from `operator`'s bucket: None if allowed, else the 429."""
        wait = self._buckets.take(operator.id)
        if not wait:
            return None
        seconds = retry_after(wait)  # one figure for the header and the words
        return problem_response(
            Problem.of(
                ProblemCode.RATE_LIMITED,
                f"more than {self.rate:g} commands a second from "
                f"{operator.id}; retry in {seconds} s",
            ),
            headers={"Retry-After": str(seconds)},
        )
