"""How often the boards may be redrawn: as often as the terminal's link takes output.

Over a thin SSH link the console must keep up by sending less, never by falling behind:
a backlog of frames waiting in sshd, in TCP buffers and on the wire delays everything
behind it, key echo included. Whether writes block says nothing here: sshd takes
output from the pty as long as its channel window (2 MB by default) has room, so the
console would only feel the link after minutes of backlog.

So the console asks the terminal itself. After a frame it sends a cursor position
request (``ESC [ 6 n``, which every terminal since the VT100 answers); the answer comes
back only once the terminal has read everything written before it. Its round trip is
the time output takes to reach the operator's screen, backlog included; less the
shortest round trip seen (the link's own latency) it is how long output queues. While
answers come back without queueing the boards are redrawn as often as they change (at
most once a frame); when they come back slowly (or not yet) the interval between board
redraws is doubled, up to `SLOWEST`, so each frame carries more changes and there are
fewer of them; as the link recovers it halves again.

A slow answer to a large write also says how many bytes a second the link carries
(`speed`); the driver then sends a `window` of output at a time, a tenth of a second's
worth, and the next when the terminal has answered for the last. Key echo is never
paced: the command line redraws at once, and its row goes even while an answer is
awaited, so it waits behind at most one window of a board redraw.

A terminal that never answers (none seen within `GIVE_UP` seconds of the first request)
is not asked again, and its boards are redrawn at full pace.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

__all__ = ["OutputPace"]

_log = logging.getLogger("cadterm.console")


class OutputPace:
    """Board redraw interval and output window, from the round trips of terminal requests.

    The driver calls `wrote` for each write, `request_due` (or `request_now`, while
    output is owed) after it (True: append a request), `answered` when a cursor
    position report arrives (from its input thread), and sends `window` bytes at a
    time; the app waits `pause` between board redraws.
    """

    FASTEST = 1 / 60  #: seconds between board redraws on a link that keeps up
    SLOWEST = 2.0  #: never longer: the picture may lag the backend by this much at most
    SLOW = 0.15  #: output queued longer than this (seconds): the link is behind
    FAST = 0.05  #: queued less than this: the link has room again
    LATENCY = 0.3  #: the most of a round trip ever taken as the link's own latency
    EVERY = 0.25  #: seconds between requests (each costs 4 bytes out, ~8 back)
    GIVE_UP = 10.0  #: a terminal silent this long after its first request never answers
    LOST = 10.0  #: an answer this late is taken as lost, and a new request may go
    RECHECK = 0.05  #: seconds between looks at the interval while the boards wait
    PIECE = 256  #: the smallest piece of output sent at a time (bytes)
    ECHO_WAIT = 0.1  #: seconds of output sent at a time: what a key's echo may wait

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, *, slowest: float | None = None
    ) -> None:
        if slowest is not None:
            self.SLOWEST = slowest
        self._clock = clock
        self._lock = threading.Lock()
        self._interval = self.FASTEST
        self._asked_at: float | None = None  # the request awaiting its answer
        self._answered_at: float | None = None
        self._first_asked: float | None = None
        self._slowed_for: float | None = None  # the request already counted as late
        self._shortest: float | None = None  # the link's own latency, as seen
        self.answers = 0  #: answers received so far
        self.round_trip: float | None = None  #: the last round trip, in seconds
        self.silent = False  #: the terminal does not answer: pacing is off
        self.speed: float | None = None  #: bytes a second the link was seen to take
        self._since_answer = 0  # bytes written since the last answer
        self._asked_bytes = 0  # bytes ahead of the request awaiting its answer

    @property
    def interval(self) -> float:
        """Seconds the app should leave between board redraws now."""
        with self._lock:
            now = self._clock()
            asked = self._asked_at
            late = asked is not None and now - asked - self._latency() > self.SLOW
            if late and asked != self._slowed_for:
                # An answer this late already says the link is behind: act now.
                self._slowed_for = asked
                self._slower(now - asked)
            return self._interval

    async def pause(self, least: float, *, since: float | None = None) -> None:
        """Wait at least `least` seconds, and until `interval` has passed since `since`
        (a `time.monotonic()` reading; default: the call).

        The interval is read again as it goes: when the link recovers, the boards
        catch up at once rather than at the end of a long wait.
        """
        started = time.monotonic() if since is None else since
        await asyncio.sleep(least)
        # Polled, not awaited on an event: the answers come in on the driver's input
        # thread, where an asyncio event cannot be set; a look every 50 ms costs nothing.
        while (left := self.interval - (time.monotonic() - started)) > 0:  # noqa: ASYNC110
            await asyncio.sleep(min(left, self.RECHECK))

    @property
    def window(self) -> int | None:
        """Bytes to send at a time: `ECHO_WAIT` seconds of the link's speed (at least
        `PIECE`), so a key typed now waits behind no more; None: not known yet."""
        if self.speed is None:
            return None
        return max(self.PIECE, int(self.speed * self.ECHO_WAIT))

    def wrote(self, size: int) -> None:
        """`size` bytes went to the terminal (call before asking for a request)."""
        with self._lock:
            self._since_answer += size

    @property
    def behind(self) -> bool:
        """Whether output is queueing now: then it goes out a piece at a time."""
        return self.interval > self.FASTEST

    @property
    def awaiting(self) -> bool:
        """Whether a request is out and its answer not yet back (nor given up)."""
        with self._lock:
            asked = self._asked_at
            return asked is not None and self._clock() - asked < self.LOST

    def request_now(self) -> bool:
        """Like `request_due`, but without waiting `EVERY` since the last answer: while
        output goes a piece at a time, each piece's answer lets the next one go."""
        with self._lock:
            now = self._clock()
            if self.silent or (self._asked_at is not None and now - self._asked_at < self.LOST):
                return False
            self._asked_at = now
            self._asked_bytes, self._since_answer = self._since_answer, 0
            return True

    def request_due(self) -> bool:
        """Whether to send a request now (after a frame); if so, it counts as sent."""
        with self._lock:
            now = self._clock()
            if self.silent:
                return False
            if self._asked_at is not None:
                if self.answers == 0 and now - self._asked_at > self.GIVE_UP:
                    self.silent = True
                    self._interval, self._asked_at = self.FASTEST, None
                    return False
                if now - self._asked_at < self.LOST:
                    return False
            if self._answered_at is not None and now - self._answered_at < self.EVERY:
                return False
            self._asked_at = now
            self._asked_bytes, self._since_answer = self._since_answer, 0
            if self._first_asked is None:
                self._first_asked = now
            return True

    def answered(self) -> None:
        """A cursor position report arrived: the terminal has read up to the request."""
        with self._lock:
            if self._asked_at is None or self.silent:
                return  # a report nobody asked for (or one given up for lost)
            now = self._clock()
            trip = now - self._asked_at
            late = self._asked_at == self._slowed_for
            self._asked_at, self._answered_at = None, now
            self.answers += 1
            self.round_trip = trip
            self._shortest = trip if self._shortest is None else min(self._shortest, trip)
            queued = trip - self._latency()
            if queued > self.FAST / 2 and self._asked_bytes >= self.PIECE:
                # The bytes ahead of the request took the round trip: what the link
                # carries a second (a little less, counting its latency in).
                sample = self._asked_bytes / trip
                self.speed = sample if self.speed is None else (self.speed + sample) / 2
            elif self.speed is not None and self._asked_bytes >= (self.window or 0):
                # A full window came back without queueing: the link may take more.
                self.speed *= 1.1
            if queued > self.SLOW:
                if late:  # already doubled while it was awaited: only never below it
                    self._interval = min(self.SLOWEST, max(self._interval, trip))
                else:
                    self._slower(trip)
            elif queued < self.FAST and self._interval > self.FASTEST:
                self._interval = max(self.FASTEST, self._interval / 2)
                if self._interval == self.FASTEST:
                    _log.info("output keeps up again: boards redrawn as they change")

    def _latency(self) -> float:
        # The shortest round trip seen, but never more than a long link's: a link that
        # was already behind at its first answer must not set that as its normal.
        return min(self._shortest or 0.0, self.LATENCY)

    def _slower(self, trip: float) -> None:
        # At least the round trip itself: a frame more often than output takes to
        # arrive only adds to the queue.
        if self._interval == self.FASTEST:
            # Said once as pacing starts (and once as it ends): a log an engineer reads
            # after a shift, not a line a second.
            _log.info("output is queueing (%.2f s to the terminal): boards paced", trip)
        self._interval = min(self.SLOWEST, max(self._interval * 2, trip))
