"""Reseal a config file to a new public key, in place, changing nothing but the values.

Key rotation: hold the old private key(s) and the new one, run ``pooldaemon
reseal pool.yaml --public-key new.pub``, commit, and drop the old key once the
daemon runs the new file. Each sealed value is opened with the old keys *where
it sits* (a value moved to another provider is refused, not laundered into a
valid one) and sealed again to the new key for the same context.

Layout is kept byte for byte: rather than dumping a YAML round trip (which
may reflow long lines, flow collections or quoting), the file's own text is
edited. ruamel.yaml's composer gives each sealed scalar's span in the text; the
old value is replaced by the new one inside that span, so its quotes, the
comments, indentation, line endings and a BOM stay as they were. The envelope
alphabet needs no quoting or escaping in any YAML scalar style. The result is
loaded again and must be the same document with only those values changed
before anything is written; the write is atomic and keeps the file's mode.

Values already sealed to the new key are left alone, so running it twice is a
no-op.
"""

from __future__ import annotations

import codecs
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nacl.public import PublicKey
from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from pooldaemon.errors import ConfigError, Issue, SealedValueError
from pooldaemon.secrets._fields import SealedField, check_field, sealed_fields
from pooldaemon.secrets._keyfile import key_id
from pooldaemon.secrets._keyring import Keyring
from pooldaemon.secrets._sealing import parse_envelope, seal
from pooldaemon.spec import LoadedSpec, load_spec_bytes

__all__ = ["Resealed", "reseal_bytes", "write_in_place"]


@dataclass(frozen=True, slots=True)
class Resealed:
    """The new file contents and what changed (paths only, never secrets)."""

    data: bytes
    key_id: str
    changed: tuple[str, ...]
    """Dotted paths of the values sealed again."""
    unchanged: tuple[str, ...]
    """Dotted paths of the values already sealed to the new key."""


def reseal_bytes(raw: bytes, file: str, keyring: Keyring, public_key: PublicKey) -> Resealed:
    """``raw`` with every sealed value sealed again to ``public_key``.

    Raises :class:`ConfigError` when the file is invalid or any sealed value cannot
    be opened with ``keyring`` (every one is listed; nothing is changed then).
    """
    loaded = load_spec_bytes(raw, file)
    new_kid = key_id(public_key)
    bom = codecs.BOM_UTF8 if raw.startswith(codecs.BOM_UTF8) else b""
    text = raw[len(bom) :].decode("utf-8")
    spans = _scalar_spans(text)
    edits: list[tuple[int, int, str]] = []
    changed: list[str] = []
    unchanged: list[str] = []
    issues: list[Issue] = []
    used: set[int] = set()
    for f in sealed_fields(loaded):
        # A value already sealed to the new key is only checked where it sits: its
        # private key need not be at hand (a rerun after a partial reseal).
        done = f.value.startswith(f"ENC[v1:{new_kid}:")
        check, secret = check_field(loaded, f, None if done else keyring)
        span = _span_of(loaded, f, spans, text)
        if check.issue is not None:
            issues.append(check.issue)
        elif done:
            unchanged.append(f.path)
        elif span is None or span[0] in used:
            issues.append(loaded.issue_at(f.loc, _NOT_IN_PLACE))
        else:
            assert secret is not None and f.location is not None
            used.add(span[0])
            edits.append((*span, seal(public_key, f.location, secret)))
            changed.append(f.path)
    if issues:
        raise ConfigError(issues)
    for start, end, value in sorted(edits, reverse=True):
        text = text[:start] + value + text[end:]
    data = bom + text.encode("utf-8")
    _same_document(loaded, load_spec_bytes(data, file), new_kid)
    return Resealed(data, new_kid, tuple(changed), tuple(unchanged))


_NOT_IN_PLACE = (
    "cannot rewrite this sealed value in place (reached through a YAML alias, or "
    "written with escapes): write it out as a plain or quoted scalar"
)


def _scalar_spans(text: str) -> dict[tuple[int, int], tuple[int, int]]:
    """(line, column) 1-based of each scalar's start -> its [start, end) in ``text``."""
    root = YAML(typ="safe", pure=True).compose(text)
    spans: dict[tuple[int, int], tuple[int, int]] = {}
    stack: list[Node] = [root] if root is not None else []
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, ScalarNode):
            start, end = node.start_mark, node.end_mark
            spans[(start.line + 1, start.column + 1)] = (start.index, end.index)
        elif isinstance(node, MappingNode):
            stack.extend(child for pair in node.value for child in pair)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return spans


def _span_of(
    loaded: LoadedSpec,
    f: SealedField,
    spans: dict[tuple[int, int], tuple[int, int]],
    text: str,
) -> tuple[int, int] | None:
    """Where exactly the old value's characters are, inside its scalar's span."""
    pos = loaded.positions.get(f.loc)
    if pos is None:
        return None
    node_span = spans.get((pos.value.line, pos.value.column))
    if node_span is None:
        return None
    start, end = node_span
    found = text.find(f.value, start, end)
    if found < 0 or text.find(f.value, found + 1, end) >= 0:
        return None
    return found, found + len(f.value)


def _same_document(before: LoadedSpec, after: LoadedSpec, new_kid: str) -> None:
    """The rewritten file is the old one with only sealed values changed, all to ``new_kid``."""
    masked_before = _mask(before.data)
    if masked_before != _mask(after.data) or [f.loc for f in sealed_fields(before)] != [
        f.loc for f in sealed_fields(after)
    ]:
        raise SealedValueError("reseal would change more than the sealed values; nothing written")
    for f in sealed_fields(after):
        if parse_envelope(f.value).key_id != new_kid:
            raise SealedValueError("reseal left a value sealed to an old key; nothing written")


def _mask(node: Any) -> Any:
    if isinstance(node, str):
        return "ENC[]" if node.startswith("ENC[") else node
    if isinstance(node, dict):
        return {k: _mask(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask(v) for v in node]
    return node


def write_in_place(path: Path, data: bytes) -> None:
    """Replace the file ``path`` points to with ``data`` atomically (temp file, fsync,
    rename), keeping its mode (and owner where allowed); a symlink stays a symlink."""
    target = path.resolve()
    info = target.stat()
    tmp = target.with_name(f".{target.name}.reseal.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, info.st_mode & 0o7777)
        # Not root: the file becomes ours, as any editor would make it.
        with contextlib.suppress(PermissionError):
            os.fchown(fd, info.st_uid, info.st_gid)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, target)
