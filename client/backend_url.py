"""Backend URLs and tokens, checked once where they are given, not where they fail.

A URL with a port out of range, a scheme that is not HTTP or WebSocket, a query, or a
token that cannot go in an HTTP header would otherwise fail later and
far away: as an `OverflowError` inside the HTTP library, a stream that retries a bad
handshake for ever, or a 404 reported as a refused command. Each is refused here with
what is wrong and what is expected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from .errors import ClientError

__all__ = ["InvalidSetting", "check_backend_url", "check_token"]

_SCHEMES = ("http", "https", "ws", "wss")


class InvalidSetting(ClientError, ValueError):
    """A backend URL or token that no request could be made with."""


def check_backend_url(url: object) -> str:
    """`url` without a trailing slash, if a backend can be reached at it; else raise."""
    if not isinstance(url, str):
        raise InvalidSetting(f"a backend URL must be text, not {type(url).__name__}")
    if not url or url != url.strip() or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidSetting(f"backend URL {url!r} holds spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme.lower() not in _SCHEMES:
        raise InvalidSetting(
            f"backend URL must start with http://, https://, ws:// or wss://: {url!r}"
        )
    try:
        port = parts.port
        host = parts.hostname
    except ValueError as exc:  # a port that is not a number, or out of range
        raise InvalidSetting(f"backend URL {url!r}: {exc}") from None
    if not host:
        raise InvalidSetting(f"backend URL {url!r} names no host")
    if port == 0:
        raise InvalidSetting(f"backend URL {url!r}: port 0 is not a port to connect to")
    # A path is kept: a backend behind a proxy may live under one (/cadterm).
    if parts.query or parts.fragment:
        raise InvalidSetting(
            f"backend URL {url!r} has a query or fragment: give the backend's base URL, "
            "e.g. http://10.0.0.5:8740"
        )
    return url.rstrip("/")


def check_token(token: object) -> str:
    """`token` if it can be sent as a bearer token; else raise."""
    if not isinstance(token, str):
        raise InvalidSetting(f"a token must be text, not {type(token).__name__}")
    if not token:
        raise InvalidSetting("the token is empty")
    bad = next((ch for ch in token if not ("!" <= ch <= "~")), None)
    if bad is not None:
        raise InvalidSetting(
            f"the token may hold only printable ASCII with no spaces; found U+{ord(bad):04X}"
        )
    return token
