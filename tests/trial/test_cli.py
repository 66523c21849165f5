"""``pooldaemon license keygen|sign|verify`` as subprocesses: files, exit codes, and
outputs that hold no key material beyond what was asked for."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from pooldaemon.trial import (
    generate_private_key,
    load_trusted_keys,
    parse_private_key,
    private_key_text,
    public_key_text,
    verify,
)
from tests.trial.conftest import TRIAL_KEY


def _cli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("POOLDAEMON_")}
    proc = subprocess.run(
        [sys.executable, "-m", "pooldaemon", "license", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=60,
        check=False,
    )
    return proc.returncode, proc.stdout, proc.stderr


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_keygen_sign_verify(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    code, out, err = _cli("keygen", "--out", str(keys))
    assert code == 0
    private, public = keys / "licence.key", keys / "licence.pub"
    assert _mode(private) == 0o600 and _mode(public) == 0o644 and _mode(keys) == 0o700
    kid = out.strip()
    assert len(kid) == 16 and out == kid + "\n" and kid in err
    secret_line = private.read_text().splitlines()[-1]
    secret = secret_line.split(":")[-1]
    assert secret not in out + err and secret_line not in public.read_text()
    assert set(load_trusted_keys([public])) == {kid}
    assert parse_private_key(private.read_text(), "f").public_key()

    code, _, err = _cli("keygen", "--out", str(keys))  # never silently replaced
    assert code == 1 and "exists; --force replaces it" in err
    assert private.read_text().endswith(secret_line + "\n")

    before = int(time.time())
    code, out, err = _cli(
        "sign", "--private-key", str(private), "--key-file", "-", "--url", "https://t.example/v1",
        "--token-limit", "5000", "--days", "7", "--model", "gpt-4o-mini",
        "--provider", "zimaos-blue-trial", "--subject", "tests",
        stdin=TRIAL_KEY + "\n",
    )  # fmt: skip
    assert code == 0
    licence = out.strip()
    assert out.count("\n") == 1 and "." in licence
    assert TRIAL_KEY not in err and secret not in out + err and kid in err
    assert "keep it as secret as the key" in err
    claims = verify(licence, load_trusted_keys([public]), time.time())
    assert claims.key == TRIAL_KEY and claims.provider == "zimaos-blue-trial"
    assert claims.token_limit == 5000 and claims.model == "gpt-4o-mini"
    assert before <= claims.issued_at <= before + 60
    assert claims.expires_at - claims.issued_at == 7 * 86_400

    code, out, err = _cli("verify", licence, "--public-key", str(public))
    assert code == 0 and TRIAL_KEY not in out + err
    shown = json.loads(out)
    assert shown["kid"] == kid and shown["token_limit"] == 5000 and "key" not in shown
    env = {"POOLDAEMON_TRIAL_PUBLIC_KEYS": str(public)}
    assert _cli("verify", stdin=licence, env=env)[0] == 0  # stdin, keys from settings

    head, sig = licence.split(".")
    code, out, err = _cli("verify", f"{head}.{sig[:-4]}AAAA", "--public-key", str(public))
    assert code == 1 and "does not verify" in err and out == ""
    other = tmp_path / "other.pub"
    other.write_text(public_key_text(generate_private_key().public_key()))
    code, _, err = _cli("verify", licence, "--public-key", str(other))
    assert code == 1 and f"unknown key '{kid}'" in err


def test_sign_refusals(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.mkdir()
    signer = generate_private_key()
    (keys / "licence.key").write_text(private_key_text(signer))
    (keys / "licence.pub").write_text(public_key_text(signer.public_key()))
    args = ("--url", "https://t.example", "--token-limit", "10", "--days", "1")
    code, out, err = _cli("sign", "--private-key", str(keys / "licence.pub"), "--key", "k", *args)
    assert code == 2 and "holds a public key" in err and out == ""
    code, _, err = _cli("sign", "--private-key", str(keys / "licence.key"), "--key", "", *args)
    assert code == 1 and "'key' is empty" in err
    code, _, err = _cli(
        "sign", "--private-key", str(keys / "licence.key"), "--key", "k",
        "--url", "https://t.example", "--token-limit", "0", "--days", "1",
    )  # fmt: skip
    assert code == 2 and "must be positive" in err
    code, _, err = _cli("sign", "--private-key", str(keys / "licence.key"), *args)
    assert code == 2 and "--key" in err  # one of --key / --key-file is required
