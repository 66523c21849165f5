"""Client keys: a new random key for a client, and the ``clients:`` entry that admits it.

The YAML keeps only the key's SHA-256 (what the proxy compares, see
``server/_auth.py``), so the key itself is shown once, to be handed to the
client, and is stored nowhere by pooldaemon.
"""

from __future__ import annotations

import hashlib
import re
import secrets

__all__ = ["CLIENT_KEY_PREFIX", "client_entry", "client_key_sha256", "new_client_key"]

CLIENT_KEY_PREFIX = "pd-"
_KEY_BYTES = 32
# Mirrors the spec's Name type (clients[].name).
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def new_client_key() -> str:
    """``pd-`` and 32 random bytes in base64url (43 characters): 256 bits."""
    return CLIENT_KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def client_key_sha256(key: str) -> str:
    """The hex SHA-256 the proxy compares a presented key with."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def client_entry(name: str, key: str) -> str:
    """The flow-style ``clients:`` list item admitting ``key`` as client ``name``.

    Raises ValueError for a name the spec would refuse.
    """
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"invalid client name {name!r}: use letters, digits, '.', '_', ':' and '-', "
            "starting with a letter or digit"
        )
    # Quoted: a name like "1e3" or "null" must stay a string.
    return f'- {{name: "{name}", key_sha256: {client_key_sha256(key)}}}'
