"""Bearer tokens: making them, hashing them, and finding the operator they belong to."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING

from cadterm.protocol.domain import Operator

if TYPE_CHECKING:
    from .config import ServerConfig

__all__ = ["Authenticator", "bearer_token", "hash_token", "new_token"]


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored in the config in place of the token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token from an ``Authorization: Bearer <token>`` header, or None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class Authenticator:
    """Finds the operator a token belongs to, comparing hashes in constant time."""

    def __init__(self, config: ServerConfig) -> None:
        self._entries = [
            (
                bytes.fromhex(entry.token_sha256),
                Operator(id=entry.id, name=entry.name, role=entry.role),
            )
            for entry in config.operators
        ]

    def operator_for(self, token: str | None) -> Operator | None:
        """The operator holding `token`, or None when it matches nobody."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8")).digest()
        found = None
        for stored, operator in self._entries:
            # Compare against every entry so timing does not reveal which one matched.
            if hmac.compare_digest(stored, digest):
                found = operator
        return found
