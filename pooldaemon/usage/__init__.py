"""The usage store: one SQLite row per proxied request, summaries and spend.

Writes are buffered and flushed by a background thread; reads (summaries per
provider, model, client or day, totals, budget spend) run beside it.
"""

from __future__ import annotations

from pooldaemon.usage._pool import reprice, seed_ledger
from pooldaemon.usage._records import GroupBy, Spend, UsageRecord, UsageSummary
from pooldaemon.usage._store import UsageStore

__all__ = [
    "GroupBy",
    "Spend",
    "UsageRecord",
    "UsageStore",
    "UsageSummary",
    "reprice",
    "seed_ledger",
]
