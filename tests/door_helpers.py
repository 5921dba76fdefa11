"""Helpers for the tests of refusals at the door: raw sockets, problems, the head seq."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from conftest import Backend
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from cadterm.protocol.domain import Role
from cadterm.protocol.frames import SUBPROTOCOL
from cadterm.protocol.problems import PROBLEM_STATUS, ProblemCode

STEP = 10.0  # seconds any one network step may take before the test fails


@pytest.fixture(autouse=True)
def no_server_errors(monkeypatch: pytest.MonkeyPatch):
    """Fail a test whose misbehaving client made the server log an error.

    uvicorn logs an app that fails ("Exception in ASGI application") on loggers it
    configures itself when a server is built, replacing their handlers and stopping
    propagation, so neither pytest's capture nor a handler added beforehand sees them:
    watch every logger's records as they are handled instead.
    """
    seen: list[logging.LogRecord] = []
    handle = logging.Logger.callHandlers

    def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR and record.name.split(".")[0] in _WATCHED:
            seen.append(record)
        handle(self, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", call_handlers)
    yield
    assert not seen, [record.getMessage() for record in seen]


_WATCHED = ("uvicorn", "cadterm")


def client(
    backend: Backend, role: Role | None = Role.DISPATCHER, headers: dict[str, str] | None = None
) -> httpx.Client:
    """An httpx client for `backend`, with `role`'s token (none if `role` is None)."""
    sent = backend.headers(role) if role is not None else {}
    return httpx.Client(
        base_url=backend.url, headers={**sent, **(headers or {})}, timeout=STEP, trust_env=False
    )


def head_seq(backend: Backend) -> int:
    """The server's head seq, from the public health check."""
    with client(backend, None) as http:
        response = http.get("/v1/health")
        assert response.status_code == 200, response.text
        return response.json()["seq"]


def assert_problem(status: int, headers: Any, body: bytes | str, code: str) -> dict[str, Any]:
    """Check that a response is the problem document for `code` (with its status)."""
    assert status == PROBLEM_STATUS[ProblemCode(code)], (status, body)
    assert headers["content-type"].startswith("application/problem+json"), headers
    problem = json.loads(body)
    assert problem["status"] == status
    assert problem["code"] == code, problem
    assert problem["type"] == "/problems/" + code.replace("_", "-")
    assert problem["detail"]
    return problem


def assert_http_problem(response: httpx.Response, code: str) -> dict[str, Any]:
    """`assert_problem` for an httpx response."""
    return assert_problem(response.status_code, response.headers, response.content, code)


def assert_serves(backend: Backend) -> None:
    """The server still answers a well-behaved, authenticated client."""
    with client(backend) as http:
        response = http.get("/v1/whoami")
        assert response.status_code == 200, response.text


def book_on(callsign: str | None = None) -> dict[str, Any]:
    """A book_on command for a new unit."""
    return {
        "type": "book_on",
        "idempotency_key": uuid.uuid4().hex,
        "workstation": "ws-test",
        "callsign": callsign or f"U{uuid.uuid4().hex[:6].upper()}",
        "unit_type": "patrol_car",
    }


def big_incident() -> dict[str, Any]:
    """A create_incident command as large as the protocol allows (about 16 KB)."""
    text = "x" * 2000
    return {
        "type": "create_incident",
        "idempotency_key": uuid.uuid4().hex,
        "workstation": "ws-test",
        "grade": 2,
        "incident_type": "ASSAULT",
        "location": {"address": "14 Corporation Street, Birmingham"},
        "description": "d" * 4000,
        "risk": dict.fromkeys(
            ("threat", "harm", "risk", "investigation", "vulnerability", "engagement"), text
        ),
    }


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll `condition` until it holds; return the seconds it took. Fails after `timeout`."""
    start = time.monotonic()
    for _ in range(100_000):
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            break
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def raw_connect(backend: Backend) -> socket.socket:
    """A plain TCP connection to the backend."""
    return socket.create_connection((backend.host, backend.port), timeout=STEP)


def read_response(sock: socket.socket, timeout: float = STEP) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length body: status, headers, body."""
    sock.settimeout(timeout)
    data = b""
    for _ in range(10_000):
        if b"\r\n\r\n" in data:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    for _ in range(10_000):
        if len(body) >= length:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    """True when the peer closes (EOF or reset) within `timeout`; reads what it sent."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True
    return False


def handshake(backend: Backend, token: str | None = None) -> bytes:
    """The bytes of a WebSocket handshake request for the stream."""
    protocol = ClientProtocol(parse_uri(backend.ws_url), subprotocols=[SUBPROTOCOL])
    request = protocol.connect()
    bearer = token if token is not None else backend.headers()["Authorization"].split()[1]
    request.headers["Authorization"] = f"Bearer {bearer}"
    return request.serialize()


def masked_text(payload: bytes) -> bytes:
    """One masked (client) WebSocket text frame; payload under 64 KiB."""
    mask = b"\x01\x02\x03\x04"
    head = struct.pack("!BB", 0x81, 0x80 | 126) + struct.pack("!H", len(payload))
    if len(payload) < 126:
        head = struct.pack("!BB", 0x81, 0x80 | len(payload))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def tcp_state(sock: socket.socket) -> int:
    """The kernel's TCP state of `sock` (1 established, 7 closed), read without reading."""
    return struct.unpack("B", sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1))[0]


def raw_stream(backend: Backend) -> tuple[socket.socket, ClientProtocol]:
    """A stream opened over a plain socket, with websockets' sans-I/O client to read it."""
    protocol = ClientProtocol(parse_uri(backend.ws_url), subprotocols=[SUBPROTOCOL])
    request = protocol.connect()
    request.headers["Authorization"] = backend.headers()["Authorization"]
    protocol.send_request(request)
    sock = raw_connect(backend)
    sock.sendall(b"".join(protocol.data_to_send()))
    data = b""
    for _ in range(1000):
        if b"\r\n\r\n" in data:
            break
        chunk = sock.recv(65536)
        assert chunk, "the server closed during the handshake"
        data += chunk
    protocol.receive_data(data)
    assert protocol.handshake_exc is None, protocol.handshake_exc
    return sock, protocol
