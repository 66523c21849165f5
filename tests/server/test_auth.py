"""Client keys, body limits, the open-proxy guard, and secrets kept out of every output."""

from __future__ import annotations

import logging

import anthropic
import openai
import pytest

from pooldaemon.errors import SettingsError
from pooldaemon.server import check_open_proxy
from pooldaemon.spec import PoolSpec
from tests.server.conftest import CLIENT_KEY, CLIENT_SHA, KEYS, GatewayFactory
from tests.server.fakes import Fault

HI = [{"role": "user", "content": "hi"}]
PROVIDER = {"id": "oa", "fake": "oa", "location": "cloud", "keys": [{"env": "OPENAI_A_KEY"}],
            "models": [{"id": "gpt-4o"}, {"id": "o3"}]}  # fmt: skip
CLIENTS = [{"name": "laptop", "key_sha256": CLIENT_SHA, "allow_models": ["gpt-*"]}]


async def test_clients_need_a_matching_key(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[PROVIDER], clients=CLIENTS)
    with pytest.raises(openai.AuthenticationError) as exc:
        await gw.openai("wrong-key").chat.completions.create(model="gpt-4o", messages=HI)
    assert exc.value.body["type"] == "authentication_error"  # type: ignore[index]
    answer = await gw.openai(CLIENT_KEY).chat.completions.create(model="gpt-4o", messages=HI)
    assert answer.choices[0].message.content
    http = await gw.http()
    body = {"model": "gpt-4o", "messages": HI}
    async with http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
        assert resp.status == 401
        assert "missing API key" in (await resp.json())["error"]["message"]
    headers = {"x-api-key": CLIENT_KEY}
    async with http.post(f"{gw.url}/v1/chat/completions", json=body, headers=headers) as resp:
        assert resp.status == 200
    # The client's own key never goes upstream: the provider's does.
    assert all(
        h["Authorization"] == f"Bearer {KEYS['OPENAI_A_KEY']}" for h in gw.fakes["oa"].headers
    )


async def test_anthropic_sdk_key_is_accepted(gateway: GatewayFactory) -> None:
    provider = {**PROVIDER, "format": "anthropic", "models": [{"id": "gpt-4o"}]}
    gw = await gateway(providers=[provider], clients=CLIENTS)
    message = await gw.anthropic(CLIENT_KEY).messages.create(
        model="gpt-4o", max_tokens=5, messages=HI
    )
    assert message.content
    with pytest.raises(anthropic.AuthenticationError):
        await gw.anthropic("nope").messages.create(model="gpt-4o", max_tokens=5, messages=HI)


async def test_client_allowlist_refuses_other_models(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[PROVIDER], clients=CLIENTS)
    with pytest.raises(openai.PermissionDeniedError):
        await gw.openai(CLIENT_KEY).chat.completions.create(model="o3", messages=HI)
    ids = {m.id async for m in gw.openai(CLIENT_KEY).models.list()}
    assert "gpt-4o" in ids and "o3" not in ids


async def test_body_limit_413(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[PROVIDER])
    http = await gw.http()
    huge = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 100_000}]}
    async with http.post(f"{gw.url}/v1/chat/completions", json=huge) as resp:
        assert resp.status == 413
        assert "larger than 64000 bytes" in (await resp.json())["error"]["message"]
    assert gw.fakes["oa"].requests == []


def test_open_proxy_only_on_loopback() -> None:
    open_spec = PoolSpec.model_validate({"version": 1})
    check_open_proxy(open_spec, "127.0.0.1")
    check_open_proxy(open_spec, "::1")
    check_open_proxy(open_spec, "localhost")
    with pytest.raises(SettingsError, match="no clients"):
        check_open_proxy(open_spec, "0.0.0.0")
    closed = PoolSpec.model_validate(
        {"version": 1, "clients": [{"name": "a", "key_sha256": CLIENT_SHA}]}
    )
    check_open_proxy(closed, "0.0.0.0")


async def test_no_secret_in_logs_or_responses(
    gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    second = {**PROVIDER, "id": "ob", "fake": "ob", "keys": [{"env": "OPENAI_B_KEY"}]}
    gw = await gateway(providers=[PROVIDER, second], clients=CLIENTS)
    # An upstream that echoes the key it got, in a failure and in a client error.
    echo = {"error": {"message": f"Incorrect API key provided: {KEYS['OPENAI_A_KEY']}"}}
    gw.fakes["oa"].faults += [Fault(status=400, body=echo), Fault(status=401, body=echo)]
    gw.fakes["ob"].faults += [Fault(status=500, body={"error": {"message": KEYS["OPENAI_B_KEY"]}})]
    seen: list[str] = []
    client = gw.openai(CLIENT_KEY)
    for _ in range(3):
        try:
            raw = await client.chat.completions.with_raw_response.create(
                model="gpt-4o", messages=HI
            )
            seen.append(raw.http_response.text)
            seen.append(str(dict(raw.headers)))
        except openai.APIStatusError as exc:
            seen.append(exc.response.text)
            seen.append(str(dict(exc.response.headers)))
    stream = await client.chat.completions.create(model="gpt-4o", messages=HI, stream=True)
    seen += [c.model_dump_json() async for c in stream]
    seen.append(caplog.text)
    everything = "\n".join(seen)
    # The echoes were seen (relayed client error, failover summary), redacted ...
    assert "Incorrect API key provided: sk-test-...cdef" in everything
    assert "last: HTTP 500: sk-test-...4321" in everything
    for secret in (*KEYS.values(), CLIENT_KEY):
        assert secret not in everything  # ... but no key ever shows
