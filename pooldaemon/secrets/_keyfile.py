"""Sealing key pairs (X25519) and the text files that hold them.

A key file is UTF-8 text: comment lines starting with ``#`` (which say what the
file is and its key id) and one key line, the kind, the format version and the
32 raw key bytes in standard base64::

    # pooldaemon sealing public key; key id 1a2b3c4d5e6f7081
    pooldaemon-public-key:v1:3q2+7w...=

The kind is spelled out so that a private key given where a public key is
expected (or the reverse) is refused with a message saying so, rather than
being used. The *key id* is the first 16 hex digits of the SHA-256 of the raw
public key: it names a key in sealed values and in messages without revealing
anything. Parsing is pure; errors name the file (``where``), never its contents.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Literal

from nacl.public import PrivateKey, PublicKey

from pooldaemon.errors import SealingKeyError

__all__ = [
    "generate_private_key",
    "key_id",
    "parse_private_key",
    "parse_public_key",
    "private_key_text",
    "public_key_text",
]

_KEY_BYTES = 32
_PUBLIC = "pooldaemon-public-key:v1:"
_PRIVATE = "pooldaemon-private-key:v1:"
MAX_KEY_FILE_BYTES = 4096


def generate_private_key() -> PrivateKey:
    """A new random X25519 private key (libsodium's CSPRNG)."""
    return PrivateKey.generate()


def key_id(public_key: PublicKey) -> str:
    """The id sealed values name their key by: 16 hex digits of SHA-256(public key)."""
    return hashlib.sha256(bytes(public_key)).hexdigest()[:16]


def public_key_text(public_key: PublicKey) -> str:
    """The contents of a public key file (``pool.pub``, meant for the repository)."""
    encoded = base64.b64encode(bytes(public_key)).decode("ascii")
    return (
        f"# pooldaemon sealing public key; key id {key_id(public_key)}\n"
        "# commit this file: `pooldaemon seal --public-key FILE` seals values with it\n"
        f"{_PUBLIC}{encoded}\n"
    )


def private_key_text(private_key: PrivateKey) -> str:
    """The contents of a private key file (``pool.key``: never in git, mode 0600)."""
    encoded = base64.b64encode(bytes(private_key)).decode("ascii")
    return (
        f"# pooldaemon sealing private key; key id {key_id(private_key.public_key)}\n"
        "# keep it out of git: whoever holds it can open every value sealed to it\n"
        f"{_PRIVATE}{encoded}\n"
    )


def parse_public_key(text: str, where: str) -> PublicKey:
    """The public key in a key file's text. Raises :class:`SealingKeyError`."""
    return PublicKey(_key_bytes(text, where, "public"))


def parse_private_key(text: str, where: str) -> PrivateKey:
    """The private key in a key file's text. Raises :class:`SealingKeyError`."""
    return PrivateKey(_key_bytes(text, where, "private"))


def _key_bytes(text: str, where: str, kind: Literal["public", "private"]) -> bytes:
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    wanted, other = (_PUBLIC, _PRIVATE) if kind == "public" else (_PRIVATE, _PUBLIC)
    if len(lines) != 1:
        raise SealingKeyError(f"{where}: not a pooldaemon {kind} key file (expected one key line)")
    line = lines[0]
    if line.startswith(other):
        if kind == "public":
            raise SealingKeyError(f"{where}: holds a private key; give the public key (pool.pub)")
        raise SealingKeyError(f"{where}: holds a public key; the private key (pool.key) is needed")
    if not line.startswith(wanted):
        raise SealingKeyError(
            f"{where}: not a pooldaemon {kind} key file (the key line must start with {wanted!r})"
        )
    try:
        raw = base64.b64decode(line[len(wanted) :], validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _KEY_BYTES:
        raise SealingKeyError(f"{where}: the {kind} key is damaged (not 32 bytes of base64)")
    return raw
