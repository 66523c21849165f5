"""The store feeding the pool: budgets survive restarts, costs follow pricing changes."""

from __future__ import annotations

import calendar

import pytest

from pooldaemon.pool import RouteRequest, Runtime, SkipReason, Snapshot, Usage, route
from pooldaemon.spec import PoolSpec
from pooldaemon.usage import UsageStore, reprice, seed_ledger
from tests.usage.conftest import record

NOW = float(calendar.timegm((2026, 11, 21, 15, 0, 0)))
EARLIER_TODAY = float(calendar.timegm((2026, 11, 21, 1, 0, 0)))
EARLIER_MONTH = float(calendar.timegm((2026, 11, 3, 12, 0, 0)))
LAST_MONTH = float(calendar.timegm((2026, 10, 30, 12, 0, 0)))


def _spec(pricing: dict | None = None) -> PoolSpec:  # type: ignore[type-arg]
    return PoolSpec.model_validate(
        {
            "version": 1,
            "providers": [
                {"id": "openai", "models": [{"id": "gpt-4o"}], "keys": [{"env": "K"}],
                 "budget": {"usd_per_day": 5, "usd_per_month": 20}},
                {"id": "backup", "models": [{"id": "gpt-4o"}], "keys": [{"env": "K2"}]},
            ],
            "clients": [
                {"name": "ide", "key_sha256": "c" * 64, "budget": {"tokens_per_day": 1000}}
            ],
            "pricing": pricing or {},
        }
    )  # fmt: skip


def test_budgets_are_seeded_from_the_store(store: UsageStore) -> None:
    snap = Snapshot.build(_spec())
    store.add(record(ts=EARLIER_TODAY, cost_usd=3.0, client="ide", usage=Usage(600, 100)))
    store.add(record(ts=EARLIER_TODAY + 60, cost_usd=2.5, client=None))
    store.add(record(ts=EARLIER_MONTH, cost_usd=10.0, client="ide"))
    store.add(record(ts=LAST_MONTH, cost_usd=100.0, client="ide"))
    store.add(record(ts=EARLIER_TODAY, provider="backup", cost_usd=50.0))
    store.flush()
    rt = Runtime()
    assert seed_ledger(rt.ledger, store, snap, NOW) == 2
    openai = rt.ledger.totals("provider", "openai", NOW)
    assert (openai.usd_day, openai.usd_month) == (pytest.approx(5.5), pytest.approx(15.5))
    assert rt.ledger.totals("client", "ide", NOW).tokens_day == 700 + 175
    decision = route(RouteRequest(model="gpt-4o"), snap, rt, 0.0, NOW)
    assert [c.provider for c in decision.candidates] == ["backup"]
    assert decision.skipped[0].reason is SkipReason.over_budget


def test_reprice_after_a_pricing_change(store: UsageStore) -> None:
    usage = Usage(input=1_000_000, output=100_000)
    store.add(record(ts=EARLIER_TODAY, usage=usage, cost_usd=0.0, pricing_source="default"))
    store.add(record(ts=LAST_MONTH, usage=usage, cost_usd=0.0, pricing_source="default"))
    store.flush()
    snap = Snapshot.build(_spec({"models": [{"match": "gpt-4o", "input": 2, "output": 8}]}))
    assert reprice(store, snap, EARLIER_MONTH, NOW) == 1
    (today,) = store.records(EARLIER_MONTH, NOW)
    assert today.cost_usd == pytest.approx(2.0 + 0.8)
    assert today.pricing_source == "model_exact"
    assert store.total(LAST_MONTH, NOW).cost_usd == pytest.approx(2.8)
