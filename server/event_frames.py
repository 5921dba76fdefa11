"""Event frames on the stream: one event per frame, or several in an ``events`` frame.

A subscriber that asked for batches at subscribe (see `cadterm.protocol.frames.Subscribe`)
is sent whatever has queued up for it, and its replay, in ``events`` frames of at most
its `batch` events and `limit` bytes of frame text; an event that alone would pass the
byte limit goes in an ``event`` frame of its own. Events are never reordered or split:
a batch is a run of consecutive frames from the queue, in order.

Frames are queued already serialised (once, for every subscriber); a batch is made by
joining the event bodies cut out of them, never by serialising an event again.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Iterable, Iterator

__all__ = ["batch_frames", "event_frame", "peek_frame", "take_frame"]

_EVENT_PREFIX = '{"type":"event","event":'
_CUT = len(_EVENT_PREFIX)
_BATCH_PREFIX = '{"type":"events","events":['
# Bytes an ``events`` frame adds around its bodies, besides one comma between each two.
_BATCH_ENVELOPE = len(_BATCH_PREFIX) + len("]}")


def event_frame(body: str) -> str:
    """The ``event`` frame carrying one serialised event."""
    return _EVENT_PREFIX + body + "}"


def _body(frame: str) -> str:
    # Every queued frame was made by `event_frame`.
    return frame[_CUT:-1]


def _size(text: str) -> int:
    # Bytes of UTF-8: a string of n characters takes n bytes when it is all ASCII.
    return len(text) if text.isascii() else len(text.encode())


def take_frame(frames: deque[str], batch: int, limit: int) -> str:
    """Pop the next frame to send from `frames` (not empty): the first ``event`` frame
    alone, or as many of the first frames as fit in one ``events`` frame."""
    frame, count = peek_frame(frames, batch, limit)
    for _ in range(count):
        frames.popleft()
    return frame


def peek_frame(frames: deque[str], batch: int, limit: int) -> tuple[str, int]:
    """The frame `take_frame` would pop from `frames` (not empty), and how many queued
    frames it carries, leaving `frames` as it is."""
    first = frames[0]
    if batch <= 1 or len(frames) == 1:
        return first, 1
    size = _size(first) - _CUT - 1 + _BATCH_ENVELOPE
    if size > limit:
        return first, 1
    bodies = [_body(first)]
    for frame in itertools.islice(frames, 1, batch):
        grow = _size(frame) - _CUT - 1 + 1  # its body and a comma
        if size + grow > limit:
            break
        size += grow
        bodies.append(_body(frame))
    if len(bodies) == 1:
        return first, 1
    return _BATCH_PREFIX + ",".join(bodies) + "]}", len(bodies)


def batch_frames(bodies: Iterable[str], batch: int, limit: int) -> Iterator[str]:
    """The frames carrying serialised events `bodies` in order, batched as `take_frame`."""
    run: list[str] = []
    size = _BATCH_ENVELOPE - 1
    for body in bodies:
        grow = _size(body) + 1
        if run and (len(run) >= batch or size + grow > limit):
            yield _flush(run)
            run = []
            size = _BATCH_ENVELOPE - 1
        run.append(body)
        size += grow
    if run:
        yield _flush(run)


def _flush(run: list[str]) -> str:
    if len(run) == 1:
        return event_frame(run[0])
    return _BATCH_PREFIX + ",".join(run) + "]}"
