"""The last-known-good copy: the bytes of the last applied config, encrypted at rest.

The copy may hold plain ``value:`` keys and the trial licence, so it is kept
encrypted with the state key (:mod:`pooldaemon._atrest`, purpose
``last-known-good``), under its old name ``state_dir/last-known-good.yaml``. A
copy an older version wrote in plaintext is still read, and rewritten encrypted
at once. A copy that cannot be decrypted (damaged, or the state key changed) is
reported and ignored: the daemon then starts as if there were none.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pooldaemon._atrest import is_encrypted, load_state_key, write_encrypted

__all__ = ["LAST_KNOWN_GOOD", "read_last_known_good", "write_last_known_good"]

_log = logging.getLogger("pooldaemon.reconcile")
LAST_KNOWN_GOOD = "last-known-good.yaml"
_PURPOSE = "last-known-good"


def write_last_known_good(state_dir: Path, raw: bytes) -> None:
    """Keep ``raw`` (the applied file's bytes) encrypted. Raises OSError."""
    write_encrypted(state_dir / LAST_KNOWN_GOOD, load_state_key(state_dir), _PURPOSE, raw)


def read_last_known_good(state_dir: Path) -> bytes | None:
    """The kept bytes; None when there is no usable copy (why is logged)."""
    path = state_dir / LAST_KNOWN_GOOD
    try:
        data = path.read_bytes()
        key = load_state_key(state_dir)
        if is_encrypted(data):
            return key.decrypt(_PURPOSE, data, str(path))
    except FileNotFoundError:
        return None
    except OSError as exc:  # StateFileError too
        _log.error("last-known-good copy ignored: %s", exc)
        return None
    try:  # plaintext from an older version: encrypt it now
        write_encrypted(path, key, _PURPOSE, data)
        _log.info("last-known-good copy %s was plaintext: rewritten encrypted", path)
    except OSError as exc:
        _log.warning("cannot encrypt the plaintext last-known-good copy %s: %s", path, exc)
    return data
