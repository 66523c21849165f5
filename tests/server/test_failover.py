"""Failover and faults: every client gets a well-formed answer, never a silent end."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import openai
import pytest

from pooldaemon.pool import FailureClass
from tests.server.conftest import GatewayFactory
from tests.server.fakes import Fault

HI = [{"role": "user", "content": "hi"}]


def _provider(pid: str, priority: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": pid,
        "fake": pid,
        "location": "cloud",
        "priority": priority,
        "keys": [{"env": "OPENAI_A_KEY"}],
        "models": [{"id": "gpt-4o"}],
        **extra,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_503_then_success_on_the_next_provider(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 2), _provider("b", 1)])
    gw.fakes["a"].faults.append(Fault(status=503))
    raw = await gw.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-pooldaemon-provider"] == "b"
    assert raw.headers["x-pooldaemon-attempts"] == "2"
    assert gw.state.runtime.state("a").transient_failures == 1


async def test_429_retry_after_is_honoured(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 2), _provider("b", 1)])
    gw.fakes["a"].faults.append(Fault(status=429, headers={"Retry-After": "17"}))
    before = gw.state.clock()
    raw = await gw.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-pooldaemon-provider"] == "b"
    state = gw.state.runtime.state("a")
    assert state.reason is FailureClass.rate_limit
    assert state.until - before == pytest.approx(17, abs=1)
    # While "a" cools, requests go straight to "b".
    raw = await gw.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-pooldaemon-attempts"] == "1" and len(gw.fakes["a"].requests) == 1


async def test_429_everywhere_answers_429_with_retry_after(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 1)])
    gw.fakes["a"].faults.append(Fault(status=429, headers={"Retry-After": "3"}))
    with pytest.raises(openai.RateLimitError) as exc:
        await gw.openai().chat.completions.create(model="gpt-4o", messages=HI)
    assert exc.value.response.headers["Retry-After"] == "4"
    assert "a:rate_limit" in exc.value.message


async def test_timeout_fails_over(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 2, first_byte_timeout="300ms"), _provider("b", 1)])
    gw.fakes["a"].faults.append(Fault(stall=2.0))
    raw = await gw.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-pooldaemon-provider"] == "b"
    assert gw.state.runtime.state("a").transient_failures == 1


async def test_connection_refused_fails_over(gateway: GatewayFactory) -> None:
    dead = {
        "id": "dead",
        "location": "cloud",
        "priority": 5,
        "keys": [{"env": "OPENAI_A_KEY"}],
        "base_url": f"http://127.0.0.1:{_free_port()}/v1",
        "models": [{"id": "gpt-4o"}],
    }
    gw = await gateway(providers=[dead, _provider("b", 1)])
    raw = await gw.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-pooldaemon-provider"] == "b"


async def test_garbage_json_fails_over(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 2), _provider("b", 1)])
    gw.fakes["a"].faults.append(Fault(garbage=True))
    raw = await gw.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-pooldaemon-provider"] == "b"


@pytest.mark.parametrize("stream", [False, True])
async def test_a_redirect_is_not_followed_and_fails_over(
    gateway: GatewayFactory, stream: bool
) -> None:
    gw = await gateway(providers=[_provider("a", 2), _provider("b", 1)])
    a = gw.fakes["a"]
    # Followed, the redirect would come back to "a" itself, API key and all.
    a.faults.append(Fault(status=307, headers={"Location": a.url + "/v1/chat/completions"}))
    http = await gw.http()
    body = {"model": "gpt-4o", "messages": HI, "stream": stream}
    async with http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        assert resp.headers["x-pooldaemon-provider"] == "b"
        await resp.read()
    assert len(a.requests) == 1
    assert gw.state.runtime.state("a").failures == 1


async def test_a_redirect_everywhere_answers_502_naming_it(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 1)])
    gw.fakes["a"].faults.append(Fault(status=301, headers={"Location": "https://elsewhere/v1"}))
    with pytest.raises(openai.APIStatusError) as exc:
        await gw.openai().chat.completions.create(model="gpt-4o", messages=HI)
    assert exc.value.status_code == 502
    assert "HTTP 301: redirect to https://elsewhere/v1 not followed" in exc.value.message
    assert len(gw.fakes["a"].requests) == 1


async def test_client_error_is_relayed_not_failed_over(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 2), _provider("b", 1)])
    body = {"error": {"message": "max_tokens is too large", "type": "invalid_request_error"}}
    gw.fakes["a"].faults.append(Fault(status=400, body=body))
    with pytest.raises(openai.BadRequestError) as exc:
        await gw.openai().chat.completions.create(model="gpt-4o", messages=HI)
    assert "max_tokens is too large" in exc.value.message
    assert gw.fakes["b"].requests == []
    assert gw.state.runtime.state("a").failures == 0


async def test_stream_breaking_mid_way_ends_with_an_error_event(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 1)])
    gw.fakes["a"].faults.append(Fault(break_after=3))
    http = await gw.http()
    body = {"model": "gpt-4o", "messages": HI, "stream": True}
    async with http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        text = (await resp.read()).decode()
    events = [e for e in text.split("\n\n") if e.strip()]
    assert "[DONE]" not in text
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["error"]["type"] == "upstream_error"
    assert "Hello" in text  # what arrived before the break was relayed


async def test_anthropic_stream_breaking_ends_with_an_error_event(gateway: GatewayFactory) -> None:
    provider = _provider("a", 1, format="anthropic", models=[{"id": "claude-fake-1"}])
    gw = await gateway(providers=[provider])
    gw.fakes["a"].faults.append(Fault(break_after=3))
    http = await gw.http()
    body = {"model": "claude-fake-1", "max_tokens": 5, "messages": HI, "stream": True}
    async with http.post(f"{gw.url}/v1/messages", json=body) as resp:
        text = (await resp.read()).decode()
    last = [e for e in text.split("\n\n") if e.strip()][-1]
    assert last.startswith("event: error\n")
    assert json.loads(last.split("data: ", 1)[1])["error"]["type"] == "api_error"
    assert "message_stop" not in text


async def test_all_cooling_answers_503_with_retry_after(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 1)], cooldown={"failure_threshold": 1})
    gw.fakes["a"].faults.append(Fault(status=500))
    with pytest.raises(openai.InternalServerError) as first:
        await gw.openai().chat.completions.create(model="gpt-4o", messages=HI)
    assert first.value.status_code == 502
    with pytest.raises(openai.APIStatusError) as exc:
        await gw.openai().chat.completions.create(model="gpt-4o", messages=HI)
    assert exc.value.status_code == 503
    assert 1 <= int(exc.value.response.headers["Retry-After"]) <= 31
    assert "cooling" in exc.value.message
    assert len(gw.fakes["a"].requests) == 1


async def test_client_disconnect_cancels_the_upstream_request(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 1)])
    gw.fakes["a"].faults.append(Fault(stall=30))
    http = await gw.http()
    task = asyncio.create_task(
        http.post(f"{gw.url}/v1/chat/completions", json={"model": "gpt-4o", "messages": HI})
    )
    for _ in range(200):
        if gw.fakes["a"].requests:
            break
        await asyncio.sleep(0.01)
    task.cancel()  # the client goes away while waiting for headers
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(gw.fakes["a"].cancelled.wait(), timeout=5)


async def test_key_rotation_on_auth_failure(gateway: GatewayFactory) -> None:
    provider = _provider("a", 1)
    provider["keys"] = [{"env": "OPENAI_A_KEY"}, {"env": "OPENAI_B_KEY"}]
    gw = await gateway(providers=[provider])
    gw.fakes["a"].faults.append(Fault(status=401))
    raw = await gw.openai().chat.completions.with_raw_response.create(model="gpt-4o", messages=HI)
    assert raw.headers["x-pooldaemon-attempts"] == "2"
    used = [h["Authorization"] for h in gw.fakes["a"].headers]
    assert used[0] != used[1]
    assert len(gw.state.runtime.keys) == 1  # the rejected key is set aside


async def test_timeout_everywhere_answers_504(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[_provider("a", 1, first_byte_timeout="200ms")])
    gw.fakes["a"].faults.append(Fault(stall=2.0))
    with pytest.raises(openai.APIStatusError) as exc:
        await gw.openai().chat.completions.create(model="gpt-4o", messages=HI)
    assert exc.value.status_code == 504
    assert "a:timeout" in exc.value.message
