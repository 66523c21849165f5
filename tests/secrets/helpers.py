"""Shared helpers for the sealed-secrets tests: key pairs on disk, the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from nacl.public import PrivateKey

from pooldaemon.secrets import (
    Keyring,
    generate_private_key,
    key_id,
    private_key_text,
    public_key_text,
)


@dataclass(frozen=True)
class KeyPair:
    private: PrivateKey
    key_file: Path
    pub_file: Path

    @property
    def kid(self) -> str:
        return key_id(self.private.public_key)


def key_pair(directory: Path) -> KeyPair:
    """A key pair written as ``directory/pool.key`` (0600) and ``directory/pool.pub``."""
    directory.mkdir(parents=True, exist_ok=True)
    private = generate_private_key()
    key_file, pub_file = directory / "pool.key", directory / "pool.pub"
    key_file.write_text(private_key_text(private))
    key_file.chmod(0o600)
    pub_file.write_text(public_key_text(private.public_key))
    return KeyPair(private, key_file, pub_file)


def keyring(*keys: PrivateKey) -> Keyring:
    return Keyring(
        MappingProxyType({key_id(k.public_key): k for k in keys}),
        MappingProxyType({key_id(k.public_key): "test" for k in keys}),
    )


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without pooldaemon settings or systemd credentials, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("POOLDAEMON_") and k != "CREDENTIALS_DIRECTORY"
    }
    env.update(extra)
    return env


def cli(
    *args: str, stdin: bytes = b"", env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m pooldaemon ARGS`` as a real process."""
    proc = subprocess.run(
        [sys.executable, "-m", "pooldaemon", *args],
        input=stdin,
        capture_output=True,
        env=clean_env() if env is None else env,
        cwd=cwd,
        timeout=60,
        check=False,
    )
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode()
    )
