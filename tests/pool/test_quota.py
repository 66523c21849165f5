"""Quotas kept outside the spec (a trial licence): the router skips a held provider
with the quota's reason, the runtime forwards usage, and clearing cooldowns keeps them."""

from __future__ import annotations

from dataclasses import dataclass, field

from pooldaemon.pool import Quota, RouteRequest, Runtime, SkipReason, Usage, route
from tests.pool.conftest import provider, snapshot

WALL = 1_790_000_000.0


@dataclass
class Limit:
    tokens: int
    used: list[tuple[int, float]] = field(default_factory=list)

    def blocked(self, wall: float) -> str | None:
        spent = sum(n for n, _ in self.used)
        return f"{spent} of {self.tokens} tokens used" if spent >= self.tokens else None

    def consume(self, usage: Usage, wall: float) -> None:
        self.used.append((usage.total, wall))


def test_a_held_provider_is_skipped_with_the_reason() -> None:
    snap = snapshot(provider("trial", "m", priority=5), provider("paid", "m"))
    rt = Runtime()
    limit = Limit(100)
    quota: Quota = limit
    rt.quotas["trial"] = quota
    decision = route(RouteRequest(model="m"), snap, rt, 0.0, WALL)
    assert [c.provider for c in decision.candidates] == ["trial", "paid"]
    rt.consume("trial", Usage(input=60, output=30, cache_read=10), WALL)
    rt.consume("paid", Usage(input=1000), WALL)  # no quota: nothing to tell
    assert limit.used == [(100, WALL)]
    decision = route(RouteRequest(model="m"), snap, rt, 0.0, WALL)
    assert [c.provider for c in decision.candidates] == ["paid"]
    skipped = decision.skipped[0]
    assert (skipped.provider, skipped.reason) == ("trial", SkipReason.quota)
    assert skipped.detail == "100 of 100 tokens used"
    assert rt.held("trial", WALL) == skipped.detail and rt.held("paid", WALL) is None
    rt.clear("trial")  # a manual cooldown clear is no way around a quota
    rt.forget(["trial"])
    assert rt.held("trial", WALL) == skipped.detail
