"""The hub writes new events straight to idle subscribers' connections, in order and in
the batches their senders would make, and hands anything a connection will not take at
once back to the sender, never to the publisher.

Hub-level tests with a recording connection: no sockets, no sleeps. The streams' own
tests (test_stream.py, test_event_batches.py) run the same path over real connections.
"""

from __future__ import annotations

import asyncio
import json

from test_event_batches import body, seqs_of

from cadterm.protocol.domain import Operator, Role
from cadterm.server.event_frames import event_frame
from cadterm.server.hub import Hub, Subscriber

OPERATOR = Operator(id="disp1", name="Dispatcher", role=Role.DISPATCHER)
TIMEOUT = 5.0


class Connection:
    """Takes frames while `open`; with `fault`, raises instead."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.open = True
        self.fault = False

    def send_now(self, text: str) -> bool:
        if self.fault:
            raise RuntimeError("transport gone")
        if not self.open:
            return False
        self.sent.append(text)
        return True


def live(hub: Hub, batch: int = 64) -> tuple[Subscriber, Connection]:
    subscriber = hub.subscribe(OPERATOR, batch)
    connection = Connection()
    subscriber.direct = connection.send_now
    subscriber.frame_bytes = 256 * 1024
    return subscriber, connection


async def parked(subscriber: Subscriber) -> asyncio.Task[bool]:
    """The sender, waiting for frames as `_pump` does between sends."""
    waiting = asyncio.create_task(subscriber.wait(60.0))
    for _ in range(100):
        if subscriber._waiter is not None:
            return waiting
        await asyncio.sleep(0)
    raise AssertionError("the sender never parked")


async def turn() -> None:
    """Let the callbacks scheduled in this turn of the loop run."""
    await asyncio.sleep(0)


async def test_events_published_together_go_to_an_idle_subscriber_in_one_frame() -> None:
    hub = Hub(queue_size=100)
    subscriber, connection = live(hub)
    sender = await parked(subscriber)
    for seq in range(1, 6):
        hub.publish(event_frame(body(seq)))
    assert connection.sent == []  # flushed once the whole commit is queued, not per event
    await turn()
    assert [seqs_of(frame) for frame in connection.sent] == [[1, 2, 3, 4, 5]]
    assert json.loads(connection.sent[0])["type"] == "events"
    assert not subscriber.frames and not sender.done()  # no task was woken for it
    hub.publish(event_frame(body(6)))
    await turn()
    assert [seqs_of(frame) for frame in connection.sent] == [[1, 2, 3, 4, 5], [6]]
    sender.cancel()


async def test_a_connection_that_will_not_take_a_frame_leaves_it_to_the_sender() -> None:
    hub = Hub(queue_size=100)
    subscriber, connection = live(hub)
    sender = await parked(subscriber)
    connection.open = False  # its transport paused: the sender waits for it to drain
    for seq in range(1, 4):
        hub.publish(event_frame(body(seq)))
    await turn()
    async with asyncio.timeout(TIMEOUT):
        assert await sender  # woken, with every frame still queued, in order
    assert connection.sent == []
    assert [seqs_of(frame) for frame in subscriber.frames] == [[1], [2], [3]]


async def test_a_failing_connection_never_reaches_the_publisher() -> None:
    hub = Hub(queue_size=100)
    subscriber, connection = live(hub)
    other, healthy = live(hub)
    sender, other_sender = await parked(subscriber), await parked(other)
    connection.fault = True
    hub.publish(event_frame(body(1)))  # a command's path: it must not raise
    await turn()
    async with asyncio.timeout(TIMEOUT):
        assert await sender  # the sender meets the fault itself and closes the stream
    assert len(subscriber.frames) == 1
    assert [seqs_of(frame) for frame in healthy.sent] == [[1]]
    other_sender.cancel()


async def test_a_busy_sender_is_not_overtaken() -> None:
    """While the sender is sending a frame (not waiting), what is published waits for it:
    a frame written by the hub could pass the one the sender is writing."""
    hub = Hub(queue_size=100)
    subscriber, connection = live(hub)
    assert subscriber._waiter is None  # sending, not waiting
    for seq in range(1, 3):
        hub.publish(event_frame(body(seq)))
    await turn()
    assert connection.sent == []
    assert [seqs_of(frame) for frame in subscriber.frames] == [[1], [2]]
    async with asyncio.timeout(TIMEOUT):
        assert await subscriber.wait(60.0)  # its next wait finds them at once


async def test_a_subscriber_still_catching_up_is_woken_as_before() -> None:
    hub = Hub(queue_size=100)
    subscriber = hub.subscribe(OPERATOR, 64)  # no `direct` until its stream is live
    sender = await parked(subscriber)
    hub.publish(event_frame(body(1)))
    async with asyncio.timeout(TIMEOUT):
        assert await sender
    assert len(subscriber.frames) == 1
