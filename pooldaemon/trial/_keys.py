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

import base64
import binascii
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pooldaemon.errors import LicenceError

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

_PUBLIC = "pooldaemon-licence-public-key:v1:"
_PRIVATE = "pooldaemon-licence-private-key:v1:"
_KEY_BYTES = 32
_MAX_FILE_BYTES = 4096
_RAW = serialization.Encoding.Raw


def generate_private_key() -> Ed25519PrivateKey:
    """A new random Ed25519 signing key."""
    return Ed25519PrivateKey.generate()


def _raw_public(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(_RAW, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """The ``kid`` licences name their signing key by: 16 hex digits of SHA-256(public key)."""
    return hashlib.sha256(_raw_public(public_key)).hexdigest()[:16]


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """The contents of a public key file (``licence.pub``: given to daemons that trust it)."""
    encoded = base64.b64encode(_raw_public(public_key)).decode("ascii")
    return (
        f"# pooldaemon licence public key; key id {key_id(public_key)}\n"
        "# daemons that accept licences signed with it list it in POOLDAEMON_TRIAL_PUBLIC_KEYS\n"
        f"{_PUBLIC}{encoded}\n"
    )


def private_key_text(private_key: Ed25519PrivateKey) -> str:
    """The contents of a private key file (``licence.key``: never in git, mode 0600)."""
    raw = private_key.private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return (
        f"# pooldaemon licence private key; key id {key_id(private_key.public_key())}\n"
        "# keep it secret: whoever holds it can issue trial licences\n"
        f"{_PRIVATE}{base64.b64encode(raw).decode('ascii')}\n"
    )


def parse_public_key(text: str, where: str) -> Ed25519PublicKey:
    """The public key in a key file's text (ours or PEM). Raises :class:`LicenceError`."""
    if text.lstrip().startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text.encode())
        except ValueError:
            raise _error(where, "not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise _error(where, "the PEM key is not an Ed25519 public key")
        return key
    return Ed25519PublicKey.from_public_bytes(_key_bytes(text, where, "public"))


def parse_private_key(text: str, where: str) -> Ed25519PrivateKey:
    """The private key in a key file's text (ours or PEM). Raises :class:`LicenceError`."""
    if text.lstrip().startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            raise _error(where, "not a readable, unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise _error(where, "the PEM key is not an Ed25519 private key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_key_bytes(text, where, "private"))


def _error(where: str, message: str) -> LicenceError:
    return LicenceError("key_file", f"licence key file {where}: {message}")


def _key_bytes(text: str, where: str, kind: Literal["public", "private"]) -> bytes:
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line and not line.startswith("#")]
    wanted, other = (_PUBLIC, _PRIVATE) if kind == "public" else (_PRIVATE, _PUBLIC)
    if len(lines) != 1 or not lines[0].startswith((wanted, other)):
        raise _error(where, f"not a pooldaemon licence {kind} key file")
    line = lines[0]
    if line.startswith(other):
        if kind == "public":
            raise _error(where, "holds a private key; give the public key (licence.pub)")
        raise _error(where, "holds a public key; the private key (licence.key) is needed")
    try:
        raw = base64.b64decode(line[len(wanted) :], validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != _KEY_BYTES:
        raise _error(where, f"the {kind} key is damaged (not 32 bytes of base64)")
    return raw


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise _error(str(path), f"cannot read it ({exc.strerror or type(exc).__name__})") from None
    if len(raw) > _MAX_FILE_BYTES:
        raise _error(str(path), "too large to be a key file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _error(str(path), "not a text file") from None


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """The signing key in ``path``. Raises :class:`LicenceError`."""
    return parse_private_key(_read_text(path), str(path))


def load_trusted_keys(paths: Iterable[Path]) -> Mapping[str, Ed25519PublicKey]:
    """The public keys in ``paths``, by key id. Raises :class:`LicenceError` naming a
    file that cannot be read or parsed (a typo must not silently distrust a key)."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in paths:
        key = parse_public_key(_read_text(path), str(path))
        keys.setdefault(key_id(key), key)
    return keys
