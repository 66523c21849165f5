"""Licence signing keys (Ed25519) and the text files that hold them.

The files look like the sealing key files: comment lines starting with ``#``
and one key line, the kind, the format version and the 32 raw key bytes in
standard base64::

    # pooldaemon licence public key; key id 1a2b3c4d5e6f7081
    pooldaemon-licence-public-key:v1:3q2+7w...=

A PEM file (``openssl genpkey -algorithm ed25519``, ``openssl pkey -pubout``) is
read too. The *key id* (``kid``) is the first 16 hex digits of the SHA-256 of
the raw public key: a licence names its signing key by it, and messages show
it without revealing anything. The kind is spelled out so that a private key
given where a public one is expected is refused rather than used. Errors are
:class:`LicenceError` (kind ``key_file``) naming the file, never its content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from pooldaemon._keyfiles import KeyFileFormat, key_id_of
from pooldaemon.errors import LicenceError

if TYPE_CHECKING:  # imported where used: the daemon loads cryptography only for a licence
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_trusted_keys",
    "parse_private_key",
    "parse_public_key",
    "private_key_text",
    "public_key_text",
]


def _error(message: str) -> LicenceError:
    return LicenceError("key_file", f"licence key file {message}")


_FORMAT = KeyFileFormat(
    "licence",
    "pooldaemon-licence-public-key:v1:",
    "pooldaemon-licence-private-key:v1:",
    "licence.pub",
    "licence.key",
    _error,
)


def generate_private_key() -> Ed25519PrivateKey:
    """A new random Ed25519 signing key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate()


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The ``kid`` licences name their signing key by: 16 hex digits of SHA-256(public key)."""
    return key_id_of(_raw_public(public_key))


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The contents of a public key file (``licence.pub``: given to daemons that trust it)."""
    note = "daemons that accept licences signed with it list it in POOLDAEMON_TRIAL_PUBLIC_KEYS"
    return _FORMAT.text("public", _raw_public(public_key), key_id(public_key), note)


def private_key_text(private_key: Ed25519PrivateKey) -> str:
    """The contents of a private key file (``licence.key``: never in git, mode 0600)."""
    from cryptography.hazmat.primitives import serialization

    raw = private_key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    note = "keep it secret: whoever holds it can issue trial licences"
    return _FORMAT.text("private", raw, key_id(private_key.public_key()), note)


def parse_public_key(text: str, where: str) -> Ed25519PublicKey:
    """The public key in a key file's text (ours or PEM). Raises :class:`LicenceError`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    if text.lstrip().startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError:
            raise _error(f"{where}: not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise _error(f"{where}: the PEM key is not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_FORMAT.raw(text, where, "public"))


def parse_private_key(text: str, where: str) -> Ed25519PrivateKey:
    """The private key in a key file's text (ours or PEM). Raises :class:`LicenceError`."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if text.lstrip().startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            raise _error(f"{where}: not a readable, unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise _error(f"{where}: the PEM key is not an Ed25519 private key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_FORMAT.raw(text, where, "private"))


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The signing key in ``path``. Raises :class:`LicenceError`."""
    return parse_private_key(_FORMAT.read(path), str(path))


def load_trusted_keys(paths: Iterable[Path]) -> Mapping[str, Ed25519PublicKey]:
    """The public keys in ``paths``, by key id. Raises :class:`LicenceError` naming a
    file that cannot be read or parsed (a typo must not silently distrust a key)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        key = parse_public_key(_FORMAT.read(path), str(path))
        keys.setdefault(key_id(key), key)
    return keys
