"""The trial usage state: tokens used per licence, kept in ``state_dir/trial-state``.

The file is ``base64(JSON) "." base64(HMAC-SHA256(JSON))``, the form the
original package uses. The HMAC key is derived from the state key
(:mod:`pooldaemon._atrest`, use ``trial-state hmac``).

Why a local HMAC helps: the state key is readable only by the daemon's user
(mode 0600, or a systemd credential), so lowering ``used`` by hand to get
tokens back is detected. It cannot stop whoever can read the key: root can
always rewrite the file, or delete it (a missing file is a fresh start, as on
a new install). It guards against casual edits, not against the machine's
owner; the upstream that issued the trial key keeps the real account.

The state also keeps the newest ``iat`` (issue time) of the licences used here:
a licence issued before one already used is *superseded* and refused, so an old
licence cannot be brought back for its unused tokens.

Pure: the dataclasses, :func:`encode_state` and :func:`decode_state` do no I/O;
:func:`load_state` and :func:`save_state` read and write the file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from pooldaemon._files import write_private
from pooldaemon.errors import StateFileError
from pooldaemon.trial._licence import Licence

__all__ = [
    "HMAC_USE",
    "TRIAL_STATE",
    "LicenceUsage",
    "TrialUsage",
    "decode_state",
    "encode_state",
    "load_state",
    "save_state",
]

TRIAL_STATE = "trial-state"
HMAC_USE = "trial-state hmac"
_VERSION = 1
_MAX_STATE_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class LicenceUsage:
    """What one licence has used (with its limit and period, for the record)."""

    used: int
    token_limit: int
    issued_at: int
    expires_at: int
    first_seen: float
    updated: float


@dataclass(frozen=True, slots=True)
class TrialUsage:
    """Tokens used by every licence seen here, by licence id, and the newest issue time."""

    licences: Mapping[str, LicenceUsage] = field(default_factory=lambda: MappingProxyType({}))
    newest_issued_at: int = 0
    updated: float = 0.0

    def used(self, licence_id: str) -> int:
        entry = self.licences.get(licence_id)
        return entry.used if entry is not None else 0

    def superseded_by(self, licence: Licence) -> int | None:
        """The newer issue time that supersedes ``licence``, if one was used here."""
        return self.newest_issued_at if licence.issued_at < self.newest_issued_at else None

    def seen(self, licence: Licence, now: float) -> TrialUsage:
        """The state once ``licence`` is in use: its entry exists, and its issue time
        counts as the newest when it is."""
        if licence.id in self.licences and licence.issued_at <= self.newest_issued_at:
            return self
        return self._with(licence, 0, now)

    def add(self, licence: Licence, tokens: int, now: float) -> TrialUsage:
        """The state after ``tokens`` more were used under ``licence``."""
        return self._with(licence, max(tokens, 0), now)

    def _with(self, licence: Licence, tokens: int, now: float) -> TrialUsage:
        old = self.licences.get(licence.id)
        entry = LicenceUsage(
            used=(old.used if old else 0) + tokens,
            token_limit=licence.token_limit,
            issued_at=licence.issued_at,
            expires_at=licence.expires_at,
            first_seen=old.first_seen if old else now,
            updated=now,
        )
        return replace(
            self,
            licences=MappingProxyType({**self.licences, licence.id: entry}),
            newest_issued_at=max(self.newest_issued_at, licence.issued_at),
            updated=now,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "v": _VERSION,
            "newest_iat": self.newest_issued_at,
            "updated": self.updated,
            "licences": {
                lid: {
                    "used": e.used,
                    "token_limit": e.token_limit,
                    "iat": e.issued_at,
                    "exp": e.expires_at,
                    "first_seen": e.first_seen,
                    "updated": e.updated,
                }
                for lid, e in sorted(self.licences.items())
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> TrialUsage:
        """Raises ValueError, KeyError or TypeError for a document of the wrong shape."""
        if not isinstance(data, dict) or data.get("v") != _VERSION:
            raise ValueError("unknown trial state version")
        licences = {
            str(lid): LicenceUsage(
                used=int(e["used"]),
                token_limit=int(e["token_limit"]),
                issued_at=int(e["iat"]),
                expires_at=int(e["exp"]),
                first_seen=float(e["first_seen"]),
                updated=float(e["updated"]),
            )
            for lid, e in dict(data["licences"]).items()
        }
        return cls(MappingProxyType(licences), int(data["newest_iat"]), float(data["updated"]))


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def encode_state(usage: TrialUsage, hmac_key: bytes) -> bytes:
    """The file's bytes for ``usage``."""
    payload = json.dumps(usage.to_json(), sort_keys=True, separators=(",", ":")).encode()
    return base64.b64encode(payload) + b"." + base64.b64encode(_mac(hmac_key, payload))


def decode_state(data: bytes, hmac_key: bytes, where: str) -> TrialUsage:
    """The usage in a state file's bytes. Raises :class:`StateFileError` naming ``where``
    when the HMAC does not match (edited by hand, or the state key changed) or the
    file is damaged."""
    head, sep, tail = data.strip().partition(b".")
    try:
        payload = base64.b64decode(head, validate=True)
        mac = base64.b64decode(tail, validate=True)
    except (binascii.Error, ValueError):
        payload, mac = b"", b""
    if not sep or not hmac.compare_digest(mac, _mac(hmac_key, payload)):
        raise StateFileError(
            f"trial usage state {where} fails its integrity check "
            "(edited by hand, damaged, or the state key changed)"
        )
    try:
        return TrialUsage.from_json(json.loads(payload))
    except (ValueError, KeyError, TypeError) as exc:
        raise StateFileError(f"trial usage state {where} is not readable: {exc}") from None


def load_state(path: Path, hmac_key: bytes) -> TrialUsage:
    """The usage kept in ``path``; empty when there is none (a fresh install).

    Raises :class:`StateFileError` (tampered or damaged) and OSError.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(_MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return TrialUsage()
    if len(data) > _MAX_STATE_BYTES:
        raise StateFileError(f"trial usage state {path} is too large")
    return decode_state(data, hmac_key, str(path))


def save_state(path: Path, usage: TrialUsage, hmac_key: bytes) -> None:
    """Replace ``path`` with ``usage`` atomically (mode 0600). Raises OSError."""
    write_private(path, encode_state(usage, hmac_key))
