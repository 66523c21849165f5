"""Resolve the API keys of a spec to their secret values, once per applied config.

Keys come from ``env:``, ``file:`` (relative to the YAML file), ``credential:``
(``$CREDENTIALS_DIRECTORY``, systemd ``LoadCredential=``) or a ``value:``.
Sealed ``ENC[...]`` values are opened before this step, where their place in
the file is known (``pooldaemon.secrets.unseal_keys``, which refuses the file
when one does not open); their secrets come in as ``sealed``. A key that cannot
be resolved is reported by field, never by value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pooldaemon.pool import Snapshot
from pooldaemon.spec import KeySpec

__all__ = ["KeyProblem", "resolve_keys"]

_MAX_KEY_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class KeyProblem:
    """A key that could not be resolved: where it is, and why (never its value)."""

    provider: str
    index: int
    message: str

    def __str__(self) -> str:
        return f"providers.{self.provider}.keys[{self.index}]: {self.message}"


def _read(path: Path) -> str:
    with open(path, "rb") as fh:
        raw = fh.read(_MAX_KEY_BYTES + 1)
    if len(raw) > _MAX_KEY_BYTES:
        raise ValueError("the file is too large to hold a key")
    return raw.decode("utf-8").strip()


def _resolve_one(
    spec: KeySpec,
    config_dir: Path,
    env: Mapping[str, str],
    credentials_dir: Path | None,
    sealed: str | None,
) -> tuple[str, str]:
    """(value, where it came from); raises OSError or ValueError."""
    if spec.env is not None:
        return env.get(spec.env, "").strip(), f"environment variable {spec.env}"
    if spec.file is not None:
        path = Path(spec.file)
        return _read(path if path.is_absolute() else config_dir / path), f"file {spec.file}"
    if spec.credential is not None:
        if credentials_dir is None:
            raise ValueError("$CREDENTIALS_DIRECTORY is not set (systemd LoadCredential=)")
        return _read(credentials_dir / spec.credential), f"credential {spec.credential}"
    if spec.is_sealed:
        if sealed is None:
            raise ValueError("the sealed value was not opened (no sealing keys given)")
        return sealed, "sealed value"
    return (spec.value or "").strip(), "value"


def resolve_keys(
    snapshot: Snapshot,
    *,
    config_dir: Path,
    env: Mapping[str, str] | None = None,
    credentials_dir: Path | None = None,
    sealed: Mapping[tuple[str, int], str] | None = None,
) -> tuple[dict[str, str], list[KeyProblem]]:
    """Secret values by key id, and the keys that could not be resolved.

    ``sealed`` holds the opened sealed values by (provider id, key index).
    """
    sealed = {} if sealed is None else sealed
    env = os.environ if env is None else env
    if credentials_dir is None and env.get("CREDENTIALS_DIRECTORY"):
        credentials_dir = Path(env["CREDENTIALS_DIRECTORY"])
    secrets: dict[str, str] = {}
    problems: list[KeyProblem] = []
    for provider in snapshot.providers:
        for key in provider.keys:
            if not key.enabled:
                continue
            try:
                value, where = _resolve_one(
                    key.spec, config_dir, env, credentials_dir, sealed.get((provider.id, key.index))
                )
            except (OSError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                message = f"cannot read the key: {reason}"
                problems.append(KeyProblem(provider.id, key.index, message))
                continue
            if not value:
                problems.append(KeyProblem(provider.id, key.index, f"{where} is empty or unset"))
                continue
            secrets[key.key_id] = value
    return secrets, problems
