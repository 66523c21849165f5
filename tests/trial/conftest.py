"""Licence helpers for the trial tests: a signing key, the trusted mapping, and licences."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from pooldaemon.trial import generate_private_key, key_id, sign

NOW = 1_750_000_000
DAY = 86_400
TRIAL_KEY = "sk-trial-secret-key-0123456789abcdef"

MakeLicence = Callable[..., str]


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_licence(private: Ed25519PrivateKey, claims: Mapping[str, Any]) -> str:
    """A licence over exactly ``claims`` (even ones :func:`sign` would refuse)."""
    head = b64url(json.dumps(dict(claims)).encode())
    return f"{head}.{b64url(private.sign(head.encode()))}"


@pytest.fixture(scope="session")
def signer() -> Ed25519PrivateKey:
    return generate_private_key()


@pytest.fixture(scope="session")
def trusted(signer: Ed25519PrivateKey) -> dict[str, Ed25519PublicKey]:
    return {key_id(signer.public_key()): signer.public_key()}


@pytest.fixture(scope="session")
def make_licence(signer: Ed25519PrivateKey) -> MakeLicence:
    def make(**overrides: Any) -> str:
        key = overrides.pop("signer", signer)
        claims: dict[str, Any] = {
            "key": TRIAL_KEY,
            "url": "https://trial.example/v1",
            "token_limit": 1000,
            "issued_at": NOW - DAY,
            "expires_at": NOW + 30 * DAY,
            "model": "gpt-4o-mini",
            **overrides,
        }
        return sign(key, **claims)

    return make
