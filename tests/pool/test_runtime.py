from __future__ import annotations

import pytest

from pooldaemon.pool import Failure, FailureClass, LatencyStats, Runtime, observe
from tests.pool.conftest import provider, snapshot


def _two_keys() -> tuple[Runtime, object]:
    p = provider("a", "m")
    p["keys"] = [{"env": "K1"}, {"env": "K2"}, {"env": "K3", "enabled": False}]
    return Runtime(), snapshot(p).by_id["a"]


def test_keys_rotate_and_disabled_keys_are_never_picked() -> None:
    rt, view = _two_keys()
    picked = [rt.pick_key(view, 0.0).key_id for _ in range(4)]  # type: ignore[arg-type,union-attr]
    k1, k2, _ = view.keys  # type: ignore[attr-defined]
    assert picked == [k1.key_id, k2.key_id, k1.key_id, k2.key_id]


def test_rejected_key_comes_back_after_success_of_its_reprobe() -> None:
    rt, view = _two_keys()
    k1 = view.keys[0]  # type: ignore[attr-defined]
    rt.record_failure(view, Failure(FailureClass.auth, "401"), 0.0, key_id=k1.key_id)  # type: ignore[arg-type]
    assert not rt.key_usable("a", k1, 10.0)
    assert not rt.key_usable("a", k1, 599.0)
    assert rt.key_usable("a", k1, 600.0)  # slow re-probe: after cooldown.max (10m) at the earliest
    events = rt.record_success("a", 601.0, key_id=k1.key_id)
    assert [e.kind for e in events] == ["key_enabled"]
    assert rt.rejected == {}


def test_repeated_rejection_waits_longer() -> None:
    rt, view = _two_keys()
    k1 = view.keys[0]  # type: ignore[attr-defined]
    rt.record_failure(view, Failure(FailureClass.auth), 0.0, key_id=k1.key_id)  # type: ignore[arg-type]
    first = rt.keys[("a", k1.key_id)].until
    rt.record_failure(view, Failure(FailureClass.auth), first, key_id=k1.key_id)  # type: ignore[arg-type]
    assert rt.keys[("a", k1.key_id)].until - first == pytest.approx(2 * first)


def test_provider_without_keys_cools_on_auth_by_policy() -> None:
    view = snapshot(provider("o", "m", keys=[])).by_id["o"]
    rt = Runtime()
    for t in range(3):
        rt.record_failure(view, Failure(FailureClass.auth), float(t))
    assert rt.state("o").until == 2.0 + 30.0


def test_clear_and_forget() -> None:
    rt, view = _two_keys()
    k1 = view.keys[0]  # type: ignore[attr-defined]
    for t in range(3):
        rt.record_failure(view, Failure(FailureClass.server), float(t))  # type: ignore[arg-type]
    rt.record_failure(view, Failure(FailureClass.auth), 0.0, key_id=k1.key_id)  # type: ignore[arg-type]
    rt.record_failure(view, Failure(FailureClass.model_not_found), 0.0, model="m")  # type: ignore[arg-type]
    assert rt.clear("a") is True
    assert rt.providers == {} and rt.keys == {} and rt.excluded == {}
    assert rt.clear("a") is False
    rt.record_success("a", 1.0, latency=0.3)
    rt.ledger.add("provider", "a", 1.0, 1, 1.79e9)
    rt.forget(["a"])
    assert rt.stats("a") == LatencyStats()
    assert rt.ledger.totals("provider", "a", 1.79e9).usd_day == 0


def test_ewma() -> None:
    stats = observe(LatencyStats(), 1.0, 0.5)
    assert (stats.latency, stats.ttfb, stats.samples) == (1.0, 0.5, 1)
    stats = observe(stats, 2.0, None)
    assert stats.latency == pytest.approx(1.2) and stats.ttfb == 0.5 and stats.samples == 2
    assert observe(stats, -1.0, None).latency == stats.latency
