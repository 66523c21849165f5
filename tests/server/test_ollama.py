"""Ollama's native API upstream, reached from OpenAI and Anthropic clients."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest

from tests.server.conftest import GatewayFactory
from tests.server.fake_ollama import PNG
from tests.server.fakes import USAGE_IN, USAGE_OUT, Fault
from tests.server.test_passthrough import WEATHER_TOOL

OLLAMA = {
    "id": "ol",
    "fake": "ol",
    "format": "ollama",
    "models": [{"id": "llama3.2", "capabilities": ["chat", "streaming", "tools", "vision"]}],
    "model_params": {"temperature": 0.3},
}
HI = [{"role": "user", "content": "hi"}]


async def test_openai_client_plain_and_defaults(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OLLAMA])
    answer = await gw.openai().chat.completions.create(
        model="llama3.2",
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        max_tokens=64,
        stop=["END"],
    )
    assert answer.choices[0].message.content == "Hello from the fake"
    assert answer.usage is not None and answer.usage.prompt_tokens == USAGE_IN
    sent = gw.fakes["ol"].requests[0]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert sent["stream"] is False
    assert sent["options"] == {"num_predict": 64, "stop": ["END"], "temperature": 0.3}
    assert "Authorization" not in gw.fakes["ol"].headers[0]  # no key: no credential
    gw.store.flush()
    (record,) = gw.store.records(0, 2e9)
    assert (record.usage.input, record.usage.output, record.cost_usd) == (USAGE_IN, USAGE_OUT, 0)
    assert record.pricing_source == "local"


async def test_openai_client_stream(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OLLAMA])
    stream = await gw.openai().chat.completions.create(
        model="llama3.2", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from the fake"
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == USAGE_OUT


async def test_openai_client_tool_round_trip_with_image_url(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OLLAMA])
    client = gw.openai()
    image_url = f"{gw.fakes['ol'].url}/image.png"
    messages: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather there?"},
                {"type": "image_url", "image_url": {"url": image_url}},
            ],
        }
    ]
    stream = await client.chat.completions.create(
        model="llama3.2",
        messages=messages,
        tools=[WEATHER_TOOL],
        stream=True,  # type: ignore[list-item]
    )
    calls = [
        c.choices[0].delta.tool_calls[0]
        async for c in stream
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert calls[0].function is not None and calls[0].function.name == "weather"
    args = "".join(c.function.arguments or "" for c in calls if c.function)
    assert json.loads(args) == {"city": "Paris"}
    sent = gw.fakes["ol"].requests[0]["messages"][0]
    assert sent["images"] == [base64.b64encode(PNG).decode()]  # fetched and inlined
    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": calls[0].id,
                    "type": "function",
                    "function": {"name": "weather", "arguments": args},
                }
            ],
        },
        {"role": "tool", "tool_call_id": calls[0].id, "content": "sunny"},
    ]
    final = await client.chat.completions.create(
        model="llama3.2",
        messages=messages,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert final.choices[0].message.content == "Hello from the fake"
    turns = gw.fakes["ol"].requests[1]["messages"]
    assert turns[1]["tool_calls"] == [
        {"function": {"name": "weather", "arguments": {"city": "Paris"}}}
    ]
    assert turns[2] == {"role": "tool", "content": "sunny", "tool_name": "weather"}


async def test_anthropic_client_stream(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OLLAMA])
    async with gw.anthropic().messages.stream(model="llama3.2", max_tokens=50, messages=HI) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == "Hello from the fake"
    assert final.usage.output_tokens == USAGE_OUT


async def test_bad_image_url_is_a_400(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OLLAMA])
    bad = f"{gw.fakes['ol'].url}/missing.png"
    with pytest.raises(openai.BadRequestError) as exc:
        await gw.openai().chat.completions.create(
            model="llama3.2",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": bad}}]}
            ],
        )
    assert "HTTP 404" in exc.value.message


async def test_model_not_found_fails_over_and_is_remembered(gateway: GatewayFactory) -> None:
    backup = {**OLLAMA, "id": "ol2", "fake": "ol2", "priority": -1}
    gw = await gateway(providers=[OLLAMA, backup])
    gw.fakes["ol"].faults.append(
        Fault(status=404, body={"error": "model 'llama3.2' not found, try pulling it first"})
    )
    raw = await gw.openai().chat.completions.with_raw_response.create(model="llama3.2", messages=HI)
    assert raw.headers["x-pooldaemon-provider"] == "ol2"
    assert ("ol", "llama3.2") in gw.state.runtime.excluded


async def test_stream_breaking_ends_with_the_client_error(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OLLAMA])
    gw.fakes["ol"].faults.append(Fault(break_after=2))
    http = await gw.http()
    body = {"model": "llama3.2", "messages": HI, "stream": True}
    async with http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
        text = (await resp.read()).decode()
    assert "[DONE]" not in text
    last = [e for e in text.split("\n\n") if e.strip()][-1]
    assert json.loads(last.removeprefix("data: "))["error"]["type"] == "upstream_error"
