"""Where the usage store meets the pool: budgets seeded from it, costs repriced into it."""

from __future__ import annotations

from pooldaemon.pool import Snapshot, SpendLedger, SpendTotals, cost_usd
from pooldaemon.pool._budget import Scope, period_starts
from pooldaemon.usage._records import UsageRecord
from pooldaemon.usage._store import UsageStore

__all__ = ["reprice", "seed_ledger"]


def seed_ledger(ledger: SpendLedger, store: UsageStore, snapshot: Snapshot, wall: float) -> int:
    """Load today's and this month's spend of every budgeted provider and client.

    Called at start and after a reconcile, so budgets hold across restarts.
    Returns how many budgets were seeded.
    """
    day, month = period_starts(wall)
    scopes: list[tuple[Scope, str]] = [
        ("provider", p.id) for p in snapshot.spec.providers if p.budget is not None
    ]
    scopes += [("client", c.name) for c in snapshot.spec.clients if c.budget is not None]
    for scope, ident in scopes:
        who = {scope: ident}
        today = store.spend(day, **who)
        this_month = store.spend(month, **who)
        ledger.seed(scope, ident, SpendTotals(today.usd, this_month.usd, today.tokens), wall)
    return len(scopes)


def reprice(store: UsageStore, snapshot: Snapshot, since: float, until: float) -> int:
    """Recalculate the cost of stored records with the snapshot's prices (the original
    package's ``RecalculateCosts``); returns how many costs changed."""

    def price(record: UsageRecord) -> tuple[float, str]:
        quote = snapshot.quote(record.provider, record.model)
        return cost_usd(record.usage, quote.price), quote.label

    return store.recalculate_costs(since, until, price)
