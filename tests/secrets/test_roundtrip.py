"""Acceptance: keygen -> seal -> YAML -> the daemon (a real process) sends the key upstream;
a bad sealed value in a new revision is refused and the old one keeps serving."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from pooldaemon.cli import main
from pooldaemon.secrets import generate_private_key, private_key_text, seal
from tests.secrets.helpers import clean_env, cli, key_pair
from tests.server.fakes import Fake, fake_app, serve
from tests.test_daemon import ADMIN_TOKEN, Daemon, daemon

SECRET = "sk-proj-SealedRoundTrip-0123456789"
SECOND = "sk-ant-SealedSecond-9876543210"


@pytest.fixture(autouse=True)
def _no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite may itself run under systemd with credentials of its own.
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)


def _config(providers: list[tuple[str, str, str]], alias: str = "a") -> str:
    """(id, base_url, sealed value) per provider; ``alias`` shows which revision serves."""
    lines = ["version: 1", "providers:"]
    for pid, url, value in providers:
        lines += [
            f"  - id: {pid}   # sealed below",
            f"    base_url: {url}/v1",
            "    location: cloud",
            "    models: [{id: gpt-4o}]",
            f"    keys: [{{value: '{value}', label: sealed}}]",
        ]
    lines += ["aliases:", f"  {alias}: [gpt-4o]", ""]
    return "\n".join(lines)


async def _chat(d: Daemon, model: str = "gpt-4o") -> int:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"http://127.0.0.1:{d.port}/v1/chat/completions", json=body) as resp,
    ):
        await resp.read()
        return resp.status


async def test_sealed_key_reaches_the_upstream(tmp_path: Path) -> None:
    keys, etc, state = tmp_path / "keys", tmp_path / "etc", tmp_path / "state"
    etc.mkdir()
    outputs: list[str] = []
    gen = await asyncio.to_thread(cli, "keygen", "--out", str(keys))
    sealed = await asyncio.to_thread(
        cli,
        "seal",
        "--public-key",
        str(keys / "pool.pub"),
        "--for",
        "providers.openai",
        stdin=f"{SECRET}\n".encode(),
    )
    for proc in (gen, sealed):
        assert proc.returncode == 0, proc.stderr
        outputs += [proc.stdout, proc.stderr]
    value = sealed.stdout.strip()
    upstream, evil = Fake("openai"), Fake("evil")
    async with serve(fake_app(upstream)) as url, serve(fake_app(evil)) as evil_url:
        config = etc / "pool.yaml"
        config.write_text(_config([("openai", url, value)], alias="first"))
        env = {"POOLDAEMON_SECRET_KEY_FILES": str(keys / "pool.key")}
        async with daemon(config, state, env) as d:
            assert await _chat(d) == 200
            assert upstream.headers[-1]["Authorization"] == f"Bearer {SECRET}"

            # The sealed value moved to a provider pointing elsewhere: refused.
            config.write_text(
                _config([("openai", url, value), ("evil", evil_url, value)], alias="second")
            )
            line = await d.wait_log("providers.evil.keys[0].value")
            assert line.endswith(
                f"{config}:12:20: providers.evil.keys[0].value: sealed for providers.openai, "
                "not for providers.evil"
            )
            # Truncated, and sealed to a key the daemon does not hold: refused too.
            config.write_text(_config([("openai", url, value[:-12] + "]")], alias="third"))
            await d.wait_log("damaged (truncated or edited)")
            stranger = seal(generate_private_key().public_key, "providers.openai", "sk-x")
            config.write_text(_config([("openai", url, stranger)], alias="fourth"))
            await d.wait_log("for which no private key is loaded")

            models = await d.models()
            assert "first" in models and not {"second", "third", "fourth"} & models
            assert await _chat(d) == 200  # the old state still serves, with its key
            assert upstream.headers[-1]["Authorization"] == f"Bearer {SECRET}"
            assert evil.requests == []
            assert "pooldaemon_config_last_reload_successful 0.0" in await d.metrics()
            # The dry run of the admin API refuses what the reconcile refuses.
            candidate = tmp_path / "candidate.yaml"
            candidate.write_text(_config([("openai", url, value), ("evil", evil_url, value)]))
            env = clean_env(POOLDAEMON_ADMIN_TOKEN=ADMIN_TOKEN)
            planned = await asyncio.to_thread(
                cli, "plan", str(candidate), "--against", d.admin, env=env
            )
            assert planned.returncode == 2
            assert "providers.evil.keys[0].value: sealed for providers.openai" in planned.stderr
            outputs += [planned.stdout, planned.stderr]
        outputs += d.log
    assert any("1 sealing key: " in line for line in outputs)
    for text in outputs:
        assert SECRET not in text


async def test_keys_from_credentials_during_a_rotation(tmp_path: Path) -> None:
    """Two private keys as systemd credentials (pool.key, pool.key.new): values sealed to
    either open, each provider gets its own secret."""
    creds, etc = tmp_path / "creds", tmp_path / "etc"
    creds.mkdir()
    etc.mkdir()
    old, new = generate_private_key(), generate_private_key()
    for name, key in (("pool.key", old), ("pool.key.new", new)):
        (creds / name).write_text(private_key_text(key))
        (creds / name).chmod(0o400)
    one, two = Fake("one"), Fake("two")
    async with serve(fake_app(one)) as url1, serve(fake_app(two)) as url2:
        config = etc / "pool.yaml"
        config.write_text(
            _config(
                [
                    ("one", url1, seal(old.public_key, "providers.one", SECRET)),
                    ("two", url2, seal(new.public_key, "providers.two", SECOND)),
                ]
            )
        )
        env = {"CREDENTIALS_DIRECTORY": str(creds)}
        async with daemon(config, tmp_path / "state", env) as d:
            assert await _chat(d, "one/gpt-4o") == 200
            assert await _chat(d, "two/gpt-4o") == 200
            assert one.headers[-1]["Authorization"] == f"Bearer {SECRET}"
            assert two.headers[-1]["Authorization"] == f"Bearer {SECOND}"
            assert any("2 sealing keys: " in line for line in d.log)
        for line in d.log:
            assert SECRET not in line and SECOND not in line


def test_start_refused_when_a_sealed_value_does_not_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pair = key_pair(tmp_path / "keys")
    value = seal(pair.private.public_key, "providers.openai", SECRET)
    config = tmp_path / "pool.yaml"
    config.write_text(_config([("openai", "http://127.0.0.1:9", value)]))
    for name in ("POOLDAEMON_SECRET_KEY_FILES", "NOTIFY_SOCKET", "WATCHDOG_USEC"):
        monkeypatch.delenv(name, raising=False)
    # No private key: neither the file nor a last-known-good copy can be served.
    args = ["run", "--config", str(config), "--state-dir", str(tmp_path / "state")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert f"{config}:7:20: providers.openai.keys[0].value: sealed to key id {pair.kid}" in err
    # An unusable key file is a start error that names it.
    monkeypatch.setenv("POOLDAEMON_SECRET_KEY_FILES", str(tmp_path / "nope.key"))
    assert main(args) == 1
    assert "cannot start: secret key file" in capsys.readouterr().err
