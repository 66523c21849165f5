"""Fetching remote pricing sources: conditional, bounded, guarded, and kept in ``state_dir``.

The shell around :mod:`pooldaemon.refresh._price_sources`. One fetch is a
conditional GET (``If-None-Match`` / ``If-Modified-Since`` from the previous
answer, so unchanged data costs one 304), bounded in time (the whole exchange,
body included) and in size; its body is parsed and checked by the guard rail
against the previous data. Whatever goes wrong upstream, :func:`fetch_source`
returns a :class:`SourceState` that keeps the previous models and says why in
``error`` / ``status``: it never raises for the source's sake, and it logs
nothing (its caller reports the state).

Each source's state is one JSON file under ``state_dir/pricing/``, named by a
hash of the URL, so restarts start from the last accepted data and its ETag.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, TypeVar, get_args
from urllib.parse import urlsplit

import aiohttp

from pooldaemon._files import private_dir, read_json, write_json
from pooldaemon.pool import Price, RemotePrice
from pooldaemon.refresh._http import TooLarge, read_capped
from pooldaemon.refresh._price_sources import (
    PriceSourceError,
    RemoteModel,
    parse_source,
    price_change_problem,
)
from pooldaemon.spec import PricingSource

__all__ = [
    "FetchStatus",
    "SourceState",
    "fetch_source",
    "load_source_states",
    "merged_prices",
    "save_source_state",
    "state_path",
]

_log = logging.getLogger("pooldaemon.pricing")

FetchStatus = Literal["fetched", "not_modified", "rejected", "failed", "never"]
"""The last attempt: new data accepted; unchanged (304); data refused by the parser or
the guard rail; the source could not be read; not tried yet."""

_T = TypeVar("_T")
_NO_MODELS: Final[Mapping[str, RemoteModel]] = MappingProxyType({})
_STATE_VERSION: Final = 1
_STATE_DIR: Final = "pricing"


@dataclass(frozen=True, slots=True)
class SourceState:
    """One pricing source's last accepted data and its last attempt.

    ``models``, ``etag``, ``last_modified`` and ``fetched_at`` belong to the last
    accepted document (``fetched_at``: when it was accepted); ``checked_at``,
    ``status`` and ``error`` to the last attempt (``error`` is None when it
    succeeded). ``skipped`` counts the malformed entries of the accepted document.
    """

    url: str
    format: str
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: float | None = None
    checked_at: float | None = None
    models: Mapping[str, RemoteModel] = field(default_factory=lambda: _NO_MODELS)
    error: str | None = None
    status: FetchStatus = "never"
    skipped: int = 0

    @classmethod
    def never(cls, url: str, fmt: str) -> SourceState:
        """The state of a source not fetched yet: no data."""
        return cls(url=url, format=fmt)


async def fetch_source(
    session: aiohttp.ClientSession,
    source: PricingSource,
    previous: SourceState | None,
    *,
    now: float,
    timeout: float = 30.0,  # noqa: ASYNC109 - bounds the exchange, not the parse after it
    max_bytes: int = 32 << 20,
) -> SourceState:
    """Fetch ``source`` once and return its new state (see the module docstring).

    ``previous`` is ignored when it belongs to another URL or format. A 200 is
    parsed (off the event loop) and checked with ``price_change_problem``
    against the previous models with ``source.max_change``; a refused document
    is ``rejected`` and keeps the previous models and validators, so the next
    attempt downloads and judges it again.
    """
    url = str(source.url)
    if previous is None or previous.url != url or previous.format != source.format:
        previous = SourceState.never(url, source.format)
    headers = _conditional_headers(previous)
    try:
        async with asyncio.timeout(timeout):
            status, reply_headers, body = await _get(session, url, headers, max_bytes)
    except TimeoutError:
        return _failed(previous, now, f"no complete answer within {timeout:g}s")
    except TooLarge as exc:
        return _failed(previous, now, f"the answer is larger than {exc.limit} bytes")
    except (aiohttp.ClientError, OSError) as exc:
        return _failed(previous, now, f"request failed: {type(exc).__name__}: {exc}")
    etag = reply_headers.get("ETag")
    last_modified = reply_headers.get("Last-Modified")
    if status == 304:
        if not headers:
            return _failed(previous, now, "answered 304 Not Modified to an unconditional GET")
        return replace(
            previous,
            etag=etag or previous.etag,
            last_modified=last_modified or previous.last_modified,
            checked_at=now,
            error=None,
            status="not_modified",
        )
    if status != 200:
        return _failed(previous, now, f"HTTP {status}")
    try:
        parsed = await asyncio.to_thread(parse_source, source.format, body)
    except PriceSourceError as exc:
        return _rejected(previous, now, str(exc))
    problem = price_change_problem(previous.models, parsed.models, source.max_change)
    if problem is not None:
        return _rejected(previous, now, problem)
    return SourceState(
        url=url,
        format=source.format,
        etag=etag,
        last_modified=last_modified,
        fetched_at=now,
        checked_at=now,
        models=parsed.models,
        error=None,
        status="fetched",
        skipped=parsed.skipped,
    )


async def _get(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str], max_bytes: int
) -> tuple[int, Mapping[str, str], bytes]:
    """Status, headers and (for a 200 only) the body, read at most ``max_bytes``."""
    async with session.get(url, headers=dict(headers)) as resp:
        body = await read_capped(resp, max_bytes) if resp.status == 200 else b""
        return resp.status, resp.headers, body


def _conditional_headers(previous: SourceState) -> dict[str, str]:
    if not previous.models:
        return {}  # nothing to keep: ask for the whole document
    headers: dict[str, str] = {}
    if previous.etag:
        headers["If-None-Match"] = previous.etag
    if previous.last_modified:
        headers["If-Modified-Since"] = previous.last_modified
    return headers


def _failed(previous: SourceState, now: float, error: str) -> SourceState:
    return replace(previous, checked_at=now, error=error, status="failed")


def _rejected(previous: SourceState, now: float, error: str) -> SourceState:
    return replace(previous, checked_at=now, error=error, status="rejected")


def merged_prices(states: Sequence[SourceState], order: Sequence[str]) -> dict[str, RemotePrice]:
    """The pricer's remote map: every model of the sources listed in ``order`` (their
    URLs, as the spec lists them), an earlier source winning a model both price.

    Each price is named after its source: the format (``litellm``) when only one
    listed source uses that format, else ``format@host`` (``litellm@example.com``).
    Pass a state for every listed source (:meth:`SourceState.never` for one not
    fetched yet) so that names do not change when a source first succeeds.
    States of URLs not in ``order`` (sources removed from the spec) are ignored.
    """
    by_url = {state.url: state for state in states}
    listed = [by_url[url] for url in dict.fromkeys(order) if url in by_url]
    formats = Counter(state.format for state in listed)
    merged: dict[str, RemotePrice] = {}
    for state in listed:
        name = state.format
        if formats[state.format] > 1:
            name = f"{state.format}@{urlsplit(state.url).hostname or state.url}"
        for key, model in state.models.items():
            merged.setdefault(key, RemotePrice(model.price, name))
    return merged


def state_path(state_dir: Path, url: str) -> Path:
    """Where the state of the source at ``url`` is kept."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:32]
    return state_dir / _STATE_DIR / f"{digest}.json"


def save_source_state(state_dir: Path, state: SourceState) -> None:
    """Write ``state`` to its file under ``state_dir/pricing/`` (atomic, mode 0600)."""
    path = state_path(state_dir, state.url)
    private_dir(path.parent)
    write_json(path, _state_to_json(state))


def load_source_states(state_dir: Path) -> dict[str, SourceState]:
    """Every saved source state, by URL. A damaged file is logged and ignored."""
    directory = state_dir / _STATE_DIR
    if not directory.is_dir():
        return {}
    states: dict[str, SourceState] = {}
    for path in sorted(directory.glob("*.json")):
        try:
            state = _state_from_json(read_json(path))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            _log.warning("pricing source state ignored file=%s error=%s", path, exc)
            continue
        if state_path(state_dir, state.url) != path:
            _log.warning("pricing source state ignored file=%s error=named for another url", path)
            continue
        states[state.url] = state
    return states


def _state_to_json(state: SourceState) -> dict[str, Any]:
    return {
        "version": _STATE_VERSION,
        "url": state.url,
        "format": state.format,
        "etag": state.etag,
        "last_modified": state.last_modified,
        "fetched_at": state.fetched_at,
        "checked_at": state.checked_at,
        "error": state.error,
        "status": state.status,
        "skipped": state.skipped,
        "models": {key: _model_to_json(model) for key, model in state.models.items()},
    }


def _model_to_json(model: RemoteModel) -> dict[str, float | int]:
    fields: dict[str, float | int | None] = {
        "input": model.price.input,
        "output": model.price.output,
        "cache_read": model.price.cache_read,
        "cache_write": model.price.cache_write,
        "context_window": model.context_window,
        "max_output": model.max_output,
    }
    return {name: value for name, value in fields.items() if value is not None}


def _state_from_json(data: Any) -> SourceState:
    """Raises ValueError, TypeError or KeyError for anything but a file we wrote."""
    if not isinstance(data, dict) or data.get("version") != _STATE_VERSION:
        raise ValueError("not a pricing source state of this version")
    status = data["status"]
    if status not in get_args(FetchStatus):
        raise ValueError(f"unknown status {status!r}")
    models = data["models"]
    if not isinstance(models, dict):
        raise TypeError("models is not an object")
    return SourceState(
        url=_text(data["url"]),
        format=_text(data["format"]),
        etag=_optional(data["etag"], _text),
        last_modified=_optional(data["last_modified"], _text),
        fetched_at=_optional(data["fetched_at"], _number),
        checked_at=_optional(data["checked_at"], _number),
        models=MappingProxyType({_text(key): _model_from_json(m) for key, m in models.items()}),
        error=_optional(data["error"], _text),
        status=status,
        skipped=int(_number(data["skipped"])),
    )


def _model_from_json(data: Any) -> RemoteModel:
    if not isinstance(data, dict):
        raise TypeError("a model is not an object")
    price = Price(
        input=_number(data["input"]),
        output=_number(data["output"]),
        cache_read=_optional(data.get("cache_read"), _number),
        cache_write=_optional(data.get("cache_write"), _number),
    )
    context = _optional(data.get("context_window"), _number)
    output = _optional(data.get("max_output"), _number)
    return RemoteModel(
        price,
        None if context is None else int(context),
        None if output is None else int(output),
    )


def _optional(value: Any, convert: Callable[[Any], _T]) -> _T | None:
    return None if value is None else convert(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"not a plausible number: {value!r}")
    return float(value)
