"""The admin views against a real proxy state, served by a real admin app."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp

from pooldaemon.pool import Failure, FailureClass
from pooldaemon.reconcile._reconciler import Reconciler
from pooldaemon.server._admin import AdminState, build_admin_app
from pooldaemon.spec import load_spec_file
from tests.server.conftest import KEYS, GatewayFactory
from tests.server.fakes import serve

TOKEN = "admin-views-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WALL_PROVIDERS: list[dict[str, Any]] = [
    {
        "id": "cooling",
        "fake": "a",
        "location": "cloud",
        "keys": [{"env": "OPENAI_A_KEY"}],
        "models": [{"id": "m"}],
    },
    {"id": "home", "fake": "b", "location": "local", "models": [{"id": "m"}]},
    {
        "id": "spent",
        "fake": "c",
        "location": "cloud",
        "keys": [{"env": "OPENAI_A_KEY"}],
        "budget": {"usd_per_day": 1.0},
        "models": [{"id": "m"}],
    },
    {
        "id": "fine",
        "fake": "d",
        "location": "cloud",
        "keys": [{"env": "OPENAI_B_KEY"}],
        "models": [{"id": "m"}],
    },
]
PRICING = {"models": [{"match": "m", "input": 1, "output": 1}]}


async def _admin(gateway: GatewayFactory, tmp_path: Path) -> tuple[Any, str]:
    gw = await gateway(providers=WALL_PROVIDERS, pricing=PRICING)
    config = tmp_path / "pool.yaml"
    config.write_text("version: 1\n")  # the reconciler's own file; the views read the proxy
    reconciler = Reconciler(config, tmp_path / "state", gw.state, load_spec_file(config))
    app = build_admin_app(AdminState(reconciler, TOKEN), gw.state, gw.store)
    url = await gw.stack.enter_async_context(serve(app))
    return gw, url


async def _get(url: str, **params: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url, params=params, headers=AUTH) as r:
        return r.status, await r.json()


async def test_route_explains_cooling_out_of_mode_and_over_budget(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw, url = await _admin(gateway, tmp_path)
    state = gw.state
    for i in range(3):
        state.runtime.record_failure(
            state.applied.snapshot.by_id["cooling"],
            Failure(FailureClass.server),
            state.clock() - 1 + i * 0.01,
        )
    state.runtime.ledger.add("provider", "spent", 2.0, 10, state.wall())
    status, body = await _get(f"{url}/admin/v1/route", model="m", mode="cloud")
    assert status == 200
    assert [c["provider"] for c in body["candidates"]] == ["fine"]
    reasons = {s["provider"]: s["reason"] for s in body["skipped"]}
    assert reasons == {"cooling": "cooling", "home": "location", "spent": "over_budget"}
    status, body = await _get(f"{url}/admin/v1/route", model="mm")
    assert status == 404 and body["suggestions"][0] == "m"
    status, body = await _get(f"{url}/admin/v1/route", model="m", mode="moon")
    assert status == 400 and "mode must be one of" in body["error"]["message"]


async def test_providers_show_state_and_only_key_hashes(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw, url = await _admin(gateway, tmp_path)
    status, body = await _get(f"{url}/admin/v1/providers")
    assert status == 200 and len(body["providers"]) == 4
    fine = next(p for p in body["providers"] if p["id"] == "fine")
    (key,) = fine["keys"]
    secret = KEYS["OPENAI_B_KEY"]
    assert key["hash"] == f"{secret[:8]}...{secret[-4:]}"
    assert (key["requests"], key["last_used"]) == (0, None)
    client = gw.openai()
    for _ in range(2):
        await client.chat.completions.create(
            model="fine/m", messages=[{"role": "user", "content": "hi"}]
        )
    gw.store.flush()
    status, fine = await _get(f"{url}/admin/v1/providers/fine")
    (key,) = fine["keys"]
    assert key["requests"] == 2 and abs(key["last_used"] - time.time()) < 60  # unix seconds
    text = str(body)
    assert all(value not in text for value in KEYS.values())
    status, one = await _get(f"{url}/admin/v1/providers/home")
    assert status == 200 and one["location"] == "local" and one["keys"] == []
    status, _ = await _get(f"{url}/admin/v1/providers/nope")
    assert status == 404


async def test_cooldowns_list_and_clear(gateway: GatewayFactory, tmp_path: Path) -> None:
    gw, url = await _admin(gateway, tmp_path)
    state = gw.state
    for i in range(3):
        state.runtime.record_failure(
            state.applied.snapshot.by_id["cooling"],
            Failure(FailureClass.server, "boom"),
            state.clock() + i * 0.01,
        )
    status, body = await _get(f"{url}/admin/v1/cooldowns")
    assert [c["provider"] for c in body["cooldowns"]] == ["cooling"]
    assert body["cooldowns"][0]["last_error"] == "boom"
    async with aiohttp.ClientSession() as http:
        async with http.delete(f"{url}/admin/v1/cooldowns/cooling", headers=AUTH) as resp:
            assert (await resp.json()) == {"provider": "cooling", "cleared": True}
        async with http.delete(f"{url}/admin/v1/cooldowns/cooling") as resp:
            assert resp.status == 401
        async with http.post(f"{url}/admin/v1/providers", headers=AUTH) as resp:
            assert resp.status == 405
    status, body = await _get(f"{url}/admin/v1/cooldowns")
    assert status == 200 and body["cooldowns"] == []


async def test_models_usage_and_pricing(gateway: GatewayFactory, tmp_path: Path) -> None:
    gw, url = await _admin(gateway, tmp_path)
    await gw.openai().chat.completions.create(
        model="fine/m", messages=[{"role": "user", "content": "hi"}]
    )
    gw.store.flush()
    _, body = await _get(f"{url}/admin/v1/models")
    m = next(x for x in body["models"] if x["name"] == "m")
    assert m["providers"] == ["cooling", "fine", "home", "spent"]
    status, body = await _get(f"{url}/admin/v1/usage", group_by="provider")
    assert status == 200 and [g["key"] for g in body["groups"]] == ["fine"]
    assert body["total"]["requests"] == 1
    status, body = await _get(f"{url}/admin/v1/pricing", model="m", provider="fine")
    assert (body["source"], body["price"]["input"]) == ("model_exact", 1.0)
    status, body = await _get(f"{url}/admin/v1/pricing", model="m", provider="home")
    assert body["source"] == "model_exact"  # an explicit price wins over "local is free"
    status, body = await _get(f"{url}/admin/v1/pricing")
    assert body["models"][0]["match"] == "m"
    status, body = await _get(f"{url}/admin/v1/pricing", provider="fine")
    assert status == 400 and "provider needs model" in body["error"]["message"]


async def test_usage_takes_only_finite_ordered_times(
    gateway: GatewayFactory, tmp_path: Path
) -> None:
    _, url = await _admin(gateway, tmp_path)
    for bad in ({"since": "nan"}, {"until": "inf"}, {"since": "1e400"}, {"until": "-inf"}):
        status, body = await _get(f"{url}/admin/v1/usage", **bad)
        assert (status, body["error"]["type"]) == (400, "invalid_request"), bad
        assert "finite" in body["error"]["message"]
    status, body = await _get(f"{url}/admin/v1/usage", since="20", until="10")
    assert status == 400 and body["error"]["message"] == "since (20.0) is after until (10.0)"
    status, body = await _get(f"{url}/admin/v1/usage", since="10", until="20")
    assert (status, body["since"], body["until"]) == (200, 10.0, 20.0)
