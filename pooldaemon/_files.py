"""Files the daemon keeps in ``state_dir``: written atomically, mode 0600 whatever the umask."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["private_dir", "read_json", "write_json", "write_private"]

_FILE_MODE = 0o600
_DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) if needed; the directory itself gets mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, _DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically (temp file, fsync, rename), mode 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, _FILE_MODE)
    try:
        os.fchmod(fd, _FILE_MODE)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_json(path: Path, value: Any) -> None:
    """``value`` as compact, key-sorted JSON, written with :func:`write_private`."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    write_private(path, text.encode())


def read_json(path: Path) -> Any:
    """The JSON in ``path``; None when the file does not exist.

    Raises ValueError (a ``json.JSONDecodeError`` or ``UnicodeDecodeError``) for a
    damaged file and OSError when it cannot be read.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return json.loads(raw)
