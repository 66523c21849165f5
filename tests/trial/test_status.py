"""The trial's status (a pure decision) and the provider a licence adds."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pooldaemon.errors import LicenceError
from pooldaemon.spec import PoolSpec
from pooldaemon.trial import (
    KEY_LABEL,
    TrialPhase,
    TrialUsage,
    trial_provider,
    trial_status,
    verify,
    with_trial,
)
from tests.trial.conftest import DAY, NOW, TRIAL_KEY, MakeLicence

Trusted = dict[str, Ed25519PublicKey]


def test_phases(make_licence: MakeLicence, trusted: Trusted) -> None:
    licence = verify(make_licence(token_limit=100), trusted)
    fresh = TrialUsage().seen(licence, NOW)

    def phase(usage: TrialUsage = fresh, tampered: str | None = None, now: float = NOW) -> str:
        return str(trial_status(licence, None, usage, tampered, now).phase)

    assert phase() == "active"
    assert phase(fresh.add(licence, 99, NOW)) == "active"
    assert phase(fresh.add(licence, 100, NOW)) == "exhausted"
    assert phase(now=NOW + 31 * DAY) == "expired"
    assert phase(now=NOW - 2 * DAY) == "not_yet_valid"
    assert phase(tampered="trial usage state x fails its integrity check") == "tampered"
    newer = verify(make_licence(issued_at=NOW - 60), trusted)
    assert phase(fresh.seen(newer, NOW)) == "superseded"
    status = trial_status(licence, None, fresh.add(licence, 130, NOW), None, NOW)
    assert status.message == f"trial licence {licence.id} exhausted: 130 of 100 tokens used"
    assert status.to_json()["tokens_left"] == 0


def test_messages_say_why_and_never_the_key(make_licence: MakeLicence, trusted: Trusted) -> None:
    licence = verify(make_licence(), trusted)
    usage = TrialUsage().seen(licence, NOW)
    error = LicenceError("unknown_kid", "trial licence is signed by an unknown key 'abc'")
    cases = [
        trial_status(None, error, usage, None, NOW),
        trial_status(licence, None, usage, "state x tampered", NOW),
        trial_status(licence, None, usage, None, NOW + 31 * DAY),
        trial_status(licence, None, usage, None, NOW),
    ]
    assert [c.phase for c in cases] == [
        TrialPhase.invalid, TrialPhase.tampered, TrialPhase.expired, TrialPhase.active
    ]  # fmt: skip
    assert cases[0].message.endswith("unknown key 'abc'; no trial provider")
    assert "until an operator removes that file" in cases[1].message
    assert "expired on" in cases[2].message
    assert "active: 0 of 1000 tokens used" in cases[3].message
    for status in cases:
        assert TRIAL_KEY not in repr(status) and TRIAL_KEY not in str(status.to_json())
    assert cases[0].to_json()["provider"] is None
    assert cases[3].to_json()["provider"] == "trial"


def test_the_provider(make_licence: MakeLicence, trusted: Trusted) -> None:
    licence = verify(make_licence(format="anthropic", url="https://relay.example"), trusted)
    provider = trial_provider(licence)
    assert (provider.id, provider.format, provider.base_url) == (
        "trial", "anthropic", "https://relay.example"
    )  # fmt: skip
    assert [m.id for m in provider.models] == ["gpt-4o-mini"]
    assert provider.keys[0].value == TRIAL_KEY and provider.keys[0].label == KEY_LABEL
    assert provider.location == "cloud" and provider.priority == 0


def test_with_trial(make_licence: MakeLicence, trusted: Trusted) -> None:
    licence = verify(make_licence(), trusted)
    spec = PoolSpec.model_validate(
        {"version": 1, "providers": [{"id": "openai", "keys": [{"env": "K"}]}]}
    )
    derived = with_trial(spec, licence)
    assert [p.id for p in derived.providers] == ["openai", "trial"]
    assert with_trial(derived, licence) is derived  # already there
    taken = PoolSpec.model_validate({"version": 1, "providers": [{"id": "trial"}]})
    with pytest.raises(LicenceError, match="already used by a provider") as info:
        with_trial(taken, licence)
    assert info.value.kind == "conflict"


def test_claims_that_make_no_provider(make_licence: MakeLicence, trusted: Trusted) -> None:
    for change, fragment in (
        ({"url": "ftp://x"}, "base_url"),
        ({"provider": "Not An Id"}, "id"),
        ({"key": "sk-secret\tkey"}, "whitespace"),
    ):
        licence = verify(make_licence(**change), trusted)
        with pytest.raises(LicenceError, match=fragment) as info:
            trial_provider(licence)
        assert info.value.kind == "bad_claim"
        assert "secret" not in str(info.value) and TRIAL_KEY not in str(info.value)
