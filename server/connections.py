"""Connection hygiene below the ASGI app: uvicorn's protocols with cadterm's bounds.

uvicorn bounds neither how long a request may take to send its headers (a client that
trickles a request line a byte at a time holds its connection for ever) nor how long a
connection may sit on a full send buffer (a send, or a stream's close, waits for a
client that never reads). `protocols` returns subclasses of its httptools (the C
parser; h11 with ``parser="h11"``) and websockets-sansio protocols that do:

- a request's line and headers must arrive within `header_timeout` of the connection
  opening or of the next request starting: `408 request_timeout`, then the connection
  closes (one that sends nothing at all is just closed);
- at most `max_connections` connections (HTTP and streams) are open at once; one more is
  answered `503 too_many_connections` and closed before anything is read;
- a request line and headers together may not pass `MAX_HEAD_BYTES` (h11 enforces
  this itself; httptools has no such bound, so it is counted here): `400`;
- a request uvicorn cannot parse gets a `400 malformed_request` problem document, not
  uvicorn's plain text (a malformed WebSocket handshake `400 bad_handshake`), and a
  stream text frame that is not UTF-8 an `error` frame and
  close `4002`, not a logged traceback and `1007`;
- a connection whose send buffer stays full for `send_timeout`, or a stream whose
  closing handshake does not finish within `stream_close_timeout`, is reset: the socket
  and its buffers go, and the app's pending send ends as a disconnect, as if the client
  had gone away (so uvicorn logs no error).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Any

import h11
from starlette.websockets import WebSocketDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.http11 import Response

from cadterm.protocol.frames import CloseCode, ErrorFrame
from cadterm.protocol.problems import Problem, ProblemCode

from .config import Limits
from .responses import PROBLEM_JSON, problem_bytes

__all__ = ["SEND_NOW", "SEND_TEXT", "protocols"]

log = logging.getLogger("cadterm.server")

_ZERO_LINGER = struct.pack("ii", 1, 0)

#: The ASGI scope extension under which a stream finds `send_text` (see
#: `GuardedWebSocketProtocol.send_text`); absent under any other server.
SEND_TEXT = "cadterm.send_text"
#: ... and `send_now`, its synchronous twin for a frame the connection takes at once.
SEND_NOW = "cadterm.send_now"

#: The most bytes a request line and its headers may take: h11's own bound, kept the
#: same whichever parser runs.
MAX_HEAD_BYTES = 16 * 1024


def reset(transport: asyncio.Transport) -> None:
    """Drop a connection now, with its unsent bytes.

    `transport.abort()` alone closes the socket, but the kernel keeps the unsent bytes
    and goes on offering them to a peer that never reads; a zero linger makes the close
    a reset instead, which frees them at once.
    """
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _ZERO_LINGER)
    transport.abort()  # connection_lost follows, which ends any pending send cleanly


class _SendStallGuard:
    """Resets a connection whose send buffer stays above the high-water mark too long.

    asyncio calls `pause_writing` when the transport's buffer passes its high-water
    mark and `resume_writing` when it drains; a client that stops reading never lets
    it drain.
    """

    limits: Limits
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    client: Any
    _stall_timer: asyncio.TimerHandle | None = None

    def _start_stall_timer(self) -> None:
        if self._stall_timer is None:
            self._stall_timer = self.loop.call_later(self.limits.send_timeout, self._stalled)

    def _cancel_stall_timer(self) -> None:
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None

    def _stalled(self) -> None:
        self._stall_timer = None
        log.info("resetting %s: its send buffer stayed full", self.client)
        reset(self.transport)  # a no-op if the connection is already gone


class _HttpGuard(_SendStallGuard):
    """What both HTTP protocols add to uvicorn's: the connection cap, the header
    deadline, the send-stall reset and typed 400s.

    Each protocol says how its parser shows a request under way: `_awaiting_headers`
    (a request has begun and its headers are not all in) and `_head_started` (any of it
    has arrived at all).
    """

    _header_timer: asyncio.TimerHandle | None = None
    _refused = False  # refused in connection_made: uvicorn never saw the connection

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # The new connection is not in `connections` yet: count the others.
        if len(self.connections) >= self.limits.max_connections:  # type: ignore[attr-defined]
            problem = Problem.of(
                ProblemCode.TOO_MANY_CONNECTIONS,
                f"the server holds its limit of {self.limits.max_connections} connections; "
                "retry shortly",
            )
            transport.write(problem_bytes(problem, {"retry-after": "1"}))
            transport.close()
            self.transport = transport
            self._refused = True
            return
        super().connection_made(transport)  # type: ignore[misc]
        self._start_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_stall_timer()
        if not self._refused:
            super().connection_lost(exc)  # type: ignore[misc]

    def pause_writing(self) -> None:
        if not self._refused:
            super().pause_writing()  # type: ignore[misc]
            self._start_stall_timer()

    def resume_writing(self) -> None:
        if not self._refused:
            super().resume_writing()  # type: ignore[misc]
            self._cancel_stall_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._cancel_header_timer()  # idle now: uvicorn's keep-alive timeout applies

    def send_400_response(self, msg: str) -> None:
        self._cancel_header_timer()
        problem = Problem.of(ProblemCode.MALFORMED_REQUEST, f"not a valid HTTP/1.1 request: {msg}")
        self.transport.write(problem_bytes(problem))
        self.transport.close()

    def _start_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(
            self.limits.header_timeout, self._headers_too_slow
        )

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _awaiting_headers(self) -> bool:
        raise NotImplementedError

    def _head_started(self) -> bool:
        raise NotImplementedError

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._awaiting_headers():
            return
        if not self._head_started():
            # Nothing of a request was sent at all: just close, as keep-alive would.
            self.transport.close()
            return
        problem = Problem.of(
            ProblemCode.REQUEST_TIMEOUT,
            f"the request line and headers did not arrive within {self.limits.header_timeout:g} s",
        )
        self.transport.write(problem_bytes(problem))
        self.transport.close()


class GuardedH11Protocol(_HttpGuard, H11Protocol):
    """uvicorn's h11 protocol with deadlines, a connection cap and typed 400s."""

    limits: Limits  # set on the subclass `protocols` makes

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._header_timer is None:
            # The first bytes of a request on a kept-alive connection: from here its
            # headers have `header_timeout` to arrive (uvicorn's keep-alive timer is
            # cancelled by any data at all).
            self._start_header_timer()
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()  # the headers are in; the body has its own deadline

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The stream's protocol takes the transport over, with timers of its own.
        self._cancel_header_timer()
        self._cancel_stall_timer()
        super().handle_websocket_upgrade(event)

    def _awaiting_headers(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def _head_started(self) -> bool:
        return bool(self.conn.trailing_data[0])


class GuardedHttpToolsProtocol(_HttpGuard, HttpToolsProtocol):
    """uvicorn's httptools protocol with the same deadlines, caps and typed 400s."""

    limits: Limits  # set on the subclass `protocols` makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Bytes of the request whose headers are still arriving; None between requests
        # and once the headers are in (then the body has its own deadline and bound).
        self._head_bytes: int | None = 0

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._head_bytes is None and not self._in_request():
            # The first bytes of a request on a kept-alive connection: from here its
            # headers have `header_timeout` to arrive (uvicorn's keep-alive timer is
            # cancelled by any data at all).
            self._head_bytes = 0
            self._start_header_timer()
        if self._head_bytes is not None:
            self._head_bytes += len(data)
        super().data_received(data)
        too_long = self._head_bytes is not None and self._head_bytes > MAX_HEAD_BYTES
        if too_long and not self.transport.is_closing():
            self.send_400_response("request line and headers too long")

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def on_message_begin(self) -> None:
        if self._head_bytes is None:
            self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._head_bytes = None
        self._cancel_header_timer()  # the headers are in; the body has its own deadline
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        # The stream's protocol takes the transport over, with timers of its own.
        self._cancel_header_timer()
        self._cancel_stall_timer()
        super().handle_websocket_upgrade()

    def _awaiting_headers(self) -> bool:
        return self._head_bytes is not None

    def _head_started(self) -> bool:
        return bool(self._head_bytes)


class GuardedWebSocketProtocol(_SendStallGuard, WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol that resets a stream stuck on a full buffer."""

    limits: Limits  # set on the subclass `protocols` makes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = self.limits.stream_close_timeout
        # websockets refuses a malformed handshake (no key, a wrong version) with a
        # plain-text answer before the app sees it: give it a problem document instead.
        accept = self.conn.accept
        self.conn.accept = lambda request: _typed_refusal(accept(request))  # type: ignore[method-assign]

    def pause_writing(self) -> None:
        super().pause_writing()
        self._start_stall_timer()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._cancel_stall_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_stall_timer()
        super().connection_lost(exc)

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = b"".join(self.frames)
            try:
                data.decode()
            except UnicodeDecodeError as exc:
                # uvicorn would log the client's mistake as a server error with a
                # traceback and close 1007, which a client retries for ever; it is a bad
                # frame like any other: an error frame and 4002.
                self.frames = []
                self._refuse_frame(f"text frame is not valid UTF-8 (byte {exc.start})")
                return
        super().send_receive_event_to_app()

    def _refuse_frame(self, detail: str) -> None:
        error = ErrorFrame(code=CloseCode.BAD_FRAME.name.lower(), detail=detail)
        self.conn.send_text(error.model_dump_json().encode())
        self.conn.send_close(CloseCode.BAD_FRAME, detail[:120])
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        # The app sees the stream end; its next send finds the close already sent.
        self.queue.put_nowait({"type": "websocket.disconnect", "code": CloseCode.BAD_FRAME})
        if self.read_paused:
            self.read_paused = False
            self.transport.resume_reading()  # to read the client's half of the close
        self.close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.close" and self.close_timer is not None:
            # uvicorn's close timer calls transport.close(), which waits for the send
            # buffer to drain: for a client that never reads, for ever. Reset instead.
            self.close_timer.cancel()
            self.close_timer = self.loop.call_later(self.close_timeout, self._close_timed_out)

    async def send_text(self, text: str) -> None:
        """Send one text frame on an accepted stream, straight to the connection.

        What a ``websocket.send`` message does, with the same flow control (it waits
        while the transport is paused) and the same errors as Starlette turns them into,
        but without passing the message through the ASGI middleware, which only looks
        at the handshake and the close. At hundreds of subscribers that passage is most
        of what a frame costs above the socket write itself.
        """
        if not self.writable.is_set():
            await self.writable.wait()
        if self.disconnected:
            raise WebSocketDisconnect(code=1006)
        if self.close_sent:
            raise RuntimeError("cannot send a frame after the stream was closed")
        try:
            self.conn.send_text(text.encode())
        except InvalidState:
            raise WebSocketDisconnect(code=1006) from None
        self.transport.write(b"".join(self.conn.data_to_send()))

    def send_now(self, text: str) -> bool:
        """Write one text frame now if the connection takes it at once; False (nothing
        written) while its transport is paused, or once it is closing or gone.

        The hub calls it as an event is published, for a subscriber whose sender is
        idle: the frame goes out without waking the sender's task, which at hundreds
        of subscribers and one event a frame is much of what fan-out costs.
        """
        if not self.writable.is_set() or self.disconnected or self.close_sent:
            return False
        try:
            self.conn.send_text(text.encode())
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    async def run_asgi(self) -> None:
        self.scope["extensions"][SEND_TEXT] = self.send_text  # type: ignore[index]
        self.scope["extensions"][SEND_NOW] = self.send_now  # type: ignore[index]
        await super().run_asgi()
        if not self.disconnected:
            # The app is done and uvicorn closed the transport gracefully, which still
            # waits on the buffer: bound that wait too.
            self.loop.call_later(self.close_timeout, self._close_timed_out)

    def _close_timed_out(self) -> None:
        if not self.disconnected:
            log.info("resetting stream from %s: its close did not finish", self.client)
            reset(self.transport)


def _typed_refusal(response: Response) -> Response:
    """`response` as it is if it accepts the handshake, else as a problem document."""
    if response.status_code == 101:
        return response
    why = bytes(response.body).decode("utf-8", "replace").strip()
    problem = Problem.of(ProblemCode.BAD_HANDSHAKE, f"not a valid WebSocket handshake: {why}")
    body = problem.model_dump_json(exclude_none=True).encode()
    headers = Headers(
        [
            ("Date", response.headers.get("Date", "")),
            ("Content-Type", PROBLEM_JSON),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
        ]
    )
    return Response(problem.status, "Bad Request", headers, body)


def protocols(
    limits: Limits, parser: str = "httptools"
) -> tuple[type[H11Protocol] | type[HttpToolsProtocol], type[WebSocketsSansIOProtocol]]:
    """The HTTP and WebSocket protocol classes to give uvicorn, bound to `limits`.

    `parser` is ``"httptools"`` (the C parser, the default) or ``"h11"``.
    """
    guarded = {"httptools": GuardedHttpToolsProtocol, "h11": GuardedH11Protocol}[parser]
    http = type(f"Cadterm{guarded.__name__}", (guarded,), {"limits": limits})
    ws = type("CadtermWebSocketProtocol", (GuardedWebSocketProtocol,), {"limits": limits})
    return http, ws
