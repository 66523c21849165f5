"""What the usage store holds and what it answers: records, summaries, spend."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pooldaemon._values import value_type
from pooldaemon.pool._tokens import Usage

__all__ = ["GroupBy", "Spend", "UsageRecord", "UsageSummary"]

GroupBy = Literal["provider", "model", "client", "day"]
"""How :meth:`UsageStore.summarize` groups records; ``day`` is the UTC date."""


@value_type
class UsageRecord:
    """One proxied request, as written to the store.

    ``key_id`` is the display id of the API key used, never the secret.
    ``outcome`` is ``"success"`` or a failure class (``"rate_limit"``,
    ``"transient"``, ``"auth"``, ``"timeout"``, ``"client"``, ``"server"``,
    ``"model_not_found"``). ``ts`` is unix seconds (UTC, not before 1970).
    """

    ts: float
    request_id: str
    provider: str
    model: str
    key_id: str
    client: str | None
    usage: Usage
    latency_ms: float
    ttfb_ms: float | None
    outcome: str
    cost_usd: float
    pricing_source: str


@dataclass(frozen=True, slots=True)
class UsageSummary:
    """Totals of one group of records (or of all of them: ``key == "total"``).

    ``key`` is the group's value: a provider id, a model, a client name (``""``
    for requests without one) or a UTC day ``YYYY-MM-DD``. Counts, tokens and
    cost are exact; the latency percentiles are approximate (see
    :mod:`pooldaemon.usage._latency`). With no records, every figure is 0.
    """

    key: str
    requests: int
    successes: int
    failures: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    p50_latency_ms: float
    p95_latency_ms: float
    first_ts: float
    last_ts: float


@dataclass(frozen=True, slots=True)
class Spend:
    """Money and billed tokens (input + cache read + cache write + output), for budgets."""

    usd: float
    tokens: int
