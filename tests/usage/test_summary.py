"""Summaries, totals, spend, percentiles, prune and re-pricing, with hand-computed figures.

Each range is checked on the three read paths: whole days only (the daily
rollup), no whole day (raw rows only), and whole days plus partial ones.
"""

from __future__ import annotations

import math
import random

import pytest

from pooldaemon.pool._tokens import Usage
from pooldaemon.usage import Spend, UsageRecord, UsageStore, UsageSummary

from .conftest import DAY, DAY0, record

RECORDS = (
    record(
        request_id="r1",
        ts=DAY0 + 3600,
        provider="openai",
        model="gpt-4o",
        client="ide",
        usage=Usage(input=100, output=20, cache_read=50, reasoning=4),
        latency_ms=100.0,
        cost_usd=0.010,
    ),
    record(
        request_id="r2",
        ts=DAY0 + 7200,
        provider="openai",
        model="gpt-4o-mini",
        client=None,
        usage=Usage(input=200, output=10),
        latency_ms=200.0,
        outcome="rate_limit",
        cost_usd=0.0,
    ),
    record(
        request_id="r3",
        ts=DAY0 + DAY - 1,  # 23:59:59 UTC, still the first day
        provider="anthropic",
        model="claude-sonnet",
        client="ide",
        usage=Usage(input=300, output=30, cache_read=100, cache_write=40),
        latency_ms=300.0,
        cost_usd=0.050,
    ),
    record(
        request_id="r4",
        ts=DAY0 + DAY,  # midnight UTC: the second day
        provider="anthropic",
        model="claude-sonnet",
        client="ci",
        usage=Usage(input=50, output=5),
        latency_ms=400.0,
        outcome="timeout",
        cost_usd=0.002,
    ),
    record(
        request_id="r5",
        ts=DAY0 + DAY + 5000,
        provider="google",
        model="gemini",
        client="ci",
        usage=Usage(input=1000, output=100, reasoning=50),
        latency_ms=500.0,
        cost_usd=0.020,
    ),
)

RANGES = {
    "whole-days": (DAY0, DAY0 + 2 * DAY),
    "raw-only": (DAY0 + 1, DAY0 + 2 * DAY - 1),
    "mixed": (DAY0 + 1800, DAY0 + 3 * DAY),
    "wide": (DAY0 - 0.5 * DAY, DAY0 + 2.5 * DAY),
}

Figures = tuple[str, int, int, int, int, int, int, int, int, float]


def figures(summary: UsageSummary) -> Figures:
    """Key, counts, tokens and cost (rounded: float sums depend on order)."""
    return (
        summary.key,
        summary.requests,
        summary.successes,
        summary.failures,
        summary.input_tokens,
        summary.output_tokens,
        summary.cache_read_tokens,
        summary.cache_write_tokens,
        summary.reasoning_tokens,
        round(summary.cost_usd, 9),
    )


@pytest.fixture
def filled(store: UsageStore) -> UsageStore:
    for item in RECORDS:
        store.add(item)
    store.flush()
    return store


EXPECTED = {
    "provider": [
        ("anthropic", 2, 1, 1, 350, 35, 100, 40, 0, 0.052),
        ("google", 1, 1, 0, 1000, 100, 0, 0, 50, 0.020),
        ("openai", 2, 1, 1, 300, 30, 50, 0, 4, 0.010),
    ],
    "model": [
        ("claude-sonnet", 2, 1, 1, 350, 35, 100, 40, 0, 0.052),
        ("gemini", 1, 1, 0, 1000, 100, 0, 0, 50, 0.020),
        ("gpt-4o", 1, 1, 0, 100, 20, 50, 0, 4, 0.010),
        ("gpt-4o-mini", 1, 0, 1, 200, 10, 0, 0, 0, 0.0),
    ],
    "client": [
        ("ide", 2, 2, 0, 400, 50, 150, 40, 4, 0.060),
        ("ci", 2, 1, 1, 1050, 105, 0, 0, 50, 0.022),
        ("", 1, 0, 1, 200, 10, 0, 0, 0, 0.0),
    ],
    "day": [
        ("2024-10-04", 3, 2, 1, 600, 60, 150, 40, 4, 0.060),
        ("2024-10-05", 2, 1, 1, 1050, 105, 0, 0, 50, 0.022),
    ],
}


@pytest.mark.parametrize("span", RANGES)
@pytest.mark.parametrize("group_by", ["provider", "model", "client", "day"])
def test_summarize(filled: UsageStore, span: str, group_by: str) -> None:
    since, until = RANGES[span]
    got = filled.summarize(since, until, group_by)  # type: ignore[arg-type]
    assert [figures(s) for s in got] == EXPECTED[group_by]


@pytest.mark.parametrize("span", RANGES)
def test_summary_time_range_and_latency(filled: UsageStore, span: str) -> None:
    since, until = RANGES[span]
    [anthropic] = filled.summarize(since, until, "provider", provider="anthropic")
    assert (anthropic.first_ts, anthropic.last_ts) == (DAY0 + DAY - 1, DAY0 + DAY)
    assert anthropic.p50_latency_ms == pytest.approx(300, rel=0.05)
    assert anthropic.p95_latency_ms == pytest.approx(400, rel=0.05)


@pytest.mark.parametrize("span", RANGES)
def test_filters(filled: UsageStore, span: str) -> None:
    since, until = RANGES[span]
    by_client = filled.summarize(since, until, "client", provider="anthropic")
    assert [(s.key, s.requests, round(s.cost_usd, 9)) for s in by_client] == [
        ("ide", 1, 0.05),
        ("ci", 1, 0.002),
    ]
    by_provider = filled.summarize(since, until, "provider", client="ide")
    assert [(s.key, s.requests) for s in by_provider] == [("anthropic", 1), ("openai", 1)]
    no_client = filled.summarize(since, until, "model", client="")
    assert [(s.key, s.requests) for s in no_client] == [("gpt-4o-mini", 1)]
    both = filled.total(since, until, provider="anthropic", client="ci")
    assert (both.requests, both.input_tokens) == (1, 50)


def test_range_is_half_open(filled: UsageStore) -> None:
    # r4 sits exactly at DAY0 + DAY: in the second range, not the first.
    assert filled.total(DAY0, DAY0 + DAY).requests == 3
    assert filled.total(DAY0 + DAY, DAY0 + DAY + 1).requests == 1
    assert filled.summarize(DAY0 + 10, DAY0 + 20, "provider") == []


@pytest.mark.parametrize("span", RANGES)
def test_total(filled: UsageStore, span: str) -> None:
    since, until = RANGES[span]
    total = filled.total(since, until)
    assert figures(total) == ("total", 5, 3, 2, 1650, 165, 150, 40, 54, 0.082)
    assert (total.first_ts, total.last_ts) == (DAY0 + 3600, DAY0 + DAY + 5000)


def test_total_of_nothing_is_zero(store: UsageStore) -> None:
    assert store.total(DAY0, DAY0 + DAY) == UsageSummary(
        "total", 0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0
    )
    assert store.spend(DAY0) == Spend(0.0, 0)


def test_spend(filled: UsageStore) -> None:
    def approx(spend: Spend) -> tuple[float, int]:
        return round(spend.usd, 9), spend.tokens

    assert approx(filled.spend(DAY0)) == (0.082, 2005)
    assert approx(filled.spend(DAY0 + DAY)) == (0.022, 1155)
    assert approx(filled.spend(DAY0 + 7000)) == (0.072, 1835)  # raw piece + whole days
    assert approx(filled.spend(DAY0, provider="anthropic")) == (0.052, 525)
    assert approx(filled.spend(DAY0, client="ci")) == (0.022, 1155)
    assert approx(filled.spend(DAY0 + 3 * DAY)) == (0.0, 0)


def _nearest_rank(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(fraction * len(ordered))) - 1]


@pytest.mark.parametrize("span", RANGES)
def test_percentiles_within_five_percent(store: UsageStore, span: str) -> None:
    rng = random.Random(42)
    latencies: dict[str, list[float]] = {"fast": [], "slow": []}
    for i in range(3000):
        provider = "fast" if i % 3 else "slow"
        latency = rng.lognormvariate(5.0 if provider == "fast" else 7.5, 0.9)
        latencies[provider].append(latency)
        store.add(
            record(
                request_id=f"p{i}", provider=provider, ts=DAY0 + 60 + i * 40.0, latency_ms=latency
            )
        )
    store.flush()
    since, until = RANGES[span]
    assert until > DAY0 + 60 + 2999 * 40.0  # every record is in every range
    for summary in store.summarize(since, until, "provider"):
        values = latencies[summary.key]
        assert summary.p50_latency_ms == pytest.approx(_nearest_rank(values, 0.5), rel=0.05)
        assert summary.p95_latency_ms == pytest.approx(_nearest_rank(values, 0.95), rel=0.05)


def test_percentiles_of_a_uniform_ladder(store: UsageStore) -> None:
    for ms in range(1, 1001):
        store.add(record(request_id=f"u{ms}", ts=DAY0 + 1800 + ms * 150.0, latency_ms=float(ms)))
    store.flush()
    for since, until in RANGES.values():
        total = store.total(since, until)
        assert total.requests == 1000
        assert total.p50_latency_ms == pytest.approx(500, rel=0.05)
        assert total.p95_latency_ms == pytest.approx(950, rel=0.05)


def test_prune(filled: UsageStore) -> None:
    assert filled.prune(DAY0 + 7200) == 1  # r1; r2 sits exactly at the cut and stays
    for since, until in RANGES.values():
        assert filled.total(since, until).requests == 4
    [day1, day2] = filled.summarize(*RANGES["whole-days"], "day")
    assert (day1.key, day1.requests, day1.input_tokens) == ("2024-10-04", 2, 500)
    assert day2.requests == 2
    assert filled.prune(DAY0 + DAY) == 2
    assert [s.key for s in filled.summarize(*RANGES["whole-days"], "day")] == ["2024-10-05"]
    assert filled.prune(DAY0 + DAY) == 0
    assert [r.request_id for r in filled.records(0, DAY0 + 10 * DAY)] == ["r5", "r4"]


def test_prune_includes_buffered_records(store: UsageStore) -> None:
    store.add(record(ts=DAY0))
    assert store.prune(DAY0 + 1) == 1
    assert store.total(DAY0 - DAY, DAY0 + DAY).requests == 0


def _double_anthropic(item: UsageRecord) -> tuple[float, str]:
    if item.provider == "anthropic":
        return item.cost_usd * 2, "remote"
    return item.cost_usd, item.pricing_source


def test_recalculate_costs(filled: UsageStore) -> None:
    assert filled.recalculate_costs(DAY0, DAY0 + 2 * DAY, _double_anthropic) == 2
    for since, until in RANGES.values():
        costs = {s.key: round(s.cost_usd, 9) for s in filled.summarize(since, until, "provider")}
        assert costs == {"anthropic": 0.104, "google": 0.02, "openai": 0.01}
        assert round(filled.total(since, until).cost_usd, 9) == 0.134
    assert round(filled.spend(DAY0).usd, 9) == 0.134
    sources = {r.request_id: r.pricing_source for r in filled.records(DAY0, DAY0 + 2 * DAY)}
    assert sources == {
        "r1": "builtin",
        "r2": "builtin",
        "r3": "remote",
        "r4": "remote",
        "r5": "builtin",
    }


def test_recalculate_costs_limits_and_counts(filled: UsageStore) -> None:
    # Only r4 is in range; a source-only change is written but not counted.
    assert filled.recalculate_costs(DAY0 + DAY, DAY0 + DAY + 1, _double_anthropic) == 1
    assert filled.recalculate_costs(DAY0, DAY0 + DAY, lambda r: (r.cost_usd, "model_exact")) == 0
    sources = {r.request_id: r.pricing_source for r in filled.records(DAY0, DAY0 + 2 * DAY)}
    assert sources["r1"] == sources["r3"] == "model_exact"
    assert sources["r4"] == "remote"
    assert round(filled.total(*RANGES["whole-days"]).cost_usd, 9) == 0.084


def test_recalculate_costs_is_all_or_nothing(filled: UsageStore) -> None:
    def flaky(item: UsageRecord) -> tuple[float, str]:
        if item.request_id == "r4":
            raise RuntimeError("pricing table broke")
        return 1.0, "default"

    with pytest.raises(RuntimeError, match="pricing table broke"):
        filled.recalculate_costs(DAY0, DAY0 + 2 * DAY, flaky)
    assert round(filled.total(*RANGES["whole-days"]).cost_usd, 9) == 0.082
    assert {r.pricing_source for r in filled.records(DAY0, DAY0 + 2 * DAY)} == {"builtin"}


def test_unknown_group_by_is_rejected(filled: UsageStore) -> None:
    with pytest.raises(ValueError, match="group_by"):
        filled.summarize(DAY0, DAY0 + DAY, "week")  # type: ignore[arg-type]
