"""The live subscription: connect, subscribe, fold, and recover from anything transient.

The connection moves through explicit states (`LinkState`): connecting, resyncing
(snapshot or replay in progress), live, reconnecting (since when, and why) and stopped
(and why). Every event's seq is checked; a gap, a duplicate, or silence longer than
three heartbeat intervals drops the connection and resumes from the last applied seq.
Transient failures (network, 5xx, server restart, being cut off for falling behind)
are retried with jittered exponential backoff across every backend URL in turn; those
that retrying cannot fix (bad token, wrong role, protocol mismatch, a frame the server
calls malformed) stop the stream with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
)

from cadterm.protocol.fold import FoldError
from cadterm.protocol.frames import (
    HEARTBEAT_INTERVAL,
    SERVER_FRAME_ADAPTER,
    SUBPROTOCOL,
    CaughtUp,
    CloseCode,
    ErrorFrame,
    EventFrame,
    Heartbeat,
    Snapshot,
    Subscribe,
)

from .store import LocalStore

__all__ = ["Backoff", "LinkState", "LinkStatus", "Subscription", "stream_url"]

log = logging.getLogger("cadterm.client")

# Close codes after which reconnecting can only fail the same way again.
_FATAL_CLOSE = {
    CloseCode.BAD_FRAME: "the server rejected a frame from this client as malformed",
    CloseCode.UNEXPECTED_FRAME: "the server rejected a frame sent at the wrong time",
    CloseCode.MESSAGE_TOO_BIG: "a frame from this client exceeded the server's size limit",
}


class LinkState(StrEnum):
    """Where the live connection is."""

    CONNECTING = "connecting"
    RESYNCING = "resyncing"
    LIVE = "live"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


@dataclass(frozen=True)
class LinkStatus:
    """The connection's state, since when, why, and how fresh the picture is."""

    state: LinkState
    since: datetime
    reason: str | None = None
    url: str | None = None
    last_frame_at: datetime | None = None
    attempts: int = 0

    @property
    def live(self) -> bool:
        """True when the picture is being kept up to date right now."""
        return self.state == LinkState.LIVE


class _Resume(Exception):
    """Drop this connection and resume from the last applied seq."""


class _Stop(Exception):
    """Stop for good: retrying cannot help."""


def stream_url(base_url: str) -> str:
    """The WebSocket stream URL for a backend's HTTP base URL."""
    base = base_url.rstrip("/")
    if base.startswith("https://"):
        return "wss://" + base[len("https://") :] + "/v1/stream"
    if base.startswith("http://"):
        return "ws://" + base[len("http://") :] + "/v1/stream"
    if base.startswith(("ws://", "wss://")):
        return base if base.endswith("/v1/stream") else base + "/v1/stream"
    raise ValueError(
        f"backend URL must start with http://, https://, ws:// or wss://: {base_url!r}"
    )


@dataclass(frozen=True)
class Backoff:
    """Jittered exponential backoff: base * 2**n capped at `cap`, times 0.5-1.0."""

    base: float = 0.2
    cap: float = 10.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait before retry number `attempt` (1-based)."""
        return min(self.cap, self.base * 2 ** max(0, attempt - 1)) * rng.uniform(0.5, 1.0)


def _now() -> datetime:
    return datetime.now(UTC)


class Subscription:
    """Keeps a `LocalStore` in step with the backends' event stream."""

    def __init__(
        self,
        urls: Sequence[str],
        token: str,
        store: LocalStore,
        *,
        on_status: Callable[[LinkStatus], None] | None = None,
        on_change: Callable[[], None] | None = None,
        backoff: Backoff | None = None,
        silence_after: float | None = None,
        open_timeout: float = 5.0,
        rng: random.Random | None = None,
    ) -> None:
        if not urls:
            raise ValueError("give at least one backend URL")
        self.urls = [stream_url(url) for url in urls]
        self.token = token
        self.store = store
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self._silence_after = silence_after
        self._heartbeat = HEARTBEAT_INTERVAL
        self._rng = rng or random.Random()
        self._on_status = on_status
        self._on_change = on_change
        self._url_index = 0
        self._task: asyncio.Task[None] | None = None
        # Futures waiting for a seq to be applied or for the link to settle; checked
        # after each change rather than woken through a condition, which would cost a
        # task per event at high rates.
        self._seq_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._live_waiters: list[asyncio.Future[None]] = []
        self.status = LinkStatus(LinkState.CONNECTING, _now())
        self.resumes = 0  # connections dropped and resumed, for tests and health display
        self._behind_at: int | None = None  # our seq when a heartbeat last said we lag
        self._ws: ClientConnection | None = None
        self._closing: asyncio.Future[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting in the background."""
        if self._task is None:
            if self.status.state == LinkState.CONNECTING:
                # The first state is set in __init__, where no one hears of it, and
                # `_set(CONNECTING)` is then a no-op: announce it here instead.
                self.status = replace(self.status, since=_now(), url=self.url)
                if self._on_status is not None:
                    self._on_status(self.status)
            self._task = asyncio.create_task(self._run(), name="cadterm-subscription")

    async def stop(self) -> None:
        """Close the connection and stop for good."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.status.state != LinkState.STOPPED:
            self._set(LinkState.STOPPED, "stopped by the client")

    def drop(self, reason: str = "dropped by the client") -> None:
        """Close the current connection so that the stream resumes (for tests and tools)."""
        if self._ws is not None:
            self._closing = asyncio.ensure_future(self._ws.close(code=1000, reason=reason[:100]))

    @property
    def url(self) -> str:
        """The stream URL in use (or to be tried next)."""
        return self.urls[self._url_index]

    async def wait_for_seq(self, seq: int, timeout: float | None = None) -> None:
        """Wait until the event with `seq` has been applied locally."""
        if self.store.seq >= seq:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq_waiters.append((seq, future))
        await asyncio.wait_for(future, timeout)

    async def wait_live(self, timeout: float | None = None) -> None:
        """Wait until the stream is live or stopped (`TimeoutError` after `timeout`)."""
        if self.status.state in (LinkState.LIVE, LinkState.STOPPED):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._live_waiters.append(future)
        await asyncio.wait_for(future, timeout)

    def _wake_seq_waiters(self) -> None:
        if not self._seq_waiters:
            return
        waiting = []
        for seq, future in self._seq_waiters:
            if future.done():
                continue
            if self.store.seq >= seq:
                future.set_result(None)
            else:
                waiting.append((seq, future))
        self._seq_waiters = waiting

    # --- the loop ------------------------------------------------------------------------

    def _set(self, state: LinkState, reason: str | None = None, **extra: object) -> None:
        if state == self.status.state and reason == self.status.reason and not extra:
            return
        since = self.status.since if state == self.status.state else _now()
        self.status = replace(
            self.status, state=state, since=since, reason=reason, url=self.url, **extra
        )
        log.info("link %s%s", state.value, f" ({reason})" if reason else "")
        if self._on_status is not None:
            self._on_status(self.status)
        if state in (LinkState.LIVE, LinkState.STOPPED):
            waiters, self._live_waiters = self._live_waiters, []
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    async def _run(self) -> None:
        attempts = 0
        while True:
            try:
                await self._connect_once()
                reason = "connection closed"
            except _Stop as stop:
                self._set(LinkState.STOPPED, str(stop))
                return
            except _Resume as resume:
                reason = str(resume)
                self.resumes += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every other failure is transient: retry it
                reason = _describe(exc)
            finally:
                self._ws = None
            was_live = self.status.state == LinkState.LIVE
            if was_live:
                attempts = 0
            attempts += 1
            # A link that was live resumes on the same backend at once; one that never
            # got going fails over to the next backend in the list.
            if not was_live:
                self._url_index = (self._url_index + 1) % len(self.urls)
            delay = 0.0 if attempts == 1 else self.backoff.delay(attempts - 1, self._rng)
            self._set(LinkState.RECONNECTING, reason, attempts=attempts)
            await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        if self.status.state not in (LinkState.RECONNECTING,):
            self._set(LinkState.CONNECTING)
        try:
            ws = await connect(
                self.url,
                subprotocols=[SUBPROTOCOL],
                additional_headers={"Authorization": f"Bearer {self.token}"},
                open_timeout=self.open_timeout,
                ping_interval=None,  # the protocol's heartbeats detect silence
                max_size=None,  # snapshots of a large picture are big; the server is trusted
                max_queue=None,
                compression=None,
                # Closing over a dead link (stop() during an outage) must not hang for
                # the library's default 10 s waiting for a close frame that cannot come.
                close_timeout=1.0,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            detail = _problem_detail(exc.response.body)
            if status in (400, 401, 403):
                raise _Stop(f"backend refused the connection ({status}): {detail}") from None
            raise _Resume(f"backend answered {status}: {detail}") from None
        except InvalidURI as exc:
            raise _Stop(f"bad backend URL: {exc}") from None
        except InvalidHandshake as exc:
            raise _Resume(f"handshake failed: {exc}") from None
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close()
            raise _Stop(f"backend speaks {ws.subprotocol!r}, not {SUBPROTOCOL!r}")
        self._ws = ws
        self._behind_at = None
        async with ws:
            self._set(LinkState.RESYNCING)
            since = self.store.seq if self.store.synced else None
            await ws.send(Subscribe(since=since).model_dump_json(exclude_none=True))
            await self._read(ws)

    async def _read(self, ws: ClientConnection) -> None:
        # One watchdog timer per connection, re-armed only when it fires, instead of an
        # asyncio.timeout (a timer handle) and a LinkStatus copy for every frame.
        loop = asyncio.get_running_loop()
        last = [loop.time()]
        silent: list[float] = []

        def watchdog() -> None:
            silence = self._silence_after or 3 * self._heartbeat
            idle = loop.time() - last[0]
            if idle >= silence:
                silent.append(silence)
                ws.transport.abort()
            else:
                handles[0] = loop.call_later(silence - idle, watchdog)

        handles = [loop.call_later(self._silence_after or 3 * self._heartbeat, watchdog)]
        stamped = 0.0
        try:
            while True:
                try:
                    raw = await ws.recv()
                except ConnectionClosed as closed:
                    if silent:
                        raise _Resume(f"no frame or heartbeat for {silent[0]:g} s") from None
                    self._closed(closed)
                    return
                now = last[0] = loop.time()
                if now - stamped > 0.25:  # freshness for the status line, 4 times a second
                    stamped = now
                    self.status = replace(self.status, last_frame_at=_now())
                self._handle(raw)
        finally:
            handles[0].cancel()

    def _closed(self, closed: ConnectionClosed) -> None:
        rcvd = closed.rcvd
        if rcvd is None:
            raise _Resume("connection lost without a close frame")
        if rcvd.code in _FATAL_CLOSE:
            raise _Stop(f"{_FATAL_CLOSE[CloseCode(rcvd.code)]}: {rcvd.reason}")
        if rcvd.code == CloseCode.RESUME:
            raise _Resume(f"server cut the stream off: {rcvd.reason or 'fell behind'}")
        raise _Resume(f"server closed the stream ({rcvd.code} {rcvd.reason})".strip())

    def _handle(self, raw: str | bytes) -> None:
        try:
            frame = SERVER_FRAME_ADAPTER.validate_json(raw)
        except ValidationError as exc:
            # A frame this client cannot read means the versions disagree: resuming
            # would read it again, so stop and say so.
            raise _Stop(f"unreadable frame from the server: {_first_error(exc)}") from None
        if isinstance(frame, EventFrame):
            try:
                self.store.apply(frame.event)
            except FoldError as exc:
                raise _Resume(str(exc)) from None
            self._changed()
        elif isinstance(frame, Heartbeat):
            self._heartbeat = frame.interval
            if frame.seq < self.store.seq:
                raise _Resume(f"server head {frame.seq} is behind this client ({self.store.seq})")
            # A heartbeat can overtake an event still queued for us, so one heartbeat
            # ahead proves nothing; two in a row ahead while we applied nothing in
            # between mean an event went missing on the way.
            behind = frame.seq > self.store.seq
            if behind and self._behind_at == self.store.seq:
                raise _Resume(
                    f"server head {frame.seq} is ahead of this client ({self.store.seq}) "
                    "and no event arrived between two heartbeats"
                )
            self._behind_at = self.store.seq if behind else None
        elif isinstance(frame, Snapshot):
            self.store.load_snapshot(frame.state)
            self._changed()
        elif isinstance(frame, CaughtUp):
            if frame.seq != self.store.seq:
                raise _Resume(f"caught up at {frame.seq} but holding {self.store.seq}")
            self._set(LinkState.LIVE)
        elif isinstance(frame, ErrorFrame):
            raise _Stop(f"server reported {frame.code}: {frame.detail}")

    def _changed(self) -> None:
        self._wake_seq_waiters()
        if self._on_change is not None:
            self._on_change()


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not isinstance(exc, OSError) else text


def _problem_detail(body: bytes | None) -> str:
    if not body:
        return "no detail"
    try:
        return str(json.loads(body).get("detail", body[:200]))
    except (ValueError, AttributeError):
        return body[:200].decode("utf-8", "replace")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
