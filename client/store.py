"""The local picture: the server's state as this client has seen it, plus a change feed.

Pure: frames in, state and changes out, no I/O. Every event goes through the protocol's
fold, so a client that has seen the same events holds exactly the server's state.
"""

from __future__ import annotations

from typing import Protocol

from cadterm.protocol.domain import Incident, Unit
from cadterm.protocol.events import Event
from cadterm.protocol.fold import Changes, DispatchState, apply, share_field_sets

__all__ = ["LocalStore", "PictureObserver"]


class PictureObserver(Protocol):
    """Told of every change to the picture (to keep a copy of it somewhere)."""

    def snapshot_loaded(self, state: DispatchState) -> None: ...

    def event_applied(self, event: Event, state: DispatchState) -> None: ...


class LocalStore:
    """The dispatch picture and what changed in it since the consumer last looked."""

    def __init__(self) -> None:
        self.state = DispatchState()
        self.synced = False  # True once a snapshot or replay has given a starting point
        self._dirty = Changes()
        self.observers: list[PictureObserver] = []

    @property
    def seq(self) -> int:
        """Seq of the last event applied."""
        return self.state.seq

    @property
    def incidents(self) -> dict[str, Incident]:
        """Incidents by reference."""
        return self.state.incidents

    @property
    def units(self) -> dict[str, Unit]:
        """Units by callsign."""
        return self.state.units

    def load_snapshot(self, state: DispatchState) -> None:
        """Replace the whole picture with a snapshot from the server.

        The changes say so with `Changes.replaced`, the one signal of a new picture.
        """
        touched = Changes(
            incidents=set(self.state.incidents) | set(state.incidents),
            units=set(self.state.units) | set(state.units),
            replaced=True,
        )
        share_field_sets(state)  # less for the garbage collector to walk while it is held
        self.state = state
        self.synced = True
        self._dirty.update(touched)
        for observer in self.observers:
            observer.snapshot_loaded(state)

    def apply(self, event: Event) -> Changes:
        """Fold one event. Raises `SequenceError` on a gap or a duplicate.

        Returns everything changed since the consumer last looked (this event included).
        """
        state = self.state
        # The fold checks the seq before it changes anything (a gap or a duplicate).
        apply(state, event, self._dirty)
        self.synced = True
        if self.observers:
            for observer in self.observers:
                observer.event_applied(event, state)
        return self._dirty

    def show_saved(self, state: DispatchState) -> None:
        """Show a picture read back from disk until the backend sends a real one.

        Not `synced`: the stream starts with a fresh snapshot, never resumes from it.
        """
        touched = Changes(
            incidents=set(self.state.incidents) | set(state.incidents),
            units=set(self.state.units) | set(state.units),
            replaced=True,
        )
        share_field_sets(state)
        self.state = state
        self._dirty.update(touched)

    def take_changes(self) -> Changes:
        """What changed since the last call (and clear it). Cheap when nothing did."""
        changes, self._dirty = self._dirty, Changes()
        return changes

    def peek_changes(self) -> Changes:
        """What changed since the last `take_changes`, without clearing it."""
        return self._dirty
