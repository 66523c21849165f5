"""The usage state file: HMAC-protected, tampering detected, older licences refused."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pooldaemon.errors import StateFileError
from pooldaemon.trial import (
    TrialUsage,
    decode_state,
    encode_state,
    load_state,
    save_state,
    verify,
)
from tests.trial.conftest import DAY, NOW, MakeLicence

KEY = b"k" * 32
Trusted = dict[str, Ed25519PublicKey]


def _usage(make_licence: MakeLicence, trusted: Trusted) -> TrialUsage:
    licence = verify(make_licence(), trusted)
    return TrialUsage().seen(licence, NOW).add(licence, 49, NOW + 1).add(licence, 49, NOW + 2)


def test_round_trip(make_licence: MakeLicence, trusted: Trusted, tmp_path: Path) -> None:
    usage = _usage(make_licence, trusted)
    licence = verify(make_licence(), trusted)
    assert usage.used(licence.id) == 98 and usage.newest_issued_at == licence.issued_at
    entry = usage.licences[licence.id]
    assert (entry.first_seen, entry.updated, entry.token_limit) == (NOW, NOW + 2, 1000)
    assert decode_state(encode_state(usage, KEY), KEY, "f") == usage
    path = tmp_path / "trial-state"
    assert load_state(path, KEY) == TrialUsage()  # a fresh install
    save_state(path, usage, KEY)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_state(path, KEY) == usage
    head, mac = path.read_bytes().split(b".")  # base64(json) "." base64(hmac)
    assert json.loads(base64.b64decode(head))["licences"][licence.id]["used"] == 98
    assert len(base64.b64decode(mac)) == 32


def test_an_edit_is_detected(make_licence: MakeLicence, trusted: Trusted) -> None:
    data = encode_state(_usage(make_licence, trusted), KEY)
    head, mac = data.split(b".")
    doc = json.loads(base64.b64decode(head))
    for entry in doc["licences"].values():
        entry["used"] = 0  # tokens back
    edited = base64.b64encode(json.dumps(doc).encode()) + b"." + mac
    with pytest.raises(StateFileError, match="fails its integrity check"):
        decode_state(edited, KEY, "state/trial-state")


@pytest.mark.parametrize(
    "data", [b"", b"garbage", b"abc.def", b"!!.??", b"e30=.AAAA", b"e30=" + b"." + b"e30="]
)
def test_damaged_files_are_detected(data: bytes) -> None:
    with pytest.raises(StateFileError, match="state/trial-state"):
        decode_state(data, KEY, "state/trial-state")


def test_another_state_key_is_detected(make_licence: MakeLicence, trusted: Trusted) -> None:
    data = encode_state(_usage(make_licence, trusted), KEY)
    with pytest.raises(StateFileError, match="state key changed"):
        decode_state(data, b"x" * 32, "f")


def test_a_valid_mac_over_an_unknown_document_is_refused() -> None:
    import hashlib
    import hmac

    payload = b'{"v": 99}'
    data = (
        base64.b64encode(payload)
        + b"."
        + base64.b64encode(hmac.new(KEY, payload, hashlib.sha256).digest())
    )
    with pytest.raises(StateFileError, match="not readable"):
        decode_state(data, KEY, "f")


def test_older_licences_are_superseded(make_licence: MakeLicence, trusted: Trusted) -> None:
    old = verify(make_licence(issued_at=NOW - 10 * DAY), trusted)
    new = verify(make_licence(issued_at=NOW - DAY), trusted)
    usage = TrialUsage().seen(old, NOW)
    assert usage.superseded_by(new) is None
    usage = usage.seen(new, NOW)
    assert usage.superseded_by(old) == new.issued_at and usage.superseded_by(new) is None
    assert usage.seen(new, NOW + 5) is usage  # nothing new to record
    assert usage.seen(old, NOW + 5).newest_issued_at == new.issued_at
