"""Security and robustness at the edge: tokens, roles, bodies, rates, origins, frames.

Every test drives a real backend over loopback with real clients (httpx, websockets),
checks the exact refusal, and then checks the server still serves well-behaved clients.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TOKENS, Backend, make_config
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from cadterm.protocol.domain import Role
from cadterm.protocol.frames import SERVER_FRAME_ADAPTER, SUBPROTOCOL, CloseCode
from cadterm.server.auth import Authenticator, hash_token
from cadterm.server.config import Limits, ensure_config, load_config

TIMEOUT = 10.0  # seconds any one network step may take before the test fails


# --- helpers -----------------------------------------------------------------------------


def key() -> str:
    return uuid.uuid4().hex


def book_on(callsign: str | None = None) -> dict[str, Any]:
    return {
        "type": "book_on",
        "idempotency_key": key(),
        "workstation": "ws-test",
        "callsign": callsign or f"U{uuid.uuid4().hex[:6].upper()}",
        "unit_type": "patrol_car",
    }


def http(
    backend: Backend, role: Role | None = Role.DISPATCHER, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    sent = backend.headers(role) if role is not None else {}
    return httpx.AsyncClient(
        base_url=backend.url, headers={**sent, **(headers or {})}, timeout=TIMEOUT, trust_env=False
    )


def ws(
    backend: Backend,
    role: Role | None = Role.DISPATCHER,
    *,
    token: str | None = None,
    subprotocols: list[str] | None = [SUBPROTOCOL],  # noqa: B006 - never mutated
    **kw: Any,
):
    headers: dict[str, str] = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    elif role is not None:
        headers = backend.headers(role)
    return connect(
        backend.ws_url,
        subprotocols=subprotocols,
        additional_headers=headers,
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=2,
        ping_interval=None,
        **kw,
    )


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["detail"]
    return body


async def assert_still_serves(backend: Backend) -> None:
    """Health is ok, a good command is accepted and a fresh subscriber gets the picture."""
    async with http(backend, role=None) as client:
        health = await client.get("/v1/health")
        assert health.status_code == 200
        assert health.json()["status"] == "ok"
    async with http(backend, Role.SUPERVISOR) as client:
        reply = await client.post("/v1/commands", json=book_on())
        assert reply.status_code == 200, reply.text
        seq = reply.json()["seq"]
    async with asyncio.timeout(TIMEOUT), ws(backend) as conn:
        await conn.send(json.dumps({"type": "subscribe"}))
        snapshot = SERVER_FRAME_ADAPTER.validate_json(await conn.recv())
        assert snapshot.type == "snapshot"
        assert snapshot.state.seq >= seq
        caught_up = SERVER_FRAME_ADAPTER.validate_json(await conn.recv())
        assert caught_up.type == "caught_up"
        assert caught_up.seq == snapshot.state.seq


async def refused_handshake(connecting) -> tuple[int, dict[str, Any]]:
    """Open `connecting`, expecting an HTTP refusal; return its status and problem body."""
    async with asyncio.timeout(TIMEOUT):
        with pytest.raises(InvalidStatus) as info:
            async with connecting:
                pass
    response = info.value.response
    body = json.loads(response.body)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert body["status"] == response.status_code
    return response.status_code, body


async def until_closed(conn: ClientConnection) -> tuple[list[dict[str, Any]], int, str]:
    """Read frames until the server closes; return them with the close code and reason."""
    frames: list[dict[str, Any]] = []
    async with asyncio.timeout(TIMEOUT):
        try:
            for _ in range(10_000):
                frames.append(json.loads(await conn.recv()))
        except ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server dropped the connection without a close"
            return frames, closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("the server kept the connection open")


async def subscribed(conn: ClientConnection, since: int | None = None) -> None:
    """Subscribe and read up to caught_up."""
    frame: dict[str, Any] = {"type": "subscribe"}
    if since is not None:
        frame["since"] = since
    await conn.send(json.dumps(frame))
    async with asyncio.timeout(TIMEOUT):
        for _ in range(10_000):
            if json.loads(await conn.recv())["type"] == "caught_up":
                return
    raise AssertionError("no caught_up")


# --- HTTP: who may do what ---------------------------------------------------------------


async def test_missing_token_is_401_with_challenge(backend: Backend) -> None:
    async with http(backend, role=None) as client:
        for method, path in (("GET", "/v1/state"), ("POST", "/v1/commands")):
            reply = await client.request(method, path, json=book_on())
            body = assert_problem(reply, 401, "unauthenticated")
            assert reply.headers["WWW-Authenticate"].startswith("Bearer")
            assert "missing bearer token" in body["detail"]
    await assert_still_serves(backend)


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-real-token",
        "Basic ZGlzcDE6cGFzcw==",
        "Bearer",
        f"Token {TOKENS[Role.DISPATCHER]}",
    ],
)
async def test_wrong_token_is_401(backend: Backend, authorization: str) -> None:
    async with http(backend, role=None, headers={"Authorization": authorization}) as client:
        reply = await client.post("/v1/commands", json=book_on())
        assert_problem(reply, 401, "unauthenticated")
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
        assert_problem(await client.get("/v1/whoami"), 401, "unauthenticated")
    await assert_still_serves(backend)


async def test_health_needs_no_token(backend: Backend) -> None:
    async with http(backend, role=None) as client:
        reply = await client.get("/v1/health")
    assert reply.status_code == 200
    assert reply.json()["status"] == "ok"


async def test_read_only_may_read_but_not_command(backend: Backend) -> None:
    async with http(backend, Role.READ_ONLY) as client:
        assert (await client.get("/v1/whoami")).json()["role"] == "read_only"
        assert (await client.get("/v1/state")).status_code == 200
        reply = await client.post("/v1/commands", json=book_on())
        body = assert_problem(reply, 403, "forbidden")
        assert "view1" in body["detail"]
        health = (await client.get("/v1/health")).json()
    assert health["seq"] == 0, "a forbidden command must change nothing"
    await assert_still_serves(backend)


# --- HTTP: bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"{not json", b'{"type": "book_on",', b"\xff\xfe"])
async def test_malformed_json_is_400(backend: Backend, body: bytes) -> None:
    async with http(backend) as client:
        reply = await client.post(
            "/v1/commands", content=body, headers={"Content-Type": "application/json"}
        )
        assert_problem(reply, 400, "malformed_json")
    await assert_still_serves(backend)


async def test_body_over_limit_is_413_with_content_length(backend_factory) -> None:
    backend = backend_factory(make_config(limits=Limits(max_body_bytes=1024)))
    big = json.dumps({**book_on(), "padding": "x" * 8000}).encode()
    async with http(backend) as client:
        reply = await client.post(
            "/v1/commands", content=big, headers={"Content-Type": "application/json"}
        )
        body = assert_problem(reply, 413, "body_too_large")
        assert "1024" in body["detail"]
    async with http(backend, role=None) as client:
        assert (await client.get("/v1/health")).json()["seq"] == 0
    await assert_still_serves(backend)


async def test_body_over_limit_is_413_when_sent_chunked(backend_factory) -> None:
    """A chunked body (no Content-Length) is counted as it arrives and refused past the limit.

    Sent over a raw socket in one write, then read: a client that writes the whole body
    before reading (as httpx does) races the server's close when the body arrives in
    pieces; see the streamed variant below.
    """
    backend = backend_factory(make_config(limits=Limits(max_body_bytes=1024)))
    body = json.dumps({**book_on(), "padding": "x" * 8000}).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 500]), body[i : i + 500])
        for i in range(0, len(body), 500)
    )
    request = (
        b"POST /v1/commands HTTP/1.1\r\n"
        b"Host: 127.0.0.1\r\n"
        b"Authorization: Bearer " + TOKENS[Role.DISPATCHER].encode() + b"\r\n"
        b"Content-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    )
    async with asyncio.timeout(TIMEOUT):
        reader, writer = await asyncio.open_connection(backend.host, backend.port)
        try:
            writer.write(request)
            await writer.drain()
            raw = await reader.read(65536)
            while not raw.endswith(b"}"):
                more = await reader.read(65536)
                if not more:
                    break
                raw += more
        finally:
            writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 "), raw[:200]
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(payload)["code"] == "body_too_large"
    async with http(backend) as client:
        assert (await client.get("/v1/health")).json()["seq"] == 0
    await assert_still_serves(backend)


async def test_body_over_limit_streamed_by_httpx_is_not_applied(backend_factory) -> None:
    """Streamed from a generator, the body is refused; httpx may see the 413 or, when the
    server closes while chunks are still coming, a dropped connection. Nothing applies."""
    backend = backend_factory(make_config(limits=Limits(max_body_bytes=1024)))

    async def chunks():
        yield b'{"type": "book_on", "padding": "'
        for _ in range(16):
            yield b"x" * 512
        yield b'"}'

    async with http(backend) as client:
        request = client.build_request(
            "POST", "/v1/commands", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        try:
            reply = await client.send(request)
        except httpx.TransportError:
            pass  # the server closed before the client had finished sending
        else:
            assert_problem(reply, 413, "body_too_large")
    async with http(backend, role=None) as client:
        assert (await client.get("/v1/health")).json()["seq"] == 0
    await assert_still_serves(backend)


async def test_body_at_limit_is_read_normally(backend_factory) -> None:
    backend = backend_factory(make_config(limits=Limits(max_body_bytes=1024)))
    command = {
        "type": "create_incident",
        "idempotency_key": key(),
        "workstation": "ws-test",
        "grade": 2,
        "incident_type": "THEFT",
        "location": {"address": "1 High Street"},
        "description": "",
    }
    command["description"] = "d" * (1024 - len(json.dumps(command).encode()))
    body = json.dumps(command).encode()
    assert len(body) == 1024
    async with http(backend) as client:
        reply = await client.post(
            "/v1/commands", content=body, headers={"Content-Type": "application/json"}
        )
    assert reply.status_code == 200, reply.text


# --- HTTP: rate limit ----------------------------------------------------------------------


async def test_rate_limit_is_per_operator(backend_factory) -> None:
    backend = backend_factory(make_config(limits=Limits(command_rate=2, command_burst=3)))
    async with http(backend) as dispatcher, http(backend, Role.SUPERVISOR) as supervisor:
        for _ in range(3):  # the burst
            assert (await dispatcher.post("/v1/commands", json=book_on())).status_code == 200
        limited = None
        for _ in range(10):  # refills at 2/s: a few quick posts must run dry
            reply = await dispatcher.post("/v1/commands", json=book_on())
            if reply.status_code == 429:
                limited = reply
                break
            assert reply.status_code == 200, reply.text
        assert limited is not None, "no 429 after the burst"
        body = assert_problem(limited, 429, "rate_limited")
        assert "disp1" in body["detail"]
        retry_after = int(limited.headers["Retry-After"])
        assert 1 <= retry_after <= 2

        head = (await dispatcher.get("/v1/state")).json()["seq"]
        # Another operator has a bucket of their own.
        for _ in range(3):
            assert (await supervisor.post("/v1/commands", json=book_on())).status_code == 200
        assert (await dispatcher.get("/v1/state")).json()["seq"] == head + 3
        # Reads are not rate limited.
        for _ in range(5):
            assert (await dispatcher.get("/v1/health")).status_code == 200

        # After the advertised wait the dispatcher may command again.
        await asyncio.sleep(retry_after)
        reply = await dispatcher.post("/v1/commands", json=book_on())
        assert reply.status_code == 200, reply.text


# --- WebSocket handshake ---------------------------------------------------------------------


async def test_stream_without_token_is_refused_401(backend: Backend) -> None:
    status, body = await refused_handshake(ws(backend, role=None))
    assert status == 401
    assert body["code"] == "unauthenticated"
    await assert_still_serves(backend)


async def test_stream_with_wrong_token_is_refused_401(backend: Backend) -> None:
    status, body = await refused_handshake(ws(backend, token="not-a-real-token"))
    assert status == 401
    assert body["code"] == "unauthenticated"
    await assert_still_serves(backend)


async def test_stream_read_only_may_subscribe(backend: Backend) -> None:
    async with ws(backend, Role.READ_ONLY) as conn:
        await subscribed(conn)


async def test_stream_from_foreign_origin_is_refused_403(backend: Backend) -> None:
    status, body = await refused_handshake(ws(backend, origin="http://evil.example"))
    assert status == 403
    assert body["code"] == "origin_not_allowed"
    assert "evil.example" in body["detail"]
    await assert_still_serves(backend)


async def test_stream_from_allowed_origin_is_accepted(backend_factory) -> None:
    backend = backend_factory(make_config(allowed_origins=["https://console.example"]))
    async with ws(backend, origin="https://console.example") as conn:
        assert conn.subprotocol == SUBPROTOCOL
        await subscribed(conn)
    status, body = await refused_handshake(ws(backend, origin="https://console.example.evil"))
    assert (status, body["code"]) == (403, "origin_not_allowed")
    await assert_still_serves(backend)


@pytest.mark.parametrize("offered", [None, ["cadterm.v0"], ["graphql-ws", "cadterm.v2"]])
async def test_stream_without_subprotocol_is_refused_400(
    backend: Backend, offered: list[str] | None
) -> None:
    status, body = await refused_handshake(ws(backend, subprotocols=offered))
    assert status == 400
    assert body["code"] == "bad_handshake"
    assert SUBPROTOCOL in body["detail"]
    await assert_still_serves(backend)


# --- WebSocket frames -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "reason_has"),
    [
        ("{not json", "not valid JSON"),
        ('"subscribe"', "JSON object"),
        ('{"since": 0, "type": null}', "None"),
        ('{"type": "unsubscribe"}', "'unsubscribe'"),
        ('{"type": "subscribe", "since": -1}', "since"),
        ('{"type": "subscribe", "since": "soon"}', "since"),
        ('{"type": "subscribe", "extra": 1}', "extra"),
    ],
)
async def test_bad_first_frame_gets_error_then_4002(
    backend: Backend, frame: str, reason_has: str
) -> None:
    async with ws(backend) as conn:
        await conn.send(frame)
        frames, code, reason = await until_closed(conn)
    assert code == CloseCode.BAD_FRAME
    assert reason_has in reason
    assert [f["type"] for f in frames] == ["error"]
    assert frames[0]["code"] == "bad_frame"
    assert reason_has in frames[0]["detail"]
    await assert_still_serves(backend)


@pytest.mark.parametrize(
    ("frame", "reason_has"),
    [
        ("{not json", "not valid JSON"),
        ('{"type": "ping"}', "'ping'"),
        ("[1, 2]", "None"),
    ],
)
async def test_bad_frame_after_subscribe_gets_error_then_4002(
    backend: Backend, frame: str, reason_has: str
) -> None:
    async with ws(backend) as conn:
        await subscribed(conn, since=0)
        await conn.send(frame)
        frames, code, reason = await until_closed(conn)
    assert code == CloseCode.BAD_FRAME
    assert reason_has in reason
    assert [f["type"] for f in frames if f["type"] != "heartbeat"] == ["error"]
    await assert_still_serves(backend)


async def test_second_subscribe_is_refused(backend: Backend) -> None:
    async with ws(backend) as conn:
        await subscribed(conn, since=0)
        await conn.send(json.dumps({"type": "subscribe", "since": 0}))
        frames, code, reason = await until_closed(conn)
    assert code == CloseCode.UNEXPECTED_FRAME
    assert "already subscribed" in reason
    assert [f["type"] for f in frames if f["type"] != "heartbeat"] == ["error"]
    await assert_still_serves(backend)


@pytest.mark.parametrize("when", ["first", "after_subscribe"])
async def test_binary_frame_is_refused_4002(backend: Backend, when: str) -> None:
    async with ws(backend) as conn:
        if when == "after_subscribe":
            await subscribed(conn, since=0)
        await conn.send(b'{"type": "subscribe"}')
        frames, code, reason = await until_closed(conn)
    assert code == CloseCode.BAD_FRAME
    assert "binary" in reason
    assert [f["type"] for f in frames if f["type"] != "heartbeat"] == ["error"]
    await assert_still_serves(backend)


@pytest.mark.parametrize("when", ["first", "after_subscribe"])
async def test_oversized_frame_is_closed_1009(backend_factory, when: str) -> None:
    backend = backend_factory(make_config(limits=Limits(max_frame_bytes=1024)))
    async with ws(backend, compression=None) as conn:
        if when == "after_subscribe":
            await subscribed(conn, since=0)
        await conn.send(json.dumps({"type": "subscribe", "pad": "x" * 4096}))
        _, code, _ = await until_closed(conn)
    assert code == CloseCode.MESSAGE_TOO_BIG
    await assert_still_serves(backend)


async def test_frame_just_under_limit_is_read(backend_factory) -> None:
    backend = backend_factory(make_config(limits=Limits(max_frame_bytes=1024)))
    async with ws(backend, compression=None) as conn:
        frame = json.dumps({"type": "subscribe", "since": 0})
        await conn.send(frame + " " * (1000 - len(frame)))
        async with asyncio.timeout(TIMEOUT):
            assert json.loads(await conn.recv())["type"] == "caught_up"


# --- tokens at rest ---------------------------------------------------------------------------


def test_config_stores_only_the_token_hash(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    config, token = ensure_config(path)
    assert token is not None
    text = path.read_text(encoding="utf-8")
    assert token not in text
    assert hash_token(token) in text
    assert tomllib.loads(text)["operators"][0]["token_sha256"] == hash_token(token)
    assert path.stat().st_mode & 0o077 == 0, "the config must be readable by its owner only"

    reloaded, again = ensure_config(path)
    assert again is None, "the token is shown only when the config is created"
    assert reloaded == config == load_config(path)

    auth = Authenticator(reloaded)
    operator = auth.operator_for(token)
    assert operator is not None
    assert operator.id == "dispatcher1"
    assert operator.role == Role.DISPATCHER
    assert auth.operator_for(hash_token(token)) is None, "the stored hash is not a token"
    assert auth.operator_for(token + "x") is None
    assert auth.operator_for("") is None
    assert auth.operator_for(None) is None
