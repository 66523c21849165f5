"""Prometheus metrics of the daemon, read at scrape time from its state.

One explicit ``CollectorRegistry`` (never the global one); values come from a
custom collector reading the reconcile status, so nothing sets gauges all
over the code. Names follow ARCHITECTURE (prefix ``pooldaemon_``).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pooldaemon import __version__
from pooldaemon.reconcile._status import ReconcileStatus

__all__ = ["ReconcileCollector", "build_registry"]


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


def build_registry(status: ReconcileStatus) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(ReconcileCollector(status))
    return registry
