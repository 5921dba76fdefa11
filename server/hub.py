"""The stream hub: fans each new event out to every live subscriber.

Publishing never waits for a subscriber. Each has a bounded queue of frames; when a
subscriber's queue is full it has fallen behind, so the hub drops it and marks it
`overflowed`, and its connection is closed with `CloseCode.RESUME` so the client resumes
from the last event it applied. One slow console therefore costs the others nothing.
Each frame is serialised once, however many subscribers receive it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from cadterm.protocol.domain import Operator

__all__ = ["Hub", "Subscriber"]


@dataclass(eq=False)
class Subscriber:
    """One live stream: the frames waiting to be sent to it."""

    operator: Operator
    queue: asyncio.Queue[str]
    overflowed: asyncio.Event = field(default_factory=asyncio.Event)


class Hub:
    """The set of live subscribers and the fan-out to them."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._subscribers: set[Subscriber] = set()
        self.cut_off = 0  # subscribers dropped for falling behind, for health reporting

    def __len__(self) -> int:
        return len(self._subscribers)

    def subscribe(self, operator: Operator) -> Subscriber:
        """Register a subscriber; every frame published from now on is queued for it."""
        subscriber = Subscriber(operator, asyncio.Queue(self.queue_size))
        self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stop queueing frames for `subscriber`."""
        self._subscribers.discard(subscriber)

    def publish(self, frame: str) -> None:
        """Queue one serialised frame for every subscriber, dropping any that are full."""
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(frame)
            except asyncio.QueueFull:
                self._subscribers.discard(subscriber)
                subscriber.overflowed.set()
                self.cut_off += 1
