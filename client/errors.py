"""What can go wrong when talking to a dispatch backend, as a tree to catch from.

::

    ClientError                      anything the client raises on purpose
    ├── CommandError                 the server refused a command (has `.problem`)
    │   ├── CommandRejected          a dispatch rule said no (unknown callsign, closed, ...)
    │   │   └── CommandConflict      stale `expected_version`: `.current`, `.changes`
    │   ├── InvalidCommand           the command itself was malformed (422/400)
    │   ├── NotAuthorised            bad token (401) or role not allowed (403)
    │   └── RateLimited              too many commands; `.retry_after` seconds
    ├── BackendUnavailable           no backend answered; the command may be journalled
    ├── StreamStopped                the live stream stopped for a reason retrying can't fix
    └── JournalError                 the offline journal file cannot be used

`CommandError.problem` is the server's problem document as sent: `.code`, `.detail`
(what was wrong, in words an operator can act on) and `.field` (which field).
"""

from __future__ import annotations

from typing import Any

from cadterm.protocol.problems import Problem, ProblemCode

__all__ = [
    "BackendUnavailable",
    "ClientError",
    "CommandConflict",
    "CommandError",
    "CommandRejected",
    "InvalidCommand",
    "JournalError",
    "NotAuthorised",
    "RateLimited",
    "StreamStopped",
    "error_for_problem",
]


class ClientError(Exception):
    """Base of everything the client raises on purpose."""


class CommandError(ClientError):
    """The server refused a command; `problem` is its problem document."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem

    @property
    def code(self) -> ProblemCode:
        """The stable machine code, e.g. ``unknown_callsign``."""
        return self.problem.code

    @property
    def field(self) -> str | None:
        """The field at fault, when the server named one."""
        return self.problem.field

    @property
    def detail(self) -> str:
        """What was wrong, in the server's words."""
        return self.problem.detail


class CommandRejected(CommandError):
    """A dispatch rule refused the command (409 or 404): nothing was changed."""


class CommandConflict(CommandRejected):
    """The target moved on since the version the operator saw."""

    @property
    def current(self) -> dict[str, Any] | None:
        """The incident or unit as it is now."""
        return self.problem.current

    @property
    def changes(self) -> list[str]:
        """What changed since the expected version, oldest first."""
        return self.problem.changes or []


class InvalidCommand(CommandError):
    """The command was malformed: fix it before sending again."""


class NotAuthorised(CommandError):
    """The token is wrong (401) or the operator's role may not do this (403)."""


class RateLimited(CommandError):
    """The server is limiting this operator's command rate."""

    def __init__(self, problem: Problem, retry_after: float) -> None:
        super().__init__(problem)
        self.retry_after = retry_after


class BackendUnavailable(ClientError):
    """No backend could be reached (or each failed transiently) for this request."""


class StreamStopped(ClientError):
    """The live stream stopped and will not retry; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JournalError(ClientError):
    """The offline journal file cannot be opened or written."""


def error_for_problem(problem: Problem, retry_after: float = 1.0) -> CommandError:
    """The typed error for a problem document from the server."""
    if problem.code == ProblemCode.VERSION_CONFLICT:
        return CommandConflict(problem)
    if problem.status in (401, 403):
        return NotAuthorised(problem)
    if problem.status == 429:
        return RateLimited(problem, retry_after)
    if problem.status in (404, 409):
        return CommandRejected(problem)
    return InvalidCommand(problem)
