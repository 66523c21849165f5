"""The sealed values of a loaded config file: found, checked and opened in place.

Every string in the file that starts with ``ENC[`` is treated as a sealed value,
wherever it is, so that ``secrets check`` and ``reseal`` see the same set as
the daemon. Its *location* is the context it must have been sealed for:
``providers.<id>`` for anything inside a provider entry, ``clients.<name>``
inside a client entry. Today only ``providers[].keys[].value`` takes a sealed
value; one anywhere else is an error (it would be used as the literal text).

Three levels of checking, each reporting every problem as an
:class:`~pooldaemon.errors.Issue` with file, line, column and the dotted field
(``providers.openai.keys[0].value``), never the secret:

- :func:`verify_sealed` with no keyring: envelope shape, field, context against
  location (what ``pooldaemon validate`` can do without a private key);
- :func:`verify_sealed` with a keyring: the above and decryption (``pooldaemon
  secrets check``);
- :func:`unseal_keys`: the secrets themselves, or a :class:`ConfigError` with
  every failure (the daemon, at start and at each reconcile).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pooldaemon.errors import ConfigError, Issue, SealedValueError
from pooldaemon.secrets._keyring import Keyring
from pooldaemon.secrets._sealing import Envelope, check_envelope
from pooldaemon.spec import LoadedSpec
from pooldaemon.spec._base import Loc
from pooldaemon.spec._messages import display_path

__all__ = [
    "FieldCheck",
    "SealedField",
    "check_field",
    "sealed_fields",
    "unseal_keys",
    "verify_sealed",
]

_PREFIX = "ENC["
_NAMED = {"providers": "id", "clients": "name"}


@dataclass(frozen=True, slots=True)
class SealedField:
    """One sealed value in a file: where it is and what its place requires."""

    loc: Loc
    path: str
    """The dotted field as messages show it: ``providers.openai.keys[0].value``."""
    location: str | None
    """``providers.<id>`` / ``clients.<name>`` of the entry it sits in; None elsewhere."""
    value: str

    @property
    def takes_sealed(self) -> bool:
        """Whether this field's value is used as a secret (``providers[].keys[].value``)."""
        loc = self.loc
        return (
            len(loc) == 5
            and loc[0] == "providers"
            and loc[2] == "keys"
            and loc[4] == "value"
            and isinstance(loc[1], int)
            and isinstance(loc[3], int)
        )

    @property
    def key_ref(self) -> tuple[str, int] | None:
        """(provider id, key index) for a provider key's value."""
        if not self.takes_sealed or self.location is None:
            return None
        index = self.loc[3]
        assert isinstance(index, int)
        return self.location.removeprefix("providers."), index


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """The outcome for one sealed field: ``issue`` is None when it is fine."""

    field: SealedField
    issue: Issue | None
    envelope: Envelope | None


def sealed_fields(loaded: LoadedSpec) -> list[SealedField]:
    """Every sealed value in the file, in document order."""
    return [
        SealedField(loc, display_path(loc, loaded.data), _location(loaded.data, loc), value)
        for loc, value in _strings(loaded.data, ())
        if value.startswith(_PREFIX)
    ]


def verify_sealed(loaded: LoadedSpec, keyring: Keyring | None = None) -> list[FieldCheck]:
    """Check every sealed value; without a keyring nothing is decrypted."""
    return [check_field(loaded, f, keyring)[0] for f in sealed_fields(loaded)]


def unseal_keys(loaded: LoadedSpec, keyring: Keyring) -> dict[tuple[str, int], str]:
    """The secrets of sealed provider keys by (provider id, key index).

    Every sealed value in the file must open, disabled keys too (reseal and
    ``secrets check`` treat the file as a whole). Raises :class:`ConfigError`
    with one issue per value that does not.
    """
    opened: dict[tuple[str, int], str] = {}
    issues: list[Issue] = []
    for f in sealed_fields(loaded):
        check, secret = check_field(loaded, f, keyring)
        if check.issue is not None:
            issues.append(check.issue)
        elif secret is not None and f.key_ref is not None:
            opened[f.key_ref] = secret
    if issues:
        raise ConfigError(issues)
    return opened


def check_field(
    loaded: LoadedSpec, f: SealedField, keyring: Keyring | None
) -> tuple[FieldCheck, str | None]:
    """The check of one field, and its secret when ``keyring`` is given and it opens."""
    if not f.takes_sealed or f.location is None:
        message = "this field does not take sealed values (only providers[].keys[].value does)"
        return FieldCheck(f, loaded.issue_at(f.loc, message), None), None
    try:
        envelope = check_envelope(f.value, f.location)
        secret = None if keyring is None else keyring.open(f.value, f.location)
    except SealedValueError as exc:
        return FieldCheck(f, loaded.issue_at(f.loc, str(exc)), None), None
    return FieldCheck(f, None, envelope), secret


def _strings(node: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(node, str):
        yield loc, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*loc, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, (*loc, i))


def _location(data: Any, loc: Loc) -> str | None:
    if len(loc) < 2 or not isinstance(loc[0], str) or not isinstance(loc[1], int):
        return None
    named = _NAMED.get(loc[0])
    entries = data.get(loc[0]) if isinstance(data, dict) else None
    if named is None or not isinstance(entries, list):
        return None
    entry = entries[loc[1]]
    name = entry.get(named) if isinstance(entry, dict) else None
    return f"{loc[0]}.{name}" if isinstance(name, str) else None
