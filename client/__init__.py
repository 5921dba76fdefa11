"""The cadterm client: a live, self-healing copy of the dispatch picture, and commands.

Works without any UI. `DispatchClient` is the entry point; errors to catch are in
`cadterm.client.errors`.
"""

from .backoff import Backoff
from .client import DispatchClient, Issued
from .commands import Answer, CommandSender, new_key
from .errors import (
    BackendUnavailable,
    ClientError,
    CommandConflict,
    CommandError,
    CommandRejected,
    InvalidCommand,
    JournalError,
    NotAuthorised,
    RateLimited,
    StreamStopped,
)
from .journal import Journal, JournalEntry, JournalStatus
from .pending import Pending
from .store import LocalStore
from .stream import LinkState, LinkStatus, Subscription

__all__ = [
    "Answer",
    "BackendUnavailable",
    "Backoff",
    "ClientError",
    "CommandConflict",
    "CommandError",
    "CommandRejected",
    "CommandSender",
    "DispatchClient",
    "InvalidCommand",
    "Issued",
    "Journal",
    "JournalEntry",
    "JournalError",
    "JournalStatus",
    "LinkState",
    "LinkStatus",
    "LocalStore",
    "NotAuthorised",
    "Pending",
    "RateLimited",
    "StreamStopped",
    "Subscription",
    "new_key",
]
