"""Catalog refresh: list a provider's models in its own wire format, filter, enrich.

:func:`fetch_catalog` is the shell: it pages through the upstream's model list
(bounded in pages, bytes per page and total time), trying the alternate base
URLs when the base URL answers 401/403. :func:`catalog_models` is the pure
part: allowlist and chat filtering, then enrichment from the built-in table,
where the upstream's own data (Gemini's token limits, display names) wins.

A failed refresh is a result, not an exception: it names the provider and the
cause, never the key, and has no models, so the caller keeps the last good list.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import aiohttp

from pooldaemon.pool import ModelInfo, ProviderView
from pooldaemon.pool._builtin import BuiltinTable, load_builtin_table
from pooldaemon.pool._families import supports_chat_model_id
from pooldaemon.refresh._http import TooLarge, read_capped, safe_text, snippet
from pooldaemon.spec import ProviderSpec
from pooldaemon.upstream._listing import (
    LISTING_FORMATS,
    ListedModel,
    ListingShapeError,
    listing_request,
    parse_page,
)

__all__ = ["CatalogResult", "base_url_candidates", "catalog_models", "fetch_catalog"]


@dataclass(frozen=True, slots=True)
class CatalogResult:
    """The outcome of one catalog refresh of one provider."""

    provider: str
    models: tuple[ModelInfo, ...] | None  # None when the fetch failed
    error: str | None
    base_url: str  # the base URL that answered (the one tried last, on failure)
    fetched_at: float  # unix time
    listed: int  # how many entries the upstream listed before filtering

    @property
    def ok(self) -> bool:
        return self.models is not None


# A relay may serve chat but no model list; that is not an outage to report every hour.
_NO_LISTING_HINT = " (if the provider has no model list, set discover: false on it)"


class _Failed(Exception):
    """One listing attempt failed; the message is the cause, without the provider."""


class _AuthRejected(_Failed):
    """The base URL answered 401/403: the next alternate may be the right one."""


def base_url_candidates(spec: ProviderSpec, first: str | None = None) -> tuple[str, ...]:
    """Base URLs to try in order: ``first`` (e.g. the one that worked last time), the
    spec's base URL, then its alternates; each once."""
    urls = [first, spec.base_url, *spec.alternate_base_urls]
    return tuple(dict.fromkeys(u.rstrip("/") for u in urls if u))


def catalog_models(
    provider: ProviderView, listed: Iterable[ListedModel], builtin: BuiltinTable
) -> tuple[ModelInfo, ...]:
    """The chat models of ``listed`` that the provider's allowlist allows, enriched from
    the built-in table (the listing's own values win). The first of duplicate ids wins."""
    out: dict[str, ModelInfo] = {}
    for entry in listed:
        if entry.id in out or not provider.allows(entry.id):
            continue
        if entry.generates is False or not supports_chat_model_id(entry.id):
            continue  # Gemini embeddings/AQA models, tts, images, moderation ...
        known = builtin.lookup(entry.id)
        if known is not None and not known.is_chat:
            continue
        out[entry.id] = ModelInfo(
            id=entry.id,
            name=entry.name,
            context_window=entry.context_window or (known.context_window if known else None),
            max_output=entry.max_output or (known.max_output if known else None),
            capabilities=known.capabilities if known else None,
            chat=True,
        )
    return tuple(out.values())


async def _list_all(
    session: aiohttp.ClientSession,
    fmt: str,
    base: str,
    spec: ProviderSpec,
    key: str | None,
    max_pages: int,
    max_page_bytes: int,
) -> list[ListedModel]:
    entries: list[ListedModel] = []
    token: str | None = None
    seen: set[str] = set()
    for page_no in range(max_pages):
        req = listing_request(fmt, base, spec, key, token)
        async with session.get(
            req.url,
            headers=dict(req.headers),
            params=req.params,
            ssl=spec.tls_verify,
            allow_redirects=False,
        ) as resp:
            try:
                body = await read_capped(resp, max_page_bytes)
            except TooLarge as exc:
                raise _Failed(f"{exc} (GET {req.url})") from None
            status = resp.status
        if status in (401, 403) and page_no == 0:
            raise _AuthRejected(f"HTTP {status} from GET {req.url}: {snippet(body)}")
        if status != 200:
            hint = _NO_LISTING_HINT if status in (404, 405) and page_no == 0 else ""
            raise _Failed(f"HTTP {status} from GET {req.url}: {snippet(body)}{hint}")
        try:
            page = parse_page(fmt, json.loads(body))
        except (ValueError, ListingShapeError) as exc:
            kind = "not a model list" if isinstance(exc, ListingShapeError) else "not JSON"
            raise _Failed(f"the answer of GET {req.url} is {kind}") from None
        entries.extend(page.models)
        if page.next_token is None or page.next_token in seen:
            return entries  # a repeated token would loop: the relay has no more to give
        seen.add(page.next_token)
        token = page.next_token
    raise _Failed(f"the model list has more than {max_pages} pages")


async def fetch_catalog(
    session: aiohttp.ClientSession,
    provider: ProviderView,
    key: str | None,
    *,
    builtin: BuiltinTable | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 - a timeout is a result here, not an exception
    max_pages: int = 50,
    max_page_bytes: int = 16 << 20,
    wire_format: str | None = None,
    base_url: str | None = None,
) -> CatalogResult:
    """List ``provider``'s models and keep the chat models its allowlist allows.

    ``wire_format`` is the format to list in when the spec says ``auto`` (the detected
    one); ``base_url`` is tried before the spec's own (the one that worked last time).
    ``timeout`` bounds the whole refresh, every page and alternate included.
    """
    spec = provider.spec
    fmt = wire_format or spec.format
    bases = base_url_candidates(spec, base_url)
    tried = bases[0] if bases else ""

    def failed(cause: str, listed: int = 0) -> CatalogResult:
        message = safe_text(f"catalog of provider {provider.id!r}: {cause}", key)
        return CatalogResult(provider.id, None, message, tried, time.time(), listed)

    if fmt not in LISTING_FORMATS:
        return failed(f"format {fmt!r} has no model listing (not detected yet?)")
    if not bases:
        return failed("no base URL")
    rejected: _AuthRejected | None = None
    try:
        async with asyncio.timeout(timeout):
            for base in bases:
                tried = base
                try:
                    listed = await _list_all(
                        session, fmt, base, spec, key, max_pages, max_page_bytes
                    )
                except _AuthRejected as exc:
                    rejected = exc
                    continue
                models = catalog_models(provider, listed, builtin or load_builtin_table())
                return CatalogResult(provider.id, models, None, base, time.time(), len(listed))
    except TimeoutError:
        return failed(f"timed out after {timeout:g}s (at {tried})")
    except _Failed as exc:
        return failed(str(exc))
    except aiohttp.ClientError as exc:
        return failed(f"request to {tried} failed: {type(exc).__name__}: {exc}")
    assert rejected is not None
    tail = f" (and {len(bases) - 1} alternate base URLs)" if len(bases) > 1 else ""
    return failed(f"{rejected}{tail}")
