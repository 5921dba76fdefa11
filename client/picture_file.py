"""The last picture a console saw, kept on disk for when no backend answers at all.

A console started while CAD is down has nothing to show unless it kept what it last
knew. This keeps it in two files beside the journal, private to the user (0600):

    picture.json     the picture at some seq, rewritten now and then (atomically)
    picture.events   every event applied after it, one JSON line each, appended

Rewriting the whole picture on every event would cost the console more than the event
itself, so events are appended (a line each, written a second at a time off the event
loop) and the picture is rewritten after a snapshot, every `rewrite_events` events or
`rewrite_seconds`, and when the client closes. A crash loses at most the last second of
lines; a torn last line is ignored. Reading it back folds the lines after the picture's
seq, so the two files always make one picture at one seq.

The picture on disk is only ever shown as what it is, the last known picture of a time
(the time the console last heard from a backend): the client asks the backend for a
fresh snapshot when it connects, and never resumes the stream from it, since it might
have been written against another backend's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from cadterm.protocol.events import EVENT_ADAPTER, Event
from cadterm.protocol.fold import DispatchState, InconsistentEvent, apply

__all__ = ["PictureFile", "SavedPicture"]

log = logging.getLogger("cadterm.client")

_FORMAT = 1


@dataclass(frozen=True)
class SavedPicture:
    """A picture read back from disk, and how old it is."""

    state: DispatchState
    heard_at: datetime  # when the console last heard from a backend (UTC)
    backend: str  # the backend it was heard from


def _private_open(path: Path, flags: int) -> int:
    return os.open(path, flags | os.O_CLOEXEC, 0o600)


class PictureFile:
    """Keeps one client's picture on disk and reads it back; see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        rewrite_events: int = 2000,
        rewrite_seconds: float = 300.0,
        flush_seconds: float = 1.0,
    ) -> None:
        self.path = Path(path)
        self.events_path = self.path.with_suffix(".events")
        self.rewrite_events = rewrite_events
        self.rewrite_seconds = rewrite_seconds
        self.flush_seconds = flush_seconds
        self.backend = ""
        self._lines: list[str] = []
        self._since_rewrite = 0
        self._rewrite_due = False
        self._state: DispatchState | None = None
        self._live = False
        self._heard_at = datetime.now(UTC)
        self._task: asyncio.Task[None] | None = None
        self.failure: str | None = None  # why the last write failed, in words

    # --- reading -----------------------------------------------------------------------

    def load(self) -> SavedPicture | None:
        """The picture on disk with the events after it folded in; None if there is none.

        A file that cannot be read is reported in the log and treated as absent: it is
        only a fallback, and nothing in it may stop the console.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("last known picture %s cannot be read: %s", self.path, exc)
            return None
        try:
            document = json.loads(text)
            if document.get("format") != _FORMAT:
                raise ValueError(f"format {document.get('format')!r}, expected {_FORMAT}")
            state = DispatchState.model_validate(document["state"])
            heard_at = datetime.fromisoformat(document["saved_at"])
            backend = str(document.get("backend", ""))
        except (ValueError, KeyError, TypeError, ValidationError) as exc:
            log.warning("last known picture %s is unreadable, ignored: %s", self.path, exc)
            return None
        heard_at = max(heard_at, self._events_heard_at(heard_at)).astimezone(UTC)
        self._fold_lines(state)
        # Until a backend is heard again, the picture on disk stays "of" that time.
        self._heard_at, self.backend = heard_at, backend
        return SavedPicture(state, heard_at, backend)

    def _events_heard_at(self, default: datetime) -> datetime:
        try:
            return datetime.fromtimestamp(self.events_path.stat().st_mtime, UTC)
        except OSError:
            return default

    def _fold_lines(self, state: DispatchState) -> None:
        try:
            with self.events_path.open(encoding="utf-8") as lines:
                for number, line in enumerate(lines, 1):
                    try:
                        event = EVENT_ADAPTER.validate_json(line)
                    except ValidationError:
                        # A torn last line (the console died mid-write) ends the file.
                        log.info("last known picture: line %d of events ignored", number)
                        return
                    if event.seq <= state.seq:
                        continue  # written before the picture was rewritten
                    if event.seq != state.seq + 1:
                        log.warning("last known picture: gap before seq %d", event.seq)
                        return
                    try:
                        apply(state, event)
                    except InconsistentEvent as exc:
                        log.warning("last known picture: event %d ignored: %s", event.seq, exc)
                        return
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("last known picture events %s cannot be read: %s", self.events_path, exc)

    # --- keeping it --------------------------------------------------------------------

    def snapshot_loaded(self, state: DispatchState) -> None:
        """A new picture came from the backend: write it whole at the next flush."""
        self._state = state
        self._rewrite_due = True
        self._lines.clear()
        self._heard_at = datetime.now(UTC)

    def event_applied(self, event: Event, state: DispatchState) -> None:
        """An event was folded into `state`: append it at the next flush."""
        self._state = state
        self._lines.append(event.model_dump_json())
        self._since_rewrite += 1
        self._heard_at = datetime.now(UTC)
        if self._since_rewrite >= self.rewrite_events:
            self._rewrite_due = True

    def set_live(self, live: bool, backend: str) -> None:
        """Whether a backend is being heard now (its time is what the picture is 'of')."""
        self._live = live
        if backend:
            self.backend = backend

    def start(self) -> None:
        """Begin writing in the background."""
        if self._task is None:
            self._task = asyncio.create_task(self._keep(), name="cadterm-picture-file")

    async def close(self) -> None:
        """Stop, writing the picture whole one last time."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._state is not None:
            self._rewrite_due = True
            await self._flush()

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        rewritten = loop.time()
        while True:
            await asyncio.sleep(self.flush_seconds)
            if self._state is not None and loop.time() - rewritten >= self.rewrite_seconds:
                self._rewrite_due = True
            if self._rewrite_due:
                rewritten = loop.time()
            await self._flush()

    async def _flush(self) -> None:
        if self._live:
            self._heard_at = datetime.now(UTC)
        heard = self._heard_at
        if self._rewrite_due and self._state is not None:
            # Serialised here, on the loop, where the picture cannot change under it;
            # written in a thread.
            body = self._state.model_dump_json()
            self._rewrite_due, self._since_rewrite = False, 0
            self._lines.clear()
            await self._write(self._rewrite, body, heard, self.backend)
        elif self._lines:
            lines, self._lines = self._lines, []
            await self._write(self._append, lines, heard)
        elif self._live and self._state is not None:
            # Nothing new, but heard from the backend: the picture is still of now.
            await self._write(self._stamp, heard)

    async def _write(self, fn, *args) -> None:
        try:
            await asyncio.to_thread(fn, *args)
        except OSError as exc:
            if self.failure is None:
                log.warning("cannot keep the last known picture in %s: %s", self.path, exc)
            self.failure = f"cannot write {self.path}: {exc.strerror or exc}"
        else:
            if self.failure is not None:
                log.warning("last known picture written again to %s", self.path)
            self.failure = None

    def _rewrite(self, body: str, heard_at: datetime, backend: str) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        fd = _private_open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(
                f'{{"format":{_FORMAT},"saved_at":{json.dumps(heard_at.isoformat())},'
                f'"backend":{json.dumps(backend)},"state":{body}}}'
            )
        os.replace(partial, self.path)
        # The lines before the new picture are in it now (a crash between the two steps
        # leaves lines at or before its seq, which reading skips).
        os.close(_private_open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC))
        self._stamp(heard_at)

    def _append(self, lines: list[str], heard_at: datetime) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = _private_open(self.events_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        self._stamp(heard_at)

    def _stamp(self, heard_at: datetime) -> None:
        """The events file's time is when a backend was last heard from."""
        os.close(_private_open(self.events_path, os.O_WRONLY | os.O_CREAT))
        moment = heard_at.timestamp()
        os.utime(self.events_path, (moment, moment))
