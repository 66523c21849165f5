"""keygen, seal, reseal, secrets check, client-key and validate on sealed files: the real CLI."""

from __future__ import annotations

import hashlib
import io
import re
import stat
import sys
from pathlib import Path

import pytest

from pooldaemon.cli import main
from pooldaemon.secrets import key_id, open_sealed, parse_public_key, seal
from tests.secrets.helpers import KeyPair, clean_env, cli, key_pair

SECRET = "sk-proj-RoundTrip-0123456789abcdef"
BACKUP_SECRET = "sk-backup-fedcba9876543210"


def _config(openai: str, backup: str) -> str:
    return f"""# the pool, with comments that reseal keeps
version: 1
providers:
  - id: openai   # main
    keys:
      - value: {openai}   # sealed with pool.pub
  - id: backup
    base_url: https://relay.example.com/v1
    keys: [{{value: "{backup}"}}]
"""


def _seal_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pub: Path, ctx: str, s: str
) -> str:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(s.encode())))
    assert main(["seal", "--public-key", str(pub), "--for", ctx]) == 0
    return capsys.readouterr().out.strip()


def test_keygen_seal_check_reseal(tmp_path: Path) -> None:
    """The whole flow as an operator runs it, every output scanned for the secrets."""
    outputs: list[str] = []

    def run(*args: str, stdin: bytes = b"", **env: str) -> tuple[int, str, str]:
        proc = cli(*args, stdin=stdin, env=clean_env(**env))
        outputs.extend((proc.stdout, proc.stderr))
        return proc.returncode, proc.stdout, proc.stderr

    keys = tmp_path / "etc"
    code, out, err = run("keygen", "--out", str(keys))
    assert code == 0, err
    key_file, pub_file = keys / "pool.key", keys / "pool.pub"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert out == pub_file.read_text()  # stdout is the public key file, for the repo
    kid = key_id(parse_public_key(out, "stdout"))
    assert f"key id {kid}" in err and str(key_file) in err
    before = key_file.read_bytes()
    code, _, err = run("keygen", "--out", str(keys))
    assert code == 1 and "exists; --force replaces it" in err
    assert key_file.read_bytes() == before

    code, sealed, err = run(
        "seal",
        "--public-key",
        str(pub_file),
        "--for",
        "providers.openai",
        stdin=f"{SECRET}\n".encode(),
    )
    assert code == 0, err
    assert re.fullmatch(rf"ENC\[v1:{kid}:providers\.openai:[A-Za-z0-9_-]+\]\n", sealed)
    code, backup, _ = run(
        "seal",
        "--public-key",
        str(pub_file),
        "--for",
        "providers.backup",
        stdin=BACKUP_SECRET.encode(),
    )
    config = tmp_path / "pool.yaml"
    config.write_text(_config(sealed.strip(), backup.strip()))

    code, out, err = run("validate", str(config))
    assert code == 0, err
    assert "2 sealed value(s): envelope and place checked, not decrypted" in out

    code, out, err = run("secrets", "check", str(config), "--key", str(key_file))
    assert code == 0, err
    assert out.splitlines() == [
        f"{config}:6:16: providers.openai.keys[0].value: ok (key id {kid})",
        f"{config}:9:20: providers.backup.keys[0].value: ok (key id {kid})",
        f"{config}: 2 sealed value(s), 2 ok, 0 failed (private keys loaded: {kid})",
    ]
    # Without the key: every value fails, exit 1.
    code, out, err = run("secrets", "check", str(config))
    assert code == 1 and err.count("no private key is loaded (loaded: none)") == 2

    # Rotation: a new key pair, reseal with the old key from the setting.
    new = tmp_path / "new"
    code, new_pub, _ = run("keygen", "--out", str(new))
    new_kid = key_id(parse_public_key(new_pub, "stdout"))
    original = config.read_text()
    code, out, err = run(
        "reseal",
        str(config),
        "--public-key",
        str(new / "pool.pub"),
        POOLDAEMON_SECRET_KEY_FILES=str(key_file),
    )
    assert code == 0, err
    assert out == f"{config}: resealed 2 value(s) to key id {new_kid}\n"
    resealed = config.read_text()
    assert resealed.count(f"ENC[v1:{new_kid}:") == 2 and kid not in resealed
    pattern = re.compile(r"ENC\[[^\]]*\]")
    assert pattern.sub("ENC", resealed) == pattern.sub("ENC", original)
    code, out, err = run("secrets", "check", str(config), "--key", str(new / "pool.key"))
    assert code == 0 and ", 2 ok, 0 failed" in out, err
    # The old key alone no longer opens the file.
    code, _, err = run("secrets", "check", str(config), "--key", str(key_file))
    assert code == 1 and f"sealed to key id {new_kid}" in err

    for text in outputs:
        assert SECRET not in text and BACKUP_SECRET not in text


def test_check_reports_each_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair = key_pair(tmp_path / "k")
    other = key_pair(tmp_path / "other")
    openai = seal(pair.private.public_key, "providers.openai", SECRET)
    config = tmp_path / "pool.yaml"
    # Moved to backup, and one sealed to a key this check does not hold.
    config.write_text(
        _config(seal(other.private.public_key, "providers.openai", BACKUP_SECRET), openai)
    )
    assert main(["secrets", "check", str(config), "--key", str(pair.key_file)]) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"{config}:6:16: providers.openai.keys[0].value: sealed to key id {other.kid}, "
        f"for which no private key is loaded (loaded: {pair.kid})",
        f"{config}:9:20: providers.backup.keys[0].value: sealed for providers.openai, "
        "not for providers.backup",
    ]
    assert captured.out.endswith(", 0 ok, 2 failed (private keys loaded: " + pair.kid + ")\n")
    # validate sees the move without any key, and so does plan.
    assert main(["validate", str(config)]) == 1
    assert "not for providers.backup" in capsys.readouterr().err
    assert main(["plan", str(config)]) == 2
    assert SECRET not in capsys.readouterr().err


def test_reseal_refusal_leaves_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pair, new = key_pair(tmp_path / "k"), key_pair(tmp_path / "new")
    openai = seal(pair.private.public_key, "providers.openai", SECRET)
    config = tmp_path / "pool.yaml"
    config.write_text(_config(openai, openai))
    before = config.read_bytes()
    args = ["reseal", str(config), "--public-key", str(new.pub_file), "--key", str(pair.key_file)]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "providers.backup.keys[0].value: sealed for providers.openai" in err
    assert err.endswith(f"{config}: not changed\n")
    assert config.read_bytes() == before


def test_seal_input_and_argument_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pair: KeyPair = key_pair(tmp_path)
    value = _seal_in_process(monkeypatch, capsys, pair.pub_file, "clients.team:alice", "s\r\n")
    assert open_sealed(value, "clients.team:alice", {pair.kid: pair.private}) == "s"

    def refused(args: list[str], stdin: str, expected: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
        assert main(args) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and expected in captured.err
        assert "hunter2" not in captured.err

    seal_args = ["seal", "--public-key", str(pair.pub_file), "--for"]
    refused([*seal_args, "providers.openai"], "", "no secret on stdin")
    refused([*seal_args, "providers.openai"], "\n", "no secret on stdin")
    refused([*seal_args, "providers.openai"], " hunter2\n", "whitespace or control characters")
    refused([*seal_args, "providers.OpenAI"], "hunter2", "is not providers.<id> or clients")
    refused([*seal_args, "openai"], "hunter2", "is not providers.<id> or clients")
    refused(
        ["seal", "--public-key", str(pair.key_file), "--for", "providers.x"],
        "hunter2",
        "holds a private key; give the public key (pool.pub)",
    )
    refused(
        ["seal", "--public-key", str(tmp_path / "none.pub"), "--for", "providers.x"],
        "hunter2",
        "cannot read it",
    )


def test_keygen_force_and_new_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a" / "b"
    assert main(["keygen", "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert stat.S_IMODE((out / "pool.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "pool.pub").stat().st_mode) == 0o644
    assert main(["keygen", "--out", str(out), "--force"]) == 0
    assert capsys.readouterr().out != first
    assert (out / "pool.pub").read_text() != first


def test_client_key(tmp_path: Path) -> None:
    proc = cli("client-key", "laptop")
    assert proc.returncode == 0, proc.stderr
    key, entry = proc.stdout.splitlines()
    assert re.fullmatch(r"pd-[A-Za-z0-9_-]{43}", key)
    digest = hashlib.sha256(key.encode()).hexdigest()
    assert entry == f'- {{name: "laptop", key_sha256: {digest}}}'
    assert "shown once" in proc.stderr
    # The entry pastes into a valid file.
    config = tmp_path / "pool.yaml"
    config.write_text(f"version: 1\nproviders: [{{id: o, format: ollama}}]\nclients:\n  {entry}\n")
    assert main(["validate", "--quiet", str(config)]) == 0
    # A second key is different; a bad name is refused.
    assert cli("client-key", "laptop").stdout.splitlines()[0] != key
    bad = cli("client-key", "-bad name")
    assert bad.returncode == 2 and "invalid client name" in bad.stderr and bad.stdout == ""


def test_unusable_key_setting_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "pool.yaml"
    config.write_text("version: 1\n")
    env = clean_env(POOLDAEMON_SECRET_KEY_FILES=str(tmp_path / "missing.key"))
    proc = cli("secrets", "check", str(config), env=env)
    assert proc.returncode == 2 and "missing.key: cannot read it" in proc.stderr
