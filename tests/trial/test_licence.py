"""Licences: verified against trusted keys by kid; every refusal says why, never the key."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pooldaemon.errors import LicenceError
from pooldaemon.trial import (
    CLOCK_SKEW,
    generate_private_key,
    key_id,
    load_trusted_keys,
    parse_private_key,
    parse_public_key,
    private_key_text,
    public_key_text,
    verify,
)
from tests.trial.conftest import DAY, NOW, TRIAL_KEY, MakeLicence, b64url, raw_licence

Trusted = dict[str, Ed25519PublicKey]


def _refused(licence: str, trusted: Trusted, now: float | None = NOW) -> LicenceError:
    with pytest.raises(LicenceError) as info:
        verify(licence, trusted, now)
    assert TRIAL_KEY not in str(info.value)
    assert not licence or licence not in str(info.value)
    return info.value


def test_a_valid_licence_gives_its_claims(make_licence: MakeLicence, trusted: Trusted) -> None:
    licence = verify(make_licence(subject="alice", provider="zimaos-blue-trial"), trusted, NOW)
    assert licence.key == TRIAL_KEY and licence.url == "https://trial.example/v1"
    assert (licence.token_limit, licence.model, licence.format) == (1000, "gpt-4o-mini", "openai")
    assert (licence.provider, licence.subject) == ("zimaos-blue-trial", "alice")
    assert licence.kid in trusted and len(licence.id) == 16
    assert TRIAL_KEY not in repr(licence)


def test_defaults_whitespace_and_padding(make_licence: MakeLicence, trusted: Trusted) -> None:
    text = make_licence(model=None)
    head, sig = text.split(".")
    padded_sig = f"{head}.{sig}{'=' * (-len(sig) % 4)}"
    for form in (text, f"  {text}\n", padded_sig):
        licence = verify(form, trusted, NOW)
        assert (licence.provider, licence.model, licence.subject) == ("trial", None, None)


def test_expired(make_licence: MakeLicence, trusted: Trusted) -> None:
    text = make_licence(issued_at=NOW - 40 * DAY, expires_at=NOW - DAY)
    error = _refused(text, trusted)
    assert error.kind == "expired" and "expired on 2025-06-14T15:06:40Z" in str(error)
    assert verify(text, trusted).expires_at == NOW - DAY  # without now: authentic only


def test_not_yet_valid(make_licence: MakeLicence, trusted: Trusted) -> None:
    text = make_licence(issued_at=NOW + 3600, expires_at=NOW + 30 * DAY)
    error = _refused(text, trusted)
    assert error.kind == "not_yet_valid" and "not valid yet" in str(error)
    skewed = make_licence(issued_at=NOW + CLOCK_SKEW - 1)  # a clock a bit ahead is fine
    assert verify(skewed, trusted, NOW).issued_at == NOW + CLOCK_SKEW - 1


def test_unknown_kid(make_licence: MakeLicence, trusted: Trusted) -> None:
    other = generate_private_key()
    error = _refused(make_licence(signer=other), trusted)
    assert error.kind == "unknown_kid"
    assert key_id(other.public_key()) in str(error) and next(iter(trusted)) in str(error)
    assert "none configured" in str(_refused(make_licence(), {}))


def test_bad_signature(
    make_licence: MakeLicence, trusted: Trusted, signer: Ed25519PrivateKey
) -> None:
    head, _ = make_licence().split(".")
    forged_sig = b64url(generate_private_key().sign(head.encode()))
    assert _refused(f"{head}.{forged_sig}", trusted).kind == "bad_signature"
    # Another key's signature under this key's kid
    claims = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    forged = raw_licence(generate_private_key(), claims)
    assert _refused(forged, trusted).kind == "bad_signature"


def test_tampered_claims(make_licence: MakeLicence, trusted: Trusted) -> None:
    head, sig = make_licence().split(".")
    claims = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    claims["token_limit"] = 10**12
    tampered = f"{b64url(json.dumps(claims).encode())}.{sig}"
    error = _refused(tampered, trusted)
    assert error.kind == "bad_signature" and "altered or forged" in str(error)


@pytest.mark.parametrize("claim", ["key", "url", "token_limit", "iat", "exp"])
def test_missing_claims(claim: str, signer: Ed25519PrivateKey, trusted: Trusted) -> None:
    claims = {
        "kid": key_id(signer.public_key()), "key": TRIAL_KEY, "url": "https://t.example",
        "token_limit": 5, "iat": NOW - 1, "exp": NOW + DAY,
    }  # fmt: skip
    del claims[claim]
    error = _refused(raw_licence(signer, claims), trusted)
    assert error.kind == "missing_claim" and repr(claim) in str(error)


def test_missing_kid(signer: Ed25519PrivateKey, trusted: Trusted) -> None:
    error = _refused(raw_licence(signer, {"key": TRIAL_KEY}), trusted)
    assert error.kind == "missing_claim" and "kid" in str(error)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"token_limit": "1000"}, "'token_limit' must be a int"),
        ({"token_limit": True}, "'token_limit' must be a int"),
        ({"token_limit": 0}, "must be positive"),
        ({"exp": NOW - 2 * DAY}, "expires before it is issued"),
        ({"format": "smoke-signals"}, "'format' must be one of"),
        ({"key": ""}, "'key' is empty"),
    ],
)
def test_bad_claims(
    change: dict[str, object], fragment: str, signer: Ed25519PrivateKey, trusted: Trusted
) -> None:
    claims = {
        "kid": key_id(signer.public_key()), "key": TRIAL_KEY, "url": "https://t.example",
        "token_limit": 5, "iat": NOW - DAY, "exp": NOW + DAY, **change,
    }  # fmt: skip
    error = _refused(raw_licence(signer, claims), trusted)
    assert error.kind == "bad_claim" and fragment in str(error)


@pytest.mark.parametrize(
    "text", ["", "abc", "a.b.c", ".sig", "claims.", "!!!.???", f"{b64url(b'[1]')}.AAAA"]
)
def test_malformed(text: str, trusted: Trusted) -> None:
    assert _refused(text, trusted).kind == "malformed"


def test_key_files(signer: Ed25519PrivateKey) -> None:
    public = signer.public_key()
    assert key_id(parse_public_key(public_key_text(public), "f")) == key_id(public)
    again = parse_private_key(private_key_text(signer), "f")
    assert key_id(again.public_key()) == key_id(public)
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    assert key_id(parse_public_key(pem, "f")) == key_id(public)
    pem_private = signer.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    assert key_id(parse_private_key(pem_private, "f").public_key()) == key_id(public)
    assert "# pooldaemon licence public key; key id" in public_key_text(public)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "not a pooldaemon licence public key file"),
        ("pooldaemon-public-key:v1:AAAA", "not a pooldaemon licence public key file"),
        ("pooldaemon-licence-public-key:v1:AAAA", "damaged"),
        ("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n", "not a readable PEM"),
    ],
)
def test_bad_public_key_files(text: str, fragment: str) -> None:
    with pytest.raises(LicenceError, match=fragment) as info:
        parse_public_key(text, "keys/licence.pub")
    assert info.value.kind == "key_file" and "keys/licence.pub" in str(info.value)


def test_a_private_key_is_not_trusted_as_public(signer: Ed25519PrivateKey) -> None:
    text = private_key_text(signer)
    with pytest.raises(LicenceError, match="holds a private key") as info:
        parse_public_key(text, "licence.key")
    assert text.splitlines()[-1].split(":")[-1] not in str(info.value)


def test_load_trusted_keys(tmp_path: Path, signer: Ed25519PrivateKey) -> None:
    base = tmp_path
    good = base / "licence.pub"
    good.write_text(public_key_text(signer.public_key()))
    other = generate_private_key()
    second = base / "other.pub"
    second.write_text(public_key_text(other.public_key()))
    keys = load_trusted_keys([good, second, good])
    assert set(keys) == {key_id(signer.public_key()), key_id(other.public_key())}
    with pytest.raises(LicenceError, match=r"missing\.pub: cannot read it"):
        load_trusted_keys([base / "missing.pub"])
