"""Budgets: spend per provider and per client for the current UTC day and month."""

from __future__ import annotations

import calendar
import functools
import math
import time
from dataclasses import dataclass
from typing import Literal

from pooldaemon.spec import BudgetSpec

__all__ = [
    "Scope",
    "SpendLedger",
    "SpendTotals",
    "budget_problem",
    "period_keys",
    "period_starts",
]

Scope = Literal["provider", "client"]


@dataclass(frozen=True, slots=True)
class SpendTotals:
    usd_day: float = 0.0
    usd_month: float = 0.0
    tokens_day: int = 0


def period_keys(wall: float) -> tuple[str, str]:
    """UTC day and month of a unix time: ('2026-11-21', '2026-11')."""
    return _day_keys(math.floor(wall / 86400))


@functools.lru_cache(maxsize=4)
def _day_keys(day: int) -> tuple[str, str]:  # every request asks: format once a day
    text = time.strftime("%Y-%m-%d", time.gmtime(day * 86400))
    return text, text[:7]


def period_starts(wall: float) -> tuple[float, float]:
    """Unix times at which the UTC day and the UTC month containing ``wall`` began."""
    t = time.gmtime(wall)
    day = float(calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0)))
    month = float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))
    return day, month


def budget_problem(budget: BudgetSpec | None, spent: SpendTotals, *, free: bool) -> str | None:
    """Why a budget is exhausted, or None. A free (e.g. local) model ignores USD limits."""
    if budget is None:
        return None
    if budget.tokens_per_day is not None and spent.tokens_day >= budget.tokens_per_day:
        return f"tokens_per_day {budget.tokens_per_day} reached ({spent.tokens_day} today, UTC)"
    if free:
        return None
    if budget.usd_per_day is not None and spent.usd_day >= budget.usd_per_day:
        return f"usd_per_day {budget.usd_per_day:g} reached ({spent.usd_day:.4f} spent today, UTC)"
    if budget.usd_per_month is not None and spent.usd_month >= budget.usd_per_month:
        return (
            f"usd_per_month {budget.usd_per_month:g} reached "
            f"({spent.usd_month:.4f} spent this month, UTC)"
        )
    return None


class SpendLedger:
    """Running totals, seeded from the usage store at start and added to per request."""

    __slots__ = ("_day", "_month")

    def __init__(self) -> None:
        # (scope, id) -> (period key, usd, tokens)
        self._day: dict[tuple[Scope, str], tuple[str, float, int]] = {}
        self._month: dict[tuple[Scope, str], tuple[str, float]] = {}

    def add(self, scope: Scope, ident: str, usd: float, tokens: int, wall: float) -> None:
        day, month = period_keys(wall)
        key = (scope, ident)
        d = self._day.get(key)
        d_usd, d_tok = (d[1], d[2]) if d and d[0] == day else (0.0, 0)
        self._day[key] = (day, d_usd + usd, d_tok + tokens)
        m = self._month.get(key)
        self._month[key] = (month, (m[1] if m and m[0] == month else 0.0) + usd)

    def seed(self, scope: Scope, ident: str, totals: SpendTotals, wall: float) -> None:
        """Replace the totals of the period containing ``wall`` (from the usage store)."""
        day, month = period_keys(wall)
        self._day[(scope, ident)] = (day, totals.usd_day, totals.tokens_day)
        self._month[(scope, ident)] = (month, totals.usd_month)

    def totals(self, scope: Scope, ident: str, wall: float) -> SpendTotals:
        day, month = period_keys(wall)
        d = self._day.get((scope, ident))
        m = self._month.get((scope, ident))
        return SpendTotals(
            usd_day=d[1] if d and d[0] == day else 0.0,
            usd_month=m[1] if m and m[0] == month else 0.0,
            tokens_day=d[2] if d and d[0] == day else 0,
        )

    def forget(self, scope: Scope, ident: str) -> None:
        self._day.pop((scope, ident), None)
        self._month.pop((scope, ident), None)
