"""Load a YAML desired-state file into a validated ``PoolSpec``.

files -> bytes -> YAML nodes -> plain data with positions -> ``PoolSpec``, in
one place. Every problem becomes an :class:`~pooldaemon.errors.Issue` with
``FILE:LINE:COL`` and a dotted path that names providers by id, following the
rules in ARCHITECTURE ("Details that are fixed"): a bad value points at the
value, an unknown key at the key, a missing field at the first line of the
mapping that lacks it, an entry-level error at the entry's offending key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from pydantic import ValidationError

from pooldaemon.errors import ConfigError, Issue
from pooldaemon.spec._base import FieldProblems, Loc
from pooldaemon.spec._messages import display_path, error_message
from pooldaemon.spec._pool import PoolSpec
from pooldaemon.spec._warnings import spec_warnings
from pooldaemon.spec._yaml import Mark, Pos, YamlSyntaxError, parse_yaml

__all__ = ["MAX_SPEC_BYTES", "LoadedSpec", "load_spec_bytes", "load_spec_file"]

MAX_SPEC_BYTES = 4 * 1024 * 1024
_EMPTY = "the file is empty; expected a mapping starting with 'version: 1'"


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    """A validated spec with what is needed to report on it later."""

    spec: PoolSpec
    file: str
    sha256: str
    warnings: tuple[Issue, ...]
    positions: Mapping[Loc, Pos]
    data: Any

    def issue_at(
        self, loc: Loc, message: str, severity: Literal["error", "warning"] = "error"
    ) -> Issue:
        """An issue placed at ``loc`` in this file (for checks made after loading)."""
        mark = _locate(self.positions, loc, "value")
        return Issue(
            self.file, mark.line, mark.column, display_path(loc, self.data), message, severity
        )


def load_spec_file(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> LoadedSpec:
    """Read and validate the YAML file at ``path``. Raises :class:`ConfigError`."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as fh:
            raw = fh.read(MAX_SPEC_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError([Issue(name, 0, 0, "", f"cannot read the file: {reason}")]) from exc
    return load_spec_bytes(raw, name, env)


def load_spec_bytes(
    raw: bytes, file: str = "<string>", env: Mapping[str, str] | None = None
) -> LoadedSpec:
    """Validate YAML given as bytes; ``file`` is only used in messages."""
    if len(raw) > MAX_SPEC_BYTES:
        raise ConfigError([Issue(file, 0, 0, "", f"file is larger than {MAX_SPEC_BYTES} bytes")])
    text = _decode(raw, file)
    try:
        located = parse_yaml(text)
    except YamlSyntaxError as exc:
        raise ConfigError(
            [Issue(file, exc.mark.line, exc.mark.column, "", f"YAML syntax error: {exc.message}")]
        ) from exc
    except RecursionError as exc:
        raise ConfigError([Issue(file, 1, 1, "", "YAML nested too deeply")]) from exc
    data = located.data
    if located.problems:
        raise ConfigError(
            [
                Issue(file, p.mark.line, p.mark.column, display_path(p.path, data), p.message)
                for p in located.problems
            ]
        )
    if data is None:
        raise ConfigError([Issue(file, 1, 1, "", _EMPTY)])
    if not isinstance(data, dict):
        raise ConfigError(
            [Issue(file, 1, 1, "", f"the top level must be a mapping, got {type(data).__name__}")]
        )
    positions = MappingProxyType(located.positions)
    try:
        spec = PoolSpec.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_validation_issues(exc, file, positions, data)) from None
    loaded = LoadedSpec(spec, file, hashlib.sha256(raw).hexdigest(), (), positions, data)
    warnings = tuple(
        loaded.issue_at(loc, message, "warning")
        for loc, message in spec_warnings(spec, os.environ if env is None else env)
    )
    return LoadedSpec(spec, file, loaded.sha256, warnings, positions, data)


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [
                Issue(
                    file,
                    line,
                    col,
                    "",
                    f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                )
            ]
        ) from None


def _validation_issues(
    exc: ValidationError, file: str, positions: Mapping[Loc, Pos], data: Any
) -> list[Issue]:
    issues: list[Issue] = []
    for err in exc.errors(include_url=False):
        loc: Loc = tuple(err["loc"])
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, FieldProblems):
            for rel, message in cause.problems:
                full = (*loc, *rel)
                mark = _locate(positions, full, "value")
                issues.append(
                    Issue(file, mark.line, mark.column, display_path(full, data), message)
                )
            continue
        mark = _locate(positions, loc, err["type"])
        issues.append(
            Issue(file, mark.line, mark.column, display_path(loc, data), error_message(err))
        )
    issues.sort(key=lambda i: (i.line, i.column))
    return issues


def _locate(positions: Mapping[Loc, Pos], loc: Loc, kind: str) -> Mark:
    if kind == "missing":
        return _nearest(positions, loc[:-1]).value
    if loc and loc[-1] == "[key]":
        pos = _nearest(positions, loc[:-1])
        return pos.key or pos.value
    found = positions.get(loc)
    if found is None:
        return _nearest(positions, loc).value
    pos = found
    if kind == "extra_forbidden":
        return pos.key or pos.value
    return pos.value


def _nearest(positions: Mapping[Loc, Pos], loc: Loc) -> Pos:
    for n in range(len(loc), -1, -1):
        pos = positions.get(loc[:n])
        if pos is not None:
            return pos
    return Pos(None, Mark(1, 1))
