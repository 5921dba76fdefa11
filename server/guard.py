"""The guard in front of every route: who is asking, how much, and is it well formed.

It runs before routing and body parsing, so an anonymous, oversized, slow or malformed
request is refused without the server reading more than the limit or parsing anything.
Refused requests also count against the client's address: a flood of bad tokens or
garbage bodies from one address is answered with `429` before any token is hashed.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from cadterm.protocol.domain import Role
from cadterm.protocol.problems import Problem, ProblemCode

from .auth import Authenticator, bearer_token
from .config import Limits
from .responses import problem_response

__all__ = [
    "INTAKE_PATHS",
    "PUBLIC_PATHS",
    "GuardMiddleware",
    "TokenBucket",
    "mark_refused",
    "nesting_exceeds",
    "retry_after",
]

PUBLIC_PATHS = frozenset({"/v1/health", "/openapi.json"})
STREAM_PATH = "/v1/stream"
#: All an intake login (a force's website) may reach: it sees nothing of the picture.
INTAKE_PATHS = frozenset({"/v1/intake/reports", "/v1/whoami"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_REFUSED = "cadterm.refused"  # scope["state"] flag: the app refused the request as malformed


class TokenBucket:
    """A rate limit per key: `rate` per second with bursts up to `burst`.

    At most `max_keys` keys are remembered. Past that, keys whose bucket has refilled
    are forgotten (they would start full anyway), and if that is not enough the oldest
    half goes: an attacker with that many addresses gains a fresh burst on some of them,
    but memory and the cost of each request stay bounded.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000) -> None:
        self.rate, self.burst, self.max_keys = rate, burst, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: str, now: float) -> float:
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(self.burst, tokens + (now - last) * self.rate)

    def take(self, key: str, count: int = 1) -> float:
        """Take `count` tokens (all or none); 0 if allowed, else the seconds until free.

        `count` must not exceed `burst`: the bucket never holds more.
        """
        now = time.monotonic()
        tokens = self._tokens(key, now)
        if key not in self._buckets and len(self._buckets) >= self.max_keys:
            self._prune(now)
        if tokens >= count:
            self._buckets[key] = (tokens - count, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (count - tokens) / self.rate

    def wait(self, key: str) -> float:
        """The seconds until `key` has a token, without taking one (0: it has one now)."""
        tokens = self._tokens(key, time.monotonic())
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        # Runs once per max_keys/2 new keys at most, so its cost is spread thin.
        kept = {k: v for k, v in self._buckets.items() if self._tokens(k, now) < self.burst}
        if len(kept) > self.max_keys // 2:
            kept = dict(list(kept.items())[len(kept) - self.max_keys // 2 :])
        self._buckets = kept


def retry_after(wait: float) -> int:
    """Whole seconds to tell a client to wait: the `Retry-After` value and the detail's."""
    return max(1, math.ceil(wait))


_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def nesting_exceeds(text: str, limit: int) -> bool:
    """True when JSON `text` nests arrays and objects deeper than `limit`.

    Counted without parsing (strings removed first, so brackets inside them do not
    count): the parsers recurse, and a document nested thousands deep would exhaust
    Python's stack before it could be refused.
    """
    if text.count("[") + text.count("{") <= limit:
        return False  # the common case: too few brackets to matter
    depth = 0
    for char in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class _NotJson(ValueError):
    """A document Python's `json` would read but JSON readers may read otherwise."""


def _no_repeated_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for name, value in pairs:
        if name in seen:
            raise _NotJson(f"holds the name {name!r} twice in one object")
        seen[name] = value
    return seen


def _no_constant(name: str) -> Any:
    raise _NotJson(f"holds {name}, which is not a JSON value")


def json_fault(text: str) -> str | None:
    """Why `text` is not one unambiguous JSON document ("holds ...", "is not ..."), or None.

    Python's `json` (and so FastAPI and pydantic) takes the last of two members of an
    object with the same name, and reads ``NaN`` and ``Infinity``; a gateway, a log or
    an auditor reading the same bytes may take the first, or fail. So a document with
    either is refused before anything acts on it; and so is an integer too long to read
    (Python's limit on digits), which would otherwise surface as a generic parse error.
    Call after `nesting_exceeds`: the parser recurses.
    """
    try:
        json.loads(text, object_pairs_hook=_no_repeated_names, parse_constant=_no_constant)
    except _NotJson as exc:
        return str(exc)
    except ValueError as exc:
        return f"is not valid JSON: {exc}"
    return None


def mark_refused(scope: Scope) -> None:
    """Count this request against its address: the app found it malformed."""
    scope.setdefault("state", {})[_REFUSED] = True


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


#: Headers a request may carry once only (lower case, as bytes).
_SINGLE_HEADERS = frozenset({b"authorization", b"content-type", b"content-encoding"})


def _repeated(headers: list[tuple[bytes, bytes]], names: frozenset[bytes]) -> str | None:
    """The first of `names` that `headers` holds more than once, or None."""
    seen: set[bytes] = set()
    for name, _value in headers:
        lower = name.lower()
        if lower in names:
            if lower in seen:
                return lower.decode("latin-1").title()
            seen.add(lower)
    return None


class GuardMiddleware:
    """Authenticates HTTP requests, bounds and checks their bodies, limits bad clients.

    `bad_requests` is charged one token for each refused request from an address
    (unauthenticated, too large, too slow, not JSON, unknown path, invalid query...);
    while an address has no token left, everything it asks is refused with `429`.
    """

    def __init__(
        self, app: ASGIApp, authenticator: Authenticator, limits: Limits, bad_requests: TokenBucket
    ) -> None:
        self.app = app
        self.authenticator = authenticator
        self.limits = limits
        self.bad_requests = bad_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
            return
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        address = _address(scope)
        wait = self.bad_requests.wait(address)
        if wait:
            await self._limited(address, wait)(scope, receive, send)
            return
        status = await self._http(scope, receive, send)
        if status is not None or scope.get("state", {}).get(_REFUSED):
            self.bad_requests.take(address)

    def _limited(self, address: str, wait: float) -> Response:
        """The 429 for an address over its budget: one whole number, said twice."""
        seconds = retry_after(wait)
        problem = Problem.of(
            ProblemCode.RATE_LIMITED,
            f"too many refused requests from {address}; retry in {seconds} s",
        )
        return problem_response(problem, headers={"Retry-After": str(seconds)})

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        problem: Problem,
        headers: dict[str, str] | None = None,
    ) -> int:
        await problem_response(problem, headers=headers)(scope, receive, send)
        return problem.status

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> int | None:
        """Serve one request; return the status if the guard itself refused it."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        repeated = _repeated(scope["headers"], _SINGLE_HEADERS)
        if repeated is not None:
            # A proxy that checks the first Authorization (or reads the first length)
            # would see another request than the one served: refuse both readings.
            problem = Problem.of(
                ProblemCode.MALFORMED_REQUEST, f"the {repeated} header is sent more than once"
            )
            return await self._refuse(scope, receive, send, problem)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding != "identity":
            problem = Problem.of(
                ProblemCode.UNSUPPORTED_MEDIA_TYPE,
                f"the body must be sent as it is, not with Content-Encoding {encoding!r}",
            )
            return await self._refuse(scope, receive, send, problem)
        operator = self.authenticator.operator_for(bearer_token(headers.get("authorization")))
        if operator is None:
            detail = (
                "missing bearer token: send 'Authorization: Bearer <token>'"
                if "authorization" not in headers
                else "the bearer token is not valid"
            )
            problem = Problem.of(ProblemCode.UNAUTHENTICATED, detail)
            challenge = {"WWW-Authenticate": 'Bearer realm="cadterm"'}
            return await self._refuse(scope, receive, send, problem, challenge)
        if operator.role == Role.INTAKE and scope["path"] not in INTAKE_PATHS:
            problem = Problem.of(
                ProblemCode.FORBIDDEN,
                f"operator {operator.id} (intake) may only submit reports "
                "(POST /v1/intake/reports)",
            )
            return await self._refuse(scope, receive, send, problem)
        scope.setdefault("state", {})["operator"] = operator
        max_body = self.limits.max_body_bytes
        too_large = Problem.of(
            ProblemCode.BODY_TOO_LARGE, f"request body is larger than {max_body} bytes"
        )
        close = {"Connection": "close"}
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            return await self._refuse(scope, receive, send, too_large, close)
        body = bytearray()
        try:
            # The whole body within one deadline: a client that trickles a byte a
            # second must not hold a connection (and its buffer) for ever.
            async with asyncio.timeout(self.limits.body_timeout):
                more = True
                while more:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return None
                    body += message.get("body", b"")
                    more = message.get("more_body", False)
                    if len(body) > max_body:
                        return await self._refuse(scope, receive, send, too_large, close)
        except TimeoutError:
            problem = Problem.of(
                ProblemCode.REQUEST_TIMEOUT,
                f"the request body did not arrive within {self.limits.body_timeout:g} s",
            )
            return await self._refuse(scope, receive, send, problem, close)
        if body and scope["method"] in _BODY_METHODS:
            problem = self._check_body(bytes(body), headers.get("content-type", ""))
            if problem is not None:
                return await self._refuse(scope, receive, send, problem)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
        return None

    def _check_body(self, body: bytes, content_type: str) -> Problem | None:
        """Why a request body cannot be a JSON document we will parse, or None."""
        media, _, params = content_type.partition(";")
        if media.strip().lower() != "application/json":
            return Problem.of(
                ProblemCode.UNSUPPORTED_MEDIA_TYPE,
                f"send the body as 'Content-Type: application/json', not {content_type!r}",
            )
        charset = re.search(r"charset\s*=\s*\"?([\w-]+)", params, re.I)
        if charset and charset[1].lower() not in ("utf-8", "utf8"):
            return Problem.of(
                ProblemCode.UNSUPPORTED_MEDIA_TYPE,
                f"the body must be UTF-8, not charset {charset[1]!r}",
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Problem.of(
                ProblemCode.MALFORMED_JSON,
                f"request body is not valid UTF-8 (byte {exc.start}); JSON must be UTF-8",
            )
        depth = self.limits.max_json_depth
        if nesting_exceeds(text, depth):
            return Problem.of(
                ProblemCode.NESTING_TOO_DEEP,
                f"request body nests arrays and objects more than {depth} deep",
            )
        fault = json_fault(text)
        if fault is not None:
            return Problem.of(ProblemCode.MALFORMED_JSON, f"request body {fault}")
        return None

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        address = _address(scope)
        problem = None
        wait = self.bad_requests.wait(address)
        if wait:
            response = self._limited(address, wait)
        elif scope["path"] != STREAM_PATH:
            problem = Problem.of(ProblemCode.NOT_FOUND, f"no stream at {scope['path']}")
            response = problem_response(problem)
        else:
            refused = False

            async def watch(message: Message) -> None:
                nonlocal refused
                # A handshake the stream refused (bad token, origin, subprotocol).
                if message["type"] == "websocket.http.response.start":
                    refused = True
                await send(message)

            await self.app(scope, receive, watch)
            if refused:
                self.bad_requests.take(address)
            return
        if problem is not None:
            self.bad_requests.take(address)
        await WebSocket(scope, receive, send).send_denial_response(response)
