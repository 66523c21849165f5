"""Human messages for validation errors: dotted paths by id, did-you-mean, no secrets."""

from __future__ import annotations

import difflib
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from pooldaemon.spec._base import Loc

__all__ = ["display_path", "error_message", "suggest"]

# Lists whose entries are named by a key of the entry instead of their index.
_NAMED_LISTS: dict[Loc, str] = {("providers",): "id", ("clients",): "name"}
_SENSITIVE = frozenset({"value", "licence", "keys"})
_COLLECTION_TYPES = {
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "tuple_type": "a list",
    "list_type": "a list",
}
_PATTERN_HINTS = {
    r"^\S+$": "must not be empty or contain whitespace",
    r"^[A-Za-z0-9_.@:-]+$": "may contain only letters, digits and '_', '.', '@', ':', '-'",
}


def display_path(loc: Loc, data: Any) -> str:
    """``providers.openai.keys[0].env`` for ``('providers', 0, 'keys', 0, 'env')``."""
    out = ""
    node = data
    prefix: Loc = ()
    for elem in loc:
        if elem == "[key]":
            continue
        label: str | None = None
        if isinstance(elem, int):
            entry = (
                node[elem] if isinstance(node, list) and -len(node) <= elem < len(node) else None
            )
            named = _NAMED_LISTS.get(prefix)
            if named and isinstance(entry, dict) and isinstance(entry.get(named), str):
                label = str(entry[named])
            out += f".{label}" if label else f"[{elem}]"
            node = entry
        else:
            out += f".{elem}" if out else str(elem)
            node = node.get(elem) if isinstance(node, dict) else None
        prefix = (*prefix, elem)
    return out.lstrip(".")


def suggest(word: str, choices: list[str]) -> str:
    """`` (did you mean 'x'?)`` when a choice is close to ``word``, else ``''``."""
    lowered = {c.lower(): c for c in choices}
    if word.lower() in lowered:
        return f" (did you mean {lowered[word.lower()]!r}?)"
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def error_message(err: ErrorDetails) -> str:
    """A message for one pydantic error, with the offending input when it is not secret."""
    kind = err["type"]
    loc = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if kind == "missing":
        return f"missing required field {loc[-1]!r}"
    if kind == "extra_forbidden":
        key = str(loc[-1])
        fields = _fields_at(loc[:-1])
        hint = suggest(key, fields) if fields else ""
        if not hint and fields and len(fields) <= 12:
            hint = f"; known fields: {', '.join(fields)}"
        return f"unknown field {key!r}{hint}"
    if kind in ("literal_error", "enum"):
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        given = err["input"]
        hint = suggest(given, expected) if isinstance(given, str) else ""
        return f"invalid value {_shown(given, loc)}: expected {ctx.get('expected')}{hint}"
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        pattern_hint = _PATTERN_HINTS.get(str(ctx.get("pattern")))
        if pattern_hint:
            return f"{pattern_hint} (got {_shown(err['input'], loc)})"
    if err["input"] is None and kind in _COLLECTION_TYPES:
        return (
            f"expected {_COLLECTION_TYPES[kind]}, got nothing (remove the key or give it a value)"
        )
    message = str(err["msg"])
    return f"{message[:1].lower()}{message[1:]} (got {_shown(err['input'], loc)})"


def _shown(value: Any, loc: Loc) -> str:
    if any(elem in _SENSITIVE for elem in loc):
        return f"a {type(value).__name__} (not shown: secret field)"
    if isinstance(value, dict | list):
        return f"a {'mapping' if isinstance(value, dict) else 'list'}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _fields_at(loc: Loc) -> list[str]:
    """Field names of the model found at ``loc`` of ``PoolSpec`` (for did-you-mean)."""
    from pooldaemon.spec._pool import PoolSpec

    tp: Any = PoolSpec
    for elem in loc:
        model = _model_of(tp)
        if model is not None and isinstance(elem, str) and elem in model.model_fields:
            tp = model.model_fields[elem].annotation
            continue
        tp = _element_of(tp)
        if tp is None:
            return []
    model = _model_of(tp)
    return list(model.model_fields) if model else []


def _strip(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in get_args(tp) if a is not type(None)]
            tp = args[0] if len(args) == 1 else tp
            if len(args) != 1:
                return tp
        else:
            return tp


def _model_of(tp: Any) -> type[BaseModel] | None:
    tp = _strip(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _element_of(tp: Any) -> Any:
    tp = _strip(tp)
    args = get_args(tp)
    if get_origin(tp) is tuple and args:
        return args[0]
    if get_origin(tp) is dict and len(args) == 2:
        return args[1]
    return None
