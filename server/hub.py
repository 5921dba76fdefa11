"""The stream hub: fans each new event out to every live subscriber.

Publishing never waits for a subscriber. Each has a bounded queue of frames; when a
subscriber's queue is full it has fallen behind, so the hub drops it and marks it
`overflowed`, and its connection is closed with `CloseCode.RESUME` so the client resumes
from the last event it applied. One slow console therefore costs the others nothing.
Each frame is serialised once, however many subscribers receive it, and so is each
picture a subscriber is sent as its snapshot (see `snapshot_frames`).
"""

from __future__ import annotations

import asyncio
from collections import deque

from cadterm.protocol.domain import Operator
from cadterm.protocol.fold import DispatchState

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
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._quiet_until = 0.0  # loop time at which the current wait times out

    def push(self, frame: str) -> bool:
        """Queue a frame; False when the subscriber already holds `limit` unsent frames."""
        if len(self.frames) >= self.limit:
            return False
        self.frames.append(frame)
        self.wake()
        return True

    def wake(self) -> None:
        """Rouse the sender: frames arrived, the client spoke, or it fell behind."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, timeout: float) -> bool:
        """Wait for frames, a wake-up or `timeout`; True when frames are waiting."""
        if self.frames or self.overflowed.is_set():
            return bool(self.frames)
        loop = asyncio.get_running_loop()
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
        dropping any that are full."""
        for subscriber in list(self._subscribers):
            if not subscriber.push(frame):
                self._subscribers.discard(subscriber)
                subscriber.overflowed.set()
                subscriber.wake()
                self.cut_off += 1
