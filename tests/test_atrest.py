"""Encryption at rest in state_dir: the state key, the file format, the last-known-good copy."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest

from pooldaemon._atrest import (
    LEGACY_MAGIC,
    MAGIC,
    STATE_KEY_FILE,
    StateKey,
    hkdf_sha256,
    load_state_key,
    read_encrypted,
)
from pooldaemon._atrest import write_encrypted as write_enc
from pooldaemon.errors import ConfigError, StateFileError
from pooldaemon.reconcile._lkg import read_last_known_good, write_last_known_good
from pooldaemon.reconcile._reconciler import LAST_KNOWN_GOOD, initial_spec

SECRET = "sk-plain-value-in-the-yaml-0123456789"
GOOD = f"""version: 1
providers:
  - id: up
    base_url: http://127.0.0.1:9/v1
    keys: [{{value: {SECRET}}}]
    models: [{{id: gpt-4o}}]
""".encode()
BROKEN = b"version: 1\nproviders: [{id: Bad}]\n"


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_the_state_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        key = load_state_key(tmp_path, env={})
    finally:
        os.umask(old)
    path = tmp_path / STATE_KEY_FILE
    assert _mode(path) == 0o600 and len(base64.b64decode(path.read_bytes())) == 32
    assert key.source == str(path) and "source=" in repr(key)
    again = load_state_key(tmp_path, env={})
    assert again.decrypt("x", key.encrypt("x", b"data"), "f") == b"data"
    assert [p.name for p in tmp_path.iterdir()] == [STATE_KEY_FILE]  # no temporary left


def test_a_credential_key_wins(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / STATE_KEY_FILE).write_text("ab" * 32)  # hex
    key = load_state_key(tmp_path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert key.source == str(creds / STATE_KEY_FILE)
    assert not (tmp_path / STATE_KEY_FILE).exists()
    raw = StateKey(bytes.fromhex("ab" * 32))
    assert raw.decrypt("p", key.encrypt("p", b"same key"), "f") == b"same key"
    (creds / STATE_KEY_FILE).write_bytes(b"\x01" * 32)  # raw bytes
    assert load_state_key(tmp_path, env={"CREDENTIALS_DIRECTORY": str(creds)})


@pytest.mark.parametrize("content", [b"", b"short", b"zz" * 32, base64.b64encode(b"x" * 31)])
def test_a_damaged_key_stops_with_a_clear_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / STATE_KEY_FILE).write_bytes(content)
    with pytest.raises(StateFileError, match="not a 32-byte key") as info:
        load_state_key(tmp_path, env={})
    assert "remove it to start with a new key" in str(info.value)


def test_format_purpose_and_damage(tmp_path: Path) -> None:
    key = load_state_key(tmp_path, env={})
    data = key.encrypt("last-known-good", b"secret bytes")
    assert data.startswith(MAGIC) and b"secret bytes" not in data
    assert len(data) == len(MAGIC) + 24 + len(b"secret bytes") + 16
    assert key.encrypt("last-known-good", b"secret bytes") != data  # a fresh nonce
    with pytest.raises(StateFileError, match="not a trial-state file"):
        key.decrypt("trial-state", data, "f")  # swapped files are refused
    flipped = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(StateFileError, match="cannot be decrypted"):
        key.decrypt("last-known-good", flipped, "f")
    with pytest.raises(StateFileError, match="truncated"):
        key.decrypt("last-known-good", MAGIC + b"xx", "f")
    with pytest.raises(StateFileError, match="not an encrypted"):
        key.decrypt("last-known-good", b"version: 1\n", "f")
    other = StateKey(b"\x02" * 32)
    with pytest.raises(StateFileError, match="another state key"):
        other.decrypt("last-known-good", data, "f")
    path = tmp_path / "blob"
    assert read_encrypted(path, key, "p") is None
    write_enc(path, key, "p", b"hello")
    assert _mode(path) == 0o600 and read_encrypted(path, key, "p") == b"hello"


def test_hkdf_gives_the_bytes_of_cryptography_s_hkdf() -> None:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    for length in (1, 16, 31, 32, 33, 64, 100, 8160):
        for info in (b"", b"pooldaemon trial-state", bytes(range(256))):
            key = os.urandom(32)
            expected = HKDF(hashes.SHA256(), length, salt=None, info=info).derive(key)
            assert hkdf_sha256(key, length, info) == expected
    with pytest.raises(ValueError, match="1 to 8160"):
        hkdf_sha256(b"k" * 32, 8161, b"")


def _legacy_file(key_bytes: bytes, purpose: str, plaintext: bytes) -> bytes:
    """A file as the first format (AES-256-GCM) was written."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = os.urandom(12)
    aead = AESGCM(StateKey(key_bytes).derive("aes-256-gcm"))
    return LEGACY_MAGIC + nonce + aead.encrypt(nonce, plaintext, LEGACY_MAGIC + purpose.encode())


def test_files_of_the_first_format_are_still_read() -> None:
    raw = os.urandom(32)
    key = StateKey(raw)
    data = _legacy_file(raw, "last-known-good", b"older bytes")
    assert key.decrypt("last-known-good", data, "f") == b"older bytes"
    with pytest.raises(StateFileError, match="not a trial-state file"):
        key.decrypt("trial-state", data, "f")
    with pytest.raises(StateFileError, match="another state key"):
        StateKey(b"\x03" * 32).decrypt("last-known-good", data, "f")
    with pytest.raises(StateFileError, match="truncated"):
        key.decrypt("last-known-good", LEGACY_MAGIC + b"x" * 27, "f")


def test_a_first_format_lkg_is_read_and_the_next_write_uses_the_new_one(
    env: tuple[Path, Path],
) -> None:
    config, state = env
    raw = os.urandom(32)
    (state / STATE_KEY_FILE).write_text(raw.hex())
    path = state / LAST_KNOWN_GOOD
    path.write_bytes(_legacy_file(raw, "last-known-good", GOOD))
    config.write_bytes(BROKEN)
    loaded, errors = initial_spec(config, state)  # a restart after the upgrade
    assert [p.id for p in loaded.spec.providers] == ["up"] and errors
    write_last_known_good(state, GOOD)
    assert path.read_bytes().startswith(MAGIC) and read_last_known_good(state) == GOOD


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    config = tmp_path / "pool.yaml"
    state = tmp_path / "state"
    state.mkdir()
    return config, state


def test_lkg_is_written_encrypted_and_read_back(env: tuple[Path, Path]) -> None:
    config, state = env
    write_last_known_good(state, GOOD)
    data = (state / LAST_KNOWN_GOOD).read_bytes()
    assert data.startswith(MAGIC) and SECRET.encode() not in data and b"providers" not in data
    assert _mode(state / LAST_KNOWN_GOOD) == 0o600
    assert read_last_known_good(state) == GOOD
    config.write_bytes(BROKEN)
    loaded, errors = initial_spec(config, state)  # a restart with a broken file
    assert [p.id for p in loaded.spec.providers] == ["up"] and errors
    assert loaded.file == str(state / LAST_KNOWN_GOOD)


def test_a_damaged_lkg_is_reported_and_ignored(
    env: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    config, state = env
    write_last_known_good(state, GOOD)
    path = state / LAST_KNOWN_GOOD
    path.write_bytes(path.read_bytes()[:-3])
    config.write_bytes(BROKEN)
    with caplog.at_level(logging.ERROR), pytest.raises(ConfigError) as info:
        initial_spec(config, state)  # as if there were none: the file's own errors
    assert "providers[0].id" in str(info.value) or "Bad" in str(info.value)
    assert "last-known-good copy ignored" in caplog.text and "cannot be decrypted" in caplog.text
    (state / STATE_KEY_FILE).unlink()  # the key lost: the copy no longer opens
    write_last_known_good(state, GOOD)
    (state / STATE_KEY_FILE).write_text(base64.b64encode(b"\x07" * 32).decode())
    assert read_last_known_good(state) is None


def test_a_plaintext_lkg_from_an_older_version_is_migrated(
    env: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    config, state = env
    path = state / LAST_KNOWN_GOOD
    path.write_bytes(GOOD)
    config.write_bytes(BROKEN)
    with caplog.at_level(logging.INFO):
        loaded, errors = initial_spec(config, state)
    assert [p.id for p in loaded.spec.providers] == ["up"] and errors
    assert "rewritten encrypted" in caplog.text
    data = path.read_bytes()
    assert data.startswith(MAGIC) and SECRET.encode() not in data
    assert _mode(path) == 0o600
    assert read_last_known_good(state) == GOOD
