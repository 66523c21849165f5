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

from pathlib import Path

from nacl.public import PrivateKey, PublicKey

from pooldaemon._keyfiles import MAX_KEY_FILE_BYTES, KeyFileFormat, key_id_of
from pooldaemon.errors import SealingKeyError

__all__ = [
    "MAX_KEY_FILE_BYTES",
    "generate_private_key",
    "key_id",
    "parse_private_key",
    "parse_public_key",
    "private_key_text",
    "public_key_text",
    "read_key_file",
]

_FORMAT = KeyFileFormat(
    "sealing",
    "pooldaemon-public-key:v1:",
    "pooldaemon-private-key:v1:",
    "pool.pub",
    "pool.key",
    SealingKeyError,
)


def generate_private_key() -> PrivateKey:
    """A new random X25519 private key (libsodium's CSPRNG)."""
    return PrivateKey.generate()


def key_id(public_key: PublicKey) -> str:
    """The id sealed values name their key by: 16 hex digits of SHA-256(public key)."""
    return key_id_of(bytes(public_key))


def public_key_text(public_key: PublicKey) -> str:
    """The contents of a public key file (``pool.pub``, meant for the repository)."""
    note = "commit this file: `pooldaemon seal --public-key FILE` seals values with it"
    return _FORMAT.text("public", bytes(public_key), key_id(public_key), note)


def private_key_text(private_key: PrivateKey) -> str:
    """The contents of a private key file (``pool.key``: never in git, mode 0600)."""
    note = "keep it out of git: whoever holds it can open every value sealed to it"
    return _FORMAT.text("private", bytes(private_key), key_id(private_key.public_key), note)


def parse_public_key(text: str, where: str) -> PublicKey:
    """The public key in a key file's text. Raises :class:`SealingKeyError`."""
    return PublicKey(_FORMAT.raw(text, where, "public"))


def parse_private_key(text: str, where: str) -> PrivateKey:
    """The private key in a key file's text. Raises :class:`SealingKeyError`."""
    return PrivateKey(_FORMAT.raw(text, where, "private"))


def read_key_file(path: Path) -> str:
    """A key file's text (bounded). Raises :class:`SealingKeyError` naming it."""
    return _FORMAT.read(path)
