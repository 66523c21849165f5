"""Summary queries: which SQL to run for a range, and folding its rows into summaries.

A range is split (:func:`~pooldaemon.usage._rollup.split`) into whole days,
read from the daily rollup, and partial days, read from the raw rows with one
``GROUP BY group, latency_bucket`` query each. Folding adds everything up per
group (counts, tokens and cost exactly) and reads p50/p95 off the merged
latency histogram (approximately, see :mod:`pooldaemon.usage._histogram`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from pooldaemon.usage._histogram import WIDTH, from_blob, percentile, unpack
from pooldaemon.usage._records import GroupBy, Spend, UsageSummary
from pooldaemon.usage._rollup import DAY_S, DAY_SQL, split

__all__ = ["Folder", "Query", "raw_where", "spend_from_rows", "spend_queries", "summary_queries"]

_RAW_GROUP: Mapping[GroupBy | None, str] = MappingProxyType(
    {
        "provider": "provider",
        "model": "model",
        "client": "COALESCE(client, '')",
        "day": DAY_SQL,
        None: "'total'",
    }
)
_DAILY_GROUP: Mapping[GroupBy | None, str] = MappingProxyType(
    {"provider": "provider", "model": "model", "client": "client", "day": "day", None: "'total'"}
)
_SUMS = (
    "SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens),"
    " SUM(cache_write_tokens), SUM(reasoning_tokens)"
)
_COLUMNS = (
    "requests, successes, input_tokens, output_tokens, cache_read_tokens,"
    " cache_write_tokens, reasoning_tokens"
)
_BILLED = "input_tokens + cache_read_tokens + cache_write_tokens + output_tokens"


@dataclass(frozen=True, slots=True)
class Query:
    """SQL text, its parameters, and whether its rows come from the daily rollup."""

    sql: str
    params: tuple[Any, ...]
    daily: bool = False


def raw_where(
    since: float, until: float | None, provider: str | None = None, client: str | None = None
) -> Query:
    """The ``WHERE`` clause on raw rows: ``since <= ts < until`` and the filters.

    A ``client`` of ``""`` selects the requests made without a client name.
    """
    clauses = ["ts >= ?"]
    params: list[Any] = [since]
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    clauses, params = _filters(clauses, params, provider, client, raw=True)
    return Query(" AND ".join(clauses), tuple(params))


def summary_queries(
    group_by: GroupBy | None,
    since: float,
    until: float,
    provider: str | None = None,
    client: str | None = None,
) -> list[Query]:
    """The queries whose rows :class:`Folder` turns into the summaries of a range.

    ``group_by=None`` makes one group, keyed ``"total"``.
    """
    parts = split(since, until)
    queries = []
    if parts.first_day is not None and parts.end_day is not None:
        clauses, params = _filters(
            ["day >= ?", "day < ?"], [parts.first_day, parts.end_day], provider, client, raw=False
        )
        sql = (
            f"SELECT {_DAILY_GROUP[group_by]}, {_COLUMNS}, cost_usd, first_ts, last_ts,"
            f" histogram FROM usage_daily WHERE {' AND '.join(clauses)}"
        )
        queries.append(Query(sql, tuple(params), daily=True))
    for start, end in parts.raw:
        cond = raw_where(start, end, provider, client)
        sql = (
            f"SELECT {_RAW_GROUP[group_by]} AS grp, COUNT(*), SUM(outcome = 'success'), {_SUMS},"
            " TOTAL(cost_usd), MIN(ts), MAX(ts), latency_bucket"
            f" FROM usage WHERE {cond.sql} GROUP BY grp, latency_bucket"
        )
        queries.append(Query(sql, cond.params))
    return queries


def spend_queries(since: float, provider: str | None, client: str | None) -> list[Query]:
    """Queries of one row ``(usd, billed tokens)`` each; their sum is the spend since ``since``."""
    parts = split(since, math.inf)
    queries = []
    if parts.first_day is not None:
        clauses, params = _filters(["day >= ?"], [parts.first_day], provider, client, raw=False)
        sql = (
            f"SELECT TOTAL(cost_usd), SUM({_BILLED}) FROM usage_daily WHERE {' AND '.join(clauses)}"
        )
        queries.append(Query(sql, tuple(params), daily=True))
    for start, end in parts.raw:
        cond = raw_where(start, end, provider, client)
        sql = f"SELECT TOTAL(cost_usd), SUM({_BILLED}) FROM usage WHERE {cond.sql}"
        queries.append(Query(sql, cond.params))
    return queries


def spend_from_rows(rows: Iterable[tuple[Any, ...]]) -> Spend:
    """The :class:`Spend` of the rows of :func:`spend_queries`."""
    costs: list[float] = []
    tokens = 0
    for usd, billed in rows:
        costs.append(usd)
        tokens += billed or 0
    return Spend(usd=math.fsum(costs), tokens=tokens)


def _filters(
    clauses: list[str],
    params: list[Any],
    provider: str | None,
    client: str | None,
    *,
    raw: bool,
) -> tuple[list[str], list[Any]]:
    if provider is not None:
        clauses.append("provider = ?")
        params.append(provider)
    if client is not None and raw and not client:
        clauses.append("client IS NULL")  # the rollup stores "" for no client
    elif client is not None:
        clauses.append("client = ?")
        params.append(client)
    return clauses, params


@dataclass(slots=True)
class _Group:
    counts: list[int] = field(default_factory=lambda: [0] * 7)
    costs: list[float] = field(default_factory=list)
    first_ts: float = math.inf
    last_ts: float = -math.inf
    histogram: int = 0  # packed, see _histogram

    def add(self, counts: Iterable[int], cost: float, first_ts: float, last_ts: float) -> None:
        self.counts = [a + b for a, b in zip(self.counts, counts, strict=True)]
        self.costs.append(cost)
        self.first_ts = min(self.first_ts, first_ts)
        self.last_ts = max(self.last_ts, last_ts)

    def summary(self, key: str) -> UsageSummary:
        requests, successes, inp, out, cache_read, cache_write, reasoning = self.counts
        histogram = unpack(self.histogram)
        return UsageSummary(
            key=key,
            requests=requests,
            successes=successes,
            failures=requests - successes,
            input_tokens=inp,
            output_tokens=out,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            reasoning_tokens=reasoning,
            cost_usd=math.fsum(self.costs),
            p50_latency_ms=percentile(histogram, 0.50),
            p95_latency_ms=percentile(histogram, 0.95),
            first_ts=self.first_ts if requests else 0.0,
            last_ts=self.last_ts if requests else 0.0,
        )


class Folder:
    """Adds up the rows of :func:`summary_queries` per group."""

    def __init__(self, group_by: GroupBy | None) -> None:
        self._group_by = group_by
        self._groups: dict[str, _Group] = {}

    def add(self, query: Query, rows: Iterable[tuple[Any, ...]]) -> None:
        """Fold in the rows ``query`` returned."""
        for grp, *counts, cost, first_ts, last_ts, histogram in rows:
            group = self._group(grp)
            group.add(counts, cost, first_ts, last_ts)
            if query.daily:
                group.histogram += from_blob(histogram)
            else:
                group.histogram += counts[0] << (histogram * WIDTH)

    def summaries(self) -> list[UsageSummary]:
        """One summary per group, by cost (highest first), then key."""
        summaries = [group.summary(key) for key, group in self._groups.items()]
        summaries.sort(key=lambda s: (-s.cost_usd, s.key))
        return summaries

    def total(self) -> UsageSummary:
        """The one summary of ``group_by=None`` (all zeros when nothing matched)."""
        group = self._groups.get("total") or _Group()
        return group.summary("total")

    def _group(self, grp: Any) -> _Group:
        key = _day(int(grp)) if self._group_by == "day" else str(grp)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group()
        return group


def _day(day: int) -> str:
    return datetime.fromtimestamp(day * DAY_S, tz=UTC).date().isoformat()
