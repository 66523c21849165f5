"""Text files holding one 32-byte key: the shape the sealing keys (X25519) and the
licence signing keys (Ed25519) share.

A key file is UTF-8 text: ``#`` comment lines (what the file is, its key id)
and one key line, ``<prefix>:v1:<standard base64 of the 32 raw bytes>``. Each
kind of key has a public and a private prefix, spelled out so that a private
key given where a public one is expected (or the reverse) is refused with a
message saying so rather than used. Errors name the file, never its contents.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pooldaemon._files import write_private

__all__ = ["KEY_BYTES", "MAX_KEY_FILE_BYTES", "KeyFileFormat", "key_id_of", "write_key_pair"]

KEY_BYTES = 32
MAX_KEY_FILE_BYTES = 4096
Kind = Literal["public", "private"]


def key_id_of(raw_public: bytes) -> str:
    """How keys are named in sealed values, licences and messages: the first 16 hex
    digits of SHA-256 of the raw public key (revealing nothing)."""
    return hashlib.sha256(raw_public).hexdigest()[:16]


def write_key_pair(
    private_path: Path, private_text: str, public_path: Path, public_text: str
) -> None:
    """Write a key pair: the private file 0600, the public one 0644, each atomically
    (their directory is created 0700 when missing). Raises OSError."""
    for directory in {private_path.parent, public_path.parent}:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    write_private(private_path, private_text.encode())
    write_private(public_path, public_text.encode())
    os.chmod(public_path, 0o644)


@dataclass(frozen=True, slots=True)
class KeyFileFormat:
    """One kind of key file: its line prefixes, the file names used in hints, and the
    error to raise (called with the whole message)."""

    what: str  # "sealing", "licence": in messages
    public_prefix: str  # e.g. "pooldaemon-public-key:v1:"
    private_prefix: str
    public_name: str  # e.g. "pool.pub"
    private_name: str
    error: Callable[[str], Exception]

    def text(self, kind: Kind, raw: bytes, key_id: str, note: str) -> str:
        """The contents of a key file holding ``raw``."""
        prefix = self.public_prefix if kind == "public" else self.private_prefix
        encoded = base64.b64encode(raw).decode("ascii")
        return (
            f"# pooldaemon {self.what} {kind} key; key id {key_id}\n# {note}\n{prefix}{encoded}\n"
        )

    def raw(self, text: str, where: str, kind: Kind) -> bytes:
        """The 32 key bytes in a key file's text. Raises ``self.error``."""
        lines = [line.strip() for line in text.splitlines()]
        lines = [line for line in lines if line and not line.startswith("#")]
        if kind == "public":
            wanted, other = self.public_prefix, self.private_prefix
        else:
            wanted, other = self.private_prefix, self.public_prefix
        if len(lines) != 1 or not lines[0].startswith((wanted, other)):
            raise self.error(
                f"{where}: not a pooldaemon {self.what} {kind} key file "
                f"(expected one key line starting with {wanted!r})"
            )
        line = lines[0]
        if line.startswith(other):
            if kind == "public":
                raise self.error(
                    f"{where}: holds a private key; give the public key ({self.public_name})"
                )
            raise self.error(
                f"{where}: holds a public key; the private key ({self.private_name}) is needed"
            )
        try:
            raw = base64.b64decode(line[len(wanted) :], validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != KEY_BYTES:
            raise self.error(f"{where}: the {kind} key is damaged (not 32 bytes of base64)")
        return raw

    def read(self, path: Path) -> str:
        """A key file's text, bounded in size. Raises ``self.error``."""
        try:
            with open(path, "rb") as fh:
                raw = fh.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise self.error(f"{path}: cannot read it ({reason})") from None
        if len(raw) > MAX_KEY_FILE_BYTES:
            raise self.error(f"{path}: too large to be a key file")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.error(f"{path}: not a text file") from None
