"""The shell that runs the refresh jobs and publishes what they learn.

Owns what refreshes learned (catalogs, detected endpoints, pricing source
data), keeps it in ``state_dir`` so a restart without network still routes
and prices, and turns it into a :class:`~pooldaemon.pool.Discovered` for the
applied spec. Each job ends by publishing through the reconciler, so a
refresh swaps the snapshot the same way a reconcile does and never races one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from pooldaemon.jobs import JobDef, job_plan
from pooldaemon.pool import Discovered, Endpoint, ModelInfo, ProviderView, Snapshot
from pooldaemon.pool._builtin import BuiltinTable, load_builtin_table
from pooldaemon.refresh._catalog import CatalogResult, fetch_catalog
from pooldaemon.refresh._catalog_store import (
    StoredCatalog,
    StoredEndpoint,
    load_catalogs,
    load_endpoints,
    needs_detection,
    save_catalogs,
    save_endpoints,
)
from pooldaemon.refresh._detect import detect_format
from pooldaemon.refresh._price_fetch import (
    SourceState,
    fetch_source,
    load_source_states,
    merged_prices,
    save_source_state,
)
from pooldaemon.refresh._probe import probe_models
from pooldaemon.spec import PoolSpec, ProviderSpec

if TYPE_CHECKING:
    from pooldaemon.reconcile._reconciler import Reconciler
    from pooldaemon.usage import UsageStore

__all__ = ["RefreshFailed", "Refresher"]

_log = logging.getLogger("pooldaemon.refresh")
CATALOG_TIMEOUT = 60.0
DETECT_TIMEOUT = 20.0
PROBE_TIMEOUT = 30.0
PRICING_TIMEOUT = 60.0
CONCURRENT_PROVIDERS = 4


class RefreshFailed(RuntimeError):
    """A job ran but some of its work failed (the message says which and why)."""


@dataclass(frozen=True, slots=True)
class _ProviderOutcome:
    provider: str
    catalog: StoredCatalog | None
    endpoint: StoredEndpoint | None
    error: str | None
    models: int = 0


class Refresher:
    """Runs catalog, pricing and retention jobs (it is the :class:`~pooldaemon.jobs.Jobs`
    runner) and keeps their results."""

    def __init__(
        self,
        state_dir: Path,
        *,
        store: UsageStore | None = None,
        builtin: BuiltinTable | None = None,
        session_factory: Callable[[], aiohttp.ClientSession] = aiohttp.ClientSession,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.state_dir = state_dir
        self.store = store
        self.builtin = builtin or load_builtin_table()
        self._session_factory = session_factory
        self._wall = wall
        self.catalogs: dict[str, StoredCatalog] = load_catalogs(state_dir)
        self.endpoints: dict[str, StoredEndpoint] = load_endpoints(state_dir)
        self.sources: dict[str, SourceState] = load_source_states(state_dir)
        self._generations: dict[str, int] = {}
        self.reconciler: Reconciler | None = None

    # -- what is known -----------------------------------------------------------

    def discovered(self, spec: PoolSpec) -> Discovered:
        """What is known, for ``spec``: catalogs and endpoints of its providers (only
        those learned for its current base URLs), remote prices of its sources in
        the listed order."""
        catalogs: dict[str, tuple[ModelInfo, ...]] = {}
        endpoints: dict[str, Endpoint] = {}
        for provider in spec.providers:
            endpoint = self._endpoint(provider)
            if endpoint is not None:
                endpoints[provider.id] = endpoint
            stored = self.catalogs.get(provider.id) if provider.discover else None
            if stored is not None and _usable(stored, provider, endpoint):
                catalogs[provider.id] = tuple(
                    m for m in stored.models if m.id not in stored.unavailable
                )
        order = [s.url for s in spec.pricing.sources]
        states = [self.sources[url] for url in order if url in self.sources]
        return Discovered(
            catalogs=catalogs,
            generations=dict(self._generations),
            endpoints=endpoints,
            remote_prices=merged_prices(states, order),
        )

    def _endpoint(self, provider: ProviderSpec) -> Endpoint | None:
        stored = self.endpoints.get(provider.id)
        if stored is None:
            return None
        if provider.format == "auto" and not needs_detection(stored, provider):
            return Endpoint(stored.format, stored.base_url)
        if stored.base_url in provider.alternate_base_urls:
            return Endpoint(None, stored.base_url)
        return None

    def last_success(self, spec: PoolSpec) -> dict[str, float]:
        """When each job of ``spec`` last succeeded, from what is kept in ``state_dir``
        (so a restart does not refetch fresh data): the catalog job when every
        provider has a kept catalog (the oldest fetch counts), each pricing job
        when its source's last check succeeded."""
        out: dict[str, float] = {}
        fetched = [self.catalogs.get(p.id) for p in spec.providers if p.enabled and p.discover]
        if fetched and all(c is not None and c.fetched_at and not c.error for c in fetched):
            out["catalog"] = min(c.fetched_at for c in fetched if c is not None)
        for job in job_plan(spec):
            state = self.sources.get(job.target) if job.kind == "pricing" else None
            if state is not None and state.checked_at and state.error is None:
                out[job.id] = state.checked_at
        return out

    def catalog_json(self, provider: str) -> dict[str, object] | None:
        """The catalog and endpoint facts of a provider, for the admin API."""
        stored, endpoint = self.catalogs.get(provider), self.endpoints.get(provider)
        if stored is None and endpoint is None:
            return None
        return {
            "fetched_at": stored.fetched_at if stored and stored.fetched_at else None,
            "models": len(stored.models) if stored else 0,
            "unavailable": sorted(stored.unavailable) if stored else [],
            "base_url": stored.base_url if stored else None,
            "error": stored.error if stored else None,
            "detected_format": endpoint.format if endpoint else None,
            "format_source": endpoint.source if endpoint else None,
        }

    def sources_json(self, spec: PoolSpec) -> list[dict[str, object]]:
        """Each pricing source of ``spec`` as the spec writes it (durations as text),
        with its fetch state, for ``GET pricing``."""
        out: list[dict[str, object]] = []
        for source in spec.pricing.sources:
            state = self.sources.get(source.url) or SourceState.never(source.url, source.format)
            out.append(
                {
                    **source.model_dump(mode="json"),
                    "status": state.status,
                    "fetched_at": state.fetched_at,
                    "checked_at": state.checked_at,
                    "models": len(state.models),
                    "error": state.error,
                }
            )
        return out

    # -- running jobs ------------------------------------------------------------

    async def __call__(self, job: JobDef) -> str:
        if job.kind == "catalog":
            return await self.refresh_catalogs()
        if job.kind == "pricing":
            return await self.refresh_pricing(job.target)
        return await self.prune_usage()

    async def _publish(self, what: str) -> None:
        reconciler = self.reconciler
        if reconciler is None:
            return
        await reconciler.publish(lambda _old: self.discovered(reconciler.applied.spec), what)

    def _applied(self) -> tuple[PoolSpec, Snapshot, Mapping[str, str]]:
        assert self.reconciler is not None, "attach the refresher to a reconciler first"
        applied = self.reconciler.proxy.applied
        return self.reconciler.applied.spec, applied.snapshot, applied.secrets

    async def refresh_catalogs(self) -> str:
        """List every enabled provider's models (detecting formats first where needed),
        keep and publish them. Raises RefreshFailed naming the providers that failed
        (their previous catalogs stay). Providers with ``discover: false`` are left
        out: they have no model list to fetch, which is not a failure."""
        spec, snapshot, secrets = self._applied()
        enabled = [p for p in snapshot.providers if p.spec.enabled]
        providers = [p for p in enabled if p.spec.discover]
        gate = asyncio.Semaphore(CONCURRENT_PROVIDERS)
        async with self._session_factory() as session:

            async def one(view: ProviderView) -> _ProviderOutcome:
                async with gate:
                    return await self._refresh_provider(session, spec, view, secrets)

            outcomes = await asyncio.gather(*(one(p) for p in providers))
        for outcome in outcomes:
            if outcome.endpoint is not None:
                self.endpoints[outcome.provider] = outcome.endpoint
            if outcome.catalog is not None:
                if outcome.error is None:
                    self._generations[outcome.provider] = (
                        self._generations.get(outcome.provider, 0) + 1
                    )
                self.catalogs[outcome.provider] = outcome.catalog
        known = {p.id for p in spec.providers}
        listed = {p.id for p in spec.providers if p.discover}
        for gone in [pid for pid in self.catalogs if pid not in listed]:
            del self.catalogs[gone]
        for gone in [pid for pid in self.endpoints if pid not in known]:
            del self.endpoints[gone]
        await asyncio.to_thread(self._save_catalogs)
        await self._publish("catalog refresh")
        failed = [o for o in outcomes if o.error]
        for outcome in failed:
            _log.warning("catalog provider=%s error=%s", outcome.provider, outcome.error)
        models = sum(o.models for o in outcomes)
        summary = f"{len(outcomes) - len(failed)}/{len(outcomes)} providers, {models} models"
        if len(enabled) > len(providers):
            summary += f", {len(enabled) - len(providers)} not listed (discover: false)"
        if failed:
            details = "; ".join(str(o.error) for o in failed)
            raise RefreshFailed(f"{summary}; {details}")
        return summary

    def _save_catalogs(self) -> None:
        try:
            save_catalogs(self.state_dir, self.catalogs)
            save_endpoints(self.state_dir, self.endpoints)
        except OSError as exc:
            _log.warning("cannot keep the catalogs in %s: %s", self.state_dir, exc)

    async def _refresh_provider(
        self,
        session: aiohttp.ClientSession,
        spec: PoolSpec,
        view: ProviderView,
        secrets: Mapping[str, str],
    ) -> _ProviderOutcome:
        declared = next(p for p in spec.providers if p.id == view.id)
        key = next(
            (secrets[k.key_id] for k in view.keys if k.enabled and k.key_id in secrets), None
        )
        if view.keys and key is None:
            error = f"catalog of provider {view.id!r}: no usable key"
            return _ProviderOutcome(view.id, self.catalogs.get(view.id), None, error)
        endpoint = self.endpoints.get(view.id)
        if declared.format == "auto" and needs_detection(endpoint, declared):
            detection = await detect_format(session, declared, key, timeout=DETECT_TIMEOUT)
            endpoint = StoredEndpoint.from_detection(declared.base_url or "", detection)
            _log.info(
                "format provider=%s format=%s source=%s base_url=%s%s",
                view.id,
                detection.format,
                detection.source,
                detection.base_url,
                f" note={detection.error}" if detection.error else "",
            )
        fmt = endpoint.format if declared.format == "auto" and endpoint else None
        remembered = endpoint.base_url if endpoint else None
        result = await fetch_catalog(
            session,
            view,
            key,
            builtin=self.builtin,
            timeout=CATALOG_TIMEOUT,
            wire_format=fmt,
            base_url=remembered,
        )
        previous = self.catalogs.get(view.id)
        if result.models is None:
            kept = previous.updated(result) if previous else None
            return _ProviderOutcome(view.id, kept, endpoint, result.error)
        endpoint = self._remember_base(declared, endpoint, result)
        catalog = previous.updated(result) if previous else StoredCatalog.from_result(result)
        if spec.catalog.probe:
            catalog = await self._probe(session, view, key, catalog, previous, fmt)
        return _ProviderOutcome(
            view.id, catalog, endpoint, None, len(catalog.models) - len(catalog.unavailable)
        )

    def _remember_base(
        self, declared: ProviderSpec, endpoint: StoredEndpoint | None, result: CatalogResult
    ) -> StoredEndpoint | None:
        """The base URL that answered is remembered when it is an alternate (the
        original package's ``DetectedEndpoint``); back on the primary, forgotten."""
        if declared.format == "auto":
            if endpoint is not None and result.base_url != endpoint.base_url:
                return replace(endpoint, base_url=result.base_url)
            return endpoint
        if result.base_url in declared.alternate_base_urls:
            configured = (declared.base_url or "").rstrip("/")
            return StoredEndpoint(
                configured, declared.format, result.base_url, result.fetched_at, "alternate"
            )
        return None

    async def _probe(
        self,
        session: aiohttp.ClientSession,
        view: ProviderView,
        key: str | None,
        catalog: StoredCatalog,
        previous: StoredCatalog | None,
        fmt: str | None,
    ) -> StoredCatalog:
        """Probe the models not probed before (each probe is a billed request)."""
        seen = {m.id for m in previous.models} if previous else set()
        fresh = [m.id for m in catalog.models if m.id not in seen]
        if not fresh:
            return catalog
        results = await probe_models(
            session,
            view,
            key,
            fresh,
            timeout=PROBE_TIMEOUT,
            wire_format=fmt,
            base_url=catalog.base_url,
        )
        gone = {m for m, r in results.items() if r.available is False}
        for model in sorted(gone):
            _log.info("probe provider=%s model=%s unavailable", view.id, model)
        return replace(catalog, unavailable=catalog.unavailable | gone)

    async def refresh_pricing(self, url: str) -> str:
        """Fetch one pricing source (conditionally), keep and publish its prices.
        Raises RefreshFailed when the fetch failed or was rejected (the previous
        prices stay)."""
        spec, _, _ = self._applied()
        source = next((s for s in spec.pricing.sources if s.url == url), None)
        if source is None:
            return "source no longer in the spec"
        async with self._session_factory() as session:
            state = await fetch_source(
                session,
                source,
                self.sources.get(url),
                now=self._wall(),
                timeout=PRICING_TIMEOUT,
            )
        self.sources[url] = state
        try:
            await asyncio.to_thread(save_source_state, self.state_dir, state)
        except OSError as exc:
            _log.warning("cannot keep pricing source data in %s: %s", self.state_dir, exc)
        if state.status in ("fetched", "not_modified"):
            await self._publish(f"pricing refresh of {source.format}")
            return f"{state.status}: {len(state.models)} models"
        raise RefreshFailed(f"{state.status}: {state.error}")

    async def prune_usage(self) -> str:
        """Delete usage records older than ``usage.retention`` (daily)."""
        spec, _, _ = self._applied()
        if self.store is None:
            return "no usage store"
        before = self._wall() - spec.usage.retention.total_seconds()
        pruned = await asyncio.to_thread(self.store.prune, before)
        return f"pruned {pruned} usage records"


def _usable(stored: StoredCatalog, provider: ProviderSpec, endpoint: Endpoint | None) -> bool:
    """A kept catalog serves only if it was once fetched, from one of the provider's
    current base URLs."""
    if not stored.fetched_at or (stored.error and not stored.models):
        return False
    bases = {(provider.base_url or "").rstrip("/"), *provider.alternate_base_urls}
    if endpoint is not None and endpoint.base_url:
        bases.add(endpoint.base_url)
    return stored.base_url.rstrip("/") in {b.rstrip("/") for b in bases}
