from __future__ import annotations

from pooldaemon.pool import SpendLedger, SpendTotals, budget_problem
from pooldaemon.spec import BudgetSpec

DAY1 = 1_790_000_000.0  # 2026-09-21 UTC
NEXT_DAY = DAY1 + 86_400
NEXT_MONTH = DAY1 + 40 * 86_400


def test_ledger_rolls_over_days_and_months() -> None:
    ledger = SpendLedger()
    ledger.add("provider", "a", 1.5, 100, DAY1)
    ledger.add("provider", "a", 0.5, 50, DAY1 + 60)
    assert ledger.totals("provider", "a", DAY1) == SpendTotals(2.0, 2.0, 150)
    ledger.add("provider", "a", 1.0, 10, NEXT_DAY)
    assert ledger.totals("provider", "a", NEXT_DAY) == SpendTotals(1.0, 3.0, 10)
    assert ledger.totals("provider", "a", NEXT_MONTH) == SpendTotals()
    assert ledger.totals("client", "a", DAY1) == SpendTotals()


def test_seed_and_forget() -> None:
    ledger = SpendLedger()
    ledger.seed("client", "bot", SpendTotals(3.0, 30.0, 999), DAY1)
    assert ledger.totals("client", "bot", DAY1) == SpendTotals(3.0, 30.0, 999)
    ledger.forget("client", "bot")
    assert ledger.totals("client", "bot", DAY1) == SpendTotals()


def test_budget_problem() -> None:
    budget = BudgetSpec(usd_per_day=5, usd_per_month=50, tokens_per_day=1000)
    assert budget_problem(None, SpendTotals(100, 100, 10**9), free=False) is None
    assert budget_problem(budget, SpendTotals(4.99, 10, 999), free=False) is None
    assert "usd_per_day 5 reached" in (
        budget_problem(budget, SpendTotals(5, 10, 0), free=False) or ""
    )
    assert "usd_per_month" in (budget_problem(budget, SpendTotals(1, 50, 0), free=False) or "")
    assert budget_problem(budget, SpendTotals(99, 99, 0), free=True) is None
    assert "tokens_per_day" in (budget_problem(budget, SpendTotals(0, 0, 1000), free=True) or "")
