"""A loopback TCP proxy that tests drive to break the link between a client and a backend.

::

    proxy = FaultProxy("127.0.0.1", backend.port)
    await proxy.start()
    client = DispatchClient([proxy.url], token)   # the client talks to the proxy
    ...
    proxy.cut_all()                               # and the test breaks things
    await proxy.stop()

Every accepted connection opens its own connection to the target and two pumps copy
bytes across, one per direction ("upstream": client to backend, "downstream": backend
to client). The faults, each switchable at any moment:

`cut_all()`
    Abort every current connection abruptly, both sides, with a TCP RST (``SO_LINGER``
    0): whatever was in flight is lost, exactly as when a NAT box, firewall or cable
    drops a connection mid-stream. New connections are accepted as usual.

`cut_after_bytes(n)`
    One-shot: forward the next `n` downstream bytes (on whichever connection carries
    them), then abort that connection. With `n` smaller than a frame the client is left
    holding half a WebSocket frame: the "cut mid-frame" case.

`set_delay(seconds)`
    Hold every chunk for `seconds` before forwarding it, both ways (order is kept): a
    slow or congested link. 0 switches it off; chunks already waiting keep their delay.

`blackhole(on)`
    While on, connections stay open but every byte read, either way, is silently
    dropped, and new connections are accepted (and connected to the target) but carry
    nothing: a link that went silent without closing, which only a timeout can detect.
    Bytes dropped are gone for good, so a connection that lived through a blackhole is
    corrupt afterwards; only connections made after it lifts are usable.

`refuse(on)`
    While on, each new connection is closed (RST) as soon as it is accepted: a backend
    that is down, or a port nothing listens on.

`retarget(port)`
    Send new connections to another port (a restarted backend); current ones are kept.

Everything is bounded: at most `max_connections` at once (more are refused), chunks of
at most `chunk_size` bytes, `connect_timeout` to reach the target, and `stop()` aborts
every connection and awaits every task it started.

Counters for assertions: `accepted` (TCP connections accepted, including refused ones),
`refused`, `forwarded` (connected to the target), `cuts` (connections aborted by a
fault), `bytes_up` / `bytes_down` (bytes actually forwarded), and `active`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from dataclasses import dataclass, field

__all__ = ["FaultProxy"]


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's side and the target's side."""

    number: int
    client: asyncio.StreamWriter
    target: asyncio.StreamWriter | None = None
    pumps: list[asyncio.Task[None]] = field(default_factory=list)
    closed: bool = False


def _abort(writer: asyncio.StreamWriter | None) -> None:
    """Close a socket at once with a RST, dropping anything not yet sent."""
    if writer is None:
        return
    transport = writer.transport
    if transport.is_closing():
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 that forwards to a target and injects faults on demand."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        max_connections: int = 64,
        chunk_size: int = 64 * 1024,
        connect_timeout: float = 5.0,
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.max_connections = max_connections
        self.chunk_size = chunk_size
        self.connect_timeout = connect_timeout
        self.port = 0
        # Counters.
        self.accepted = 0
        self.refused = 0
        self.forwarded = 0
        self.cuts = 0
        self.bytes_up = 0
        self.bytes_down = 0
        # Faults.
        self._delay = 0.0
        self._blackhole = False
        self._refuse = False
        self._cut_budget: int | None = None
        # Bookkeeping.
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        """Listen on a free loopback port (`port`, `url`)."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        """The proxy's HTTP base URL, to give to a client instead of the backend's."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def active(self) -> int:
        """Connections open right now."""
        return len(self._links)

    async def stop(self) -> None:
        """Stop listening, abort every connection and wait for every task to end."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            self._close(link, abort=True)
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=5.0)
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5.0)
            self._server = None

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- faults --------------------------------------------------------------------------

    def cut_all(self) -> int:
        """Abort every current connection with a RST; returns how many were cut."""
        links = list(self._links)
        for link in links:
            self.cuts += 1
            self._close(link, abort=True)
        return len(links)

    def cut_after_bytes(self, n: int) -> None:
        """Abort the connection that carries the `n`-th downstream byte from now (one-shot)."""
        if n < 0:
            raise ValueError("n must be >= 0")
        self._cut_budget = n

    @property
    def cut_armed(self) -> bool:
        """True while a `cut_after_bytes` has not fired yet."""
        return self._cut_budget is not None

    def set_delay(self, seconds: float) -> None:
        """Delay each forwarded chunk by `seconds` (0: no delay)."""
        if seconds < 0:
            raise ValueError("delay must be >= 0")
        self._delay = seconds

    def blackhole(self, on: bool) -> None:
        """Silently drop every byte, both ways, on every connection while `on`."""
        self._blackhole = on

    def refuse(self, on: bool) -> None:
        """Close each new connection as soon as it is accepted while `on`."""
        self._refuse = on

    def retarget(self, port: int, host: str | None = None) -> None:
        """Send new connections to `port` (and `host`) from now on."""
        self.target_port = port
        if host is not None:
            self.target_host = host

    # --- the plumbing --------------------------------------------------------------------

    def _track(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._track(task)
        self.accepted += 1
        if self._stopping or self._refuse or len(self._links) >= self.max_connections:
            self.refused += 1
            _abort(writer)
            return
        link = _Link(self.accepted, writer)
        self._links.add(link)
        try:
            async with asyncio.timeout(self.connect_timeout):
                target_reader, target_writer = await asyncio.open_connection(
                    self.target_host, self.target_port
                )
        except (OSError, TimeoutError):
            self._close(link, abort=True)
            return
        except asyncio.CancelledError:
            self._close(link, abort=True)
            raise
        if link.closed:  # cut while connecting
            _abort(target_writer)
            return
        link.target = target_writer
        self.forwarded += 1
        up = asyncio.create_task(self._pump(link, reader, target_writer, downstream=False))
        down = asyncio.create_task(self._pump(link, target_reader, writer, downstream=True))
        link.pumps = [up, down]
        for pump in link.pumps:
            self._track(pump)

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        downstream: bool,
    ) -> None:
        """Copy one direction until EOF, an error, or the link being closed."""
        abort = False
        try:
            while not link.closed:
                data = await reader.read(self.chunk_size)
                if not data:
                    break  # EOF: close both sides gracefully (flushing what was sent)
                if self._blackhole:
                    continue
                if self._delay:
                    await asyncio.sleep(self._delay)
                    if link.closed:
                        return
                    if self._blackhole:
                        continue
                if downstream and self._cut_budget is not None:
                    budget = self._cut_budget
                    if len(data) >= budget:
                        self._cut_budget = None
                        if budget:
                            writer.write(data[:budget])
                            self.bytes_down += budget
                            await writer.drain()
                            # Let the loopback deliver the partial data before the RST.
                            await asyncio.sleep(0.01)
                        self.cuts += 1
                        abort = True
                        break
                    self._cut_budget = budget - len(data)
                writer.write(data)
                if downstream:
                    self.bytes_down += len(data)
                else:
                    self.bytes_up += len(data)
                await writer.drain()
        except (ConnectionError, OSError):
            abort = True
        finally:
            if not link.closed:
                self._close(link, abort=abort)

    def _close(self, link: _Link, *, abort: bool) -> None:
        """Close both sides of a link (RST if `abort`) and cancel its other pump."""
        if link.closed:
            return
        link.closed = True
        self._links.discard(link)
        for writer in (link.client, link.target):
            if writer is None:
                continue
            if abort:
                _abort(writer)
            else:
                with contextlib.suppress(Exception):
                    writer.close()
        current = asyncio.current_task()
        for pump in link.pumps:
            if pump is not current:
                pump.cancel()
