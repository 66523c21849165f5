"""The built-in model table: prices and limits of known models, with their sources.

The facts live in ``pooldaemon/data/models.json`` (its ``note`` says what the
numbers mean and how to update them). :func:`load_builtin_table` reads and
validates that file once; :meth:`BuiltinTable.lookup` finds an entry for the
model ids seen in the wild, which rarely match the table exactly:

- provider prefixes: ``openai/gpt-4o``, ``models/gemini-2.5-flash``, Bedrock's
  ``us.anthropic.claude-sonnet-4-5-20250929-v1:0``;
- date and version suffixes: ``gpt-4o-2024-08-06``, ``claude-3-5-sonnet-20241022``,
  ``claude-3-5-haiku@20241022``, ``gemini-2.0-flash-001``, ``mistral-large-2411``,
  ``command-r-08-2024``, ``-latest``, ``-preview``;
- OpenRouter variants (``:free``, ``:beta``) and dotted versions
  (``anthropic/claude-sonnet-4.5``). A ``:free`` variant gets the paid model's
  price, an upper bound; a ``pricing.models`` entry can say it is free.

The exact id always wins, so a dated snapshot priced differently from its alias
(``gpt-4o-2024-05-13``) is its own entry. Each candidate form is an O(1) dict
probe: no scan over the table per lookup.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any, Final, NoReturn

from pooldaemon.errors import BuiltinTableError
from pooldaemon.pool._price import Price, PriceQuote

__all__ = [
    "CAPABILITIES",
    "BuiltinModel",
    "BuiltinTable",
    "BuiltinTableError",
    "load_builtin_table",
    "parse_builtin_table",
]

CAPABILITIES: Final = frozenset(
    {
        "chat",
        "streaming",
        "vision",
        "tools",
        "json",
        "thinking",
        "embeddings",
        "image_generation",
        "audio",
        "moderation",
    }
)

_DATA_FILE: Final = "pooldaemon/data/models.json"
_MAX_ID_LENGTH: Final = 256
_REQUIRED: Final = ("id", "vendor", "input", "output", "capabilities", "source", "as_of")
_OPTIONAL: Final = (
    "cache_read",
    "cache_write",
    "per_request",
    "context_window",
    "max_output",
    "aliases",
)
_AS_OF: Final = re.compile(r"\d{4}-(?:0[1-9]|1[0-2])")
_VENDOR: Final = re.compile(r"[a-z0-9][a-z0-9-]*")
# Bedrock ids: an optional cross-region prefix, then "<vendor>." (never followed by a digit,
# so "gpt-4.1" and "gemini-2.5-pro" are left alone).
_BEDROCK_PREFIX: Final = re.compile(
    r"^(?:(?:us|eu|apac|global|jp|au|us-gov)\.)?"
    r"(?:anthropic|meta|amazon|mistral|cohere|ai21|deepseek|openai|qwen|writer)\.(?=[a-z])"
)
# One trailing suffix that does not change which model (or price) is meant. The
# leftmost match wins, so "-2024-08-06" goes in one step, not as "-08-06".
_SUFFIX: Final = re.compile(
    r"(?:@[a-z0-9._-]*"  # Vertex AI: claude-3-5-haiku@20241022
    r"|:[a-z][a-z0-9._-]*"  # OpenRouter / Ollama tags: :free, :beta, :latest
    r"|-v\d+(?::\d+)?"  # Bedrock -v2:0, Vertex -v2
    r"|-\d{4}-\d{2}-\d{2}"  # OpenAI: -2024-08-06
    r"|-\d{8}"  # Anthropic: -20241022
    r"|-\d{2}-\d{4}"  # Cohere, Gemini previews: -08-2024, -09-2025
    r"|-\d{2}-\d{2}"  # Gemini previews: -05-20
    r"|-\d{3,4}"  # Gemini -001, Mistral -2411, OpenAI -0125, xAI -0709
    r"|-latest|-preview)$"
)
_MAX_SUFFIXES: Final = 4


@dataclass(frozen=True, slots=True)
class BuiltinModel:
    """One known model: its list price, limits and capabilities, and where they come from."""

    id: str
    vendor: str
    price: Price
    context_window: int | None
    max_output: int | None
    capabilities: frozenset[str]
    source: str
    as_of: str
    aliases: tuple[str, ...] = ()

    @property
    def is_chat(self) -> bool:
        return "chat" in self.capabilities


class BuiltinTable(Mapping[str, BuiltinModel]):
    """An immutable mapping of model id to :class:`BuiltinModel`, with normalized lookup."""

    __slots__ = ("_index", "_models")

    _models: Mapping[str, BuiltinModel]
    _index: Mapping[str, BuiltinModel]

    def __init__(self, models: Iterable[BuiltinModel]) -> None:
        by_id: dict[str, BuiltinModel] = {}
        index: dict[str, BuiltinModel] = {}
        for model in models:
            if model.id in by_id:
                raise BuiltinTableError(f"duplicate model id {model.id!r}")
            by_id[model.id] = model
            for key in (model.id, *model.aliases):
                other = index.setdefault(key.lower(), model)
                if other is not model:
                    raise BuiltinTableError(
                        f"model {model.id!r}: id or alias {key!r} is also {other.id!r}"
                    )
        object.__setattr__(self, "_models", MappingProxyType(by_id))
        object.__setattr__(self, "_index", MappingProxyType(index))

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"BuiltinTable is immutable (cannot set {name!r})")

    def __getitem__(self, model_id: str) -> BuiltinModel:
        return self._models[model_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._models)

    def __len__(self) -> int:
        return len(self._models)

    def __repr__(self) -> str:
        return f"<BuiltinTable: {len(self)} models>"

    @property
    def vendors(self) -> frozenset[str]:
        return frozenset(model.vendor for model in self._models.values())

    def lookup(self, model_id: str) -> BuiltinModel | None:
        """The entry for ``model_id``: exact id first, then its normalized forms; else None."""
        exact = self._models.get(model_id)
        if exact is not None:
            return exact
        for candidate in _candidates(model_id):
            found = self._index.get(candidate)
            if found is not None:
                return found
        return None

    def quote(self, model_id: str) -> PriceQuote | None:
        """The built-in price for ``model_id`` (``matched`` is the entry's id), or None."""
        model = self.lookup(model_id)
        if model is None:
            return None
        return PriceQuote(price=model.price, source="builtin", matched=model.id)


def _candidates(model_id: str) -> list[str]:
    """Normalized forms of ``model_id`` to probe, most specific first."""
    raw = model_id.strip().lower()
    if not raw or len(raw) > _MAX_ID_LENGTH:
        return []
    bases = [raw]
    if "/" in raw:
        bases.append(raw.rsplit("/", 1)[1])
    bases += [stripped for base in bases if (stripped := _BEDROCK_PREFIX.sub("", base)) != base]
    found: list[str] = []
    for base in bases:
        form = base
        found.append(form)
        for _ in range(_MAX_SUFFIXES):
            shorter = _SUFFIX.sub("", form, count=1)
            if shorter in (form, ""):
                break
            found.append(shorter)
            form = shorter
    # OpenRouter writes versions with dots (claude-sonnet-4.5) where vendors use dashes.
    found += [form.replace(".", "-") for form in found if "." in form]
    return [form for form in dict.fromkeys(found) if form]


@functools.cache
def load_builtin_table() -> BuiltinTable:
    """The table from the package's ``data/models.json``, read and validated once."""
    path = resources.files("pooldaemon") / "data" / "models.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BuiltinTableError(f"{_DATA_FILE}: cannot be read: {exc}") from exc
    return parse_builtin_table(data, source=_DATA_FILE)


def parse_builtin_table(data: object, *, source: str = _DATA_FILE) -> BuiltinTable:
    """Validate the parsed JSON document and build the table; errors name the entry."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise BuiltinTableError(f"{source}: expected an object with a 'models' list")
    unknown = set(data) - {"note", "models"}
    if unknown:
        raise BuiltinTableError(f"{source}: unknown top-level keys {sorted(unknown)}")
    models = [_parse_entry(raw, f"{source}: models[{n}]") for n, raw in enumerate(data["models"])]
    try:
        return BuiltinTable(models)
    except BuiltinTableError as exc:
        raise BuiltinTableError(f"{source}: {exc}") from None


def _parse_entry(raw: object, where: str) -> BuiltinModel:
    if not isinstance(raw, dict):
        raise BuiltinTableError(f"{where}: expected an object")
    model_id = raw.get("id")
    if not isinstance(model_id, str) or not model_id or model_id != model_id.strip():
        raise BuiltinTableError(f"{where}: field 'id': expected a non-empty string")
    where = f"{where} ({model_id!r})"
    missing = [key for key in _REQUIRED if key not in raw]
    if missing:
        raise BuiltinTableError(f"{where}: missing fields {missing}")
    unknown = set(raw) - {*_REQUIRED, *_OPTIONAL}
    if unknown:
        raise BuiltinTableError(f"{where}: unknown fields {sorted(unknown)}")
    price = Price(
        input=_number(raw, "input", where),
        output=_number(raw, "output", where),
        cache_read=_optional_number(raw, "cache_read", where),
        cache_write=_optional_number(raw, "cache_write", where),
        per_request=_optional_number(raw, "per_request", where) or 0.0,
    )
    return BuiltinModel(
        id=model_id,
        vendor=_text(raw, "vendor", where, _VENDOR, "a lowercase vendor name"),
        price=price,
        context_window=_optional_count(raw, "context_window", where),
        max_output=_optional_count(raw, "max_output", where),
        capabilities=_capabilities(raw, where),
        source=_source(raw, where),
        as_of=_text(raw, "as_of", where, _AS_OF, "a YYYY-MM month"),
        aliases=_aliases(raw, where),
    )


def _fail(where: str, key: str, expected: str, value: object) -> NoReturn:
    raise BuiltinTableError(f"{where}: field {key!r}: expected {expected}, got {value!r}")


def _number(raw: dict[str, Any], key: str, where: str) -> float:
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(where, key, "a number", value)
    if not math.isfinite(value) or value < 0:
        _fail(where, key, "a finite non-negative number", value)
    return float(value)


def _optional_number(raw: dict[str, Any], key: str, where: str) -> float | None:
    return None if raw.get(key) is None else _number(raw, key, where)


def _optional_count(raw: dict[str, Any], key: str, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        _fail(where, key, "a positive integer or null", value)
    return value


def _text(raw: dict[str, Any], key: str, where: str, pattern: re.Pattern[str], what: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not pattern.fullmatch(value):
        _fail(where, key, what, value)
    return value


def _source(raw: dict[str, Any], where: str) -> str:
    value = raw["source"]
    if not isinstance(value, str) or not value.startswith("https://") or " " in value:
        _fail(where, "source", "an https:// URL", value)
    return value


def _capabilities(raw: dict[str, Any], where: str) -> frozenset[str]:
    value = raw["capabilities"]
    if not isinstance(value, list) or not value:
        _fail(where, "capabilities", "a non-empty list", value)
    unknown = [item for item in value if item not in CAPABILITIES]
    if unknown:
        _fail(where, "capabilities", f"items from {sorted(CAPABILITIES)}", unknown)
    return frozenset(value)


def _aliases(raw: dict[str, Any], where: str) -> tuple[str, ...]:
    value = raw.get("aliases", [])
    if not isinstance(value, list) or not all(
        isinstance(item, str) and item and item == item.strip() for item in value
    ):
        _fail(where, "aliases", "a list of model ids", value)
    return tuple(value)
