"""The reconcile plan: a pure diff of the applied spec against the desired spec.

Hand-written cases for each kind of change, the redaction of secrets, the
runtime-reset rules, the ``pooldaemon plan`` command, and the property that
applying the plan of A -> B to A's state is the same as starting from B.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pooldaemon.cli import main
from pooldaemon.pool import Failure, FailureClass, ProviderView, Runtime, Snapshot
from pooldaemon.reconcile import RESET_FIELDS, Plan, ProviderChange, key_label, plan
from pooldaemon.reconcile._plan import display_hash as _display_hash
from pooldaemon.server._replies import display_hash
from pooldaemon.spec import KeySpec, PoolSpec, ProviderSpec
from tests.spec.test_properties import (
    _key_source,
    durations,
    globs,
    ids,
    keys,
    model_ids,
    names,
    ordered_durations,
    price,
    prices,
    providers,
    specs,
    text,
)

ROOT = Path(__file__).parents[2]
SECRET = "sk-live-SECRET-123456789"
SEALED = "ENC[v1:c2VhbGVkLWtleS1ib2R5LW9uZQ:bm9uY2U]"
CLIENT_HASH = "ab" * 32
LICENCE = (
    base64.urlsafe_b64encode(b'{"sub": "acme", "until": "2027-01-01"}').decode().rstrip("=")
    + ".c2lnbmF0dXJl"
)


def spec(**sections: Any) -> PoolSpec:
    return PoolSpec.model_validate({"version": 1, **sections})


def provider(pid: str, **fields: Any) -> dict[str, Any]:
    return {"id": pid, "base_url": f"https://{pid}.example.com/v1", **fields}


def rendered(p: Plan) -> str:
    """Everything a plan shows anywhere: log line, CLI lines, admin JSON."""
    return "\n".join([p.summary(), *p.lines(), json.dumps(p.to_json())])


# -- providers ---------------------------------------------------------------


def test_no_applied_spec_is_an_empty_pool() -> None:
    desired = spec(providers=[provider("b"), provider("a")], aliases={"x": ["a/m"]})
    p = plan(None, desired)
    assert p.providers_added == ("a", "b") and p.aliases_added == ("x",)
    assert p == plan(PoolSpec(version=1), desired)
    assert plan(None, PoolSpec(version=1)).empty
    # Sections are compared with their defaults: only what the file changes shows.
    assert plan(None, spec(routing={"strategy": "priority"})).empty
    assert plan(None, spec(routing={"strategy": "cost"})).routing_changed == ("strategy",)


def test_same_spec_plans_nothing() -> None:
    s = spec(providers=[provider("a", keys=[{"value": SECRET}])], routing={"mode": "cloud"})
    p = plan(s, spec(**s.model_dump()))
    assert p.empty and p == Plan()
    assert p.summary() == "no changes"
    assert p.lines() == ["no changes"]
    assert p.to_json()["empty"] is True
    assert p.providers_to_reset() == frozenset()


def test_providers_added_and_removed() -> None:
    p = plan(spec(providers=[provider("a"), provider("b")]), spec(providers=[provider("c")]))
    assert (p.providers_added, p.providers_removed, p.providers_changed) == (("c",), ("a", "b"), ())
    assert p.lines() == ["- provider a", "- provider b", "+ provider c"]
    assert p.summary() == "+1 provider (c); -2 providers (a, b)"


def test_fields_that_keep_runtime_state() -> None:
    old = provider("a", priority=1, models=[{"id": "m1"}])
    new = provider(
        "a",
        priority=5,
        weight=3,
        enabled=False,
        allow_models=["m*"],
        models=[{"id": "m1"}, {"id": "m2"}],
        headers={"X-Team": "ml"},
        timeout="30s",
        model_params={"temperature": 0.2},
    )
    (change,) = plan(spec(providers=[old]), spec(providers=[new])).providers_changed
    assert change == ProviderChange(
        "a",
        (
            "enabled",
            "priority",
            "weight",
            "allow_models",
            "models",
            "headers",
            "timeout",
            "first_byte_timeout",  # capped by the shorter timeout
            "model_params",
        ),
    )
    assert not change.reset_state


@pytest.mark.parametrize(
    ("old", "new", "fields"),
    [
        ({}, {"base_url": "https://other.example.com/v1"}, ("base_url",)),
        ({}, {"alternate_base_urls": ["https://b.example.com"]}, ("alternate_base_urls",)),
        ({"format": "openai"}, {"format": "responses"}, ("format",)),
        ({"format": "google"}, {"format": "google", "api_version": "v1"}, ("api_version",)),
        ({"keys": [{"env": "K1"}]}, {"keys": [{"env": "K2"}]}, ("keys",)),
        ({"keys": [{"env": "K1"}]}, {"keys": [{"env": "K1", "enabled": False}]}, ("keys",)),
    ],
)  # fmt: skip
def test_endpoint_and_key_changes_reset_runtime_state(
    old: dict[str, Any], new: dict[str, Any], fields: tuple[str, ...]
) -> None:
    (change,) = plan(
        spec(providers=[provider("a", **old)]), spec(providers=[provider("a", **new)])
    ).providers_changed
    assert change.fields == fields and change.reset_state
    assert set(fields) <= RESET_FIELDS


def test_format_change_moves_the_default_base_url_too() -> None:
    old = spec(providers=[{"id": "a", "format": "openai"}])
    (change,) = plan(old, spec(providers=[{"id": "a", "format": "anthropic"}])).providers_changed
    assert change.fields == ("format", "base_url") and change.reset_state


def test_key_rotation_shows_safe_labels() -> None:
    old = provider(
        "anthropic",
        keys=[
            {"value": "sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaaxyz9"},
            {"file": "/etc/pooldaemon/a.key"},
            {"credential": "anthropic-backup", "label": "backup"},
            {"env": "KEEP"},
        ],
    )
    new = provider(
        "anthropic",
        keys=[
            {"env": "KEEP", "label": "main"},
            {"env": "ANTHROPIC_KEY_2"},
            {"value": SEALED},
            {"credential": "anthropic-backup", "label": "backup"},
        ],
    )
    p = plan(spec(providers=[old]), spec(providers=[new]))
    (change,) = p.providers_changed
    assert change.keys_added == ("env:ANTHROPIC_KEY_2", "value:ENC[v1:c...Y2U]")
    assert change.keys_removed == ("value:sk-ant-a...xyz9", "file:/etc/pooldaemon/a.key")
    assert change.keys_changed == ("main",)  # same source, new label
    assert p.lines() == [
        "~ provider anthropic: keys (+ env:ANTHROPIC_KEY_2, + value:ENC[v1:c...Y2U], "
        "- value:sk-ant-a...xyz9, - file:/etc/pooldaemon/a.key, ~ main) [state reset]"
    ]
    assert p.summary() == "~1 provider (anthropic: keys +2 -2 ~1 [reset])"


def test_key_order_alone_is_a_change() -> None:
    one, two = {"env": "K1"}, {"env": "K2"}
    p = plan(
        spec(providers=[provider("a", keys=[one, two])]),
        spec(providers=[provider("a", keys=[two, one])]),
    )
    assert p.lines() == ["~ provider a: keys (reordered) [state reset]"]
    assert p.summary() == "~1 provider (a: keys [reset])"


def test_key_label_prefers_the_label_and_hides_values() -> None:
    assert key_label(KeySpec(env="OPENAI_API_KEY")) == "env:OPENAI_API_KEY"
    assert key_label(KeySpec(env="OPENAI_API_KEY", label="main")) == "main"
    assert key_label(KeySpec(file="keys/a.key")) == "file:keys/a.key"
    assert key_label(KeySpec(credential="openai")) == "credential:openai"
    assert key_label(KeySpec(value=SECRET)) == "value:sk-live-...6789"
    assert key_label(KeySpec(value="short-123")) == "value:...23"
    assert key_label(KeySpec(value="abc")) == "value:..."


@pytest.mark.parametrize("length", range(25))
def test_display_hash_is_the_proxys(length: int) -> None:
    secret = "".join(chr(ord("a") + i % 26) for i in range(length))
    assert _display_hash(secret) == display_hash(secret)


def test_provider_order() -> None:
    a, b, c = provider("a"), provider("b"), provider("c")
    p = plan(spec(providers=[a, b]), spec(providers=[b, a]))
    assert p.reordered == ("providers",) and not p.providers_changed
    assert p.lines() == ["~ order of providers"]
    assert p.summary() == "order: providers"
    assert p.providers_to_reset() == frozenset()
    # A provider added in front moves the others' positions, not their order.
    p = plan(spec(providers=[a, b]), spec(providers=[c, a, b]))
    assert p.reordered == () and p.providers_added == ("c",)


def test_providers_to_reset() -> None:
    old = spec(
        providers=[
            provider("gone", keys=[{"value": SECRET}]),
            provider("moved"),
            provider("rekeyed", keys=[{"env": "K1"}]),
            provider("tuned"),
            provider("same"),
        ]
    )
    new = spec(
        providers=[
            provider("moved", base_url="https://new.example.com/v1"),
            provider("rekeyed", keys=[{"env": "K2"}]),
            provider("tuned", priority=9),
            provider("same"),
            provider("new"),
        ]
    )
    p = plan(old, new)
    assert p.providers_to_reset() == {"gone", "moved", "rekeyed"}
    assert [(c.id, c.reset_state) for c in p.providers_changed] == [
        ("moved", True),
        ("rekeyed", True),
        ("tuned", False),
    ]
    assert p.to_json()["providers"] == {
        "added": ["new"],
        "removed": ["gone"],
        "changed": [c.to_json() for c in p.providers_changed],
        "reset": ["gone", "moved", "rekeyed"],
    }


# -- aliases, clients, sections ------------------------------------------------


def test_aliases() -> None:
    ps = [provider("a"), provider("b")]
    old = spec(providers=ps, aliases={"fast": ["a/m"], "smart": ["b/m"], "old": ["m"]})
    new = spec(providers=ps, aliases={"fast": ["a/m"], "smart": ["a/m", "b/m"], "cheap": ["a/x"]})
    p = plan(old, new)
    assert (p.aliases_added, p.aliases_removed, p.aliases_changed) == (
        ("cheap",),
        ("old",),
        ("smart",),
    )
    assert p.lines() == ["+ alias cheap", "- alias old", "~ alias smart"]
    assert p.summary() == "aliases +1 ~1 -1"


def test_clients_by_name_never_by_hash() -> None:
    def client(name: str, digest: str, **fields: Any) -> dict[str, Any]:
        return {"name": name, "key_sha256": digest, **fields}

    old = spec(
        clients=[client("laptop", CLIENT_HASH), client("ci", "cd" * 32), client("bot", "ef" * 32)]
    )
    new = spec(
        clients=[
            client("ci", "12" * 32),
            client("laptop", CLIENT_HASH, allow_models=["fast"]),
            client("phone", "34" * 32),
        ]
    )
    p = plan(old, new)
    assert (p.clients_added, p.clients_removed, p.clients_changed) == (
        ("phone",),
        ("bot",),
        ("ci", "laptop"),
    )
    assert p.reordered == ("clients",)
    assert p.lines() == [
        "~ order of clients",
        "- client bot",
        "~ client ci",
        "~ client laptop",
        "+ client phone",
    ]
    assert p.summary() == "order: clients; clients +1 ~2 -1"
    out = rendered(p)
    for digest in (CLIENT_HASH, "cd" * 32, "12" * 32, "34" * 32, "ef" * 32):
        assert digest not in out and digest[:16] not in out


def test_sections_name_the_fields_that_changed() -> None:
    old = spec()
    new = spec(
        routing={"strategy": "latency", "max_attempts": 2},
        cooldown={"multiplier": 3.0, "transient": {"max": "2m"}},
        pricing={"default": {"input": 1.0}, "models": [{"match": "gpt-*", "input": 2.0}]},
        catalog={"probe": True},
        usage={"retention": "30d"},
    )
    p = plan(old, new)
    assert p.routing_changed == ("strategy", "max_attempts")
    assert p.cooldown_changed == ("multiplier", "transient.max")
    assert p.pricing_changed == ("default.input", "models")
    assert (p.catalog_changed, p.usage_changed, p.trial_changed) == (
        ("probe",),
        ("retention",),
        False,
    )
    assert p.lines() == [
        "~ routing: strategy, max_attempts",
        "~ cooldown: multiplier, transient.max",
        "~ pricing: default.input, models",
        "~ catalog: probe",
        "~ usage: retention",
    ]
    assert p.summary() == (
        "routing: strategy, max_attempts; cooldown: multiplier, transient.max; "
        "pricing: default.input, models; catalog: probe; usage: retention"
    )


def test_trial_licence_is_only_said_to_change() -> None:
    with_trial = spec(trial={"licence": LICENCE})
    for old, new in ((spec(), with_trial), (with_trial, spec())):
        p = plan(old, new)
        assert p.trial_changed and p.lines() == ["~ trial: licence changed"]
        assert LICENCE not in rendered(p) and LICENCE.split(".")[0][:12] not in rendered(p)
    assert plan(with_trial, spec(trial={"licence": LICENCE})).empty


def test_plan_covers_every_section_of_the_spec() -> None:
    # A new PoolSpec field must get its place in the plan (else plan(a, b) could be empty
    # for a != b); update plan() and this list together.
    assert set(PoolSpec.model_fields) == {
        "version", "routing", "cooldown", "pricing", "catalog", "usage",
        "providers", "aliases", "clients", "trial",
    }  # fmt: skip


# -- secrets and output shapes ------------------------------------------------------


def test_secrets_never_appear_in_a_plan() -> None:
    keyed = provider("a", keys=[{"value": SECRET}, {"value": SEALED, "enabled": False}])
    cases = [
        (None, spec(providers=[keyed])),
        (spec(providers=[keyed]), spec()),
        (spec(providers=[keyed]), spec(providers=[provider("a")])),
        (spec(providers=[provider("a")]), spec(providers=[keyed])),
        (
            spec(providers=[keyed]),
            spec(providers=[{**keyed, "keys": [{"value": SECRET, "label": "x"}]}]),
        ),
    ]
    for old, new in cases:
        out = rendered(plan(old, new))
        assert SECRET not in out and SEALED not in out
        assert "SECRET-1234" not in out
    removed = rendered(plan(spec(providers=[provider("a")]), spec(providers=[keyed])))
    assert "value:sk-live-...6789" in removed and "value:ENC[v1:c...Y2U]" in removed


def test_summary_and_lines_of_a_mixed_plan() -> None:
    old = spec(
        providers=[
            provider("anthropic", priority=1, keys=[{"value": "sk-ant-a" + "b" * 20 + "xyz9"}]),
            provider("legacy"),
        ],
        aliases={"smart": ["anthropic/claude"]},
    )
    new = spec(
        providers=[
            provider("anthropic", priority=2, keys=[{"env": "ANTHROPIC_KEY_2"}]),
            provider("openai"),
            provider("ollama", base_url="http://127.0.0.1:11434", format="ollama"),
        ],
        aliases={"smart": ["anthropic/claude"], "fast": ["ollama/llama3.2"]},
        routing={"strategy": "cost"},
    )
    p = plan(old, new)
    assert p.summary() == (
        "+2 providers (ollama, openai); ~1 provider (anthropic: priority, keys +1 -1 [reset]); "
        "-1 provider (legacy); aliases +1; routing: strategy"
    )
    assert p.lines() == [
        "~ provider anthropic: priority, keys (+ env:ANTHROPIC_KEY_2, - value:sk-ant-a...xyz9) "
        "[state reset]",
        "- provider legacy",
        "+ provider ollama",
        "+ provider openai",
        "+ alias fast",
        "~ routing: strategy",
    ]


def test_summary_stays_one_short_line() -> None:
    many = [provider(f"p{i:02d}") for i in range(20)]
    p = plan(None, spec(providers=many))
    assert p.summary() == "+20 providers (p00, p01, p02, p03, p04, p05, p06, p07, +12 more)"
    p = plan(spec(providers=many), spec(providers=[{**m, "priority": 1} for m in many]))
    assert p.summary().endswith("; p07: priority; +12 more)")
    assert "\n" not in p.summary() and len(p.lines()) == 20


def test_json_round_trips() -> None:
    old = spec(
        providers=[provider("a", keys=[{"env": "K"}]), provider("b")],
        clients=[{"name": "c", "key_sha256": CLIENT_HASH}],
    )
    new = spec(
        providers=[provider("a", keys=[{"value": SECRET}]), provider("c")],
        routing={"mode": "local"},
        trial={"licence": LICENCE},
    )
    p = plan(old, new)
    data = json.loads(json.dumps(p.to_json()))
    assert Plan.from_json(data) == p
    assert data["summary"] == p.summary() and data["empty"] is False
    assert Plan.from_json({}) == Plan() == Plan.from_json(Plan().to_json())


@pytest.mark.parametrize(
    "data",
    [
        {"providers": []},
        {"providers": {"added": "a"}},
        {"providers": {"changed": [{"fields": []}]}},
        {"providers": {"changed": {}}},
        {"routing": [1]},
        {"trial": "yes"},
    ],
)
def test_from_json_refuses_other_shapes(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Plan.from_json(data)


# -- property: applying plan(A, B) to A's state is starting from B -------------------


WALL = 1.79e9  # a fixed wall-clock time for the spend ledger


def provider_fingerprint(view: ProviderView) -> tuple[object, ...]:
    """A provider view by value, without its position in the list."""
    return (
        view.id,
        view.spec,
        tuple((k.key_id, k.index, k.label, k.source, k.enabled, k.spec) for k in view.keys),
        dict(view.models),
        view.allow.pattern if view.allow else None,
        view.catalog_generation,
        view.location,
        view.any_key_enabled,
        view.catalog_known,
    )


def snapshot_fingerprint(snap: Snapshot) -> tuple[object, ...]:
    """Everything routing reads from a snapshot, by value."""
    return (
        snap.spec,
        tuple((v.index, provider_fingerprint(v)) for v in snap.providers),
        {
            name: tuple((t.provider.id, t.model, t.info, t.quote) for t in targets)
            for name, targets in snap.index.items()
        },
        dict(snap.aliases),
        snap.names,
        tuple(v.id for v in snap.wildcards),
    )


def seed_state(runtime: Runtime, snap: Snapshot) -> None:
    """Some of every kind of runtime state, for every provider."""
    now = 1000.0
    for view in snap.providers:
        runtime.record_success(view.id, now, latency=0.4, ttfb=0.1)
        for _ in range(runtime.policy.failure_threshold):
            runtime.record_failure(view, Failure(FailureClass.server, "500"), now)
        runtime.record_failure(view, Failure(FailureClass.model_not_found), now, model="gone-model")
        if view.keys:
            key = view.keys[0].key_id
            runtime.record_failure(view, Failure(FailureClass.auth, "401"), now, key_id=key)
        runtime.key_cursor[view.id] = 1
        runtime.ledger.add("provider", view.id, 0.25, 100, WALL)


def state_of(runtime: Runtime, pid: str) -> tuple[object, ...]:
    return (
        runtime.providers.get(pid),
        sorted((k[1], v.until) for k, v in runtime.keys.items() if k[0] == pid),
        runtime.rejected.get(pid),
        sorted(m for p, m in runtime.excluded if p == pid),
        runtime.latency.get(pid),
        runtime.key_cursor.get(pid),
        runtime.ledger.totals("provider", pid, WALL),
    )


NO_STATE = state_of(Runtime(), "none")


def check_plan(a: PoolSpec, b: PoolSpec) -> None:
    p = plan(a, b)
    assert plan(a, a).empty and plan(b, b).empty
    assert p.empty == (a == b)
    assert Plan.from_json(json.loads(json.dumps(p.to_json()))) == p
    check_sections(p, a, b)

    # Apply: drop the state the plan resets; a no-op plan keeps the applied snapshot.
    snap_a = Snapshot.build(a)
    runtime = Runtime()
    seed_state(runtime, snap_a)
    before = {v.id: state_of(runtime, v.id) for v in snap_a.providers}
    runtime.forget(p.providers_to_reset())
    fresh = Snapshot.build(b)
    applied = snap_a if p.empty else Snapshot.build(b)

    # (1) The same snapshot as building B directly.
    assert snapshot_fingerprint(applied) == snapshot_fingerprint(fresh)

    # (2) State survives exactly for kept providers, and is still about the same keys.
    changed = {c.id: c for c in p.providers_changed}
    ids_a, ids_b = {v.id for v in snap_a.providers}, set(fresh.by_id)
    assert set(p.providers_added) == ids_b - ids_a
    assert set(p.providers_removed) == ids_a - ids_b
    for pid in ids_a | ids_b:
        kept = pid in ids_a and pid in ids_b and pid not in p.providers_to_reset()
        assert state_of(runtime, pid) == (before[pid] if kept else NO_STATE), pid
        if pid in ids_a and pid in ids_b and pid not in changed:  # unchanged: really
            assert provider_fingerprint(snap_a.by_id[pid]) == provider_fingerprint(fresh.by_id[pid])
        if kept:
            old, new = snap_a.by_id[pid], fresh.by_id[pid]
            assert old.keys == new.keys and old.spec.base_url == new.spec.base_url
            assert {k for p_, k in runtime.keys if p_ == pid} <= {k.key_id for k in new.keys}

    # The reverse plan mirrors this one.
    back = plan(b, a)
    assert (back.providers_added, back.providers_removed) == (
        p.providers_removed,
        p.providers_added,
    )
    assert [(c.id, c.fields, c.reset_state) for c in back.providers_changed] == [
        (c.id, c.fields, c.reset_state) for c in p.providers_changed
    ]

    # No inline key value shows anywhere (short ones could occur in other text by chance).
    out = rendered(p) + rendered(back)
    visible = json.dumps([a.model_dump(mode="json", exclude={"providers"}), [
        [k.label, k.env, k.file, k.credential, pr.id, pr.name] for s in (a, b)
        for pr in s.providers for k in pr.keys
    ]])  # fmt: skip
    for s in (a, b):
        for pr in s.providers:
            for k in pr.keys:
                if k.value and len(k.value) >= 10 and k.value not in visible:
                    assert k.value not in out
        for client in s.clients:
            assert client.key_sha256 not in out


def check_sections(p: Plan, a: PoolSpec, b: PoolSpec) -> None:
    """Each part of the plan is empty exactly when its part of the spec is equal
    (so one missed change cannot hide behind another)."""
    providers_moved = p.providers_added or p.providers_removed or p.providers_changed
    assert (a.providers == b.providers) != bool(providers_moved or "providers" in p.reordered)
    assert (a.aliases == b.aliases) != bool(p.aliases_added + p.aliases_removed + p.aliases_changed)
    clients_moved = p.clients_added + p.clients_removed + p.clients_changed
    assert (a.clients == b.clients) != bool(clients_moved or "clients" in p.reordered)
    for name in ("routing", "cooldown", "pricing", "catalog", "usage"):
        assert (getattr(a, name) == getattr(b, name)) != bool(getattr(p, f"{name}_changed"))
    assert (a.trial == b.trial) != p.trial_changed
    for change in p.providers_changed:
        old, new = a.provider(change.id), b.provider(change.id)
        assert old is not None and new is not None
        differ = {f for f in ProviderSpec.model_fields if getattr(old, f) != getattr(new, f)}
        assert set(change.fields) == differ
        endpoint = {"base_url", "alternate_base_urls", "format", "api_version", "keys"}
        assert change.reset_state == bool(differ & endpoint)


Doc = dict[str, Any]
Edit = Callable[[st.DrawFn, Doc], None]
routing = st.fixed_dictionaries(
    {},
    optional={
        "mode": st.sampled_from(["auto", "cloud", "local"]),
        "strategy": st.sampled_from(["priority", "cost", "latency", "round_robin"]),
        "max_attempts": st.integers(1, 20),
        "when_all_cooling": st.sampled_from(["fail", "earliest"]),
        "sticky": st.booleans(),
    },
)
urls = st.sampled_from(["https://relay.example.com/v1", "http://10.1.2.3:8080", "https://x.lan"])
# Fields an edit redraws; hypothesis favours the first entries, so the busiest come first.
TUNING_FIELDS = [
    "priority", "models", "allow_models", "enabled", "weight", "name", "location", "tls_verify",
    "headers", "timeout", "rate_limit", "budget", "model_params",
]  # fmt: skip


def _pids(doc: Doc) -> list[str]:
    return [p["id"] for p in doc["providers"]]


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name += "x"
    return name


def _pick(draw: st.DrawFn, items: list[Any]) -> int:
    return draw(st.integers(0, len(items) - 1))


def remove_provider(draw: st.DrawFn, doc: Doc) -> None:
    pid = doc["providers"].pop(_pick(draw, doc["providers"]))["id"]
    for name, targets in list(doc.get("aliases", {}).items()):
        doc["aliases"][name] = [t for t in targets if t.partition("/")[0] != pid]
        if not doc["aliases"][name]:
            del doc["aliases"][name]
    doc["pricing"]["models"] = [e for e in doc["pricing"]["models"] if e.get("provider") != pid]


def add_provider(draw: st.DrawFn, doc: Doc) -> None:
    pid = _unique(draw(ids), {*_pids(doc), *doc.get("aliases", {})})
    doc["providers"].insert(draw(st.integers(0, len(doc["providers"]))), draw(providers(pid)))


def change_endpoint(draw: st.DrawFn, doc: Doc) -> None:
    """base_url, format, api_version or alternate URLs: the provider's state must reset."""
    p = doc["providers"][_pick(draw, doc["providers"])]
    field = draw(st.sampled_from(["base_url", "format", "api_version", "alternate_base_urls"]))
    if field == "base_url":
        p["base_url"] = draw(urls)
    elif field == "format":
        p["format"] = draw(st.sampled_from(["anthropic", "openai", "google", "ollama", "auto"]))
        if p["format"] == "auto":
            p.setdefault("base_url", draw(urls))
    elif field == "api_version":
        p["api_version"] = draw(st.sampled_from(["v1", "v1beta", "2023-06-01"]))
    else:
        p["alternate_base_urls"] = draw(st.lists(urls, min_size=1, max_size=2))


def change_tuning(draw: st.DrawFn, doc: Doc) -> None:
    """Any other field, redrawn (or dropped back to its default): the state stays."""
    p = doc["providers"][_pick(draw, doc["providers"])]
    before = copy.deepcopy(p)
    for _ in range(3):  # a redrawn value is often the old one: try another field
        field = draw(st.sampled_from(TUNING_FIELDS))
        fresh = draw(providers(p["id"]))
        if field in fresh:
            p[field] = fresh[field]
        else:
            p.pop(field, None)
        if field == "timeout":  # sub-timeouts must fit: let the new timeout cap their defaults
            p.pop("connect_timeout", None)
            p.pop("first_byte_timeout", None)
        if p != before:
            return


def edit_keys(draw: st.DrawFn, doc: Doc) -> None:
    p = doc["providers"][_pick(draw, doc["providers"])]
    ks: list[Doc] = p.setdefault("keys", [])
    op = draw(st.sampled_from(["add", "remove", "relabel", "toggle", "shuffle"]))
    if op == "add" or not ks:
        key = draw(keys)
        if _key_source(key) in {_key_source(k) for k in ks}:
            key = {"env": _unique("NEW_KEY", {k.get("env", "") for k in ks})}
        ks.insert(draw(st.integers(0, len(ks))), key)
    elif op == "remove":
        ks.pop(_pick(draw, ks))
    elif op == "relabel":
        ks[_pick(draw, ks)]["label"] = draw(text)
    elif op == "toggle":
        k = ks[_pick(draw, ks)]
        k["enabled"] = not k.get("enabled", True)
    else:
        p["keys"] = draw(st.permutations(ks))


def reorder_providers(draw: st.DrawFn, doc: Doc) -> None:
    doc["providers"] = draw(st.permutations(doc["providers"]))


def edit_aliases(draw: st.DrawFn, doc: Doc) -> None:
    aliases: Doc = doc.setdefault("aliases", {})
    pids = _pids(doc)
    op = draw(st.sampled_from(["add", "change", "remove"]))
    if aliases and op == "remove":
        del aliases[draw(st.sampled_from(sorted(aliases)))]
        return
    targets = st.builds(lambda p, m: f"{p}/{m}", st.sampled_from(pids), model_ids)
    if aliases and op == "change":
        name = draw(st.sampled_from(sorted(aliases)))
    else:
        name = _unique(draw(names), {*pids, *aliases})
    aliases[name] = draw(st.lists(targets, min_size=1, max_size=3))


def edit_routing(draw: st.DrawFn, doc: Doc) -> None:
    doc["routing"] = draw(routing)


def edit_pricing(draw: st.DrawFn, doc: Doc) -> None:
    pricing = doc["pricing"]
    op = draw(st.sampled_from(["add", "default", "remove"]))
    if pricing["models"] and op == "remove":
        pricing["models"].pop(_pick(draw, pricing["models"]))
    elif op == "default":
        pricing["default"] = draw(price)
    else:
        entry = {"match": draw(globs), "input": draw(prices)}
        if draw(st.booleans()):
            entry["provider"] = draw(st.sampled_from(_pids(doc)))
        pricing["models"].append(entry)


def edit_sections(draw: st.DrawFn, doc: Doc) -> None:
    section = draw(st.sampled_from(["trial", "cooldown", "transient", "catalog", "usage"]))
    if section == "cooldown":
        initial, maximum = draw(ordered_durations())
        doc["cooldown"].update(initial=initial, max=maximum)
    elif section == "transient":
        initial, maximum = draw(ordered_durations())
        doc["cooldown"]["transient"] = {"initial": initial, "max": maximum}
    elif section == "catalog":
        doc["catalog"] = {"refresh": draw(durations()), "probe": draw(st.booleans())}
    elif section == "usage":
        doc["usage"] = {"retention": draw(durations())}
    elif doc.get("trial") and draw(st.booleans()):
        del doc["trial"]
    else:
        doc["trial"] = {"licence": draw(st.sampled_from([LICENCE, "e30.c2ln"]))}


def add_client(draw: st.DrawFn, doc: Doc) -> None:
    name = _unique(draw(names), {c["name"] for c in doc["clients"]})
    doc["clients"].append({"name": name, "key_sha256": hashlib.sha256(name.encode()).hexdigest()})


def edit_clients(draw: st.DrawFn, doc: Doc) -> None:
    clients: list[Doc] = doc["clients"]
    op = draw(st.sampled_from(["add", "change", "shuffle", "remove"]))
    if op == "add" or not clients:
        add_client(draw, doc)
    elif op == "remove":
        clients.pop(_pick(draw, clients))
    elif op == "change":
        clients[_pick(draw, clients)]["allow_models"] = draw(st.lists(globs, max_size=2))
    else:
        doc["clients"] = draw(st.permutations(clients))


EDITS: list[Edit] = [
    change_endpoint, change_tuning, edit_keys, reorder_providers, edit_aliases, edit_clients,
    edit_sections, edit_pricing, edit_routing, add_provider, remove_provider,
]  # fmt: skip


# Edits that work on an existing provider; after enough remove_provider edits a
# random sequence may have none left, and one is added first.
_ON_A_PROVIDER = frozenset(
    {change_endpoint, change_tuning, edit_keys, remove_provider, edit_aliases, edit_pricing}
)


def spec_docs() -> st.SearchStrategy[Doc]:
    """Generated specs with at least two providers and clients, for the edits to work on."""

    @st.composite
    def build(draw: st.DrawFn) -> Doc:
        doc = draw(specs())
        while len(doc["providers"]) < 2:
            add_provider(draw, doc)
        while len(doc["clients"]) < 2:
            add_client(draw, doc)
        # Sometimes A written out in full, every default explicit: still the same spec.
        if draw(st.booleans()):
            doc = PoolSpec.model_validate(doc).model_dump(mode="json")
        return doc

    return build()


@pytest.mark.parametrize("edit", EDITS, ids=lambda e: e.__name__)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_each_edit_plans_and_applies_like_a_fresh_start(edit: Edit, data: st.DataObject) -> None:
    doc = data.draw(spec_docs(), label="A")
    changed = copy.deepcopy(doc)
    edit(data.draw, changed)
    check_plan(PoolSpec.model_validate(doc), PoolSpec.model_validate(changed))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_plan_of_random_edits_applies_like_a_fresh_start(data: st.DataObject) -> None:
    doc = data.draw(spec_docs(), label="A")
    changed = copy.deepcopy(doc)
    for edit in data.draw(st.lists(st.sampled_from(EDITS), max_size=5), label="edits"):
        if edit in _ON_A_PROVIDER and not changed["providers"]:
            add_provider(data.draw, changed)
        edit(data.draw, changed)
    check_plan(PoolSpec.model_validate(doc), PoolSpec.model_validate(changed))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs(), specs())
def test_plan_of_unrelated_specs_applies_like_a_fresh_start(doc_a: Doc, doc_b: Doc) -> None:
    check_plan(PoolSpec.model_validate(doc_a), PoolSpec.model_validate(doc_b))


# -- pooldaemon plan PATH ------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pool.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_plan_against_an_empty_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(
        tmp_path,
        "version: 1\nrouting: {strategy: cost}\n"
        f"providers:\n  - id: openai\n    keys: [{{value: {SECRET}}}]\n"
        "  - {id: ollama, format: ollama}\naliases: {fast: [ollama/llama3.2]}\n",
    )
    assert main(["plan", str(path)]) == 1
    out = capsys.readouterr()
    assert out.out.splitlines() == [
        "+ provider ollama",
        "+ provider openai",
        "+ alias fast",
        "~ routing: strategy",
    ]
    assert "plain-text secret" in out.err  # warnings as validate prints them
    assert SECRET not in out.out + out.err


def test_cli_plan_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, f"version: 1\nproviders: [{{id: a, keys: [{{value: {SECRET}}}]}}]\n")
    assert main(["plan", "--json", str(path)]) == 1
    out = capsys.readouterr().out
    assert SECRET not in out
    data = json.loads(out)
    assert data["providers"]["added"] == ["a"]
    assert Plan.from_json(data).providers_added == ("a",)


def test_cli_plan_without_changes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, "version: 1\nrouting: {mode: auto}\n")
    assert main(["plan", str(path)]) == 0
    assert capsys.readouterr().out == "no changes\n"
    assert main(["plan", "--json", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["empty"] is True


@pytest.mark.parametrize(
    "text", ["version: 1\nrouting: {mode: clod}\n", "version: 1\nproviders: [{id: A}]\n", "{"]
)
def test_cli_plan_errors_like_validate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    path = _write(tmp_path, text)
    assert main(["validate", str(path)]) == 1
    expected = capsys.readouterr().err
    assert main(["plan", str(path)]) == 2
    out = capsys.readouterr()
    assert (out.out, out.err) == ("", expected)
    assert main(["plan", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read the file" in capsys.readouterr().err


def test_cli_plan_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan"])
    assert exc.value.code == 2


def test_cli_plan_console_script() -> None:
    script = Path(sys.executable).parent / "pooldaemon"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLDAEMON_")}
    proc = subprocess.run(
        [str(script), "plan", str(ROOT / "config" / "pool.yaml")],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert {"+ provider ollama", "+ provider openai", "+ provider anthropic"} <= set(lines)
    assert "+ alias fast" in lines


def test_writing_out_default_capabilities_is_a_change() -> None:
    """Declared capabilities are trusted, unset ones follow the model id: the plan must
    see the difference, since the snapshot built from each differs."""
    from pooldaemon.pool import Snapshot
    from pooldaemon.spec import PoolSpec

    def spec(model: dict[str, object]) -> PoolSpec:
        return PoolSpec.model_validate(
            {"version": 1, "providers": [{"id": "p", "models": [model]}]}
        )

    unset = spec({"id": "text-embedding-3-small"})
    declared = spec({"id": "text-embedding-3-small", "capabilities": ["chat", "streaming"]})
    assert not plan(unset, declared).empty
    assert Snapshot.build(unset).resolve("text-embedding-3-small") == ()
    assert Snapshot.build(declared).resolve("text-embedding-3-small")
