"""The private sealing keys a process holds, by key id.

Sources, in order: key files named explicitly (``--key`` options of the CLI),
the setting ``secret_key_files`` (env ``POOLDAEMON_SECRET_KEY_FILES``: one path
or a JSON list), and every ``pool.key*`` file in ``$CREDENTIALS_DIRECTORY``
(systemd ``LoadCredential=pool.key:/etc/pooldaemon/pool.key``; a rotation adds
e.g. ``LoadCredential=pool.key.new:...``). Several keys may be held at once:
that is how a rotation works (hold old and new, reseal, drop the old).

A key file that is named but cannot be read or parsed is an error (a typo must
not silently leave values sealed); a key file readable by group or others is
loaded with a warning. The daemon reads its keys once at start, like systemd
hands over credentials once per start: a new key needs a restart.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from nacl.public import PrivateKey

from pooldaemon.errors import SealingKeyError
from pooldaemon.secrets._keyfile import MAX_KEY_FILE_BYTES, key_id, parse_private_key
from pooldaemon.secrets._sealing import open_sealed
from pooldaemon.settings import Settings

__all__ = ["CREDENTIAL_GLOB", "Keyring", "keyring_from_settings", "load_keyring"]

CREDENTIAL_GLOB = "pool.key*"


@dataclass(frozen=True, slots=True)
class Keyring:
    """Private keys by key id, where each came from, and warnings about their files."""

    keys: Mapping[str, PrivateKey] = field(default_factory=lambda: MappingProxyType({}))
    sources: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    warnings: tuple[str, ...] = ()

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.keys))

    def open(self, value: str, location: str) -> str:
        """The secret of a sealed ``value`` sitting at ``location``; SealedValueError if not."""
        return open_sealed(value, location, self.keys)

    def describe(self) -> str:
        """``2 sealing keys: 1a2b... (file /etc/...), ...`` for logs (ids and places only)."""
        if not self.keys:
            return "no sealing keys"
        parts = ", ".join(f"{kid} ({self.sources[kid]})" for kid in self.key_ids)
        return f"{len(self.keys)} sealing key{'s' if len(self.keys) > 1 else ''}: {parts}"


def load_keyring(files: Iterable[Path] = (), credentials_dir: Path | None = None) -> Keyring:
    """Read the private keys in ``files`` and ``credentials_dir/pool.key*``.

    Raises :class:`SealingKeyError` naming a file that cannot be read or parsed.
    """
    keys: dict[str, PrivateKey] = {}
    sources: dict[str, str] = {}
    warnings: list[str] = []
    found = [(path, f"file {path}") for path in files]
    if credentials_dir is not None and credentials_dir.is_dir():
        found += [
            (path, f"credential {path.name}")
            for path in sorted(credentials_dir.glob(CREDENTIAL_GLOB))
            if path.is_file()
        ]
    for path, source in found:
        key, warning = _read_key(path)
        kid = key_id(key.public_key)
        keys.setdefault(kid, key)
        sources.setdefault(kid, source)
        if warning:
            warnings.append(warning)
    return Keyring(MappingProxyType(keys), MappingProxyType(sources), tuple(warnings))


def keyring_from_settings(
    settings: Settings,
    extra_files: Iterable[Path] = (),
    env: Mapping[str, str] | None = None,
) -> Keyring:
    """The keys of ``extra_files``, ``settings.secret_key_files`` and the systemd credentials."""
    env = os.environ if env is None else env
    cred = env.get("CREDENTIALS_DIRECTORY")
    return load_keyring((*extra_files, *settings.secret_key_files), Path(cred) if cred else None)


def _read_key(path: Path) -> tuple[PrivateKey, str | None]:
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            raw = fh.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SealingKeyError(f"secret key file {path}: cannot read it ({reason})") from None
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise SealingKeyError(f"secret key file {path}: too large to be a key file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SealingKeyError(f"{path}: not a pooldaemon private key file (not text)") from None
    key = parse_private_key(text, str(path))
    warning = None
    if stat.S_IMODE(mode) & 0o077:
        warning = (
            f"secret key file {path} is readable by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); chmod 600 it"
        )
    return key, warning
