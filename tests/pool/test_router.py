from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pooldaemon.errors import BudgetExceededError, UnknownModelError
from pooldaemon.pool import (
    Failure,
    FailureClass,
    RouteRequest,
    Runtime,
    SkipReason,
    Snapshot,
    route,
)
from tests.pool.conftest import provider, snapshot, spec

WALL = 1_790_000_000.0  # a fixed unix time for budgets


def _route(snap: Snapshot, rt: Runtime, now: float = 100.0, **req: Any) -> Any:
    req.setdefault("model", "m")
    return route(RouteRequest(**req), snap, rt, now, WALL)


def _order(decision: Any) -> list[str]:
    return [c.provider for c in decision.candidates]


def _reasons(decision: Any) -> dict[str, SkipReason]:
    return {s.provider: s.reason for s in decision.skipped}


def _cool(rt: Runtime, snap: Snapshot, pid: str, now: float, times: int = 3) -> None:
    for i in range(times):
        rt.record_failure(snap.by_id[pid], Failure(FailureClass.server), now + i * 0.001)


def test_unknown_model_lists_closest_names() -> None:
    snap = snapshot(provider("a", "gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"))
    with pytest.raises(UnknownModelError) as exc:
        _route(snap, Runtime(), model="gpt4o")
    assert exc.value.suggestions[0] == "gpt-4o"
    assert "gpt-4o" in str(exc.value)
    assert isinstance(exc.value, LookupError)


def test_priority_higher_first_ties_by_latency() -> None:
    snap = snapshot(
        provider("low", "m", priority=1),
        provider("tie-slow", "m", priority=5),
        provider("tie-fast", "m", priority=5),
        provider("high", "m", priority=9),
    )
    rt = Runtime()
    rt.record_success("tie-slow", 0, latency=2.0)
    rt.record_success("tie-fast", 0, latency=0.5)
    assert _order(_route(snap, rt)) == ["high", "tie-fast", "tie-slow", "low"]


def test_cost_picks_the_cheapest_for_the_estimate() -> None:
    pricing = {
        "models": [
            {"match": "m", "provider": "cheap-in", "input": 0.1, "output": 10},
            {"match": "m", "provider": "cheap-out", "input": 5, "output": 0.1},
            {"match": "m", "provider": "mid", "input": 1, "output": 1},
        ]
    }
    snap = snapshot(
        provider("cheap-in", "m"), provider("cheap-out", "m"), provider("mid", "m"),
        pricing=pricing, routing={"strategy": "cost"},
    )  # fmt: skip
    rt = Runtime()
    long_prompt = _route(snap, rt, input_tokens=100_000, output_tokens=10)
    assert _order(long_prompt) == ["cheap-in", "mid", "cheap-out"]
    long_answer = _route(snap, rt, input_tokens=10, output_tokens=100_000)
    assert _order(long_answer) == ["cheap-out", "mid", "cheap-in"]
    assert long_answer.candidates[0].score == pytest.approx((10 * 5 + 100_000 * 0.1) / 1e6)


def test_latency_strategy_uses_ewma_and_ttfb_for_streams() -> None:
    snap = snapshot(provider("a", "m"), provider("b", "m"), provider("new", "m"))
    rt = Runtime()
    rt.record_success("a", 0, latency=1.0, ttfb=0.9)
    rt.record_success("b", 0, latency=0.5, ttfb=2.0)
    assert _order(_route(snap, rt, strategy="latency")) == ["new", "b", "a"]
    assert _order(_route(snap, rt, strategy="latency", stream=True)) == ["new", "a", "b"]


def test_round_robin_is_fair_and_weighted() -> None:
    snap = snapshot(provider("a", "m"), provider("b", "m", weight=2), provider("c", "m"))
    rt = Runtime()
    firsts: Counter[str] = Counter()
    for _ in range(400):
        decision = _route(snap, rt, strategy="round_robin")
        assert sorted(_order(decision)) == ["a", "b", "c"]
        firsts[decision.candidates[0].provider] += 1
        rt.advance("m")
    assert firsts == {"a": 100, "b": 200, "c": 100}


def test_mode_filters_by_location() -> None:
    snap = snapshot(
        provider("cloud", "m"),
        provider("local", "m", base_url="http://127.0.0.1:11434", format="ollama"),
    )
    rt = Runtime()
    assert _order(_route(snap, rt, mode="local")) == ["local"]
    assert _reasons(_route(snap, rt, mode="local")) == {"cloud": SkipReason.location}
    assert _order(_route(snap, rt, mode="cloud")) == ["cloud"]
    assert sorted(_order(_route(snap, rt))) == ["cloud", "local"]


def test_disabled_excluded_and_sticky() -> None:
    snap = snapshot(
        provider("a", "m", priority=3),
        provider("b", "m", priority=2),
        provider("c", "m", priority=1),
        provider("off", "m", enabled=False, priority=9),
    )
    rt = Runtime()
    decision = _route(snap, rt, exclude=frozenset({"a"}), preferred_provider="c")
    assert _order(decision) == ["c", "b"]
    assert _reasons(decision) == {"a": SkipReason.excluded, "off": SkipReason.disabled}


def test_capabilities_filter() -> None:
    snap = snapshot(
        provider("text", models=[{"id": "m", "capabilities": ["chat", "streaming"]}]),
        provider("vision", models=[{"id": "m", "capabilities": ["chat", "vision", "tools"]}]),
        provider("unknown", allow_models=["m"]),  # nothing known: assumed capable
    )
    decision = _route(snap, Runtime(), capabilities=frozenset({"vision", "tools"}))
    assert _order(decision) == ["vision", "unknown"]
    assert decision.skipped[0].reason is SkipReason.capability
    assert "tools, vision" in decision.skipped[0].detail


def test_cooling_provider_is_skipped_then_half_open() -> None:
    snap = snapshot(provider("a", "m", priority=2), provider("b", "m", priority=1))
    rt = Runtime()
    _cool(rt, snap, "a", now=0.0)
    cooling = _route(snap, rt, now=10.0)
    assert _order(cooling) == ["b"] and _reasons(cooling) == {"a": SkipReason.cooling}
    after = _route(snap, rt, now=31.0)
    assert _order(after) == ["a", "b"] and after.candidates[0].half_open
    rt.begin_probe("a", 31.0)
    assert _order(_route(snap, rt, now=31.5)) == ["b"]  # one probe at a time


def test_all_cooling_fail_gives_retry_after() -> None:
    snap = snapshot(provider("a", "m"), provider("b", "m"))
    rt = Runtime()
    _cool(rt, snap, "a", now=0.0)
    _cool(rt, snap, "b", now=5.0)
    decision = _route(snap, rt, now=10.0)
    assert decision.candidates == ()
    assert decision.retry_after == pytest.approx(20.0, abs=0.01)


def test_all_cooling_earliest_probes_the_first_to_recover() -> None:
    snap = snapshot(
        provider("a", "m"), provider("b", "m"), routing={"when_all_cooling": "earliest"}
    )
    rt = Runtime()
    _cool(rt, snap, "a", now=5.0)
    _cool(rt, snap, "b", now=0.0)
    decision = _route(snap, rt, now=10.0)
    assert _order(decision) == ["b"] and decision.candidates[0].half_open
    assert decision.retry_after is None


def test_client_allowlist() -> None:
    snap = snapshot(
        provider("a", "gpt-4o", "o3"),
        clients=[{"name": "bot", "key_sha256": "a" * 64, "allow_models": ["gpt-*"]}],
    )
    rt = Runtime()
    assert _order(_route(snap, rt, model="gpt-4o", client="bot")) == ["a"]
    decision = _route(snap, rt, model="o3", client="bot")
    assert decision.candidates == ()
    assert _reasons(decision) == {"a": SkipReason.client_not_allowed}


def test_client_over_budget_is_refused_clearly() -> None:
    snap = snapshot(
        provider("a", "m"),
        clients=[{"name": "bot", "key_sha256": "a" * 64, "budget": {"usd_per_day": 1.0}}],
    )
    rt = Runtime()
    rt.ledger.add("client", "bot", 1.5, 100, WALL)
    with pytest.raises(BudgetExceededError, match=r"client 'bot' is over budget: usd_per_day 1"):
        _route(snap, rt, client="bot")
    assert _order(_route(snap, rt, client=None)) == ["a"]


def test_provider_over_budget_but_free_models_still_route() -> None:
    snap = snapshot(
        provider("paid", "m", budget={"usd_per_day": 2.0}),
        provider("local", "m", base_url="http://127.0.0.1:1", budget={"usd_per_day": 2.0}),
        pricing={"models": [{"match": "m", "provider": "paid", "input": 1, "output": 2}]},
    )
    rt = Runtime()
    rt.ledger.add("provider", "paid", 2.0, 10, WALL)
    rt.ledger.add("provider", "local", 2.0, 10, WALL)
    decision = _route(snap, rt)
    assert _order(decision) == ["local"]  # a local model is free: USD budgets do not apply
    assert _reasons(decision) == {"paid": SkipReason.over_budget}
    assert "usd_per_day 2 reached" in decision.skipped[0].detail


def test_model_not_found_excludes_the_pair_until_the_catalog_changes() -> None:
    base = spec(providers=[provider("a", "m", "n"), provider("b", "m")])
    snap = Snapshot.build(base)
    rt = Runtime()
    rt.record_failure(snap.by_id["a"], Failure(FailureClass.model_not_found), 0.0, model="m")
    assert _order(_route(snap, rt)) == ["b"]
    assert _reasons(_route(snap, rt)) == {"a": SkipReason.model_unavailable}
    assert _order(_route(snap, rt, model="n")) == ["a"]  # the provider itself is fine
    refreshed = Snapshot.build(base, generations={"a": 1})
    assert _order(_route(refreshed, rt)) == ["a", "b"]


def test_rejected_keys_then_no_key() -> None:
    p = provider("a", "m")
    p["keys"] = [{"env": "K1"}, {"env": "K2"}]
    snap = snapshot(p, provider("b", "m"))
    rt = Runtime()
    view = snap.by_id["a"]
    k1, k2 = view.keys
    events = rt.record_failure(view, Failure(FailureClass.auth), 0.0, key_id=k1.key_id)
    assert [e.kind for e in events] == ["key_disabled"]
    assert rt.pick_key(view, 1.0) == k2 and rt.pick_key(view, 1.0) == k2
    assert _order(_route(snap, rt, now=1.0)) == ["a", "b"]
    events = rt.record_failure(view, Failure(FailureClass.auth), 2.0, key_id=k2.key_id)
    assert [e.kind for e in events] == ["key_disabled", "opened"]
    decision = _route(snap, rt, now=3.0)
    assert _order(decision) == ["b"]
    assert _reasons(decision)["a"] in (SkipReason.no_key, SkipReason.cooling)


def test_decision_attempts_respect_max_attempts() -> None:
    snap = snapshot(*(provider(f"p{i}", "m") for i in range(5)), routing={"max_attempts": 2})
    decision = _route(snap, Runtime())
    assert len(decision.candidates) == 5 and len(decision.attempts) == 2


# -- properties ----------------------------------------------------------------


@st.composite
def pools(draw: st.DrawFn) -> tuple[Snapshot, Runtime, RouteRequest, float]:
    n = draw(st.integers(1, 8))
    providers = []
    for i in range(n):
        local = draw(st.booleans())
        providers.append(
            provider(
                f"p{i}",
                *draw(st.lists(st.sampled_from(["m", "x"]), min_size=1, max_size=2, unique=True)),
                priority=draw(st.integers(-3, 3)),
                enabled=draw(st.booleans()),
                base_url="http://127.0.0.1:9" if local else f"https://p{i}.example/v1",
            )
        )
    snap = snapshot(
        *providers,
        routing={
            "when_all_cooling": draw(st.sampled_from(["fail", "earliest"])),
            "strategy": draw(st.sampled_from(["priority", "cost", "latency", "round_robin"])),
        },
        clients=[{"name": "c", "key_sha256": "b" * 64, "allow_models": ["x"]}],
    )
    rt = Runtime()
    now = 1000.0
    for i in range(n):
        for _ in range(draw(st.integers(0, 4))):
            t = draw(st.floats(now - 200, now))
            rt.record_failure(snap.by_id[f"p{i}"], Failure(FailureClass.server), t)
        if draw(st.booleans()):
            rt.record_success(f"p{i}", now, latency=draw(st.floats(0.01, 5)))
    request = RouteRequest(
        model=draw(st.sampled_from(["m", "x"])),
        mode=draw(st.sampled_from(["auto", "cloud", "local"])),
        exclude=frozenset(draw(st.lists(st.sampled_from([f"p{i}" for i in range(n)])))),
        client=draw(st.sampled_from([None, "c"])),
    )
    return snap, rt, request, now


@settings(max_examples=300, deadline=None)
@given(pools())
def test_router_never_returns_a_provider_it_must_leave_out(
    pool: tuple[Snapshot, Runtime, RouteRequest, float],
) -> None:
    snap, rt, request, now = pool
    try:
        decision = route(request, snap, rt, now, WALL)
    except UnknownModelError:
        assert not any(request.model in p.models for p in snap.providers)
        return
    chosen = [c.provider for c in decision.candidates]
    assert len(chosen) == len(set(chosen))
    for c in decision.candidates:
        view = snap.by_id[c.provider]
        assert view.spec.enabled
        assert request.mode in ("auto", None) or view.location == request.mode
        assert c.provider not in request.exclude
        assert request.client is None or c.model == "x"
        cooling = rt.phase(c.provider, now).value in ("open", "probing")
        if cooling:
            assert c.half_open and snap.spec.routing.when_all_cooling == "earliest"
            assert len(decision.candidates) == 1
    # Every provider serving the model is accounted for, once.
    serving = {t.provider.id for t in snap.resolve(request.model)}
    assert set(chosen) | {s.provider for s in decision.skipped} == serving
    assert not set(chosen) & {s.provider for s in decision.skipped}
    if snap.spec.routing.strategy == "priority" and request.client is None:
        priorities = [snap.by_id[p].spec.priority for p in chosen]
        assert priorities == sorted(priorities, reverse=True)
    if snap.spec.routing.strategy == "cost":
        costs = [c.score for c in decision.candidates]
        assert costs == sorted(costs)  # the cheapest first
    if decision.retry_after is not None:
        assert decision.candidates == () and decision.retry_after >= 0
