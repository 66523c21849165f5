"""The trial in a running gateway: a real reconciler, proxy and fake upstreams in-process.

A valid licence adds its provider; the tokens it serves count against the limit
across a restart; past the limit (or expired, or with a tampered state) the
provider is held with a clear reason, and requests fail over or get that reason.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from pooldaemon._atrest import load_state_key
from pooldaemon.reconcile._reconciler import Reconciler, build_applied
from pooldaemon.server import ProxyState, build_proxy_app
from pooldaemon.spec import load_spec_file
from pooldaemon.trial import TRIAL_STATE, Trial, generate_private_key
from tests.server.fakes import USAGE_IN, USAGE_OUT, Fake, fake_app, serve
from tests.trial.conftest import DAY, TRIAL_KEY, MakeLicence

Trusted = dict[str, Ed25519PublicKey]
PER_REQUEST = USAGE_IN + USAGE_OUT  # normalized: input + cache_read + output


@dataclass
class Pool:
    url: str
    state: ProxyState
    reconciler: Reconciler
    trial: Trial

    async def chat(self, model: str = "gpt-4o-mini") -> tuple[int, str, dict[str, Any]]:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.url}/v1/chat/completions", json=body) as resp,
        ):
            return resp.status, resp.headers.get("x-pooldaemon-provider", ""), await resp.json()

    def status(self) -> dict[str, Any]:
        trial = self.reconciler.status_json()["trial"]
        assert isinstance(trial, dict)
        return trial


@pytest.fixture
async def upstreams() -> AsyncIterator[dict[str, Fake]]:
    async with AsyncExitStack() as stack:
        fakes = {name: Fake(name) for name in ("trial", "backup")}
        for fake in fakes.values():
            fake.url = await stack.enter_async_context(serve(fake_app(fake)))
        yield fakes


@pytest.fixture
async def start(tmp_path: Path, trusted: Trusted) -> AsyncIterator[Any]:
    """``await start(yaml)``: a gateway over ``yaml`` with the trial bound, state in
    ``tmp_path/state``; each call is a fresh process (a restart) over the same state."""
    async with AsyncExitStack() as stack:

        async def make(text: str) -> Pool:
            config = tmp_path / "pool.yaml"
            config.write_text(text)
            state_dir = tmp_path / "state"
            state_dir.mkdir(exist_ok=True)
            trial = Trial(state_dir, load_state_key(state_dir, env={}), trusted)
            loaded = trial.derive(load_spec_file(config))
            proxy = ProxyState(build_applied(loaded, tmp_path))
            reconciler = Reconciler(config, state_dir, proxy, loaded)
            trial.bind(reconciler)
            url = await stack.enter_async_context(serve(build_proxy_app(proxy)))
            await stack.enter_async_context(trial)
            return Pool(url, proxy, reconciler, trial)

        yield make


def _now_licence(make_licence: MakeLicence, **claims: Any) -> str:
    now = int(time.time())
    claims.setdefault("issued_at", now - 60)
    claims.setdefault("expires_at", now + DAY)
    return make_licence(**claims)


def _yaml(licence: str | None, backup: Fake | None = None) -> str:
    text = "version: 1\n"
    if backup is not None:
        text += (
            "providers:\n  - id: backup\n    priority: -10\n"
            f"    base_url: {backup.url}/v1\n    models: [{{id: gpt-4o-mini}}]\n"
        )
    if licence is not None:
        text += f"trial:\n  licence: {licence}\n"
    return text


async def test_a_valid_licence_creates_the_provider_and_the_limit_holds_across_a_restart(
    start: Any, make_licence: MakeLicence, upstreams: dict[str, Fake]
) -> None:
    licence = _now_licence(
        make_licence, url=upstreams["trial"].url + "/v1", token_limit=PER_REQUEST + 11
    )
    pool = await start(_yaml(licence))
    assert [p.id for p in pool.state.applied.snapshot.providers] == ["trial"]
    assert pool.status()["phase"] == "active"
    status, provider, _ = await pool.chat()
    assert (status, provider) == (200, "trial")
    assert upstreams["trial"].headers[-1]["Authorization"] == f"Bearer {TRIAL_KEY}"
    assert pool.status()["tokens_used"] == PER_REQUEST
    await pool.trial.__aexit__(None, None, None)  # a clean stop writes the state

    pool = await start(_yaml(licence))  # a restart: the count survives
    assert pool.status()["tokens_used"] == PER_REQUEST and pool.status()["phase"] == "active"
    status, provider, _ = await pool.chat()  # still under the limit: served, then over it
    assert (status, provider) == (200, "trial")
    assert pool.status()["phase"] == "exhausted"
    assert pool.status()["tokens_used"] == 2 * PER_REQUEST and pool.status()["tokens_left"] == 0
    status, _, body = await pool.chat()
    assert status == 503
    message = body["error"]["message"]
    assert "trial: quota (trial licence" in message
    assert f"exhausted: {2 * PER_REQUEST} of {PER_REQUEST + 11} tokens used" in message
    held = pool.reconciler.status_json()["providers"]
    assert isinstance(held, list) and "exhausted" in held[0]["held"]
    assert len(upstreams["trial"].requests) == 2
    pool.trial.flush()

    pool = await start(_yaml(licence))  # and after another restart
    assert pool.status()["phase"] == "exhausted"
    assert (await pool.chat())[0] == 503


async def test_past_the_limit_requests_fail_over(
    start: Any, make_licence: MakeLicence, upstreams: dict[str, Fake]
) -> None:
    licence = _now_licence(make_licence, url=upstreams["trial"].url + "/v1", token_limit=10)
    pool = await start(_yaml(licence, backup=upstreams["backup"]))
    assert (await pool.chat())[:2] == (200, "trial")  # priority 0 beats -10
    status, provider, _ = await pool.chat()
    assert (status, provider) == (200, "backup")
    assert len(upstreams["trial"].requests) == 1
    meter = pool.state.runtime.quotas["trial"]
    assert meter.blocked(time.time()) is not None


async def test_a_tampered_state_holds_the_trial(
    start: Any,
    make_licence: MakeLicence,
    upstreams: dict[str, Fake],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    licence = _now_licence(make_licence, url=upstreams["trial"].url + "/v1", token_limit=10_000)
    pool = await start(_yaml(licence, backup=upstreams["backup"]))
    assert (await pool.chat())[1] == "trial"
    pool.trial.flush()
    path = tmp_path / "state" / TRIAL_STATE
    head, mac = path.read_bytes().split(b".")
    doc = json.loads(base64.b64decode(head))
    for entry in doc["licences"].values():
        entry["used"] = 0  # tokens back, by hand
    path.write_bytes(base64.b64encode(json.dumps(doc).encode()) + b"." + mac)
    edited = path.read_bytes()
    with caplog.at_level(logging.ERROR, "pooldaemon.trial"):
        pool = await start(_yaml(licence, backup=upstreams["backup"]))
    assert pool.status()["phase"] == "tampered"
    assert "fails its integrity check" in caplog.text and "phase=tampered" in caplog.text
    assert (await pool.chat())[1] == "backup"  # held: fail closed
    pool.trial.flush()
    assert path.read_bytes() == edited  # kept as evidence
    path.unlink()  # an operator's reset
    pool = await start(_yaml(licence, backup=upstreams["backup"]))
    assert pool.status()["phase"] == "active" and pool.status()["tokens_used"] == 0


async def test_expired_and_not_yet_valid_licences_are_held(
    start: Any, make_licence: MakeLicence, upstreams: dict[str, Fake]
) -> None:
    now = int(time.time())
    url = upstreams["trial"].url + "/v1"
    expired = make_licence(url=url, issued_at=now - 9 * DAY, expires_at=now - DAY)
    pool = await start(_yaml(expired))
    assert [p.id for p in pool.state.applied.snapshot.providers] == ["trial"]
    assert pool.status()["phase"] == "expired"
    status, _, body = await pool.chat()
    assert status == 503 and "expired on" in body["error"]["message"]
    future = make_licence(url=url, issued_at=now + DAY, expires_at=now + 9 * DAY)
    pool = await start(_yaml(future))
    assert pool.status()["phase"] == "not_yet_valid"
    assert "not valid yet" in (await pool.chat())[2]["error"]["message"]
    assert upstreams["trial"].requests == []


async def test_a_licence_by_an_unknown_key_adds_nothing(
    start: Any,
    make_licence: MakeLicence,
    upstreams: dict[str, Fake],
    caplog: pytest.LogCaptureFixture,
) -> None:
    forged = _now_licence(make_licence, signer=generate_private_key(), url="https://x.example")
    with caplog.at_level(logging.WARNING, "pooldaemon.trial"):
        pool = await start(_yaml(forged, backup=upstreams["backup"]))
    assert [p.id for p in pool.state.applied.snapshot.providers] == ["backup"]
    status = pool.status()
    assert status["phase"] == "invalid" and status["provider"] is None
    assert "unknown key" in status["message"] and "no trial provider" in status["message"]
    assert "phase=invalid" in caplog.text and "unknown key" in caplog.text
    assert (await pool.chat())[:2] == (200, "backup")  # the rest of the pool works
    assert TRIAL_KEY not in caplog.text and forged not in caplog.text


async def test_reloads_follow_the_licence(
    start: Any,
    make_licence: MakeLicence,
    upstreams: dict[str, Fake],
    tmp_path: Path,
) -> None:
    url = upstreams["trial"].url + "/v1"
    now = int(time.time())
    older = make_licence(url=url, issued_at=now - 2 * DAY, expires_at=now + DAY)
    newer = make_licence(url=url, issued_at=now - DAY, expires_at=now + DAY, token_limit=5000)
    pool = await start(_yaml(older, backup=upstreams["backup"]))
    assert pool.status()["phase"] == "active"
    config = tmp_path / "pool.yaml"
    config.write_text(_yaml(newer, backup=upstreams["backup"]))
    plan = pool.reconciler.plan_for(config.read_bytes())
    assert plan.lines() == ["~ trial: licence changed"]  # same key and URL: state kept
    outcome = await pool.reconciler.reconcile("admin")
    assert outcome.result == "success"
    assert pool.status()["token_limit"] == 5000 and pool.status()["phase"] == "active"
    config.write_text(_yaml(older, backup=upstreams["backup"]))  # back to the older one
    assert (await pool.reconciler.reconcile("admin")).result == "success"
    status = pool.status()
    assert (
        status["phase"] == "superseded"
        and "older than a licence already used" in (status["message"])
    )
    assert (await pool.chat())[1] == "backup"
    config.write_text(_yaml(None, backup=upstreams["backup"]))  # trial removed
    assert (await pool.reconciler.reconcile("admin")).result == "success"
    assert pool.reconciler.status_json()["trial"] is None
    assert "trial" not in pool.state.runtime.quotas
    assert [p.id for p in pool.state.applied.snapshot.providers] == ["backup"]
