"""The link's rules, with no I/O: what each frame, close, silence or failure means.

`LinkRules` is a state machine in the manner of a sans-I/O protocol core. The adapter
(`cadterm.client.stream.Subscription`) connects, feeds it what happened and carries out
what it answers; the rules themselves never touch a socket or a clock, so they are
tested with plain values in microseconds.

Inputs, each returning the effects to carry out in order:

* `opened(now)`: a connection was made; answers with the `Send` of the subscribe frame.
* `received(raw, now)`: a text frame arrived.
* `tick(now)`: time passed; silence past the limit means the link is dead.
* `closed(code, reason)`: the socket closed (``code`` None: no close frame).
* `refused(status, detail)`: the handshake got an HTTP answer instead of a socket.

Effects:

* `Send(text)`: send this frame.
* `Applied()`: the picture changed (an event or a whole snapshot was applied).
* `Live()`: the replay is done; the picture is current.
* `Resume(reason)`: drop this connection and resume from the last applied seq.
* `Stop(reason)`: stop for good; retrying can only fail the same way.

The rules: every event's seq must be exactly one past the last applied (a gap or a
duplicate resumes, and the event is not applied; an ``events`` frame is taken as its
events one by one); ``caught_up`` must name the seq the
picture is at; a heartbeat behind the picture resumes, and two heartbeats in a row ahead
of it with no event between them mean an event was lost; no frame or heartbeat for three
heartbeat intervals resumes; a close with `RESUME` or any transient code resumes; the
close codes and handshake statuses that retrying cannot fix, an ``error`` frame, and a
frame this client cannot read stop. A snapshot in parts is gathered until its last
part and only then replaces the picture (one `Applied`); a part out of order, of
another seq, or any other frame before the last part resumes, and so does a cut between
parts, leaving the picture as it was before the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from cadterm.protocol.events import Event
from cadterm.protocol.fold import DispatchState, FoldError
from cadterm.protocol.frames import (
    HEARTBEAT_INTERVAL,
    SERVER_FRAME_ADAPTER,
    CaughtUp,
    CloseCode,
    ErrorFrame,
    EventBatch,
    EventFrame,
    Heartbeat,
    Snapshot,
    SnapshotPart,
    Subscribe,
    read_events,
)

from .store import LocalStore

__all__ = [
    "BATCH_EVENTS",
    "FATAL_CLOSE",
    "Applied",
    "Effect",
    "LinkRules",
    "Live",
    "Resume",
    "Send",
    "Stop",
]

#: Close codes after which reconnecting can only fail the same way again.
FATAL_CLOSE = {
    CloseCode.BAD_FRAME: "the server rejected a frame from this client as malformed",
    CloseCode.UNEXPECTED_FRAME: "the server rejected a frame sent at the wrong time",
    CloseCode.MESSAGE_TOO_BIG: "a frame from this client exceeded the server's size limit",
}
#: The most events this client asks to be sent in one ``events`` frame.
BATCH_EVENTS = 256
#: Handshake answers that mean "this client may not, or cannot, subscribe".
_FATAL_STATUS = frozenset({400, 401, 403})


@dataclass(frozen=True)
class Send:
    """Send `text` on the socket."""

    text: str


@dataclass(frozen=True)
class Applied:
    """The picture changed."""


@dataclass(frozen=True)
class Live:
    """The picture is current: what follows is live."""


@dataclass(frozen=True)
class Resume:
    """Drop the connection and resume from the last applied seq, saying why.

    `elsewhere`: the backend itself is suspect (silent, going away, restarting), so a
    link that was live resumes on the next backend of its list rather than this one.
    """

    reason: str
    elsewhere: bool = False


@dataclass(frozen=True)
class Stop:
    """Stop for good, saying why."""

    reason: str


Effect = Send | Applied | Live | Resume | Stop

# One for every frame that changed the picture: it holds nothing, and making one per
# frame was a measurable share of a live client's work per event.
_APPLIED = Applied()


class LinkRules:
    """Judges one connection at a time for the `store` it keeps in step.

    `silence_after` overrides "three heartbeat intervals" (the interval is learnt from
    the server's heartbeats). `batch` is the most events asked for in one ``events``
    frame (None: one frame per event). Times are seconds on any monotonic clock the
    adapter uses.
    """

    def __init__(
        self,
        store: LocalStore,
        *,
        silence_after: float | None = None,
        batch: int | None = BATCH_EVENTS,
    ) -> None:
        self.store = store
        self.batch = batch
        self._silence_after = silence_after
        self.heartbeat_interval = HEARTBEAT_INTERVAL
        self._last_frame = 0.0
        self._behind_at: int | None = None  # our seq when a heartbeat last said we lag
        self._parts: list[SnapshotPart] = []  # a snapshot being gathered, in order
        self.live = False

    @property
    def silence_limit(self) -> float:
        """Seconds without a frame after which the connection counts as dead."""
        return self._silence_after or 3 * self.heartbeat_interval

    def deadline(self) -> float:
        """When `tick` must next be called to notice silence in time."""
        return self._last_frame + self.silence_limit

    # --- inputs --------------------------------------------------------------------------

    def opened(self, now: float) -> list[Effect]:
        """A new connection: subscribe after the last applied seq (or from a snapshot)."""
        self._last_frame = now
        self._behind_at = None
        self._parts = []  # a snapshot cut off mid-way is started again from scratch
        self.live = False
        since = self.store.seq if self.store.synced else None
        subscribe = Subscribe(since=since, batch=self.batch)
        return [Send(subscribe.model_dump_json(exclude_none=True))]

    def tick(self, now: float) -> list[Effect]:
        """Time passed: silence past the limit means the link is dead."""
        if now - self._last_frame >= self.silence_limit:
            return [Resume(f"no frame or heartbeat for {self.silence_limit:g} s", elsewhere=True)]
        return []

    def refused(self, status: int, detail: str) -> list[Effect]:
        """The handshake was answered with HTTP `status` instead of a stream."""
        if status in _FATAL_STATUS:
            return [Stop(f"backend refused the connection ({status}): {detail}")]
        return [Resume(f"backend answered {status}: {detail}")]

    def closed(self, code: int | None, reason: str = "") -> list[Effect]:
        """The socket closed; `code` is None when no close frame came."""
        self.live = False
        self._parts = []
        if code is None:
            return [Resume("connection lost without a close frame")]
        if code in FATAL_CLOSE:
            return [Stop(f"{FATAL_CLOSE[CloseCode(code)]}: {reason}")]
        if code == CloseCode.RESUME:
            return [Resume(f"server cut the stream off: {reason or 'fell behind'}")]
        leaving = code in (CloseCode.GOING_AWAY, CloseCode.SERVICE_RESTART)
        return [Resume(f"server closed the stream ({code} {reason})".strip(), elsewhere=leaving)]

    def received(self, raw: str | bytes, now: float) -> list[Effect]:
        """A frame arrived: check it against the picture and apply it."""
        self._last_frame = now
        events = read_events(raw)
        if events is not None:
            if self._parts:
                return self._cut_parts("event")
            return self._events(events)
        try:
            frame = SERVER_FRAME_ADAPTER.validate_json(raw)
        except ValidationError as exc:
            # A frame this client cannot read means the versions disagree: resuming
            # would read it again, so stop and say so.
            return [Stop(f"unreadable frame from the server: {_first_error(exc)}")]
        if isinstance(frame, SnapshotPart):
            return self._snapshot_part(frame)
        if self._parts:
            return self._cut_parts(frame.type)
        if isinstance(frame, EventFrame):
            return self._events([frame.event])
        if isinstance(frame, EventBatch):
            return self._events(frame.events)
        if isinstance(frame, Heartbeat):
            return self._heartbeat(frame)
        if isinstance(frame, Snapshot):
            self.store.load_snapshot(frame.state)
            return [_APPLIED]
        if isinstance(frame, CaughtUp):
            if frame.seq != self.store.seq:
                return [Resume(f"caught up at {frame.seq} but holding {self.store.seq}")]
            self.live = True
            return [Live()]
        assert isinstance(frame, ErrorFrame)
        return [Stop(f"server reported {frame.code}: {frame.detail}")]

    def _cut_parts(self, kind: str) -> list[Effect]:
        gathered = len(self._parts)
        self._parts = []
        return [Resume(f"{kind} frame after part {gathered} of a snapshot in parts")]

    def _events(self, events: list[Event]) -> list[Effect]:
        # Each event of an ``events`` frame is applied as if it had come in a frame of
        # its own: the first one refused (a gap, a duplicate, a fold error) resumes,
        # and neither it nor any after it is applied; those before it stay applied.
        store = self.store
        apply = store.apply
        start = store.seq
        try:
            for event in events:
                apply(event)
        except FoldError as exc:
            # Each event applied moved the picture's seq on by exactly one.
            resume = Resume(str(exc))
            return [_APPLIED, resume] if store.seq != start else [resume]
        return [_APPLIED]

    def _snapshot_part(self, frame: SnapshotPart) -> list[Effect]:
        parts = self._parts
        first = parts[0] if parts else frame
        if (
            frame.part != len(parts) + 1
            or frame.parts != first.parts
            or frame.seq != first.seq
            or frame.state.seq != frame.seq
        ):
            self._parts = []
            return [
                Resume(
                    f"snapshot part {frame.part} of {frame.parts} at seq {frame.seq} "
                    f"does not follow part {len(parts)} of {first.parts} at seq {first.seq}"
                )
            ]
        parts.append(frame)
        if frame.part < frame.parts:
            return []
        self._parts = []
        self.store.load_snapshot(_joined(parts))
        return [_APPLIED]

    def _heartbeat(self, frame: Heartbeat) -> list[Effect]:
        self.heartbeat_interval = frame.interval
        seq = self.store.seq
        if frame.seq < seq:
            return [Resume(f"server head {frame.seq} is behind this client ({seq})")]
        # A heartbeat can overtake an event still queued for us, so one heartbeat ahead
        # proves nothing; two in a row ahead while we applied nothing in between mean an
        # event went missing on the way.
        behind = frame.seq > seq
        if behind and self._behind_at == seq:
            return [
                Resume(
                    f"server head {frame.seq} is ahead of this client ({seq}) "
                    "and no event arrived between two heartbeats"
                )
            ]
        self._behind_at = seq if behind else None
        return []


def _joined(parts: list[SnapshotPart]) -> DispatchState:
    """One picture from the parts of a snapshot (each incident, unit and report is in one)."""
    last = parts[-1].state
    incidents = {}
    units = {}
    reports = {}
    for part in parts:
        incidents.update(part.state.incidents)
        units.update(part.state.units)
        reports.update(part.state.reports)
    # Every part was validated as it was read: join them without validating again.
    return DispatchState.model_construct(
        seq=last.seq,
        incidents=incidents,
        units=units,
        log_day=last.log_day,
        log_number=last.log_number,
        reserved=last.reserved,
        reports=reports,
    )


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    # A frame unreadable as a whole (not JSON, an unknown type) has no field to name.
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else err["msg"]
