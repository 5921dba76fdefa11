"""The stream hub: fans each new event out to every live subscriber.

Publishing never waits for a subscriber. Each has a bounded queue of frames; when a
subscriber's queue is full it has fallen behind, so the hub drops it and marks it
`overflowed`, and its connection is closed with `CloseCode.RESUME` so the client resumes
from the last event it applied. One slow console therefore costs the others nothing.
Each frame is serialised once, however many subscribers receive it, and so is each
picture a subscriber is sent as its snapshot (see `snapshot_frames`).

A live subscriber whose sender is idle is written to by the hub itself, once the events
published in a turn of the loop are all queued (`Subscriber.flush`): at hundreds of
subscribers and an event at a time, waking each sender's task was most of what a frame
cost above the socket write. A sender busy with a frame, or a connection that will not
take one at once, leaves the queue to the sender as before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from cadterm.protocol.domain import Operator
from cadterm.protocol.fold import DispatchState

from .event_frames import peek_frame
from .snapshot_parts import snapshot_frames

__all__ = ["Hub", "Subscriber"]


class Subscriber:
    """One live stream: the frames waiting to be sent to it.

    A plain deque and one waiter future that `push` (and anything else that needs the
    sender's attention) resolves: the sender costs no task and no `asyncio.wait` per
    frame, which at hundreds of subscribers is most of the fan-out's CPU. The heartbeat
    timeout is one timer that is moved on only when it fires, not a timer made and
    cancelled for every frame.
    """

    def __init__(self, operator: Operator, limit: int, batch: int = 1) -> None:
        self.operator = operator
        self.batch = batch  # the most events it takes in one frame (1: no batches)
        self.frames: deque[str] = deque()
        self.limit = limit
        self.overflowed = asyncio.Event()
        #: Writes a frame now if the connection takes it at once (False: it did not),
        #: and the most bytes of frame text it is sent at a time. Set by the sender once
        #: the stream is live, under cadterm's own server; None while it catches up.
        self.direct: Callable[[str], bool] | None = None
        self.frame_bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timeout = 0.0  # seconds of quiet the current wait allows
        self._quiet_until = 0.0  # loop time at which the current wait times out

    def push(self, frame: str) -> bool:
        """Queue a frame; False when the subscriber already holds `limit` unsent frames.

        The sender is woken for it, unless the hub is to `flush` it straight to the
        connection.
        """
        if len(self.frames) >= self.limit:
            return False
        self.frames.append(frame)
        if self.direct is None:
            self.wake()
        return True

    def flush(self) -> None:
        """Send what is queued straight to the connection while the sender waits idle:
        no task is woken for it. Anything the connection will not take at once (its
        transport paused, the stream closing) is left to the sender, woken for it; a
        sender busy with a frame sends what is queued after it, as always.

        Frames go in order and in the same batches as the sender would make, so an
        event is never sent ahead of one queued before it. The quiet spell that ends in
        a heartbeat starts again from the last frame sent.
        """
        waiter, direct, frames = self._waiter, self.direct, self.frames
        if waiter is None or waiter.done() or direct is None:
            return
        while frames:
            frame, count = peek_frame(frames, self.batch, self.frame_bytes)
            try:
                sent = direct(frame)
            except Exception:  # the sender meets it too, and closes the stream
                sent = False  # never raised into the publisher: that is a command's path
            if not sent:
                self.wake()
                return
            for _ in range(count):
                frames.popleft()
        if self._loop is not None:
            self._quiet_until = self._loop.time() + self._timeout

    def wake(self) -> None:
        """Rouse the sender: frames arrived, the client spoke, or it fell behind."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """Wait for frames, a wake-up or `timeout`; True when frames are waiting."""
        if self.frames or self.overflowed.is_set():
            return bool(self.frames)
        loop = self._loop = asyncio.get_running_loop()
        self._timeout = timeout
        self._quiet_until = loop.time() + timeout
        waiter = self._waiter = loop.create_future()
        if self._timer is None:
            self._timer = loop.call_at(self._quiet_until, self._time_up, loop)
        try:
            await waiter
        finally:
            self._waiter = None
        return bool(self.frames)

    def _time_up(self, loop: asyncio.AbstractEventLoop) -> None:
        # The timer was armed for an earlier wait: end the current one only if its own
        # timeout has come (to within a millisecond of the loop's clock), else move on.
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # sending: the next wait arms the timer again
        if loop.time() >= self._quiet_until - 0.001:
            waiter.set_result(None)
        else:
            self._timer = loop.call_at(self._quiet_until, self._time_up, loop)

    def close(self) -> None:
        """Drop the timer (the stream is over)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Hub:
    """The set of live subscribers and the fan-out to them."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self.cut_off = 0  # subscribers dropped for falling behind, for health reporting
        self._flush_due = False  # a flush of the subscribers is scheduled
        self._snapshot: tuple[tuple[int, str, int], list[str]] | None = None

    def snapshot_frames(self, state: DispatchState, reason: str, limit: int) -> list[str]:
        """The frames of the picture at `state.seq`, kept while the picture stays there.

        Consoles often connect together (a shift change, a restart): the second and
        later at the same seq are sent the same frames without serialising again.
        """
        key = (state.seq, reason, limit)
        cached = self._snapshot
        if cached is not None and cached[0] == key:
            return cached[1]
        frames = snapshot_frames(state, reason, limit)
        self._snapshot = (key, frames)
        return frames

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, operator: Operator, batch: int = 1) -> Subscriber:
        """Register a subscriber; every frame published from now on is queued for it.

        `batch` is the most events it takes in one frame (1: one frame per event).
        """
        subscriber = Subscriber(operator, self.queue_size, batch)
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop queueing frames for `subscriber`."""
        self._subscribers.discard(subscriber)
        subscriber.close()

    def publish(self, frame: str) -> None:
        """Queue one serialised ``event`` frame (see `event_frame`) for every subscriber,
        dropping any that are full.

        Subscribers that take frames straight from the hub (`Subscriber.flush`) are
        flushed once the events published in this turn of the loop are all queued
        (the events of one commit, say), so they still go in as few frames as each
        subscriber's batch size allows.
        """
        for subscriber in list(self._subscribers):
            if not subscriber.push(frame):
                self._subscribers.discard(subscriber)
                subscriber.overflowed.set()
                subscriber.wake()
                self.cut_off += 1
        if not self._flush_due:
            self._flush_due = True
            try:
                asyncio.get_running_loop().call_soon(self._flush)
            except RuntimeError:  # no loop (a test's own use): flush at once
                self._flush()

    def _flush(self) -> None:
        self._flush_due = False
        for subscriber in list(self._subscribers):
            subscriber.flush()
