"""The leak scan: a real daemon and the CLI run with known secrets through the proxy,
admin, metrics and CLI paths, error paths included (an upstream that echoes a bad key,
a sealed value that does not decrypt, a refused reload, a plan with plain keys); every
byte they print, log, answer or leave in ``state_dir`` is scanned for the secrets."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.secrets.helpers import clean_env, cli, key_pair
from tests.server.fakes import Fake, Fault, fake_app, serve
from tests.test_daemon import ADMIN_TOKEN, Daemon, daemon

PLAIN = "sk-plain-LeakScan-0123456789abcdef"  # a plain value: in the file (warned about)
SEALED = "sk-sealed-LeakScan-abcdef0123456789"  # sealed in the file
ENV_KEY = "sk-env-LeakScan-fedcba9876543210"  # from the environment
WRONG = "sk-wrong-LeakScan-5555555555555555"  # a key the upstream refuses (and echoes)
CLIENT = "pd-client-LeakScan-0123456789abcdef0123"
SECRETS = (PLAIN, SEALED, ENV_KEY, WRONG, CLIENT, ADMIN_TOKEN)
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def _config(urls: dict[str, str], sealed: str, *, extra: str = "") -> str:
    client_sha = hashlib.sha256(CLIENT.encode()).hexdigest()
    return f"""version: 1
providers:
  - id: plain
    base_url: {urls["plain"]}/v1
    location: cloud
    priority: 3
    models: [{{id: gpt-4o}}]
    keys: [{{value: "{PLAIN}"}}]
  - id: sealed
    base_url: {urls["sealed"]}/v1
    location: cloud
    priority: 2
    models: [{{id: gpt-4o}}]
    keys: [{{value: "{sealed}"}}]
  - id: fromenv
    base_url: {urls["fromenv"]}/v1
    location: cloud
    priority: 1
    models: [{{id: gpt-4o}}, {{id: echo-model}}]
    keys: [{{env: LEAK_ENV_KEY}}, {{env: LEAK_WRONG_KEY}}]
clients: [{{name: laptop, key_sha256: "{client_sha}"}}]
{extra}"""


class Capture:
    """Everything that left the daemon or the CLI, as text."""

    def __init__(self) -> None:
        self.texts: list[tuple[str, str]] = []

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def leaks(self) -> list[str]:
        found = []
        for where, text in self.texts:
            found += [f"{where}: {s[:12]}..." for s in SECRETS if s in text]
        return found


async def _http(
    cap: Capture, method: str, url: str, *, headers: dict[str, str] | None = None, **kw: Any
) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url, headers=headers, **kw) as r,
    ):
        body = await r.text()
        cap.add(f"{method} {url} -> {r.status}", body + repr(dict(r.headers)))
        return r.status


async def _traffic(d: Daemon, cap: Capture, fakes: dict[str, Fake]) -> None:
    proxy = f"http://127.0.0.1:{d.port}"
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    client = {"Authorization": f"Bearer {CLIENT}"}
    # Served, failing over from a refused key whose error echoes it.
    echo = f"Incorrect API key provided: {PLAIN}. You can find your API key at ..."
    fakes["plain"].faults.append(Fault(status=401, body={"error": {"message": echo}}))
    assert (
        await _http(cap, "POST", f"{proxy}/v1/chat/completions", headers=client, json=chat) == 200
    )
    # Every provider refusing, each echoing the key it got: the client gets an error.
    for name, key in (("plain", PLAIN), ("sealed", SEALED), ("fromenv", ENV_KEY)):
        body = {"error": {"message": f"bad key {key}", "type": "invalid_request_error"}}
        fakes[name].faults.append(Fault(status=401, body=body))
    fakes["fromenv"].faults.append(
        Fault(status=401, body={"error": {"message": f"bad key {WRONG}"}})
    )
    status = await _http(cap, "POST", f"{proxy}/v1/chat/completions", headers=client, json=chat)
    assert status >= 400
    # A streamed request, an Anthropic one, a wrong client key (echoed nowhere).
    stream = {**chat, "stream": True}
    await _http(cap, "POST", f"{proxy}/v1/chat/completions", headers=client, json=stream)
    anth = {"model": "gpt-4o", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    await _http(cap, "POST", f"{proxy}/v1/messages", headers={"x-api-key": CLIENT}, json=anth)
    wrong = {"Authorization": f"Bearer {WRONG}"}
    assert await _http(cap, "POST", f"{proxy}/v1/chat/completions", headers=wrong, json=chat) == 401
    await _http(cap, "GET", f"{proxy}/v1/models", headers=client)


async def _admin(d: Daemon, cap: Capture, config: Path) -> None:
    for path in (
        "status",
        "providers",
        "providers/plain",
        "providers/sealed",
        "providers/fromenv",
        "cooldowns",
        "models",
        "usage",
        "pricing",
        "jobs",
        "route?model=gpt-4o",
    ):
        await _http(cap, "GET", f"{d.admin}/admin/v1/{path}", headers=AUTH)
    await _http(cap, "GET", f"{d.admin}/metrics")
    text = await asyncio.to_thread(config.read_text)
    plan_yaml = text.replace(PLAIN, PLAIN[::-1] + "x")  # a changed plain key
    await _http(cap, "POST", f"{d.admin}/admin/v1/plan", headers=AUTH, data=plan_yaml)
    await _http(cap, "POST", f"{d.admin}/admin/v1/refresh/catalog", headers=AUTH)
    # A wrong admin token is not echoed either.
    await _http(
        cap, "GET", f"{d.admin}/admin/v1/status", headers={"Authorization": f"Bearer {CLIENT}"}
    )


async def test_no_secret_leaves_the_daemon_or_the_cli(tmp_path: Path) -> None:
    cap = Capture()
    keys = key_pair(tmp_path / "keys")
    sealed = await asyncio.to_thread(
        cli,
        "seal",
        "--public-key",
        str(keys.pub_file),
        "--for",
        "providers.sealed",
        stdin=SEALED.encode(),
    )
    assert sealed.returncode == 0
    cap.add("seal stderr", sealed.stderr)
    value = sealed.stdout.strip()
    etc, state = tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    fakes = {name: Fake(name) for name in ("plain", "sealed", "fromenv")}
    async with (
        serve(fake_app(fakes["plain"])) as u1,
        serve(fake_app(fakes["sealed"])) as u2,
        serve(fake_app(fakes["fromenv"])) as u3,
    ):
        urls = {"plain": u1, "sealed": u2, "fromenv": u3}
        config = etc / "pool.yaml"
        config.write_text(_config(urls, value))
        env = {
            "POOLDAEMON_SECRET_KEY_FILES": str(keys.key_file),
            "LEAK_ENV_KEY": ENV_KEY,
            "LEAK_WRONG_KEY": WRONG,
        }
        async with daemon(config, state, env) as d:
            await _traffic(d, cap, fakes)
            await _admin(d, cap, config)
            # A refused reload: a sealed value that does not decrypt (sealed for another
            # place) next to a changed plain key.
            other = await asyncio.to_thread(
                cli,
                "seal",
                "--public-key",
                str(keys.pub_file),
                "--for",
                "providers.plain",
                stdin=SEALED.encode(),
            )
            bad = _config(urls, other.stdout.strip()).replace(PLAIN, PLAIN + "2")
            config.write_text(bad)
            await d.wait_log("result=failure", within=10)
            await _http(cap, "GET", f"{d.admin}/admin/v1/status", headers=AUTH)
            await _http(cap, "POST", f"{d.admin}/admin/v1/reload", headers=AUTH)
            env_cli = {**env, "POOLDAEMON_ADMIN_TOKEN": ADMIN_TOKEN}
            admin_url = d.admin
            for args in (
                ("status", "--admin", admin_url),
                ("reload", "--admin", admin_url),
                ("plan", str(config), "--against", admin_url),
                ("validate", str(config)),
                ("plan", str(config)),
                ("secrets", "check", str(config), "--key", str(keys.key_file)),
            ):
                done = await asyncio.to_thread(cli, *args, env=clean_env(**env_cli))
                cap.add(f"cli {' '.join(args[:2])}", done.stdout + done.stderr)
            assert fakes["sealed"].headers, "the sealed key was used upstream"
        cap.add("daemon log", "\n".join(d.log))
    for path in state.rglob("*"):
        if path.is_file():
            cap.add(f"state {path.name}", path.read_bytes().decode("latin-1"))
    assert len(cap.texts) > 30
    # The keys were there to leak: they show, as their display hash, where keys are shown.
    everything = "\n".join(text for _, text in cap.texts)
    for secret in (PLAIN, SEALED, ENV_KEY):
        assert f"{secret[:8]}...{secret[-4:]}" in everything
    assert cap.leaks() == []
