"""Connection hygiene: slow clients, too many connections, floods of bad tokens.

Each test runs a real backend on loopback with small limits, misbehaves over a raw
socket, and checks that the server cuts it off within the documented bound with the
documented problem, stores nothing (the head seq is unchanged), and still serves.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time

import pytest
from conftest import Backend, make_config
from door_helpers import (
    STEP,
    assert_http_problem,
    assert_problem,
    assert_serves,
    big_incident,
    client,
    closed_by_peer,
    handshake,
    head_seq,
    masked_text,
    no_server_errors,  # noqa: F401 - an autouse fixture
    raw_connect,
    read_response,
    tcp_state,
    wait_for,
)

from cadterm.server.config import Limits

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MARGIN = 2.0  # seconds of scheduling slack allowed on a shared machine


def limits(**overrides) -> Limits:
    base = {
        "header_timeout": HEADER_TIMEOUT,
        "body_timeout": BODY_TIMEOUT,
        "command_rate": 1000,
        "command_burst": 1000,
        "bad_request_burst": 1000,
    }
    return Limits(**{**base, **overrides})


@pytest.fixture
def door(backend_factory) -> Backend:
    return backend_factory(make_config(limits=limits()))


def connections(backend: Backend) -> int:
    """Connections the server holds right now (read from its own state)."""
    return len(backend.server.server_state.connections)


def answered(sock: socket.socket) -> bool:
    """True when the server has sent something, without consuming it."""
    with contextlib.suppress(BlockingIOError):
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    return False


# --- slow requests ------------------------------------------------------------------------


def test_headers_that_trickle_are_cut_off_with_408(door: Backend) -> None:
    before = head_seq(door)
    with raw_connect(door) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /v1/whoami HTTP/1.1\r\nHost: x\r\n")
        closed_at = None
        for i in range(int((HEADER_TIMEOUT + MARGIN) / 0.1)):
            if answered(sock):
                closed_at = time.monotonic()
                break
            try:
                sock.sendall(f"X-Slow-{i}: a\r\n".encode())
            except (BrokenPipeError, ConnectionResetError):
                closed_at = time.monotonic()
                break
            time.sleep(0.1)
        assert closed_at is not None, "the server let the headers trickle on"
        status, headers, body = read_response(sock)
    assert_problem(status, headers, body, "request_timeout")
    assert HEADER_TIMEOUT * 0.9 <= closed_at - start <= HEADER_TIMEOUT + MARGIN
    assert head_seq(door) == before
    assert_serves(door)


def test_the_next_request_on_a_kept_alive_connection_has_the_same_deadline(door: Backend) -> None:
    before = head_seq(door)
    with raw_connect(door) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        status, _headers, _body = read_response(sock)
        assert status == 200
        sock.sendall(b"GET /v1/health HTTP/1.1\r\n")  # ...and the rest never comes
        start = time.monotonic()
        status, headers, body = read_response(sock, HEADER_TIMEOUT + MARGIN)
        assert_problem(status, headers, body, "request_timeout")
        assert HEADER_TIMEOUT * 0.9 <= time.monotonic() - start <= HEADER_TIMEOUT + MARGIN
        assert closed_by_peer(sock, MARGIN)
    assert head_seq(door) == before
    assert_serves(door)


def test_a_body_sent_in_parts_within_the_deadline_is_accepted(door: Backend) -> None:
    body = json.dumps(big_incident()).encode()
    token = door.headers()["Authorization"].encode()
    with raw_connect(door) as sock:
        sock.sendall(
            b"POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Authorization: " + token + b"\r\n\r\n"
        )
        half = len(body) // 2
        sock.sendall(body[:half])
        time.sleep(BODY_TIMEOUT / 4)  # a slow link, well inside the deadline
        sock.sendall(body[half:])
        status, _headers, answer = read_response(sock)
    assert status == 200, answer


def test_a_connection_that_sends_nothing_is_closed(door: Backend) -> None:
    before = head_seq(door)
    with raw_connect(door) as sock:
        start = time.monotonic()
        assert closed_by_peer(sock, HEADER_TIMEOUT + MARGIN)
        assert time.monotonic() - start >= HEADER_TIMEOUT * 0.9
    assert head_seq(door) == before
    assert_serves(door)


def test_a_body_that_trickles_is_cut_off_with_408(door: Backend) -> None:
    before = head_seq(door)
    token = door.headers()["Authorization"]
    with raw_connect(door) as sock:
        sock.sendall(
            b"POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200\r\nAuthorization: " + token.encode() + b"\r\n\r\n{"
        )
        start = time.monotonic()
        answered_at = None
        for _ in range(int((BODY_TIMEOUT + MARGIN) / 0.1)):
            if answered(sock):
                answered_at = time.monotonic()
                break
            try:
                sock.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
            time.sleep(0.1)
        assert answered_at is not None, "the server let the body trickle on"
        status, headers, body = read_response(sock)
        assert headers.get("connection") == "close"
        assert closed_by_peer(sock, MARGIN)
    assert_problem(status, headers, body, "request_timeout")
    assert BODY_TIMEOUT * 0.9 <= answered_at - start <= BODY_TIMEOUT + MARGIN
    assert head_seq(door) == before
    assert_serves(door)


# --- how many connections -----------------------------------------------------------------


def test_connections_over_the_limit_get_503(backend_factory) -> None:
    cap = 3
    backend = backend_factory(make_config(limits=limits(max_connections=cap, header_timeout=30)))
    before = head_seq(backend)
    held = [raw_connect(backend) for _ in range(cap)]
    try:
        wait_for(lambda: connections(backend) == cap, STEP, "the server holding the connections")
        with raw_connect(backend) as extra:
            extra.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(extra)
            assert closed_by_peer(extra, MARGIN)
        problem = assert_problem(status, headers, body, "too_many_connections")
        assert str(cap) in problem["detail"]
        assert headers["retry-after"] == "1"
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: connections(backend) == 0, STEP, "the held connections closing")
    assert head_seq(backend) == before
    assert_serves(backend)


# --- floods of bad requests ---------------------------------------------------------------


def test_bad_tokens_from_one_address_are_limited(backend_factory) -> None:
    burst = 5
    backend = backend_factory(
        make_config(limits=limits(bad_request_burst=burst, bad_request_rate=1.0))
    )
    before = head_seq(backend)
    with client(backend, None, headers={"Authorization": "Bearer not-a-token"}) as bad:
        for _ in range(burst):
            assert_http_problem(bad.get("/v1/whoami"), "unauthenticated")
        response = bad.get("/v1/whoami")
    problem = assert_http_problem(response, "rate_limited")
    seconds = int(response.headers["retry-after"])
    assert re.search(r"retry in (\d+) s\b", problem["detail"])[1] == str(seconds)
    # While the address is over its limit even a good token waits: nothing is hashed.
    with client(backend) as good:
        assert_http_problem(good.get("/v1/whoami"), "rate_limited")
        assert head_seq(backend) == before  # the public health check is not limited
        # After the wait the server asked for, it serves the address again.
        wait_for(
            lambda: good.get("/v1/whoami").status_code == 200,
            seconds + MARGIN,
            "the address being served again",
        )


def test_malformed_requests_count_against_the_address(backend_factory) -> None:
    burst = 3
    backend = backend_factory(
        make_config(limits=limits(bad_request_burst=burst, bad_request_rate=2.0))
    )
    before = head_seq(backend)
    with client(backend) as http:
        assert_http_problem(http.get("/v1/nowhere"), "not_found")
        assert_http_problem(http.get("/v1/events", params={"after": -1}), "invalid_query")
        response = http.post(
            "/v1/commands", content=b"\xff", headers={"Content-Type": "application/json"}
        )
        assert_http_problem(response, "malformed_json")
        assert_http_problem(http.get("/v1/whoami"), "rate_limited")
        assert head_seq(backend) == before
        wait_for(lambda: http.get("/v1/whoami").status_code == 200, 1 + MARGIN, "serving again")


def test_bad_stream_handshakes_count_against_the_address(backend_factory) -> None:
    burst = 3
    backend = backend_factory(make_config(limits=limits(bad_request_burst=burst)))
    before = head_seq(backend)
    for expected in ["unauthenticated"] * burst + ["rate_limited"]:
        with raw_connect(backend) as sock:
            sock.sendall(handshake(backend, token="wrong"))
            status, headers, body = read_response(sock)
        assert_problem(status, headers, body, expected)
    assert head_seq(backend) == before


# --- streams that stop reading ------------------------------------------------------------


def test_a_subscriber_that_never_reads_is_dropped_at_the_tcp_level(backend_factory) -> None:
    send_timeout = 1.0
    backend = backend_factory(
        make_config(limits=limits(subscriber_queue=5, send_timeout=send_timeout))
    )
    before = head_seq(backend)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a tiny window fills fast
    sock.settimeout(STEP)
    try:
        sock.connect((backend.host, backend.port))
        sock.sendall(handshake(backend))
        status, _headers, _ = read_response(sock)
        assert status == 101
        sock.sendall(masked_text(json.dumps({"type": "subscribe", "since": before}).encode()))
        # From here the client never reads. Fill its window, the server's socket
        # buffer and the transport's, then overflow the subscriber's queue.
        with client(backend) as http:
            for _ in range(500):
                assert http.post("/v1/commands", json=big_incident()).status_code == 200
                if http.get("/v1/health").json()["cut_off"]:
                    break
            else:
                pytest.fail("the subscriber was never cut off")
        cut_off = time.monotonic()
        took = wait_for(
            lambda: tcp_state(sock) != 1, send_timeout + MARGIN, "the TCP connection closing"
        )
        assert time.monotonic() - cut_off <= send_timeout + MARGIN, took
        wait_for(lambda: connections(backend) == 0, MARGIN, "the server forgetting the stream")
    finally:
        sock.close()
    assert head_seq(backend) > before  # the commands, not the misbehaving client
    assert_serves(backend)


def test_an_http_client_that_never_reads_its_answers_is_dropped(backend_factory) -> None:
    send_timeout = 1.0
    backend = backend_factory(make_config(limits=limits(send_timeout=send_timeout)))
    with client(backend) as http:
        for _ in range(20):  # a picture of about 330 KB
            assert http.post("/v1/commands", json=big_incident()).status_code == 200
    before = head_seq(backend)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(STEP)
    try:
        sock.connect((backend.host, backend.port))
        token = backend.headers()["Authorization"].encode()
        request = b"GET /v1/state HTTP/1.1\r\nHost: x\r\nAuthorization: " + token + b"\r\n\r\n"
        sock.sendall(request * 30)  # pipelined: about 10 MB of answers, never read
        start = time.monotonic()
        wait_for(lambda: tcp_state(sock) != 1, STEP + send_timeout, "the TCP connection closing")
        assert time.monotonic() - start <= STEP + send_timeout
        wait_for(lambda: connections(backend) == 0, MARGIN, "the server forgetting it")
    finally:
        sock.close()
    assert head_seq(backend) == before
    assert_serves(backend)


def test_a_close_the_client_never_answers_is_bounded(backend_factory) -> None:
    close_timeout = 1.0
    backend = backend_factory(make_config(limits=limits(stream_close_timeout=close_timeout)))
    before = head_seq(backend)
    with raw_connect(backend) as sock:
        sock.sendall(handshake(backend))
        status, _headers, _ = read_response(sock)
        assert status == 101
        sock.sendall(masked_text(b"not json"))  # error frame, then close 4002
        start = time.monotonic()
        # The client reads but never sends its half of the closing handshake.
        assert closed_by_peer(sock, close_timeout + MARGIN)
        assert time.monotonic() - start >= close_timeout * 0.9
    assert head_seq(backend) == before
    assert_serves(backend)
