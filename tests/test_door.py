"""Every ill-formed request is refused at the door with a typed problem, never a 500.

A real backend on loopback; each test sends something malformed (raw bytes where httpx
would not send it), checks the exact problem document or close code, that no event was
stored (the head seq is unchanged), and that the server still serves afterwards.
"""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from conftest import Backend, make_config
from door_helpers import (
    STEP,
    assert_http_problem,
    assert_problem,
    assert_serves,
    big_incident,
    book_on,
    client,
    head_seq,
    masked_text,
    no_server_errors,  # noqa: F401 - an autouse fixture
    raw_connect,
    raw_stream,
    read_response,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.sync.client import connect

from cadterm.protocol.frames import SUBPROTOCOL, CloseCode
from cadterm.server.config import Limits
from cadterm.server.guard import TokenBucket, nesting_exceeds, retry_after

DEEP = 10_000  # nesting depth of the hostile documents


@pytest.fixture
def door(backend_factory) -> Backend:
    """A backend whose refusals do not trip the per-address limit during a test."""
    limits = Limits(command_rate=1000, command_burst=1000, bad_request_burst=1000)
    return backend_factory(make_config(limits=limits))


def deep_json(depth: int = DEEP) -> str:
    return "[" * depth + "]" * depth


def post_raw(backend: Backend, body: bytes, content_type: str = "application/json"):
    with client(backend) as http:
        return http.post("/v1/commands", content=body, headers={"Content-Type": content_type})


# --- bodies ------------------------------------------------------------------------------


def test_invalid_utf8_body_is_malformed_json(door: Backend) -> None:
    before = head_seq(door)
    body = json.dumps(book_on()).encode().replace(b"patrol_car", b"patrol\xff\xfe_car")
    problem = assert_http_problem(post_raw(door, body), "malformed_json")
    assert "UTF-8" in problem["detail"]
    assert head_seq(door) == before
    assert_serves(door)


@pytest.mark.parametrize("shape", ["array", "object", "inside_command"])
def test_deeply_nested_body_is_refused(door: Backend, shape: str) -> None:
    before = head_seq(door)
    if shape == "array":
        body = deep_json()
    elif shape == "object":
        body = '{"a":' * DEEP + "1" + "}" * DEEP
    else:
        body = json.dumps(book_on())[:-1] + ', "position": ' + deep_json() + "}"
    problem = assert_http_problem(post_raw(door, body.encode()), "nesting_too_deep")
    assert str(door.config.limits.max_json_depth) in problem["detail"]
    assert head_seq(door) == before
    assert_serves(door)


def test_brackets_inside_strings_do_not_count_as_nesting(door: Backend) -> None:
    command = big_incident()
    command["description"] = "[" * 4000
    with client(door) as http:
        response = http.post("/v1/commands", json=command)
    assert response.status_code == 200, response.text


def test_nesting_at_the_limit_is_merely_invalid(door: Backend) -> None:
    depth = door.config.limits.max_json_depth
    body = json.dumps(book_on())[:-1] + ', "position": ' + deep_json(depth - 1) + "}"
    assert_http_problem(post_raw(door, body.encode()), "invalid_command")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"],
)
def test_a_body_that_is_not_json_by_its_type_is_415(door: Backend, content_type: str) -> None:
    before = head_seq(door)
    body = json.dumps(book_on()).encode()
    assert_http_problem(post_raw(door, body, content_type), "unsupported_media_type")
    assert head_seq(door) == before
    assert_serves(door)


def test_json_with_a_utf8_charset_is_accepted(door: Backend) -> None:
    body = json.dumps(book_on()).encode()
    response = post_raw(door, body, "application/json; charset=UTF-8")
    assert response.status_code == 200, response.text


# --- queries -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"after": 2**63},
        {"after": 2**64 + 5},
        {"after": -1},
        {"limit": -1},
        {"limit": 0},
        {"limit": 2**63},
        {"after": "1e3"},
        {"after": "twelve"},
    ],
)
def test_out_of_range_query_numbers_are_422(door: Backend, params: dict) -> None:
    before = head_seq(door)
    with client(door) as http:
        problem = assert_http_problem(http.get("/v1/events", params=params), "invalid_query")
    assert problem["field"] == "query." + next(iter(params))
    assert head_seq(door) == before
    assert_serves(door)


def test_the_largest_int64_is_a_valid_after(door: Backend) -> None:
    with client(door) as http:
        response = http.get("/v1/events", params={"after": 2**63 - 1, "limit": 2**63 - 1})
    assert response.status_code == 200
    assert response.json() == []


# --- paths and methods -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/units/"), ("GET", "/v1/state/"), ("POST", "/v1/commands/"), ("GET", "/v1/")],
)
def test_trailing_slash_is_not_found_not_redirected(door: Backend, method: str, path: str) -> None:
    before = head_seq(door)
    with client(door) as http:
        response = http.request(method, path, headers={"Host": "evil.example"})
    assert "location" not in response.headers
    assert_http_problem(response, "not_found")
    assert head_seq(door) == before
    assert_serves(door)


def test_unknown_path_and_method(door: Backend) -> None:
    with client(door) as http:
        assert_http_problem(http.get("/v2/anything"), "not_found")
        response = http.delete("/v1/units")
        assert_http_problem(response, "method_not_allowed")
        assert response.headers["allow"] == "GET"
        assert_http_problem(http.get("/v1/stream"), "not_found")
    assert_serves(door)


UPGRADE = b"GET /v1/stream HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"


@pytest.mark.parametrize(
    ("request_bytes", "code"),
    [
        (b"GET /v1/health HTTP/1.1\r\nHost x\r\n\r\n", "malformed_request"),  # no colon
        (b"GET /v1/units/\xff HTTP/1.1\r\nHost: x\r\n\r\n", "malformed_request"),
        (
            b"POST /v1/commands HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\n\r\n",
            "malformed_request",
        ),
        (UPGRADE + b"Sec-WebSocket-Version: 13\r\n\r\n", "bad_handshake"),  # no key
        (
            UPGRADE
            + b"Sec-WebSocket-Version: 99\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            "bad_handshake",
        ),
    ],
    ids=["header-without-colon", "non-ascii-path", "bad-content-length", "ws-no-key", "ws-version"],
)
def test_an_unparsable_request_gets_a_problem_document(
    door: Backend, request_bytes: bytes, code: str
) -> None:
    before = head_seq(door)
    with raw_connect(door) as sock:
        sock.sendall(request_bytes)
        status, headers, body = read_response(sock)
    assert_problem(status, headers, body, code)
    assert head_seq(door) == before
    assert_serves(door)


# --- one reading only ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "says"),
    [
        # Which `type` runs? Another reader of the same bytes might take the first.
        ('{"type": "book_off", "type": "add_note"}', "'type' twice"),
        ('{"type": "book_on", "position": {"lat": 1, "lat": 2, "lon": 0}}', "'lat' twice"),
        ('{"type": "book_on", "grade": NaN}', "NaN"),
        ('{"type": "book_on", "grade": -Infinity}', "-Infinity"),
        ('{"type": "book_on", "count": ' + "9" * 5001 + "}", "not valid JSON"),
    ],
)
def test_a_body_two_readers_could_read_differently_is_malformed_json(
    door: Backend, body: str, says: str
) -> None:
    before = head_seq(door)
    problem = assert_http_problem(post_raw(door, body.encode()), "malformed_json")
    assert says in problem["detail"], problem
    assert head_seq(door) == before
    assert_serves(door)


def test_an_empty_body_is_malformed_json(door: Backend) -> None:
    problem = assert_http_problem(post_raw(door, b""), "malformed_json")
    assert "empty" in problem["detail"]


def test_a_compressed_body_is_refused_not_misread(door: Backend) -> None:
    with client(door) as http:
        reply = http.post(
            "/v1/commands",
            content=json.dumps(book_on()).encode(),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
    problem = assert_http_problem(reply, "unsupported_media_type")
    assert "gzip" in problem["detail"]


def test_two_authorization_headers_are_refused_whichever_is_valid(door: Backend) -> None:
    """A proxy checking the first would let through whoever the second names."""
    valid = door.headers()["Authorization"]
    with client(door, None) as http:
        for pair in ([valid, "Bearer nonsense"], ["Bearer nonsense", valid], [valid, valid]):
            headers = httpx.Headers([("Authorization", value) for value in pair])
            reply = http.get("/v1/whoami", headers=headers)
            problem = assert_http_problem(reply, "malformed_request")
            assert "Authorization" in problem["detail"]
    with pytest.raises(InvalidStatus) as refused:
        connect(
            f"ws://{door.host}:{door.port}/v1/stream",
            subprotocols=[SUBPROTOCOL],
            additional_headers=[("Authorization", valid), ("Authorization", valid)],
            open_timeout=STEP,
        )
    assert refused.value.response.status_code == 400
    assert_serves(door)


# --- the stream --------------------------------------------------------------------------


def stream(backend: Backend, path: str = "/v1/stream"):
    return connect(
        f"ws://{backend.host}:{backend.port}{path}",
        subprotocols=[SUBPROTOCOL],
        additional_headers=backend.headers(),
        open_timeout=STEP,
        close_timeout=STEP,
        max_size=None,
    )


def expect_bad_frame(ws, *, after: str | None = None) -> dict:
    """Read frames until the `error` frame; check the close that follows is 4002."""
    error = None
    for _ in range(100):
        try:
            frame = json.loads(ws.recv(timeout=STEP))
        except ConnectionClosed:
            break
        if frame["type"] == "error":
            error = frame
    assert error is not None, "no error frame before the close"
    assert ws.protocol.close_rcvd is not None, "the server dropped the connection without a close"
    assert ws.protocol.close_rcvd.code == CloseCode.BAD_FRAME
    return error


def test_deeply_nested_subscribe_frame_gets_error_and_4002(door: Backend) -> None:
    before = head_seq(door)
    with stream(door) as ws:
        ws.send('{"type": "subscribe", "since": ' + deep_json() + "}")
        error = expect_bad_frame(ws)
    assert error["code"] == "bad_frame"
    assert "deep" in error["detail"]
    assert head_seq(door) == before
    assert_serves(door)


@pytest.mark.parametrize(
    "frame",
    ['{"type": "subscribe", "since": -5, "since": 0}', '{"type": "subscribe", "since": NaN}'],
)
def test_a_subscribe_frame_two_readers_could_read_differently_gets_4002(
    door: Backend, frame: str
) -> None:
    with stream(door) as ws:
        ws.send(frame)
        error = expect_bad_frame(ws)
    assert "twice" in error["detail"] or "NaN" in error["detail"], error
    assert_serves(door)


def test_deeply_nested_frame_after_subscribing_gets_error_and_4002(door: Backend) -> None:
    before = head_seq(door)
    with stream(door) as ws:
        ws.send(json.dumps({"type": "subscribe", "since": before}))
        assert json.loads(ws.recv(timeout=STEP))["type"] == "caught_up"
        ws.send(deep_json())
        error = expect_bad_frame(ws)
    assert "deep" in error["detail"]
    assert head_seq(door) == before
    assert_serves(door)


def test_a_stream_at_an_unknown_path_is_refused_with_a_problem(door: Backend) -> None:
    with pytest.raises(InvalidStatus) as refused:
        stream(door, "/v1/stream/").__enter__()
    response = refused.value.response
    assert_problem(response.status_code, response.headers, response.body, "not_found")
    assert_serves(door)


# --- rates -------------------------------------------------------------------------------


def test_rate_limit_detail_agrees_with_retry_after(backend_factory) -> None:
    limits = Limits(command_rate=0.2, command_burst=1)
    backend = backend_factory(make_config(limits=limits))
    with client(backend) as http:
        assert http.post("/v1/commands", json=book_on()).status_code == 200
        before = head_seq(backend)
        response = http.post("/v1/commands", json=book_on())
    problem = assert_http_problem(response, "rate_limited")
    seconds = int(response.headers["retry-after"])
    assert 1 <= seconds <= 5
    assert re.search(r"retry in (\d+) s\b", problem["detail"])[1] == str(seconds), problem
    assert head_seq(backend) == before
    assert_serves(backend)


# --- the pieces, without a server ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "exceeds"),
    [
        ("[[[]]]", 3, False),
        ("[[[[]]]]", 3, True),
        ('{"a": {"b": {"c": [1]}}}', 3, True),
        ('{"a": "[[[[[[[[", "b": 1}', 2, False),  # brackets in strings do not count
        ('["\\"[[[[[[", 1]', 2, False),  # nor after an escaped quote
        ("[[], [], [], [], []]", 2, False),  # wide is not deep
        ('"unterminated [[[[[[', 2, True),  # invalid JSON: refused either way
    ],
)
def test_nesting_is_counted_without_parsing(text: str, limit: int, exceeds: bool) -> None:
    assert nesting_exceeds(text, limit) is exceeds


def test_nesting_of_ten_thousand_is_counted_quickly() -> None:
    start = time.perf_counter()
    assert nesting_exceeds(deep_json(), 32)
    assert nesting_exceeds('{"a":' * DEEP + "1" + "}" * DEEP, 32)
    assert time.perf_counter() - start < 0.5


@pytest.mark.parametrize(("wait", "seconds"), [(0.01, 1), (0.4, 1), (1.0, 1), (1.2, 2), (7.9, 8)])
def test_retry_after_is_whole_seconds_never_zero(wait: float, seconds: int) -> None:
    assert retry_after(wait) == seconds


def test_token_bucket_remembers_a_bounded_number_of_addresses() -> None:
    bucket = TokenBucket(rate=1.0, burst=2, max_keys=100)
    for i in range(1000):
        bucket.take(f"203.0.113.{i}")
    assert len(bucket) <= 100
    bucket.take("198.51.100.7")
    bucket.take("198.51.100.7")
    assert bucket.wait("198.51.100.7") > 0  # the newest key is still limited
    assert bucket.take("198.51.100.7") > 0


@pytest.mark.parametrize("subscribed", [False, True])
def test_a_text_frame_that_is_not_utf8_gets_error_and_4002(door: Backend, subscribed: bool) -> None:
    before = head_seq(door)
    sock, protocol = raw_stream(door)
    with sock:
        if subscribed:
            sock.sendall(masked_text(json.dumps({"type": "subscribe", "since": before}).encode()))
        sock.sendall(masked_text(b'{"type": "subscribe\xff"}'))
        frames: list[Frame] = []
        for _ in range(100):
            data = sock.recv(65536)
            if data:
                protocol.receive_data(data)
            else:
                protocol.receive_eof()
            frames += [e for e in protocol.events_received() if isinstance(e, Frame)]
            if not data or protocol.close_rcvd is not None:
                break
    texts = [json.loads(f.data) for f in frames if f.opcode is Opcode.TEXT]
    assert texts[-1]["type"] == "error", texts
    assert "UTF-8" in texts[-1]["detail"]
    assert protocol.close_rcvd is not None
    assert protocol.close_rcvd.code == CloseCode.BAD_FRAME
    assert head_seq(door) == before
    assert_serves(door)


def _fields_of(model: type, kinds: tuple, path: str = "") -> list[tuple[str, type, list]]:
    """Every (path, kind, metadata) of a field of one of `kinds` anywhere in `model`."""
    import typing

    from pydantic import BaseModel

    found = []
    for name, info in model.model_fields.items():
        todo: list[tuple[object, list[object]]] = [(info.annotation, list(info.metadata))]
        while todo:
            kind, metadata = todo.pop()
            if typing.get_origin(kind) is typing.Annotated:
                inner, *more = typing.get_args(kind)
                todo.append((inner, metadata + more))
            elif kind in kinds:
                found.append((f"{path}{name}", kind, metadata))
            elif isinstance(kind, type) and issubclass(kind, BaseModel):
                found.extend(_fields_of(kind, kinds, f"{path}{name}."))
            else:
                todo.extend((arg, metadata) for arg in typing.get_args(kind))
    return found


def test_every_time_number_and_flag_a_client_sends_is_strict() -> None:
    """Whatever a command carries, nested or not: a time refuses a number and a naive
    time (the door's `UtcTime`), an integer refuses a string, a boolean and a fraction,
    a flag refuses 0, 1 and "true". pydantic alone would take all of them."""
    from datetime import datetime

    from pydantic import AwareDatetime, Strict

    from cadterm.protocol.commands import COMMAND_TYPES
    from cadterm.protocol.types import _rfc3339_only, reject_non_integer

    checked = []
    for command_type, model in COMMAND_TYPES.items():
        for path, kind, metadata in _fields_of(model, (datetime, AwareDatetime, int, bool)):
            where = f"{command_type}.{path}"
            funcs = [getattr(m, "func", None) for m in metadata]
            strict = any(isinstance(m, Strict) and m.strict for m in metadata)
            if kind is bool:
                assert strict, f"{where} is not a StrictBool"
            elif kind is int:
                assert strict or reject_non_integer in funcs, f"{where} takes '5' or true"
            else:
                assert _rfc3339_only in funcs, f"{where} is not a UtcTime"
            checked.append(where)
    for where in ("submit_report.transcript.at", "assign_unit.divert", "reserve_references.count"):
        assert where in checked


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (
            {"type": "assign_unit", "reference": "0001-27NOV26", "callsign": "AB1", "divert": 0},
            "divert",
        ),
        (
            {
                "type": "assign_unit",
                "reference": "0001-27NOV26",
                "callsign": "AB1",
                "divert": "true",
            },
            "divert",
        ),
        ({"type": "reserve_references", "count": "5"}, "count"),
        ({"type": "reserve_references", "count": True}, "count"),
    ],
    ids=["divert-0", "divert-string", "count-string", "count-true"],
)
def test_a_flag_or_count_of_the_wrong_type_is_refused(door: Backend, fields, field) -> None:
    before = head_seq(door)
    body = {"idempotency_key": "strict-types-01", "workstation": "ws"} | fields
    with client(door) as http:
        reply = http.post("/v1/commands", json=body)
    assert reply.status_code == 422, reply.text
    problem = assert_http_problem(reply, "invalid_command")
    assert problem["field"] == field
    assert head_seq(door) == before
