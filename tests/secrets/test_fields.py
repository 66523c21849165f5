"""Sealed values in a loaded file: found, checked where they sit, opened; issues name the field."""

from __future__ import annotations

import pytest

from pooldaemon.errors import ConfigError
from pooldaemon.secrets import (
    generate_private_key,
    key_id,
    seal,
    sealed_fields,
    unseal_keys,
    verify_sealed,
)
from pooldaemon.spec import load_spec_bytes
from tests.secrets.helpers import keyring

KEY = generate_private_key()
OTHER = generate_private_key()
OPENAI_SECRET = "sk-openai-0123456789abcdef"
BACKUP_SECRET = "sk-backup-fedcba9876543210"


def _doc(openai_value: str, backup_value: str, extra: str = "") -> bytes:
    return f"""version: 1
providers:
  - id: openai
    keys:
      - env: OPENAI_API_KEY
      - value: {openai_value}
        label: sealed
  - id: backup
    base_url: https://relay.example.com/v1
    keys: [{{value: "{backup_value}", enabled: false}}]
{extra}""".encode()


def _sealed(context: str, secret: str, key: object = KEY) -> str:
    return seal(key.public_key, context, secret)  # type: ignore[attr-defined]


def _load(raw: bytes):  # type: ignore[no-untyped-def]
    return load_spec_bytes(raw, "pool.yaml", env={"OPENAI_API_KEY": "x"})


def test_found_with_their_places() -> None:
    loaded = _load(
        _doc(_sealed("providers.openai", OPENAI_SECRET), _sealed("providers.backup", "sk-b"))
    )
    fields = sealed_fields(loaded)
    assert [(f.path, f.location, f.key_ref) for f in fields] == [
        ("providers.openai.keys[1].value", "providers.openai", ("openai", 1)),
        ("providers.backup.keys[0].value", "providers.backup", ("backup", 0)),
    ]
    # Sealed values are not plain-text secrets.
    assert not any("plain-text" in w.message for w in loaded.warnings)


def test_unseal_every_value() -> None:
    loaded = _load(
        _doc(_sealed("providers.openai", OPENAI_SECRET), _sealed("providers.backup", BACKUP_SECRET))
    )
    assert unseal_keys(loaded, keyring(KEY)) == {
        ("openai", 1): OPENAI_SECRET,
        ("backup", 0): BACKUP_SECRET,
    }
    assert all(c.issue is None for c in verify_sealed(loaded, keyring(KEY)))


def _issues(raw: bytes, *keys: object) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        unseal_keys(_load(raw), keyring(*keys))  # type: ignore[arg-type]
    lines = [str(i) for i in exc.value.issues]
    for line in lines:
        assert OPENAI_SECRET not in line and BACKUP_SECRET not in line
    return lines


def test_moved_value_names_the_field() -> None:
    openai = _sealed("providers.openai", OPENAI_SECRET)
    # The openai key pasted into the backup provider (whose base_url is elsewhere).
    assert _issues(_doc(openai, openai), KEY) == [
        "pool.yaml:10:20: providers.backup.keys[0].value: sealed for providers.openai, "
        "not for providers.backup"
    ]


def test_unknown_key_and_damage_are_all_reported() -> None:
    openai = _sealed("providers.openai", OPENAI_SECRET, OTHER)
    backup = _sealed("providers.backup", BACKUP_SECRET)
    truncated = backup[:-12] + "]"
    assert _issues(_doc(openai, truncated), KEY) == [
        f"pool.yaml:6:16: providers.openai.keys[1].value: sealed to key id "
        f"{key_id(OTHER.public_key)}, for which no private key is loaded "
        f"(loaded: {key_id(KEY.public_key)})",
        "pool.yaml:10:20: providers.backup.keys[0].value: the sealed value is damaged "
        f"(truncated or edited): it does not decrypt with key id {key_id(KEY.public_key)}",
    ]


def test_value_cut_short_is_refused_by_the_loader() -> None:
    openai = _sealed("providers.openai", OPENAI_SECRET)
    with pytest.raises(ConfigError) as exc:
        _load(_doc(openai[:80], _sealed("providers.backup", BACKUP_SECRET)))
    assert [str(i) for i in exc.value.issues] == [
        "pool.yaml:6:16: providers.openai.keys[1].value: the sealed value is damaged "
        "(truncated or edited): expected ENC[...] of letters, digits and + / = _ : . , -"
    ]


def test_sealed_value_where_none_is_taken() -> None:
    header = _sealed("providers.openai", "h")
    client = _sealed("clients.laptop", "c")
    extra = f"clients:\n  - {{name: laptop, key_sha256: {'a' * 64}, allow_models: ['{client}']}}\n"
    raw = _doc(
        _sealed("providers.openai", OPENAI_SECRET), _sealed("providers.backup", BACKUP_SECRET)
    )
    raw = raw.replace(
        b"    keys:\n", f"    headers: {{X-Extra: '{header}'}}\n    keys:\n".encode(), 1
    )
    issues = _issues(raw + extra.encode(), KEY)
    message = "this field does not take sealed values (only providers[].keys[].value does)"
    assert issues == [
        f"pool.yaml:4:24: providers.openai.headers.X-Extra: {message}",
        f"pool.yaml:13:113: clients.laptop.allow_models[0]: {message}",
    ]


def test_keyless_check() -> None:
    """What ``validate`` can tell without a private key: shape and place, not decryption."""
    openai = _sealed("providers.openai", OPENAI_SECRET, OTHER)  # an unknown key: fine here
    loaded = _load(_doc(openai, _sealed("providers.openai", BACKUP_SECRET)))
    checks = verify_sealed(loaded)
    assert checks[0].issue is None and checks[0].envelope is not None
    assert checks[0].envelope.key_id == key_id(OTHER.public_key)
    assert str(checks[1].issue) == (
        "pool.yaml:10:20: providers.backup.keys[0].value: sealed for providers.openai, "
        "not for providers.backup"
    )
