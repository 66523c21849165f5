"""Encryption at rest of what the daemon keeps in ``state_dir`` that may hold a secret.

The *state key* is 256 random bits. It comes from the systemd credential
``$CREDENTIALS_DIRECTORY/state.key`` (``LoadCredential=``) when there is one,
else from ``state_dir/state.key``, generated on first start with mode 0600 and
created atomically (written to a temporary file, then hard-linked into place,
which fails if another process got there first). A key file holds the 32 bytes
raw, as 64 hex digits, or in base64 (the generated file: one base64 line).
A key file that is there but unusable stops the daemon at start
(:class:`StateFileError`): generating a new key would silently make every
encrypted file unreadable.

Keys for each use are derived from the state key with HKDF-SHA256 (RFC 5869;
``info`` names the use), so the encryption key and, e.g., the trial state's
HMAC key are never the same bytes.

An encrypted file is::

    b"pooldaemon:xchacha20poly1305:v2\\n" || nonce (24 random bytes)
        || XChaCha20-Poly1305(ciphertext || tag)

with the associated data ``magic || purpose``: the *purpose* names what the
file is for (``last-known-good``), so a file copied over another is refused
rather than read as the wrong thing. The readable first line says what the
file is to someone who opens it. Opening fails (:class:`StateFileError`) for a
damaged file, one written under another state key, or one for another purpose;
callers report that and carry on without the file.

Files of the first format (``pooldaemon:aesgcm:v1``, AES-256-GCM with a 12-byte
nonce) are still read; the next write replaces them. The encryption is
PyNaCl's (libsodium) and the key derivation the standard library's HMAC, not
``cryptography``'s: this module runs at every start, and importing
``cryptography`` cost the daemon about 8 MiB of resident memory for as long as
it ran (``bench/results``). ``cryptography`` is imported only to read a first-format
file (and by the trial licence code, for Ed25519). Tests check the HKDF against
``cryptography``'s.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from nacl.exceptions import CryptoError
from nacl.secret import Aead

from pooldaemon._files import write_private
from pooldaemon.errors import StateFileError

__all__ = [
    "LEGACY_MAGIC",
    "MAGIC",
    "STATE_KEY_FILE",
    "StateKey",
    "hkdf_sha256",
    "is_encrypted",
    "load_state_key",
    "read_encrypted",
    "write_encrypted",
]

STATE_KEY_FILE = "state.key"
MAGIC = b"pooldaemon:xchacha20poly1305:v2\n"
LEGACY_MAGIC = b"pooldaemon:aesgcm:v1\n"
_KEY_BYTES = 32
_NONCE_BYTES = Aead.NONCE_SIZE  # 24
_LEGACY_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_KEY_FILE_BYTES = 4096


def hkdf_sha256(key: bytes, length: int, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) of ``key`` without salt: the same bytes as
    ``cryptography``'s ``HKDF(hashes.SHA256(), length, salt=None, info=info)``."""
    if not 0 < length <= 255 * 32:
        raise ValueError("HKDF-SHA256 derives 1 to 8160 bytes")
    prk = hmac.digest(b"\x00" * 32, key, "sha256")  # no salt: HashLen zero bytes
    okm, block = b"", b""
    for counter in range(1, -(-length // 32) + 1):
        block = hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        okm += block
    return okm[:length]


class StateKey:
    """The state key; its bytes never appear in a repr, a log or a message.
    ``source`` is where it came from (a path), for messages."""

    __slots__ = ("_aead", "_key", "source")

    def __init__(self, key: bytes, source: str = "") -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError(f"a state key is {_KEY_BYTES} bytes")
        self._key = key
        self._aead = Aead(self.derive("xchacha20-poly1305", Aead.KEY_SIZE))
        self.source = source

    def __repr__(self) -> str:
        return f"StateKey(source={self.source!r})"

    def derive(self, use: str, length: int = _KEY_BYTES) -> bytes:
        """A key for one ``use`` (HKDF-SHA256 of the state key, ``info`` = the use)."""
        return hkdf_sha256(self._key, length, f"pooldaemon {use}".encode())

    def encrypt(self, purpose: str, plaintext: bytes) -> bytes:
        """``plaintext`` in the encrypted file format, bound to ``purpose``."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._aead.encrypt(plaintext, _aad(MAGIC, purpose), nonce)
        return MAGIC + bytes(sealed)  # the nonce, then the ciphertext and its tag

    def decrypt(self, purpose: str, data: bytes, where: str) -> bytes:
        """The plaintext of an encrypted file's bytes. Raises :class:`StateFileError`
        naming ``where`` when the bytes are damaged, were encrypted under another
        key or for another purpose."""
        if data.startswith(MAGIC):
            body = data[len(MAGIC) :]
            if len(body) < _NONCE_BYTES + _TAG_BYTES:
                raise StateFileError(f"{where}: the encrypted file is truncated")
            try:
                return self._aead.decrypt(body, _aad(MAGIC, purpose))
            except CryptoError:
                raise _undecryptable(where, purpose) from None
        if data.startswith(LEGACY_MAGIC):
            return self._decrypt_legacy(purpose, data[len(LEGACY_MAGIC) :], where)
        raise StateFileError(f"{where}: not an encrypted pooldaemon file")

    def _decrypt_legacy(self, purpose: str, body: bytes, where: str) -> bytes:
        """A file of the first format (AES-256-GCM), written by an older version."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(body) < _LEGACY_NONCE_BYTES + _TAG_BYTES:
            raise StateFileError(f"{where}: the encrypted file is truncated")
        nonce, sealed = body[:_LEGACY_NONCE_BYTES], body[_LEGACY_NONCE_BYTES:]
        aead = AESGCM(self.derive("aes-256-gcm"))
        try:
            return aead.decrypt(nonce, sealed, _aad(LEGACY_MAGIC, purpose))
        except InvalidTag:
            raise _undecryptable(where, purpose) from None


def _undecryptable(where: str, purpose: str) -> StateFileError:
    return StateFileError(
        f"{where}: cannot be decrypted (damaged, written under another state key, "
        f"or not a {purpose} file)"
    )


def _aad(magic: bytes, purpose: str) -> bytes:
    return magic + purpose.encode()


def is_encrypted(data: bytes) -> bool:
    """Whether ``data`` is in an encrypted file format, this one or the first (else:
    plaintext, e.g. from an older version that wrote it unencrypted)."""
    return data.startswith((MAGIC, LEGACY_MAGIC))


def write_encrypted(path: Path, key: StateKey, purpose: str, plaintext: bytes) -> None:
    """Encrypt ``plaintext`` for ``purpose`` and replace ``path`` atomically (mode 0600)."""
    write_private(path, key.encrypt(purpose, plaintext))


def read_encrypted(path: Path, key: StateKey, purpose: str) -> bytes | None:
    """The plaintext kept in ``path``; None when there is no such file.

    Raises :class:`StateFileError` when the file cannot be decrypted and OSError
    when it cannot be read. A plaintext file (not in the encrypted format) is
    refused too: callers that migrate older files check :func:`is_encrypted`.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return key.decrypt(purpose, data, str(path))


def load_state_key(state_dir: Path, env: Mapping[str, str] | None = None) -> StateKey:
    """The state key: the credential ``state.key`` when systemd passes one, else
    ``state_dir/state.key`` (generated now when missing).

    Raises :class:`StateFileError` when the key file exists but holds no usable key,
    and OSError when it cannot be read or created.
    """
    env = os.environ if env is None else env
    credentials = env.get("CREDENTIALS_DIRECTORY")
    if credentials:
        path = Path(credentials) / STATE_KEY_FILE
        if path.exists():
            return StateKey(_read_key(path), str(path))
    path = state_dir / STATE_KEY_FILE
    try:
        return StateKey(_read_key(path), str(path))
    except FileNotFoundError:
        pass
    _create_key(path)
    return StateKey(_read_key(path), str(path))


def _read_key(path: Path) -> bytes:
    with open(path, "rb") as fh:
        raw = fh.read(_MAX_KEY_FILE_BYTES + 1)
    key = _parse_key(raw)
    if key is None:
        raise StateFileError(
            f"state key {path}: not a {_KEY_BYTES}-byte key (raw, 64 hex digits or base64); "
            "restore it, or remove it to start with a new key (the encrypted "
            "last-known-good copy and the trial usage state are then lost)"
        )
    return key


def _parse_key(raw: bytes) -> bytes | None:
    if len(raw) == _KEY_BYTES:
        return raw
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return None
    if len(text) == 2 * _KEY_BYTES:
        with contextlib.suppress(ValueError):
            return bytes.fromhex(text)
    try:
        decoded = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if len(decoded) == _KEY_BYTES else None


def _create_key(path: Path) -> None:
    """Write a new random key to ``path`` unless a key appeared there meanwhile.

    Written to a temporary file first, then hard-linked into place: ``link`` fails
    when the name exists (like ``O_EXCL``), and no process ever sees half a key.
    """
    text = base64.b64encode(os.urandom(_KEY_BYTES)) + b"\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, text)
            os.fsync(fd)
        finally:
            os.close(fd)
        with contextlib.suppress(FileExistsError):  # another process won: use its key
            os.link(tmp, path)
    finally:
        os.unlink(tmp)
