"""Proxy metrics: names per ARCHITECTURE, values after real traffic, bounded labels."""

from __future__ import annotations

import openai
import pytest
from prometheus_client import CollectorRegistry

from pooldaemon.reconcile._status import ReconcileStatus
from pooldaemon.server._metrics import build_registry
from tests.server.conftest import Gateway, GatewayFactory
from tests.server.fakes import CACHED, USAGE_IN, USAGE_OUT, Fault

HI = [{"role": "user", "content": "hi"}]


def _provider(pid: str, priority: int) -> dict[str, object]:
    return {
        "id": pid,
        "fake": pid,
        "location": "cloud",
        "priority": priority,
        "keys": [{"env": "OPENAI_A_KEY"}],
        "models": [{"id": "gpt-4o"}],
    }


async def _gateway(
    gateway: GatewayFactory, **sections: object
) -> tuple[Gateway, CollectorRegistry]:
    gw = await gateway(**sections)
    return gw, build_registry(ReconcileStatus(), gw.state)


async def test_requests_failovers_tokens_cost_and_cooldowns(gateway: GatewayFactory) -> None:
    gw, registry = await _gateway(
        gateway,
        providers=[_provider("a", 2), _provider("b", 1)],
        cooldown={"failure_threshold": 1},
    )
    gw.fakes["a"].faults.append(Fault(status=500))
    await gw.openai().chat.completions.create(model="gpt-4o", messages=HI)
    value = registry.get_sample_value
    assert (
        value(
            "pooldaemon_requests_total", {"provider": "b", "model": "gpt-4o", "outcome": "success"}
        )
        == 1
    )
    assert value("pooldaemon_failovers_total", {"provider": "a", "reason": "server"}) == 1
    assert value("pooldaemon_cooldowns_total", {"provider": "a", "reason": "server"}) == 1
    assert value("pooldaemon_provider_cooldown", {"provider": "a"}) == 1
    assert value("pooldaemon_provider_cooldown", {"provider": "b"}) == 0
    assert (
        0 < (value("pooldaemon_provider_cooldown_remaining_seconds", {"provider": "a"}) or 0) <= 30
    )
    tokens = {"provider": "b", "model": "gpt-4o"}
    assert value("pooldaemon_tokens_total", {**tokens, "kind": "input"}) == USAGE_IN - CACHED
    assert value("pooldaemon_tokens_total", {**tokens, "kind": "cache_read"}) == CACHED
    assert value("pooldaemon_tokens_total", {**tokens, "kind": "output"}) == USAGE_OUT
    assert (value("pooldaemon_cost_usd_total", tokens) or 0) > 0
    assert value("pooldaemon_request_duration_seconds_count", tokens) == 1
    assert value("pooldaemon_upstream_ttfb_seconds_count", {"provider": "b"}) == 1
    assert value("pooldaemon_overhead_seconds_count") == 1


async def test_unknown_model_names_do_not_grow_the_series(gateway: GatewayFactory) -> None:
    gw, registry = await _gateway(gateway, providers=[_provider("a", 1)])
    client = gw.openai()

    def series() -> int:
        return sum(len(m.samples) for m in registry.collect())

    for i in range(20):
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model=f"warmup-{i}", messages=HI)
    before = series()
    for i in range(1000):
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model=f"no-such-model-{i}", messages=HI)
    assert series() == before
    assert (
        registry.get_sample_value(
            "pooldaemon_requests_total",
            {"provider": "other", "model": "other", "outcome": "unknown_model"},
        )
        == 1020
    )


async def test_providers_available_per_model_counts_those_not_cooling(
    gateway: GatewayFactory,
) -> None:
    only_a = {**_provider("a", 2), "models": [{"id": "gpt-4o"}, {"id": "solo"}]}
    gw, registry = await _gateway(
        gateway,
        providers=[only_a, _provider("b", 1)],
        cooldown={"failure_threshold": 1},
        aliases={"fast": ["a/solo"]},
    )
    value = registry.get_sample_value
    gauge = "pooldaemon_model_providers_available"
    assert value(gauge, {"model": "gpt-4o"}) == 2
    assert value(gauge, {"model": "solo"}) == 1
    assert value(gauge, {"model": "fast"}) == 1
    assert value(gauge, {"model": "a/solo"}) is None  # pinned names: the provider's own alert
    gw.fakes["a"].faults.append(Fault(status=500))
    await gw.openai().chat.completions.create(model="gpt-4o", messages=HI)
    assert value(gauge, {"model": "gpt-4o"}) == 1
    assert value(gauge, {"model": "solo"}) == 0
    assert value(gauge, {"model": "fast"}) == 0
