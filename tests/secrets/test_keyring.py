"""Key files and the keyring: files, systemd credentials, several keys for a rotation."""

from __future__ import annotations

from pathlib import Path

import pytest

from pooldaemon.errors import SealingKeyError
from pooldaemon.secrets import (
    generate_private_key,
    key_id,
    keyring_from_settings,
    load_keyring,
    parse_private_key,
    parse_public_key,
    private_key_text,
    public_key_text,
    seal,
)
from pooldaemon.settings import load_settings
from tests.secrets.helpers import key_pair


def test_key_files_round_trip() -> None:
    key = generate_private_key()
    pub_text, key_text = public_key_text(key.public_key), private_key_text(key)
    kid = key_id(key.public_key)
    assert len(kid) == 16 and int(kid, 16) >= 0
    assert f"key id {kid}" in pub_text and f"key id {kid}" in key_text
    assert bytes(parse_public_key(pub_text, "pub")) == bytes(key.public_key)
    assert bytes(parse_private_key(key_text, "key")) == bytes(key)


def test_key_files_are_not_interchangeable() -> None:
    key = generate_private_key()
    with pytest.raises(SealingKeyError, match=r"^pool\.key: holds a private key; give the public"):
        parse_public_key(private_key_text(key), "pool.key")
    with pytest.raises(SealingKeyError, match=r"^pool\.pub: holds a public key; the private"):
        parse_private_key(public_key_text(key.public_key), "pool.pub")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "pooldaemon-private-key:v1:AAAA\n",
        "pooldaemon-private-key:v1:not base64!\n",
        "pooldaemon-private-key:v1:" + "A" * 44 + "\nextra line\n",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n",
    ],
)
def test_damaged_key_files_never_echo_content(text: str) -> None:
    with pytest.raises(SealingKeyError) as exc:
        parse_private_key(text, "k")
    message = str(exc.value)
    assert message.startswith("k: ")
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            assert line.split(":")[-1] not in message


def test_from_files_and_credentials(tmp_path: Path) -> None:
    a = key_pair(tmp_path / "a")
    creds = tmp_path / "creds"
    creds.mkdir()
    b, c = generate_private_key(), generate_private_key()
    (creds / "pool.key").write_text(private_key_text(b))
    (creds / "pool.key.new").write_text(private_key_text(c))
    (creds / "admin-token").write_text("not a key at all")  # other credentials are left alone
    for cred in creds.iterdir():
        cred.chmod(0o400)  # as systemd hands them over
    ring = load_keyring([a.key_file], creds)
    assert set(ring.key_ids) == {a.kid, key_id(b.public_key), key_id(c.public_key)}
    assert ring.sources[a.kid] == f"file {a.key_file}"
    assert ring.sources[key_id(c.public_key)] == "credential pool.key.new"
    assert ring.warnings == ()
    assert ring.describe().startswith("3 sealing keys: ")
    # Rotation: values sealed to any of the keys open.
    for key in (a.private, b, c):
        value = seal(key.public_key, "providers.p", "sk-rotating")
        assert ring.open(value, "providers.p") == "sk-rotating"


def test_the_same_key_twice_counts_once(tmp_path: Path) -> None:
    a = key_pair(tmp_path / "a")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pool.key").write_bytes(a.key_file.read_bytes())
    ring = load_keyring([a.key_file], creds)
    assert ring.key_ids == (a.kid,) and ring.sources[a.kid] == f"file {a.key_file}"


def test_no_keys() -> None:
    ring = load_keyring([], None)
    assert ring.key_ids == () and ring.describe() == "no sealing keys"
    assert load_keyring([], Path("/nonexistent/credentials")).key_ids == ()


def test_unusable_key_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SealingKeyError, match=r"secret key file .*missing: cannot read it"):
        load_keyring([tmp_path / "missing"])
    bad = tmp_path / "bad.key"
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(SealingKeyError, match="not text"):
        load_keyring([bad])
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pool.key").write_text("pooldaemon-private-key:v1:AAAA\n")
    with pytest.raises(SealingKeyError, match=r"creds/pool\.key: the private key is damaged"):
        load_keyring([], creds)


def test_readable_key_file_is_warned_about(tmp_path: Path) -> None:
    a = key_pair(tmp_path)
    a.key_file.chmod(0o644)
    ring = load_keyring([a.key_file])
    assert ring.key_ids == (a.kid,)
    assert ring.warnings == (
        f"secret key file {a.key_file} is readable by group or others (mode 0644); chmod 600 it",
    )


def test_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = key_pair(tmp_path / "a"), key_pair(tmp_path / "b"), key_pair(tmp_path / "c")
    monkeypatch.setenv("POOLDAEMON_SECRET_KEY_FILES", f'["{a.key_file}", "{b.key_file}"]')
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "pool.key").write_bytes(c.key_file.read_bytes())
    ring = keyring_from_settings(load_settings(), env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert set(ring.key_ids) == {a.kid, b.kid, c.kid}
    extra = key_pair(tmp_path / "extra")
    monkeypatch.setenv("POOLDAEMON_SECRET_KEY_FILES", str(a.key_file))
    ring = keyring_from_settings(load_settings(), extra_files=[extra.key_file], env={})
    assert set(ring.key_ids) == {a.kid, extra.kid}
