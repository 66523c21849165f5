"""Model listing in each wire format: the request for one page, and the parse of one page.

Pure (no I/O): the catalog refresh and the format detection send the requests
built here and hand the decoded JSON of each answer back. What each format does:

- ``openai`` and ``responses``: ``GET {base_url}/models`` with ``Authorization:
  Bearer``; ``{"data": [{"id": ...}, ...]}``. Relays that paginate say
  ``has_more`` and give ``last_id`` (or ``after``); the next page is asked
  with ``?after=...``. OpenRouter's ``name``/``context_length`` and Groq's
  ``context_window``/``max_completion_tokens`` are read when present.
- ``anthropic``: ``GET {base}/v1/models?limit=1000`` (``x-api-key``,
  ``anthropic-version``); entries ``{"id", "display_name", "type": "model"}``,
  paginated with ``has_more``/``last_id`` and ``?after_id=``.
- ``google``: ``GET {base}/{api_version or v1beta}/models?pageSize=1000``
  (``x-goog-api-key``); entries ``{"name": "models/...", "displayName",
  "inputTokenLimit", "outputTokenLimit", "supportedGenerationMethods"}``, the
  next page by ``nextPageToken`` / ``?pageToken=``. The ``models/`` prefix is
  stripped from ids.
- ``ollama``: ``GET {base}/api/tags``; ``{"models": [{"name": "llama3.2:latest", ...}]}``,
  one page, no auth (a key, when configured, goes as Bearer like the chat calls).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pooldaemon.errors import PoolError
from pooldaemon.spec import ProviderSpec
from pooldaemon.upstream.anthropic import DEFAULT_VERSION as ANTHROPIC_VERSION
from pooldaemon.upstream.google import DEFAULT_VERSION as GOOGLE_VERSION

__all__ = [
    "LISTING_FORMATS",
    "ListedModel",
    "ListingShapeError",
    "Page",
    "PageRequest",
    "listing_request",
    "matches_shape",
    "parse_page",
]

LISTING_FORMATS: Final = ("openai", "responses", "anthropic", "google", "ollama")
_PAGE_LIMIT: Final = "1000"  # the most Anthropic and Gemini give in one page
_GOOGLE_VERSION_SUFFIX: Final = re.compile(r"/v1(?:alpha|beta)?$")
_MAX_ID_LENGTH: Final = 256


class ListingShapeError(PoolError, ValueError):
    """An answer is not a model list of the format asked for."""


@dataclass(frozen=True, slots=True)
class PageRequest:
    """One listing request to send: ``GET url`` with these headers and query parameters."""

    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class ListedModel:
    """One model as the upstream listed it (None: the listing did not say)."""

    id: str
    name: str | None = None
    context_window: int | None = None
    max_output: int | None = None
    generates: bool | None = None  # Gemini: generateContent is among its methods


@dataclass(frozen=True, slots=True)
class Page:
    """The models of one page, and the token of the next page (None: the last page)."""

    models: tuple[ListedModel, ...]
    next_token: str | None = None


def _auth_headers(fmt: str, spec: ProviderSpec, key: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", **spec.headers}
    if fmt == "anthropic":
        headers["anthropic-version"] = spec.api_version or ANTHROPIC_VERSION
        if key:
            headers["x-api-key"] = key
    elif fmt == "google":
        if key:
            headers["x-goog-api-key"] = key
    elif key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def listing_request(
    fmt: str, base_url: str, spec: ProviderSpec, key: str | None, token: str | None = None
) -> PageRequest:
    """The request for the page after ``token`` (None: the first) of ``fmt``'s model list
    at ``base_url``. Raises ValueError for a format without a listing (``auto``)."""
    base = base_url.rstrip("/")
    headers = _auth_headers(fmt, spec, key)
    params: list[tuple[str, str]] = []
    if fmt in ("openai", "responses"):
        url = f"{base}/models"
        if token:
            params.append(("after", token))
    elif fmt == "anthropic":
        url = f"{base.removesuffix('/v1')}/v1/models"
        params.append(("limit", _PAGE_LIMIT))
        if token:
            params.append(("after_id", token))
    elif fmt == "google":
        version = spec.api_version or GOOGLE_VERSION
        url = f"{_GOOGLE_VERSION_SUFFIX.sub('', base)}/{version}/models"
        params.append(("pageSize", _PAGE_LIMIT))
        if token:
            params.append(("pageToken", token))
    elif fmt == "ollama":
        url = f"{base.removesuffix('/api')}/api/tags"
    else:
        raise ValueError(f"format {fmt!r} has no model listing")
    return PageRequest(url, headers, tuple(params))


def _count(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _model_id(value: object) -> str | None:
    if isinstance(value, str) and 0 < len(value) <= _MAX_ID_LENGTH and not value.isspace():
        return value.strip()
    return None


def _entries(data: object, key: str) -> list[Any]:
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise ListingShapeError(f"expected an object with a {key!r} list")
    return list(data[key])


def _openai(data: object) -> Page:
    models = []
    for entry in _entries(data, "data"):
        if not isinstance(entry, dict) or (model_id := _model_id(entry.get("id"))) is None:
            continue
        top = entry.get("top_provider")
        top_max = top.get("max_completion_tokens") if isinstance(top, dict) else None
        models.append(
            ListedModel(
                model_id,
                name=_text(entry.get("name")) or _text(entry.get("display_name")),
                context_window=_count(entry.get("context_length"))
                or _count(entry.get("context_window")),
                max_output=_count(entry.get("max_completion_tokens")) or _count(top_max),
            )
        )
    assert isinstance(data, dict)
    token = None
    if data.get("has_more") is True:
        token = _text(data.get("last_id")) or _text(data.get("after"))
        if token is None and models:
            token = models[-1].id
    return Page(tuple(models), token)


def _anthropic(data: object) -> Page:
    models = []
    for entry in _entries(data, "data"):
        if not isinstance(entry, dict) or (model_id := _model_id(entry.get("id"))) is None:
            continue
        models.append(ListedModel(model_id, name=_text(entry.get("display_name"))))
    assert isinstance(data, dict)
    token = None
    if data.get("has_more") is True:
        token = _text(data.get("last_id")) or (models[-1].id if models else None)
    return Page(tuple(models), token)


def _google(data: object) -> Page:
    models = []
    for entry in _entries(data, "models"):
        if not isinstance(entry, dict) or (name := _model_id(entry.get("name"))) is None:
            continue
        model_id = name.removeprefix("models/")
        if not model_id:
            continue
        methods = entry.get("supportedGenerationMethods")
        models.append(
            ListedModel(
                model_id,
                name=_text(entry.get("displayName")),
                context_window=_count(entry.get("inputTokenLimit")),
                max_output=_count(entry.get("outputTokenLimit")),
                generates="generateContent" in methods if isinstance(methods, list) else None,
            )
        )
    assert isinstance(data, dict)
    return Page(tuple(models), _text(data.get("nextPageToken")))


def _ollama(data: object) -> Page:
    models = []
    for entry in _entries(data, "models"):
        if not isinstance(entry, dict):
            continue
        model_id = _model_id(entry.get("name")) or _model_id(entry.get("model"))
        if model_id is not None:
            models.append(ListedModel(model_id))
    return Page(tuple(models))


_PARSERS = {
    "openai": _openai,
    "responses": _openai,
    "anthropic": _anthropic,
    "google": _google,
    "ollama": _ollama,
}


def parse_page(fmt: str, data: object) -> Page:
    """The models and the next page token of one decoded listing answer of ``fmt``.

    Entries without a usable id are skipped; an answer without the format's
    list raises :class:`ListingShapeError`.
    """
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise ValueError(f"format {fmt!r} has no model listing")
    return parser(data)


def _anthropic_typed(entry: object) -> bool:
    return isinstance(entry, dict) and entry.get("type") == "model" and "object" not in entry


def matches_shape(fmt: str, data: object) -> bool:
    """Whether ``data`` is recognisably ``fmt``'s model list, strictly enough to tell the
    formats apart when detecting one (an empty list is only as good as its envelope)."""
    if fmt in ("openai", "responses", "anthropic"):
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            return False
        entries = data["data"]
        if fmt == "anthropic":
            if not entries:
                return "has_more" in data
            return all(_anthropic_typed(e) for e in entries)
        return all(isinstance(e, dict) and "id" in e and not _anthropic_typed(e) for e in entries)
    if fmt in ("google", "ollama"):
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            return False
        names = [e.get("name") if isinstance(e, dict) else None for e in data["models"]]
        if not all(isinstance(n, str) for n in names):
            return False
        google = [str(n).startswith(("models/", "tunedModels/")) for n in names]
        return all(google) if fmt == "google" else not any(google)
    return False
