"""The trial in the daemon as a real process: the limit holds across restarts, tampering,
expiry and unknown keys are reported, nothing secret reaches a log, an answer or a file."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pooldaemon._atrest import MAGIC, STATE_KEY_FILE
from pooldaemon.reconcile._reconciler import LAST_KNOWN_GOOD
from pooldaemon.trial import TRIAL_STATE, generate_private_key, public_key_text
from tests.server.fakes import USAGE_IN, USAGE_OUT, Fake, fake_app, serve
from tests.server.openapi import load_document, validate_schema
from tests.test_daemon import ADMIN_TOKEN, Daemon, daemon
from tests.trial.conftest import DAY, TRIAL_KEY, MakeLicence

PER_REQUEST = USAGE_IN + USAGE_OUT
PLAIN_KEY = "sk-plain-inline-value-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def upstream() -> AsyncIterator[Fake]:
    fake = Fake("trial")
    async with serve(fake_app(fake)) as url:
        fake.url = url
        yield fake


@pytest.fixture
def setup(tmp_path: Path, signer: Ed25519PrivateKey) -> tuple[Path, Path, dict[str, str]]:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    pub = config_dir / "licence.pub"
    pub.write_text(public_key_text(signer.public_key()))
    env = {"POOLDAEMON_TRIAL_PUBLIC_KEYS": str(pub)}
    return config_dir / "pool.yaml", tmp_path / "state", env


def _yaml(licence: str) -> str:
    return (
        "version: 1\nproviders:\n  - id: other\n    base_url: http://127.0.0.1:9/v1\n"
        f"    keys: [{{value: {PLAIN_KEY}}}]\n    models: [{{id: other-model}}]\n"
        f"trial:\n  licence: {licence}\n"
    )


async def _get(d: Daemon, path: str, seen: list[str]) -> Any:
    async with aiohttp.ClientSession() as http, http.get(d.admin + path, headers=AUTH) as resp:
        text = await resp.text()
    seen.append(text)
    return json.loads(text)


async def _chat(d: Daemon, seen: list[str]) -> tuple[int, str, str]:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    url = f"http://127.0.0.1:{d.port}/v1/chat/completions"
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as resp:
        text = await resp.text()
        provider = resp.headers.get("x-pooldaemon-provider", "")
    seen.append(text)
    return resp.status, provider, text


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_the_limit_holds_across_restarts_and_tampering_is_reported(
    setup: tuple[Path, Path, dict[str, str]], make_licence: MakeLicence, upstream: Fake
) -> None:
    config, state, env = setup
    now = int(time.time())
    licence = make_licence(
        url=upstream.url + "/v1",
        token_limit=PER_REQUEST + 11,
        issued_at=now - 60,
        expires_at=now + DAY,
        subject="acceptance",
    )
    config.write_text(_yaml(licence))
    seen: list[str] = []  # every answer the daemon gave, for the leak scan
    logs: list[str] = []

    async with daemon(config, state, env) as d:
        assert (await _chat(d, seen))[:2] == (200, "trial")
        status = await _get(d, "/admin/v1/status", seen)
        validate_schema(load_document(), "Status", status)
        assert status["trial"]["phase"] == "active"
        assert status["trial"]["tokens_used"] == PER_REQUEST
        assert {p["id"]: p["held"] for p in status["providers"]} == {"other": None, "trial": None}
        provider = await _get(d, "/admin/v1/providers/trial", seen)
        validate_schema(load_document(), "Provider", provider)
        assert provider["keys"][0]["label"] == "trial licence" and provider["state"]["held"] is None
        await d.wait_log("trial phase=active provider=trial")
        logs += d.log
    assert upstream.headers[-1]["Authorization"] == f"Bearer {TRIAL_KEY}"

    # At rest: the last-known-good copy is encrypted; keys and state are 0600.
    lkg = (state / LAST_KNOWN_GOOD).read_bytes()
    assert lkg.startswith(MAGIC)
    for secret in (PLAIN_KEY, TRIAL_KEY, licence):
        assert secret.encode() not in lkg
    assert _mode(state / STATE_KEY_FILE) == 0o600 and _mode(state / TRIAL_STATE) == 0o600

    async with daemon(config, state, env) as d:  # a restart: the count survived
        status = await _get(d, "/admin/v1/status", seen)
        assert status["trial"]["tokens_used"] == PER_REQUEST
        assert (await _chat(d, seen))[:2] == (200, "trial")  # under the limit: now over it
        code, _, text = await _chat(d, seen)
        assert code == 503
        assert f"exhausted: {2 * PER_REQUEST} of {PER_REQUEST + 11} tokens used" in text
        provider = await _get(d, "/admin/v1/providers/trial", seen)
        assert "exhausted" in provider["state"]["held"]
        route = await _get(d, "/admin/v1/route?model=gpt-4o-mini", seen)
        validate_schema(load_document(), "RouteDecision", route)
        assert route["skipped"][0]["reason"] == "quota"
        await d.wait_log("trial phase=exhausted provider=trial")
        logs += d.log
    assert len(upstream.requests) == 2

    path = state / TRIAL_STATE
    head, mac = path.read_bytes().split(b".")
    doc = json.loads(base64.b64decode(head))
    for entry in doc["licences"].values():
        entry["used"] = 0  # tokens back, by hand
    path.write_bytes(base64.b64encode(json.dumps(doc).encode()) + b"." + mac)
    async with daemon(config, state, env) as d:
        line = await d.wait_log("trial phase=tampered")
        assert "fails its integrity check" in line and "ERROR" in line
        status = await _get(d, "/admin/v1/status", seen)
        assert status["trial"]["phase"] == "tampered"
        assert (await _chat(d, seen))[0] == 503
        logs += d.log
    assert len(upstream.requests) == 2

    everything = "\n".join(seen + logs)
    for secret in (TRIAL_KEY, licence, licence.split(".")[1], PLAIN_KEY):
        assert secret not in everything


async def test_unknown_keys_and_expiry_are_reported(
    setup: tuple[Path, Path, dict[str, str]], make_licence: MakeLicence, upstream: Fake
) -> None:
    config, state, env = setup
    now = int(time.time())
    url = upstream.url + "/v1"
    forged = make_licence(
        url=url, signer=generate_private_key(), issued_at=now - 60, expires_at=now + DAY
    )
    config.write_text(_yaml(forged))
    seen: list[str] = []
    async with daemon(config, state, env) as d:
        line = await d.wait_log("trial phase=invalid")
        assert "signed by an unknown key" in line and "WARNING" in line
        status = await _get(d, "/admin/v1/status", seen)
        assert [p["id"] for p in status["providers"]] == ["other"]  # the rest applies
        assert status["trial"]["phase"] == "invalid"
        code, _, text = await _chat(d, seen)
        assert code == 404 and "gpt-4o-mini" in text

        expired = make_licence(url=url, issued_at=now - 9 * DAY, expires_at=now - DAY)
        config.write_text(_yaml(expired))
        line = await d.wait_log("trial phase=expired")
        assert "expired on" in line
        status = await _get(d, "/admin/v1/status", seen)
        assert status["trial"]["phase"] == "expired"
        assert [p["id"] for p in status["providers"]] == ["other", "trial"]
        code, _, text = await _chat(d, seen)
        assert code == 503 and "expired on" in text
        everything = "\n".join([*seen, *d.log])
    for secret in (TRIAL_KEY, forged, expired, PLAIN_KEY):
        assert secret not in everything
    assert upstream.requests == []


async def test_an_unusable_public_key_file_stops_the_start(
    setup: tuple[Path, Path, dict[str, str]], make_licence: MakeLicence
) -> None:
    config, state, _ = setup
    config.write_text(_yaml(make_licence()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLDAEMON_")}
    env["POOLDAEMON_TRIAL_PUBLIC_KEYS"] = str(config.parent / "missing.pub")
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pooldaemon", "run"),
        *("--config", str(config), "--state-dir", str(state)),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert "trial_public_keys" in err.decode() and "missing.pub: cannot read it" in err.decode()
