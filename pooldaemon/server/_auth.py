"""Client authentication: a key whose SHA-256 matches a ``clients`` entry."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from pooldaemon.spec import ClientSpec, PoolSpec

__all__ = ["AuthError", "authenticate", "client_key"]


class AuthError(Exception):
    """The request carries no key, or one that matches no client."""


def client_key(headers: Mapping[str, str]) -> str | None:
    """The key a client sent: ``Authorization: Bearer KEY`` or ``x-api-key: KEY``."""
    auth = headers.get("Authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return headers.get("x-api-key", "").strip() or None


def authenticate(headers: Mapping[str, str], spec: PoolSpec) -> ClientSpec | None:
    """The client making the request; None when the spec lists no clients (open proxy)."""
    if not spec.clients:
        return None
    key = client_key(headers)
    if key is None:
        raise AuthError("missing API key: send Authorization: Bearer KEY or x-api-key: KEY")
    digest = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()
    found = None
    for client in spec.clients:  # compare with every entry: time does not tell which matched
        if hmac.compare_digest(digest, client.key_sha256):
            found = client
    if found is None:
        raise AuthError("invalid API key")
    return found
