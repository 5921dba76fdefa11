"""Where the server keeps its events: the `EventStore` interface and its SQLite store."""

from .base import EventStore, SequenceConflict, StoredCommand, StoreError
from .sqlite import SQLiteEventStore

__all__ = ["EventStore", "SQLiteEventStore", "SequenceConflict", "StoreError", "StoredCommand"]
