"""Read-mostly admin views of the running pool: routing, providers, cooldowns, models,
usage and pricing. Keys appear only as their display hash (first 8 ... last 4); times
are unix seconds, as everywhere in the admin API."""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import asdict
from typing import Any, Protocol

from aiohttp import web

from pooldaemon.errors import BudgetExceededError, UnknownModelError
from pooldaemon.pool import RouteRequest, route
from pooldaemon.server._replies import display_hash
from pooldaemon.server._state import ProxyState
from pooldaemon.spec import PoolSpec, PricingSource
from pooldaemon.usage import UsageStore

__all__ = ["VIEWS", "add_views"]


class RefreshFacts(Protocol):
    """What the refresh jobs know, as the admin API shows it."""

    def catalog_json(self, provider: str) -> dict[str, object] | None: ...

    def sources_json(self, spec: PoolSpec) -> list[dict[str, object]]:
        """Each pricing source of ``spec`` as the spec writes it, plus its fetch state
        (the same keys as :func:`_unfetched`)."""
        ...


PROXY = web.AppKey("admin_proxy", ProxyState)
STORE = web.AppKey("admin_store", UsageStore)
REFRESH = web.AppKey("admin_refresh", RefreshFacts)
_MODES = ("auto", "cloud", "local")
_STRATEGIES = ("priority", "cost", "latency", "round_robin")
_GROUPS = ("provider", "model", "client", "day")


def _error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"error": {"type": kind, "message": message}}, status=status)


def _bad_request(message: str) -> web.HTTPBadRequest:
    """A 400 ``invalid_request`` to raise from a helper deep in a view."""
    return web.HTTPBadRequest(
        text=json.dumps({"error": {"type": "invalid_request", "message": message}}),
        content_type="application/json",
    )


def _choice(request: web.Request, name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.query.get(name) or None
    if value is not None and value not in allowed:
        raise _bad_request(f"{name} must be one of {', '.join(allowed)}")
    return value


def _unix_time(request: web.Request, name: str, default: float) -> float:
    """A query parameter that is a unix time in seconds; ``float`` alone would also
    take nan, inf and 1e400, which no SQL range can use."""
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _bad_request(f"{name} must be a unix time in seconds (a finite number)")
    return value


async def route_view(request: web.Request) -> web.Response:
    """Explain the routing decision for ``model`` (with optional mode, strategy, client)."""
    state = request.app[PROXY]
    model = request.query.get("model")
    if not model:
        return _error(400, "invalid_request", "the query parameter 'model' is required")
    req = RouteRequest(
        model=model,
        mode=_choice(request, "mode", _MODES),  # type: ignore[arg-type]
        strategy=_choice(request, "strategy", _STRATEGIES),  # type: ignore[arg-type]
        client=request.query.get("client") or None,
    )
    try:
        decision = route(req, state.applied.snapshot, state.runtime, state.clock(), state.wall())
    except UnknownModelError as exc:
        return web.json_response(
            {
                "error": {"type": "unknown_model", "message": str(exc)},
                "suggestions": list(exc.suggestions),
            },
            status=404,
        )
    except BudgetExceededError as exc:
        return _error(429, "client_over_budget", str(exc))
    return web.json_response(
        {
            "model": decision.model,
            "mode": decision.mode,
            "strategy": decision.strategy,
            "max_attempts": decision.max_attempts,
            "retry_after": decision.retry_after,
            "candidates": [
                {
                    "provider": c.provider,
                    "model": c.model,
                    "score": c.score,
                    "half_open": c.half_open,
                }
                for c in decision.candidates
            ],
            "skipped": [
                {
                    "provider": s.provider,
                    "model": s.model,
                    "reason": str(s.reason),
                    "detail": s.detail,
                }
                for s in decision.skipped
            ],
        }
    )


KeyUsage = dict[tuple[str, str], tuple[int, float]]


async def _key_usage(request: web.Request) -> KeyUsage:
    store = request.app.get(STORE)
    return {} if store is None else await asyncio.to_thread(store.key_usage)


def _provider_json(
    state: ProxyState, pid: str, key_usage: KeyUsage, refresh: RefreshFacts | None
) -> dict[str, Any]:
    applied = state.applied
    view = applied.snapshot.by_id[pid]
    runtime = state.runtime
    now = state.clock()
    cooldown = runtime.state(pid)
    stats = runtime.stats(pid)
    spent = runtime.ledger.totals("provider", pid, state.wall())
    keys = []
    for key in view.keys:
        secret = applied.secrets.get(key.key_id)
        rejected = runtime.keys.get((pid, key.key_id))
        used, last_used = key_usage.get((pid, key.key_id), (0, None))
        keys.append(
            {
                "key_id": key.key_id,
                "label": key.label,
                "source": key.source,
                "enabled": key.enabled,
                "resolved": secret is not None,
                "hash": display_hash(secret) if secret else None,
                "rejected_until": rejected.until - now + time.time() if rejected else None,
                "requests": used,
                "last_used": last_used,
            }
        )
    spec = view.spec
    return {
        "id": pid,
        "name": spec.display_name,
        "format": spec.format,
        "location": view.location,
        "base_url": spec.base_url,
        "enabled": spec.enabled,
        "priority": spec.priority,
        "keys": keys,
        "models": len(view.models),
        "wildcard": view.wildcard,
        "discover": spec.discover,
        "catalog": refresh.catalog_json(pid) if refresh is not None else None,
        "state": {
            "phase": str(runtime.phase(pid, now)),
            "cooling_for_s": max(cooldown.until - now, 0.0) if cooldown.until else 0.0,
            "failures": cooldown.failures,
            "transient_failures": cooldown.transient_failures,
            "last_error": cooldown.last_error or None,
            "held": runtime.held(pid, state.wall()),  # e.g. a trial licence used up
        },
        "latency_ewma_s": stats.latency,
        "ttfb_ewma_s": stats.ttfb,
        "budget_used": {
            "usd_day": spent.usd_day,
            "usd_month": spent.usd_month,
            "tokens_day": spent.tokens_day,
        },
    }


async def providers_view(request: web.Request) -> web.Response:
    state = request.app[PROXY]
    key_usage = await _key_usage(request)
    return web.json_response(
        {
            "providers": [
                _provider_json(state, p.id, key_usage, request.app.get(REFRESH))
                for p in state.applied.snapshot.providers
            ]
        }
    )


async def provider_view(request: web.Request) -> web.Response:
    state = request.app[PROXY]
    pid = request.match_info["id"]
    if pid not in state.applied.snapshot.by_id:
        return _error(404, "not_found", f"no provider {pid!r}")
    usage = await _key_usage(request)
    return web.json_response(_provider_json(state, pid, usage, request.app.get(REFRESH)))


async def cooldowns_view(request: web.Request) -> web.Response:
    state = request.app[PROXY]
    now = state.clock()
    items = [
        {
            "provider": pid,
            "reason": str(s.reason) if s.reason else None,
            "cooling_for_s": max(s.until - now, 0.0),
            "failures": s.failures,
            "transient_failures": s.transient_failures,
            "last_error": s.last_error or None,
        }
        for pid, s in sorted(state.runtime.providers.items())
        if s.until
    ]
    return web.json_response({"cooldowns": items})


async def clear_cooldown(request: web.Request) -> web.Response:
    """Operational, not desired state: the original package's ``ClearCooldown``."""
    state = request.app[PROXY]
    pid = request.match_info["provider"]
    if pid not in state.applied.snapshot.by_id:
        return _error(404, "not_found", f"no provider {pid!r}")
    return web.json_response({"provider": pid, "cleared": state.runtime.clear(pid)})


async def models_view(request: web.Request) -> web.Response:
    snapshot = request.app[PROXY].applied.snapshot
    models = [
        {
            "name": name,
            "alias": name in snapshot.aliases,
            "providers": sorted({t.provider.id for t in snapshot.resolve(name)}),
        }
        for name in snapshot.names
    ]
    return web.json_response({"models": models})


async def usage_view(request: web.Request) -> web.Response:
    store = request.app.get(STORE)
    if store is None:
        return _error(404, "not_found", "no usage store")
    until = _unix_time(request, "until", time.time())
    since = _unix_time(request, "since", until - 86_400)
    if since > until:
        return _error(400, "invalid_request", f"since ({since}) is after until ({until})")
    group = _choice(request, "group_by", _GROUPS) or "provider"
    rows = await asyncio.to_thread(store.summarize, since, until, group)  # type: ignore[arg-type]
    total = await asyncio.to_thread(store.total, since, until)
    return web.json_response(
        {
            "since": since,
            "until": until,
            "group_by": group,
            "groups": [asdict(r) for r in rows],
            "total": asdict(total),
        }
    )


def _unfetched(source: PricingSource) -> dict[str, object]:
    """A pricing source with the fetch state of one never fetched (no refresher)."""
    return {
        **source.model_dump(mode="json"),
        "status": "never",
        "fetched_at": None,
        "checked_at": None,
        "models": 0,
        "error": None,
    }


async def pricing_view(request: web.Request) -> web.Response:
    """Without ``model``: the applied ``pricing:`` section, each source with its fetch
    state. With ``model`` (and maybe ``provider``): the price quoted and where from."""
    state = request.app[PROXY]
    model = request.query.get("model") or None
    provider = request.query.get("provider") or None
    if model is None:
        if provider is not None:
            return _error(
                400, "invalid_request", "provider needs model: a price is quoted for a model"
            )
        spec = state.applied.snapshot.spec
        refresh = request.app.get(REFRESH)
        body = spec.pricing.model_dump(mode="json")
        body["sources"] = (
            refresh.sources_json(spec)
            if refresh is not None
            else [_unfetched(s) for s in spec.pricing.sources]
        )
        return web.json_response(body)
    if provider is not None and provider not in state.applied.snapshot.by_id:
        return _error(404, "not_found", f"no provider {provider!r}")
    quote = state.applied.snapshot.quote(provider, model)
    return web.json_response(
        {
            "model": model,
            "provider": provider,
            "source": quote.source,
            "via": quote.via or None,
            "label": quote.label,
            "matched": quote.matched,
            "price": asdict(quote.price),
        }
    )


VIEWS = (
    ("GET", "/admin/v1/route", route_view),
    ("GET", "/admin/v1/providers", providers_view),
    ("GET", "/admin/v1/providers/{id}", provider_view),
    ("GET", "/admin/v1/cooldowns", cooldowns_view),
    ("DELETE", "/admin/v1/cooldowns/{provider}", clear_cooldown),
    ("GET", "/admin/v1/models", models_view),
    ("GET", "/admin/v1/usage", usage_view),
    ("GET", "/admin/v1/pricing", pricing_view),
)


def add_views(
    app: web.Application,
    proxy: ProxyState,
    store: UsageStore | None,
    refresh: RefreshFacts | None = None,
) -> None:
    app[PROXY] = proxy
    if store is not None:
        app[STORE] = store
    if refresh is not None:
        app[REFRESH] = refresh
    for method, path, handler in VIEWS:
        app.router.add_route(method, path, handler)
