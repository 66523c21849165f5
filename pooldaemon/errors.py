"""The exception tree of pooldaemon.

Every error the package raises on purpose derives from :class:`PoolError`, and
each area's subclass also inherits the builtin that fits it, so callers may
catch either::

    PoolError
    ├── ConfigError(PoolError, ValueError)     the YAML desired state is unusable
    ├── SettingsError(PoolError, ValueError)   process settings (env, flags) are unusable
    ├── StoreError(PoolError, OSError)         the usage store (SQLite) cannot be used
    ├── StateFileError(PoolError, OSError)     a state_dir file is damaged, tampered, undecryptable
    ├── LicenceError(PoolError, ValueError)    a trial licence is malformed, forged or expired
    ├── BuiltinTableError(PoolError, ValueError)  the packaged model table is malformed
    ├── SealedValueError(PoolError, ValueError)   a sealed ENC[...] value cannot be opened here
    ├── SealingKeyError(PoolError, ValueError)    a sealing key file cannot be read or parsed
    └── RoutingError(PoolError)                no provider can take a request
        ├── UnknownModelError(RoutingError, LookupError)   nothing serves that model name
        ├── NoCandidateError(RoutingError)                 every provider was left out
        └── BudgetExceededError(RoutingError)              the client is over its budget

Lower libraries' exceptions (ruamel.yaml, pydantic) are translated into these
at one boundary each, with ``raise ... from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "BudgetExceededError",
    "BuiltinTableError",
    "ConfigError",
    "Issue",
    "LicenceError",
    "NoCandidateError",
    "PoolError",
    "RoutingError",
    "SealedValueError",
    "SealingKeyError",
    "SettingsError",
    "StateFileError",
    "StoreError",
    "UnknownModelError",
]


class PoolError(Exception):
    """Base of every error pooldaemon raises on purpose."""


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem (or warning) found in a config file, with its place.

    ``line`` and ``column`` are 1-based; ``0`` means the problem has no place
    in the file (it could not be read at all).
    """

    file: str
    line: int
    column: int
    path: str
    message: str
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        path = f" {self.path}:" if self.path else ""
        level = " warning:" if self.severity == "warning" else ""
        return f"{where}:{path}{level} {self.message}"


class ConfigError(PoolError, ValueError):
    """The YAML desired state could not be read, parsed or validated.

    ``issues`` holds every problem found, each naming file, line and field.
    """

    def __init__(self, issues: list[Issue] | tuple[Issue, ...]) -> None:
        self.issues: tuple[Issue, ...] = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues) or "invalid config")


class SettingsError(PoolError, ValueError):
    """A process setting (environment variable or flag) is invalid."""


class StoreError(PoolError, OSError):
    """The usage store cannot be opened, written or read."""


class StateFileError(PoolError, OSError):
    """A file the daemon keeps in ``state_dir`` cannot be used: damaged, edited by
    hand (its HMAC fails), or encrypted under another state key. The message names
    the file; it never quotes the file's content."""


class LicenceError(PoolError, ValueError):
    """A trial licence cannot be used. ``kind`` says why, as a stable word for status
    and tests: ``malformed``, ``missing_claim``, ``bad_claim``, ``unknown_kid``,
    ``bad_signature``, ``expired``, ``not_yet_valid``, ``conflict`` (its provider id is
    taken), or ``key_file`` (a signing key file is unusable). The message never quotes
    the licence, its key claim or a key file's content."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


class RoutingError(PoolError):
    """No provider can take a request."""


class UnknownModelError(RoutingError, LookupError):
    """No provider serves the requested model name; ``suggestions`` are the closest names."""

    def __init__(self, model: str, suggestions: tuple[str, ...]) -> None:
        self.model = model
        self.suggestions = suggestions
        hint = f"; closest: {', '.join(suggestions)}" if suggestions else ""
        super().__init__(f"no provider serves model {model!r}{hint}")


class NoCandidateError(RoutingError):
    """Every provider that serves the model was left out (the decision says why)."""


class BudgetExceededError(RoutingError):
    """The client has spent its budget for the period."""


class BuiltinTableError(PoolError, ValueError):
    """The built-in model table (``models.json``) is malformed; the message names the entry."""


class SealedValueError(PoolError, ValueError):
    """A sealed ``ENC[...]`` value cannot be opened where it sits.

    The message says why (damaged, sealed for another place, sealed to a key
    this process does not hold) and never contains the secret.
    """


class SealingKeyError(PoolError, ValueError):
    """A sealing key file (public or private) cannot be read or parsed; the message
    names the file, never its contents."""
