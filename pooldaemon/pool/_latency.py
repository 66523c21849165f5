"""Latency tracking: an exponentially weighted moving average per provider."""

from __future__ import annotations

from pooldaemon._values import value_type

__all__ = ["ALPHA", "LatencyStats", "observe"]

ALPHA = 0.2  # weight of the newest sample: about the last ten requests matter


@value_type
class LatencyStats:
    """EWMA of total latency and of time to first byte, in seconds."""

    latency: float | None = None
    ttfb: float | None = None
    samples: int = 0


def _ewma(prev: float | None, sample: float | None, alpha: float) -> float | None:
    if sample is None or sample < 0:
        return prev
    return sample if prev is None else prev + alpha * (sample - prev)


def observe(
    stats: LatencyStats, latency: float | None, ttfb: float | None, alpha: float = ALPHA
) -> LatencyStats:
    """Stats after one more successful request."""
    return LatencyStats(
        _ewma(stats.latency, latency, alpha), _ewma(stats.ttfb, ttfb, alpha), stats.samples + 1
    )
