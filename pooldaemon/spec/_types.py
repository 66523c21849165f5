"""Value types of the desired state: durations, globs, ids, URLs.

Each is an ``Annotated`` type whose validator gives a message a user can act
on and whose JSON Schema lets editors check the value as it is typed.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, PlainSerializer, PlainValidator, WithJsonSchema

__all__ = [
    "Duration",
    "EnvName",
    "Glob",
    "HttpUrl",
    "Label",
    "Name",
    "PositiveDuration",
    "ProviderId",
    "format_duration",
    "glob_problem",
    "parse_duration",
    "provider_id_problem",
    "text_problem",
]

_UNITS: tuple[tuple[str, timedelta], ...] = (
    ("d", timedelta(days=1)),
    ("h", timedelta(hours=1)),
    ("m", timedelta(minutes=1)),
    ("s", timedelta(seconds=1)),
    ("ms", timedelta(milliseconds=1)),
)
_UNIT_RANK = {unit: rank for rank, (unit, _) in enumerate(_UNITS)}
_PART = re.compile(r"(\d+)(ms|d|h|m|s)")
DURATION_PATTERN = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$"
_DURATION_EXAMPLE = "a number with a unit (ms, s, m, h, d), like '500ms', '30s', '5m', '1h30m'"
_MAX_DURATION = timedelta(days=3650)


def parse_duration(value: object) -> timedelta:
    """Parse ``500ms``, ``30s``, ``5m``, ``12h``, ``90d`` or a combination like ``1h30m``.

    Strict on purpose: a bare number is refused (is ``30`` seconds or minutes?),
    units must come largest first and each at most once.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"expected a duration string, {_DURATION_EXAMPLE}; got {value!r}")
    text = value.strip()
    if not text:
        raise ValueError(f"empty duration; expected {_DURATION_EXAMPLE}")
    total = timedelta()
    last_rank = -1
    pos = 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        rank = _UNIT_RANK[match.group(2)]
        if rank <= last_rank:
            raise ValueError(
                f"invalid duration {value!r}: units must appear once each, largest first"
            )
        last_rank = rank
        total += int(match.group(1)) * _UNITS[rank][1]
        pos = match.end()
    if pos != len(text) or last_rank < 0:
        raise ValueError(f"invalid duration {value!r}; expected {_DURATION_EXAMPLE}")
    if total > _MAX_DURATION:
        raise ValueError(f"duration {value!r} is longer than 10 years")
    return total


def format_duration(value: timedelta) -> str:
    """The canonical text of a duration, such that ``parse_duration`` gives it back."""
    rest = round(value.total_seconds() * 1000)
    if rest == 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        step = round(size.total_seconds() * 1000)
        count, rest = divmod(rest, step)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta():
        raise ValueError("duration must be greater than zero")
    return value


Duration = Annotated[
    timedelta,
    PlainValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "minLength": 2,
            "description": "Duration: " + _DURATION_EXAMPLE,
        }
    ),
]
PositiveDuration = Annotated[Duration, AfterValidator(_positive)]

_PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def provider_id_problem(raw: str) -> str | None:
    """Why ``raw`` is not a safe provider id (the original package's ``ValidateProviderID``).

    Ids end up in URLs, file names under ``state_dir`` and metric labels, so
    only lower-case letters, digits, ``-`` and ``_`` are allowed.
    """
    if not raw:
        return "provider id must not be empty"
    if _PROVIDER_ID.fullmatch(raw):
        return None
    if len(raw) > 64:
        return f"provider id {raw[:20]!r}... is longer than 64 characters"
    return (
        f"provider id {raw!r} is not safe: use lower-case letters, digits, '-' and '_', "
        "starting with a letter or digit"
    )


def _check_provider_id(value: str) -> str:
    problem = provider_id_problem(value)
    if problem:
        raise ValueError(problem)
    return value


ProviderId = Annotated[
    str,
    PlainValidator(lambda v: _check_provider_id(_require_str(v, "provider id"))),
    WithJsonSchema({"type": "string", "pattern": r"^[a-z0-9][a-z0-9_-]{0,63}$"}),
]

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def _check_name(value: object) -> str:
    text = _require_str(value, "name")
    if not _NAME.fullmatch(text):
        raise ValueError(
            f"invalid name {text!r}: use letters, digits, '.', '_', ':' and '-', "
            "starting with a letter or digit"
        )
    return text


Name = Annotated[
    str,
    PlainValidator(_check_name),
    WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"}),
]


def glob_problem(pattern: str) -> str | None:
    """Why ``pattern`` is not a well-formed model glob (``*``, ``?``, ``[abc]``, ``[!abc]``)."""
    if not pattern:
        return "empty pattern"
    if any(ch.isspace() or not ch.isprintable() for ch in pattern):
        return f"pattern {pattern!r} contains whitespace or control characters"
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "]":
            return f"pattern {pattern!r} has ']' without a matching '['"
        if ch == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            # A ']' right after '[' or '[!' is a literal member, as in fnmatch.
            if j < len(pattern) and pattern[j] == "]":
                j += 1
            close = pattern.find("]", j)
            if close < 0:
                return f"pattern {pattern!r} has '[' without a matching ']'"
            i = close
        i += 1
    return None


def _check_glob(value: object) -> str:
    text = _require_str(value, "model pattern")
    problem = glob_problem(text)
    if problem:
        raise ValueError(f"malformed glob: {problem}")
    return text


Glob = Annotated[
    str,
    PlainValidator(_check_glob),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "pattern": r"^\S+$",
            "description": "Model id or glob: '*' any run, '?' one character, [abc] a set",
        }
    ),
]


def _check_url(value: object) -> str:
    text = _require_str(value, "URL")
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"URL {text!r} must start with http:// or https://")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"URL {text!r} has an invalid port") from exc
    if not parts.hostname:
        raise ValueError(f"URL {text!r} has no host")
    if parts.username or parts.password:
        raise ValueError("URL must not carry credentials; put keys in 'keys:'")
    if parts.query or parts.fragment:
        raise ValueError(f"URL {text!r} must not have a query string or fragment")
    if any(ch.isspace() for ch in text):
        raise ValueError(f"URL {text!r} contains whitespace")
    del port
    return text.rstrip("/")


HttpUrl = Annotated[
    str,
    PlainValidator(_check_url),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": r"^https?://\S+$"}),
]

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_env_name(value: object) -> str:
    text = _require_str(value, "environment variable name")
    if not _ENV_NAME.fullmatch(text):
        raise ValueError(f"invalid environment variable name {text!r}: use letters, digits and '_'")
    return text


EnvName = Annotated[
    str,
    PlainValidator(_check_env_name),
    WithJsonSchema({"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}),
]


# Bidirectional overrides/isolates can make a log line read differently from what it holds.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def text_problem(text: str) -> str | None:
    """Why ``text`` is unfit to show in logs and status (control, line-break or bidi characters)."""
    for ch in text:
        if ch in _BIDI_CONTROLS or unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return f"contains the control character U+{ord(ch):04X}"
    return None


def _check_label(value: object) -> str:
    text = _require_str(value, "text")
    if not text.strip():
        raise ValueError("must not be empty")
    if len(text) > 128:
        raise ValueError("is longer than 128 characters")
    problem = text_problem(text)
    if problem:
        raise ValueError(problem)
    return text


Label = Annotated[
    str,
    PlainValidator(_check_label),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 128}),
]
"""Display text (names, labels): shown in logs and status, so one printable line."""


def _require_str(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string for the {what}, got {type(value).__name__}")
    return value
