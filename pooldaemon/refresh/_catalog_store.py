"""What the refresh jobs learned, kept in ``state_dir`` across restarts.

- ``catalogs.json``: per provider, the models last listed (id, name,
  context_window, max_output, capabilities, chat), when and from which base
  URL, the model ids probing found unavailable, and the last refresh error;
- ``endpoints.json``: per provider, the format detection: the base URL it was
  made for (a different configured base URL means detecting again), the
  format, the base URL that works, when, and how it was decided.

Files are written atomically with mode 0600 (:mod:`pooldaemon._files`). A
damaged or wrong-shaped file is logged and read as empty, entry by entry
where it can be: this is a cache, the next refresh rebuilds it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

from pooldaemon._files import private_dir, read_json, write_json
from pooldaemon.pool import ModelInfo
from pooldaemon.refresh._catalog import CatalogResult
from pooldaemon.refresh._detect import Detection
from pooldaemon.spec import ProviderSpec

__all__ = [
    "CATALOGS_FILE",
    "ENDPOINTS_FILE",
    "StoredCatalog",
    "StoredEndpoint",
    "load_catalogs",
    "load_endpoints",
    "model_from_json",
    "model_to_json",
    "needs_detection",
    "save_catalogs",
    "save_endpoints",
]

_log = logging.getLogger("pooldaemon.refresh")
CATALOGS_FILE: Final = "catalogs.json"
ENDPOINTS_FILE: Final = "endpoints.json"
_VERSION: Final = 1
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredCatalog:
    """The last known catalog of one provider."""

    models: tuple[ModelInfo, ...]
    fetched_at: float
    base_url: str
    unavailable: frozenset[str] = frozenset()
    error: str | None = None

    def updated(self, result: CatalogResult) -> StoredCatalog:
        """This catalog after ``result``: its models when it succeeded, else these
        models with the error recorded (a failed refresh keeps the last good list)."""
        if result.models is None:
            return StoredCatalog(
                self.models, self.fetched_at, self.base_url, self.unavailable, result.error
            )
        listed = {m.id for m in result.models}
        return StoredCatalog(
            result.models,
            result.fetched_at,
            result.base_url,
            self.unavailable & listed,
            None,
        )

    @classmethod
    def from_result(cls, result: CatalogResult) -> StoredCatalog:
        return cls(result.models or (), result.fetched_at, result.base_url, error=result.error)


@dataclass(frozen=True, slots=True)
class StoredEndpoint:
    """The remembered format detection of one provider."""

    configured_base_url: str
    format: str
    base_url: str
    detected_at: float
    source: str

    @classmethod
    def from_detection(cls, configured_base_url: str, detection: Detection) -> StoredEndpoint:
        return cls(
            configured_base_url.rstrip("/"),
            detection.format,
            detection.base_url,
            detection.detected_at,
            detection.source,
        )


def needs_detection(stored: StoredEndpoint | None, spec: ProviderSpec) -> bool:
    """Whether ``spec``'s format must be detected (again): nothing remembered, or the
    remembered detection was made for another base URL. ``spec`` is the provider as
    declared in the YAML, not the effective spec a snapshot view carries."""
    return stored is None or stored.configured_base_url != (spec.base_url or "").rstrip("/")


# -- JSON forms ---------------------------------------------------------------


def _str(obj: Mapping[str, Any], name: str, *, optional: bool = False) -> Any:
    value = obj.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name!r} is not a non-empty string")
    return value


def _count(obj: Mapping[str, Any], name: str) -> int | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name!r} is not a positive integer")
    return value


def _time(obj: Mapping[str, Any], name: str) -> float:
    value = obj.get(name)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{name!r} is not a time")
    return float(value)


def _strings(obj: Mapping[str, Any], name: str) -> list[str] | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name!r} is not a list of strings")
    return value


def model_to_json(model: ModelInfo) -> dict[str, Any]:
    """``model`` as JSON (its price is not kept: pricing has its own sources)."""
    caps = sorted(model.capabilities) if model.capabilities is not None else None
    return {
        "id": model.id,
        "name": model.name,
        "context_window": model.context_window,
        "max_output": model.max_output,
        "capabilities": caps,
        "chat": model.chat,
    }


def model_from_json(obj: object) -> ModelInfo:
    """The :class:`ModelInfo` of :func:`model_to_json`'s form; ValueError if malformed."""
    if not isinstance(obj, dict):
        raise ValueError("a model is not an object")
    caps = _strings(obj, "capabilities")
    chat = obj.get("chat", True)
    if not isinstance(chat, bool):
        raise ValueError("'chat' is not a boolean")
    return ModelInfo(
        id=_str(obj, "id"),
        name=_str(obj, "name", optional=True),
        context_window=_count(obj, "context_window"),
        max_output=_count(obj, "max_output"),
        capabilities=frozenset(caps) if caps is not None else None,
        chat=chat,
    )


def _catalog_to_json(catalog: StoredCatalog) -> dict[str, Any]:
    return {
        "models": [model_to_json(m) for m in catalog.models],
        "fetched_at": catalog.fetched_at,
        "base_url": catalog.base_url,
        "unavailable": sorted(catalog.unavailable),
        "error": catalog.error,
    }


def _catalog_from_json(obj: object) -> StoredCatalog:
    if not isinstance(obj, dict) or not isinstance(obj.get("models"), list):
        raise ValueError("a catalog is not an object with a 'models' list")
    return StoredCatalog(
        models=tuple(model_from_json(m) for m in obj["models"]),
        fetched_at=_time(obj, "fetched_at"),
        base_url=_str(obj, "base_url"),
        unavailable=frozenset(_strings(obj, "unavailable") or ()),
        error=_str(obj, "error", optional=True),
    )


def _endpoint_to_json(endpoint: StoredEndpoint) -> dict[str, Any]:
    return {
        "configured_base_url": endpoint.configured_base_url,
        "format": endpoint.format,
        "base_url": endpoint.base_url,
        "detected_at": endpoint.detected_at,
        "source": endpoint.source,
    }


def _endpoint_from_json(obj: object) -> StoredEndpoint:
    if not isinstance(obj, dict):
        raise ValueError("an endpoint is not an object")
    return StoredEndpoint(
        configured_base_url=_str(obj, "configured_base_url"),
        format=_str(obj, "format"),
        base_url=_str(obj, "base_url"),
        detected_at=_time(obj, "detected_at"),
        source=_str(obj, "source"),
    )


# -- files --------------------------------------------------------------------


def _load(path: Path, parse: Callable[[object], T]) -> dict[str, T]:
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        _log.warning("event=state_file_unreadable path=%s error=%r", path, str(exc)[:200])
        return {}
    if data is None:
        return {}
    shaped = isinstance(data, dict) and isinstance(data.get("providers"), dict)
    if not shaped or data.get("version") != _VERSION:
        _log.warning("event=state_file_ignored path=%s error='unexpected shape'", path)
        return {}
    out: dict[str, T] = {}
    for provider, entry in data["providers"].items():
        try:
            out[provider] = parse(entry)
        except ValueError as exc:
            _log.warning(
                "event=state_entry_ignored path=%s provider=%s error=%r", path, provider, str(exc)
            )
    return out


def _save(path: Path, entries: dict[str, Any]) -> None:
    private_dir(path.parent)
    write_json(path, {"version": _VERSION, "providers": entries})


def load_catalogs(state_dir: Path) -> dict[str, StoredCatalog]:
    """The catalogs in ``state_dir/catalogs.json`` (empty when missing or damaged)."""
    return _load(state_dir / CATALOGS_FILE, _catalog_from_json)


def save_catalogs(state_dir: Path, catalogs: Mapping[str, StoredCatalog]) -> None:
    """Replace ``state_dir/catalogs.json`` with ``catalogs`` (atomic, mode 0600)."""
    _save(state_dir / CATALOGS_FILE, {p: _catalog_to_json(c) for p, c in catalogs.items()})


def load_endpoints(state_dir: Path) -> dict[str, StoredEndpoint]:
    """The detections in ``state_dir/endpoints.json`` (empty when missing or damaged)."""
    return _load(state_dir / ENDPOINTS_FILE, _endpoint_from_json)


def save_endpoints(state_dir: Path, endpoints: Mapping[str, StoredEndpoint]) -> None:
    """Replace ``state_dir/endpoints.json`` with ``endpoints`` (atomic, mode 0600)."""
    _save(state_dir / ENDPOINTS_FILE, {p: _endpoint_to_json(e) for p, e in endpoints.items()})
