"""The live subscription: connect, subscribe, fold, and recover from anything transient.

This module is the adapter: it owns the socket, the clock and the retries. What each
frame, close and silence means is decided by the sans-I/O rules in
`cadterm.client.link`, which it feeds and obeys.

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
import errno
import json
import logging
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

from cadterm.protocol.frames import SUBPROTOCOL

from .backoff import Backoff
from .link import BATCH_EVENTS, Applied, Effect, LinkRules, Live, Resume, Send, Stop
from .store import LocalStore

__all__ = ["Backoff", "LinkState", "LinkStatus", "Subscription", "stream_url"]

log = logging.getLogger("cadterm.client")


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
    """Drop this connection and resume from the last applied seq (`elsewhere`: on the
    next backend, even if this one was live)."""

    def __init__(self, reason: str, elsewhere: bool = False) -> None:
        super().__init__(reason)
        self.elsewhere = elsewhere


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
        batch: int | None = BATCH_EVENTS,
    ) -> None:
        if not urls:
            raise ValueError("give at least one backend URL")
        self.urls = [stream_url(url) for url in urls]
        self.token = token
        self.store = store
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        # `batch`: the most events taken in one frame (None: one frame per event).
        self.rules = LinkRules(store, silence_after=silence_after, batch=batch)
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

    def reconnect(self) -> bool:
        """Start again after the link stopped (the operator asked to); False if running.

        A stop means retrying could only fail the same way, so it is never automatic;
        once someone has dealt with the cause (a token, a server version), this tries
        again from the last applied seq, keeping the picture meanwhile.
        """
        if self._task is not None and not self._task.done():
            return False
        self._task = None
        self._set(LinkState.CONNECTING, "reconnecting on request")
        self.start()
        return True

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
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            # Say why it is not live (the last failure), not just that time ran out.
            why = self.status.reason or self.status.state.value
            raise TimeoutError(f"not live after {timeout:g} s: {why}") from None

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
            elsewhere = False
            try:
                await self._connect_once()
                reason = "connection closed"
            except _Stop as stop:
                self._set(LinkState.STOPPED, str(stop))
                return
            except _Resume as resume:
                reason = str(resume)
                elsewhere = resume.elsewhere
                self.resumes += 1
            except asyncio.CancelledError:
                raise
            except (OSError, EOFError, TimeoutError, WebSocketException) as exc:
                reason = outage(exc, self.url)  # the network or the backend: retry
            except Exception as exc:
                # A fault in this client, not in the link: retrying would hide it behind
                # "reconnecting" for ever. Say what it is and stop.
                log.exception("the link stopped on an internal error")
                self._set(LinkState.STOPPED, f"internal error in the client: {_describe(exc)}")
                return
            finally:
                self._ws = None
            was_live = self.status.state == LinkState.LIVE
            if was_live:
                attempts = 0
            attempts += 1
            # A link that was live resumes on the same backend at once; one that never
            # got going, or whose backend went silent or is going away, fails over to
            # the next backend in the list (a hung node would only hold the handshake).
            if not was_live or elsewhere:
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
            detail = _problem_detail(exc.response.body)
            (answer,) = self.rules.refused(exc.response.status_code, detail)
            raise (_Stop if isinstance(answer, Stop) else _Resume)(answer.reason) from None
        except InvalidURI as exc:
            raise _Stop(f"bad backend URL: {exc}") from None
        except InvalidHandshake as exc:
            raise _Resume(f"handshake failed: {exc}") from None
        if ws.subprotocol != SUBPROTOCOL:
            await ws.close()
            raise _Stop(f"backend speaks {ws.subprotocol!r}, not {SUBPROTOCOL!r}")
        self._ws = ws
        async with ws:
            self._set(LinkState.RESYNCING)
            loop = asyncio.get_running_loop()
            for effect in self.rules.opened(loop.time()):
                assert isinstance(effect, Send)
                await ws.send(effect.text)
            await self._read(ws)

    async def _read(self, ws: ClientConnection) -> None:
        # One watchdog timer per connection, re-armed only when it fires, instead of an
        # asyncio.timeout (a timer handle) and a LinkStatus copy for every frame.
        loop = asyncio.get_running_loop()
        silent: list[Effect] = []

        def watchdog() -> None:
            effects = self.rules.tick(loop.time())
            if effects:
                silent.extend(effects)
                ws.transport.abort()
            else:
                handles[0] = loop.call_at(self.rules.deadline(), watchdog)

        handles = [loop.call_at(self.rules.deadline(), watchdog)]
        stamped = 0.0
        try:
            while True:
                try:
                    raw = await ws.recv()
                except ConnectionClosed as closed:
                    # Silence noticed by the watchdog explains the close it caused.
                    self._act(silent)
                    rcvd = closed.rcvd
                    if rcvd is None:
                        self._act(self.rules.closed(None))
                    else:
                        self._act(self.rules.closed(rcvd.code, rcvd.reason))
                    return
                now = loop.time()
                if now - stamped > 0.25:  # freshness for the status line, 4 times a second
                    stamped = now
                    self.status = replace(self.status, last_frame_at=_now())
                self._act(self.rules.received(raw, now))
        finally:
            handles[0].cancel()

    def _act(self, effects: list[Effect]) -> None:
        """Carry out what the rules answered; a resume or a stop ends the connection."""
        for effect in effects:
            if isinstance(effect, Applied):
                # `_changed`, written out: this runs once a frame.
                if self._seq_waiters:
                    self._wake_seq_waiters()
                if self._on_change is not None:
                    self._on_change()
            elif isinstance(effect, Live):
                self._set(LinkState.LIVE)
            elif isinstance(effect, Resume):
                raise _Resume(effect.reason, effect.elsewhere)
            elif isinstance(effect, Stop):
                raise _Stop(effect.reason)

    def _changed(self) -> None:
        self._wake_seq_waiters()
        if self._on_change is not None:
            self._on_change()


def outage(exc: BaseException, url: str) -> str:
    """Why the backend at `url` could not be reached, in words a dispatcher can act on.

    The technical error follows in brackets, for whoever reads the log afterwards.
    """
    where = urlsplit(url).netloc or url
    technical = _describe(exc)
    if isinstance(exc, ConnectionRefusedError):
        plain = f"nothing is answering at {where}: the backend is down or restarting"
    elif isinstance(exc, socket.gaierror):
        plain = f"the backend's address {where} cannot be found (name lookup failed)"
    elif isinstance(exc, TimeoutError):
        plain = f"no answer from {where} in time: the network or the backend is slow or down"
    elif isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        plain = f"the network cannot reach {where}"
    elif isinstance(exc, ConnectionResetError | BrokenPipeError | EOFError):
        plain = f"the connection to {where} was cut"
    else:
        return technical
    return f"{plain} [{technical}]"


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
