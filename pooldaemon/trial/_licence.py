"""Trial licences: ``base64url(claims) "." base64url(Ed25519 signature)``.

Pure: parse, verify and sign, no I/O. The claims are a JSON object; the
signature covers the ASCII bytes of the first part exactly as written (as JWS
does), so the claims need no canonical form. base64url is written without
padding; padding is accepted when reading.

Claims (``kid`` to ``exp`` are required):

- ``kid``: id of the signing key (see :func:`~._keys.key_id`);
- ``key``: the trial API key, sent to ``url`` (why a licence is a secret);
- ``url``: base URL of the trial upstream, as a provider's ``base_url``;
- ``token_limit``: tokens (input of every kind plus output) allowed in total;
- ``iat``, ``exp``: issued at and expires at, unix seconds;
- ``format``: wire format of the upstream (default ``openai``);
- ``model``: its default model, declared so it routes before any catalog refresh;
- ``provider``: the id of the provider it creates (default ``trial``);
- ``sub``: to whom it was issued (shown in status).

Unknown claims are ignored, so an issuer may add some. :func:`verify` checks,
in order: the shape, the signing key (``kid`` must be trusted), the signature,
then the claims, then (when given ``now``) the validity period. The messages
of :class:`LicenceError` never quote the licence or its ``key`` claim.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pooldaemon.errors import LicenceError
from pooldaemon.trial._keys import key_id

if TYPE_CHECKING:  # imported where used: the daemon loads cryptography only for a licence
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = ["CLOCK_SKEW", "FORMATS", "MAX_LICENCE_CHARS", "Licence", "iso", "sign", "verify"]

CLOCK_SKEW = 300
"""Seconds a licence's ``iat`` may lie in the future (clocks differ) and still be valid."""
MAX_LICENCE_CHARS = 16 * 1024
FORMATS = ("openai", "anthropic", "google", "ollama", "responses")
DEFAULT_PROVIDER = "trial"


def iso(ts: float) -> str:
    """``2025-01-31T12:00:00Z``: how licence times are shown."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class Licence:
    """The verified claims of a licence. ``id`` names it in state and status: 16 hex
    digits of the SHA-256 of its signature (stable, and reveals nothing)."""

    id: str
    kid: str
    key: str = field(repr=False)
    url: str
    token_limit: int
    issued_at: int
    expires_at: int
    format: str = "openai"
    model: str | None = None
    provider: str = DEFAULT_PROVIDER
    subject: str | None = None

    def time_problem(self, now: float) -> LicenceError | None:
        """Why the licence is not valid at ``now`` (expired, not yet valid), if it is not."""
        if now >= self.expires_at:
            return LicenceError(
                "expired", f"trial licence {self.id} expired on {iso(self.expires_at)}"
            )
        if self.issued_at > now + CLOCK_SKEW:
            return LicenceError(
                "not_yet_valid",
                f"trial licence {self.id} is not valid yet (issued for {iso(self.issued_at)})",
            )
        return None


def _b64decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _split(text: str) -> tuple[str, dict[str, Any], bytes]:
    text = text.strip()
    if len(text) > MAX_LICENCE_CHARS:
        raise LicenceError("malformed", "trial licence is too long")
    head, sep, tail = text.partition(".")
    if not sep or not head or not tail or "." in tail:
        raise LicenceError("malformed", "trial licence must be two base64url parts joined by '.'")
    try:
        claims = json.loads(_b64decode(head))
        signature = _b64decode(tail)
    except (binascii.Error, ValueError):
        raise LicenceError(
            "malformed", "trial licence is not base64url-encoded JSON claims and a signature"
        ) from None
    if not isinstance(claims, dict):
        raise LicenceError("malformed", "trial licence claims must be a JSON object")
    return head, claims, signature


def verify(
    licence: str, trusted: Mapping[str, Ed25519PublicKey], now: float | None = None
) -> Licence:
    """The claims of ``licence`` once its signature checks out against a ``trusted`` key
    (by ``kid``); with ``now``, also within its validity period.

    Raises :class:`LicenceError`; its ``kind`` says why (``malformed``,
    ``missing_claim``, ``bad_claim``, ``unknown_kid``, ``bad_signature``,
    ``expired``, ``not_yet_valid``).
    """
    head, claims, signature = _split(licence)
    kid = claims.get("kid")
    if not isinstance(kid, str) or not kid:
        raise LicenceError("missing_claim", "trial licence has no 'kid' claim (its signing key)")
    public = trusted.get(kid)
    if public is None:
        known = ", ".join(sorted(trusted)) or "none configured"
        raise LicenceError(
            "unknown_kid",
            f"trial licence is signed by an unknown key {kid[:32]!r} (trusted: {known})",
        )
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(signature, head.encode("ascii"))
    except InvalidSignature:
        raise LicenceError(
            "bad_signature",
            f"trial licence signature does not verify with key {kid} (altered or forged)",
        ) from None
    result = _claims(claims, kid, hashlib.sha256(signature).hexdigest()[:16])
    if now is not None:
        problem = result.time_problem(now)
        if problem is not None:
            raise problem
    return result


def _claims(claims: Mapping[str, Any], kid: str, licence_id: str) -> Licence:
    def required(name: str, kind: type) -> Any:
        if name not in claims:
            raise LicenceError("missing_claim", f"trial licence has no {name!r} claim")
        return typed(name, kind)

    def typed(name: str, kind: type) -> Any:
        value = claims.get(name)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise LicenceError(
                "bad_claim", f"trial licence claim {name!r} must be a {kind.__name__}"
            )
        return value

    key, url = required("key", str), required("url", str)
    limit, iat, exp = required("token_limit", int), required("iat", int), required("exp", int)
    fmt = typed("format", str) or "openai"
    if not key:
        raise LicenceError("bad_claim", "trial licence claim 'key' is empty")
    if limit <= 0:
        raise LicenceError("bad_claim", "trial licence claim 'token_limit' must be positive")
    if exp <= iat:
        raise LicenceError("bad_claim", "trial licence expires before it is issued")
    if fmt not in FORMATS:
        raise LicenceError(
            "bad_claim", f"trial licence claim 'format' must be one of {', '.join(FORMATS)}"
        )
    return Licence(
        id=licence_id,
        kid=kid,
        key=key,
        url=url,
        token_limit=limit,
        issued_at=iat,
        expires_at=exp,
        format=fmt,
        model=typed("model", str) or None,
        provider=typed("provider", str) or DEFAULT_PROVIDER,
        subject=typed("sub", str) or None,
    )


def sign(
    private_key: Ed25519PrivateKey,
    *,
    key: str,
    url: str,
    token_limit: int,
    issued_at: int,
    expires_at: int,
    format: str = "openai",
    model: str | None = None,
    provider: str | None = None,
    subject: str | None = None,
) -> str:
    """A licence with these claims, signed with ``private_key`` (its ``kid`` is derived).

    Raises :class:`LicenceError` for claims :func:`verify` would refuse.
    """
    claims: dict[str, Any] = {
        "kid": key_id(private_key.public_key()),
        "key": key,
        "url": url,
        "token_limit": token_limit,
        "iat": issued_at,
        "exp": expires_at,
        "format": format,
    }
    optional = {"model": model, "provider": provider, "sub": subject}
    claims.update({name: value for name, value in optional.items() if value})
    head = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    _claims(claims, claims["kid"], "")  # refuse what verify would refuse
    return f"{head}.{_b64encode(private_key.sign(head.encode('ascii')))}"
