"""Sealed values: a secret encrypted to the daemon's public key, bound to where it may be used.

The envelope, written as a YAML ``value:``::

    ENC[v1:<key id>:<context>:<data>]

- ``v1``: the format version;
- ``<key id>``: 16 hex digits naming the public key it was sealed to (see
  :func:`~pooldaemon.secrets._keyfile.key_id`), so a daemon holding several
  private keys (during a rotation) knows which one opens it, and says which is
  missing when none does;
- ``<context>``: where the value may be used, ``providers.<id>`` or
  ``clients.<name>``;
- ``<data>``: base64url (no padding) of a libsodium sealed box
  (``crypto_box_seal``: an ephemeral X25519 key, XSalsa20-Poly1305) whose
  plaintext is the JSON ``{"for": <context>, "secret": <secret>, "v": 1}``.

Why the context is sealed too: anyone can seal (the public key is in the
repository), but only the private key opens, and the clear context could be
edited. Sealing it inside the box means a value copied to another provider
(whose ``base_url`` may point somewhere else) is refused twice over: the clear
context does not match the place (checked without any key), and a clear context
edited to match no longer matches the one inside the box.

Everything here is pure: keys are passed in. Messages name key ids and contexts,
never the secret.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, PublicKey, SealedBox

from pooldaemon.errors import SealedValueError
from pooldaemon.secrets._keyfile import key_id
from pooldaemon.spec._types import text_problem

__all__ = [
    "FORMAT_VERSION",
    "Envelope",
    "check_context",
    "check_envelope",
    "open_sealed",
    "parse_envelope",
    "seal",
]

FORMAT_VERSION = 1
_PREFIX, _SUFFIX = "ENC[", "]"
# Mirror the spec's ProviderId and Name types: a context names a real place.
_CONTEXT = re.compile(
    r"providers\.[a-z0-9][a-z0-9_-]{0,63}|clients\.[A-Za-z0-9][A-Za-z0-9._:-]{0,127}"
)
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_VERSION = re.compile(r"v([0-9]{1,6})")
_DATA = re.compile(r"[A-Za-z0-9_-]+")
_BOX_OVERHEAD = 48  # ephemeral public key (32) + Poly1305 tag (16)
_DAMAGED = "the sealed value is damaged (truncated or edited)"


@dataclass(frozen=True, slots=True)
class Envelope:
    """The clear parts of a sealed value, and its ciphertext."""

    version: int
    key_id: str
    context: str
    ciphertext: bytes


def check_context(context: str) -> str:
    """``context`` itself when it is ``providers.<id>`` or ``clients.<name>``; else ValueError."""
    if not _CONTEXT.fullmatch(context):
        raise SealedValueError(
            f"context {context!r} is not providers.<id> or clients.<name> "
            "(a provider id as in the YAML, or a client name)"
        )
    return context


def seal(public_key: PublicKey, context: str, secret: str) -> str:
    """``ENC[v1:...]`` holding ``secret``, usable only at ``context``.

    Raises :class:`SealedValueError` for a bad context or an unusable secret (empty,
    surrounding whitespace, control characters: as for a plain ``value:``).
    """
    check_context(context)
    if not secret:
        raise SealedValueError("the secret is empty")
    if secret != secret.strip() or text_problem(secret):
        raise SealedValueError("the secret contains whitespace or control characters")
    payload = json.dumps(
        {"for": context, "secret": secret, "v": FORMAT_VERSION},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode("utf-8")
    box = SealedBox(public_key).encrypt(payload)
    data = base64.urlsafe_b64encode(box).rstrip(b"=").decode("ascii")
    return f"{_PREFIX}v{FORMAT_VERSION}:{key_id(public_key)}:{context}:{data}{_SUFFIX}"


def parse_envelope(value: str) -> Envelope:
    """The clear parts of ``value``. Raises :class:`SealedValueError` when it is not
    a well-formed sealed value of a version this build reads."""
    if not value.startswith(_PREFIX):
        raise SealedValueError("not a sealed value (expected ENC[...])")
    if not value.endswith(_SUFFIX):
        raise SealedValueError(f"{_DAMAGED}: it does not end with ']'")
    fields = value[len(_PREFIX) : -len(_SUFFIX)].split(":")
    version = _VERSION.fullmatch(fields[0])
    if version is None:
        raise SealedValueError(f"{_DAMAGED}: expected ENC[v1:KEY_ID:CONTEXT:DATA]")
    if int(version[1]) != FORMAT_VERSION:
        raise SealedValueError(
            f"sealed with format v{int(version[1])}; this build reads v{FORMAT_VERSION}"
        )
    if len(fields) < 4:
        raise SealedValueError(f"{_DAMAGED}: expected ENC[v1:KEY_ID:CONTEXT:DATA]")
    kid, context, data = fields[1], ":".join(fields[2:-1]), fields[-1]
    if not _KEY_ID.fullmatch(kid):
        raise SealedValueError(f"{_DAMAGED}: the key id is not 16 hex digits")
    if not _CONTEXT.fullmatch(context):
        raise SealedValueError(f"{_DAMAGED}: the context is not providers.<id> or clients.<name>")
    if not _DATA.fullmatch(data):
        raise SealedValueError(f"{_DAMAGED}: the data is not base64url")
    try:
        ciphertext = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        raise SealedValueError(f"{_DAMAGED}: the data is not base64url") from None
    if len(ciphertext) <= _BOX_OVERHEAD:
        raise SealedValueError(f"{_DAMAGED}: the data is too short")
    return Envelope(FORMAT_VERSION, kid, context, ciphertext)


def check_envelope(value: str, location: str) -> Envelope:
    """What can be checked without a private key: the envelope is well formed and
    sealed for ``location`` (``providers.<id>`` of the provider it sits in)."""
    envelope = parse_envelope(value)
    if envelope.context != location:
        raise SealedValueError(f"sealed for {envelope.context}, not for {location}")
    return envelope


def open_sealed(value: str, location: str, keys: Mapping[str, PrivateKey]) -> str:
    """The secret in ``value``, which sits at ``location``; ``keys`` are the private
    keys at hand by key id. Raises :class:`SealedValueError` saying why it cannot be
    opened (never with the secret in the message)."""
    envelope = check_envelope(value, location)
    private = keys.get(envelope.key_id)
    if private is None:
        held = ", ".join(sorted(keys)) or "none"
        raise SealedValueError(
            f"sealed to key id {envelope.key_id}, for which no private key is loaded "
            f"(loaded: {held})"
        )
    try:
        plaintext = SealedBox(private).decrypt(envelope.ciphertext)
    except CryptoError:
        raise SealedValueError(
            f"{_DAMAGED}: it does not decrypt with key id {envelope.key_id}"
        ) from None
    return _secret(plaintext, envelope)


def _secret(plaintext: bytes, envelope: Envelope) -> str:
    try:
        payload = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        payload = None
    if not isinstance(payload, dict) or not isinstance(payload.get("secret"), str):
        raise SealedValueError(f"{_DAMAGED}: its contents are not a pooldaemon sealed secret")
    if payload.get("v") != envelope.version:
        raise SealedValueError(f"{_DAMAGED}: the version outside does not match the one inside")
    sealed_for = payload.get("for")
    if sealed_for != envelope.context:
        inside = (
            sealed_for if isinstance(sealed_for, str) and _CONTEXT.fullmatch(sealed_for) else "?"
        )
        raise SealedValueError(
            f"the envelope was edited: it says {envelope.context}, but the value was "
            f"sealed for {inside}"
        )
    secret: str = payload["secret"]
    if not secret or secret != secret.strip() or text_problem(secret):
        raise SealedValueError("the sealed secret is empty or contains whitespace")
    return secret
