"""Prometheus metrics of the daemon, read at scrape time from its state.

One explicit ``CollectorRegistry`` (never the global one); values come from a
custom collector reading the reconcile status, so nothing sets gauges all
over the code. Names follow ARCHITECTURE (prefix ``pooldaemon_``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pooldaemon import __version__
from pooldaemon.pool import Snapshot
from pooldaemon.reconcile._status import ReconcileStatus
from pooldaemon.server._state import ProxyState

__all__ = [
    "JobsCollector",
    "ProviderStateCollector",
    "ProxyMetrics",
    "ReconcileCollector",
    "build_registry",
    "model_label",
    "provider_label",
]


class ReconcileCollector(Collector):
    def __init__(self, status: ReconcileStatus) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        status = self._status
        ok = GaugeMetricFamily(
            "pooldaemon_config_last_reload_successful",
            "1 when the latest attempted config was applied, 0 when it was refused",
        )
        ok.add_metric([], 1.0 if status.last_successful else 0.0)
        yield ok
        when = GaugeMetricFamily(
            "pooldaemon_config_last_reload_success_timestamp_seconds",
            "Unix time of the last successful (or unchanged) reconcile",
        )
        when.add_metric([], status.last_success_time)
        yield when
        reloads = CounterMetricFamily(
            "pooldaemon_config_reloads", "Reconciles by result", labels=["result"]
        )
        for result in ("success", "failure", "unchanged"):
            reloads.add_metric([result], float(status.reloads.get(result, 0)))
        yield reloads
        info = GaugeMetricFamily(
            "pooldaemon_config_info", "The applied config revision", labels=["sha256"]
        )
        info.add_metric([status.applied_revision], 1.0)
        yield info
        build = GaugeMetricFamily("pooldaemon_build_info", "pooldaemon version", labels=["version"])
        build.add_metric([__version__], 1.0)
        yield build


# -- the proxy ---------------------------------------------------------------

# LLM latencies: from a few ms (local, cached) to minutes (long generations).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)
OTHER = "other"


_M = TypeVar("_M", Counter, Histogram)


class Labelled(Generic[_M]):
    """A labelled metric whose children are looked up once per label values.

    ``metric.labels(...)`` checks and converts its arguments and takes a lock
    on every call: a few microseconds per request for each metric. Calling
    this returns the same child from a dict after the first time. The label
    values are bounded (see :class:`ProxyMetrics`), and so is the dict.
    """

    __slots__ = ("_children", "metric")

    def __init__(self, metric: _M) -> None:
        self.metric: _M = metric
        self._children: dict[tuple[str, ...], _M] = {}

    def __call__(self, *values: str) -> _M:
        try:
            return self._children[values]
        except KeyError:
            child: _M = self.metric.labels(*values)
            self._children[values] = child
            return child


class ProxyMetrics:
    """Event metrics of the proxy. Labels only from configured provider ids and routable
    model names (anything else is ``other``), so series stay bounded whatever clients send."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Labelled(
            Counter(
                "pooldaemon_requests",
                "Proxied requests by final provider, model and outcome",
                ["provider", "model", "outcome"],
                registry=registry,
            )
        )
        self.duration = Labelled(
            Histogram(
                "pooldaemon_request_duration_seconds",
                "Total request time, streams included",
                ["provider", "model"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self.ttfb = Labelled(
            Histogram(
                "pooldaemon_upstream_ttfb_seconds",
                "Upstream time to first byte",
                ["provider"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            )
        )
        self.overhead = Histogram(
            "pooldaemon_overhead_seconds",
            "Time spent in the daemon itself before the first upstream byte (auth, parsing, "
            "routing, translation), excluding upstream time",
            buckets=OVERHEAD_BUCKETS,
            registry=registry,
        )
        self.tokens = Labelled(
            Counter(
                "pooldaemon_tokens",
                "Tokens by kind",
                ["provider", "model", "kind"],
                registry=registry,
            )
        )
        self.cost = Labelled(
            Counter("pooldaemon_cost_usd", "Cost in USD", ["provider", "model"], registry=registry)
        )
        self.cooldowns = Labelled(
            Counter(
                "pooldaemon_cooldowns",
                "Cooldowns started",
                ["provider", "reason"],
                registry=registry,
            )
        )
        self.failovers = Labelled(
            Counter(
                "pooldaemon_failovers",
                "Attempts that failed and moved on",
                ["provider", "reason"],
                registry=registry,
            )
        )


def provider_label(snapshot: Snapshot, provider: str | None) -> str:
    return provider if provider is not None and provider in snapshot.by_id else OTHER


def model_label(snapshot: Snapshot, model: str | None) -> str:
    if model is not None and (model in snapshot.index or model in snapshot.aliases):
        return model
    return OTHER


class ProviderStateCollector(Collector):
    """Cooldown state of every configured provider, read at scrape time."""

    def __init__(self, state: ProxyState) -> None:
        self._state = state

    def collect(self) -> Iterator[Metric]:
        state = self._state
        now = state.clock()
        cooling = GaugeMetricFamily(
            "pooldaemon_provider_cooldown",
            "1 while the provider is cooling down",
            labels=["provider"],
        )
        remaining = GaugeMetricFamily(
            "pooldaemon_provider_cooldown_remaining_seconds",
            "Seconds until the provider may be tried again",
            labels=["provider"],
        )
        snapshot = state.applied.snapshot
        warm: set[str] = set()
        for provider in snapshot.providers:
            until = state.runtime.state(provider.id).until
            left = max(until - now, 0.0) if until else 0.0
            cooling.add_metric([provider.id], 1.0 if left > 0 else 0.0)
            remaining.add_metric([provider.id], left)
            if left <= 0:
                warm.add(provider.id)
        yield cooling
        yield remaining
        available = GaugeMetricFamily(
            "pooldaemon_model_providers_available",
            "Providers of a routable model (or alias) not cooling down; 0: none can serve it",
            labels=["model"],
        )
        for name in _requestable(snapshot):
            providers = {t.provider.id for t in snapshot.resolve(name)}
            available.add_metric([name], float(len(providers & warm)))
        yield available


class _JobView(Protocol):
    @property
    def job_id(self) -> str: ...

    @property
    def interval(self) -> float: ...

    @property
    def results(self) -> dict[str, int]: ...

    @property
    def last_success(self) -> float | None: ...


class JobsCollector(Collector):
    """Runs and freshness of the scheduled jobs (ids come from the spec: bounded)."""

    def __init__(self, jobs: Iterable[_JobView]) -> None:
        self._jobs = jobs

    def collect(self) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "pooldaemon_job_runs", "Job runs by result", labels=["job", "result"]
        )
        last = GaugeMetricFamily(
            "pooldaemon_job_last_success_timestamp_seconds",
            "Unix time of the job's last successful run (0: none yet)",
            labels=["job"],
        )
        interval = GaugeMetricFamily(
            "pooldaemon_job_interval_seconds", "How often the job is meant to run", labels=["job"]
        )
        for job in self._jobs:
            results = job.results
            for result in ("success", "failure"):
                runs.add_metric([job.job_id, result], float(results.get(result, 0)))
            last.add_metric([job.job_id], job.last_success or 0.0)
            interval.add_metric([job.job_id], job.interval)
        yield runs
        yield last
        yield interval


def _requestable(snapshot: Snapshot) -> list[str]:
    """The names clients ask for: model ids and aliases (not ``provider/model``, which
    would repeat the provider's own cooldown once per model)."""
    names = [n for n in snapshot.index if not _is_pinned(snapshot, n)]
    return sorted({*names, *snapshot.aliases})


def _is_pinned(snapshot: Snapshot, name: str) -> bool:
    head, sep, _ = name.partition("/")
    return bool(sep) and head in snapshot.by_id


def build_registry(
    status: ReconcileStatus,
    proxy: ProxyState | None = None,
    jobs: Iterable[_JobView] | None = None,
) -> CollectorRegistry:
    """The daemon's one registry: reconcile state, provider state, jobs, proxy events."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ReconcileCollector(status))
    if jobs is not None:
        registry.register(JobsCollector(jobs))
    if proxy is not None:
        registry.register(ProviderStateCollector(proxy))
        proxy.metrics = ProxyMetrics(registry)
    return registry
