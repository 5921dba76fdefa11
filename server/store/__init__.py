"""Where the server keeps its events: the `EventStore` interface and its SQLite store."""

from .base import Accepted, EventStore, SequenceConflict, StoredCommand, StoreError
from .sqlite import SQLiteEventStore

__all__ = [
    "Accepted",
    "EventStore",
    "SQLiteEventStore",
    "SequenceConflict",
    "StoreError",
    "StoredCommand",
]
