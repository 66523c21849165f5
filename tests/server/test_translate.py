"""Cross-format paths with the official SDKs: OpenAI client -> Anthropic upstream and back."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest

from pooldaemon.upstream._anthropic_ir import JSON_INSTRUCTION
from tests.server.conftest import GatewayFactory
from tests.server.fakes import CACHED, USAGE_IN, USAGE_OUT, Fault
from tests.server.test_passthrough import PIXEL, WEATHER_TOOL

TO_ANTHROPIC = {
    "id": "an",
    "fake": "an",
    "format": "anthropic",
    "location": "cloud",
    "keys": [{"env": "ANTH_KEY"}],
    "models": [
        {
            "id": "claude-fake-1",
            "max_output": 8000,
            "capabilities": ["chat", "streaming", "tools", "vision", "json"],
        }
    ],
}
TO_OPENAI = {
    "id": "oa",
    "fake": "oa",
    "location": "cloud",
    "keys": [{"env": "OPENAI_A_KEY"}],
    "models": [{"id": "gpt-4o", "capabilities": ["chat", "streaming", "tools", "vision"]}],
}
ANTHROPIC_TOOL = {
    "name": "weather",
    "description": "Weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
HI = [{"role": "user", "content": "hi"}]


# -- OpenAI client -> Anthropic upstream ---------------------------------------


async def test_openai_to_anthropic_plain(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[TO_ANTHROPIC])
    answer = await gw.openai().chat.completions.create(
        model="claude-fake-1",
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        temperature=1.5,
        stop=["END"],
    )
    assert answer.choices[0].message.content == "Hello from the fake"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.prompt_tokens == USAGE_IN + CACHED
    assert answer.usage.completion_tokens == USAGE_OUT
    sent = gw.fakes["an"].requests[0]
    assert sent["system"] == "Be brief."
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    assert sent["max_tokens"] == 8000  # the model's max output: Anthropic requires one
    assert sent["temperature"] == 1.0  # clamped to Anthropic's range
    assert sent["stop_sequences"] == ["END"]
    gw.store.flush()
    (record,) = gw.store.records(0, 2e9)
    assert (record.usage.input, record.usage.cache_read, record.usage.output) == (
        USAGE_IN,
        CACHED,
        USAGE_OUT,
    )


async def test_openai_to_anthropic_stream_with_usage(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[TO_ANTHROPIC])
    stream = await gw.openai().chat.completions.create(
        model="claude-fake-1", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the fake"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == USAGE_OUT


async def test_openai_to_anthropic_tool_round_trip_and_images(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[TO_ANTHROPIC])
    client = gw.openai()
    messages: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather at these?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/photo.jpg"}},
            ],
        }
    ]
    stream = await client.chat.completions.create(
        model="claude-fake-1",
        messages=messages,
        tools=[WEATHER_TOOL],
        stream=True,  # type: ignore[list-item]
        tool_choice="required",
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    async for chunk in stream:
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for call in chunk.choices[0].delta.tool_calls or ():
            entry = calls.setdefault(call.index, {"id": "", "name": "", "args": ""})
            entry["id"] = call.id or entry["id"]
            if call.function:
                entry["name"] = call.function.name or entry["name"]
                entry["args"] += call.function.arguments or ""
    assert finish == "tool_calls"
    (call,) = calls.values()
    assert (call["id"], call["name"], json.loads(call["args"])) == (
        "toolu_1",
        "weather",
        {"city": "Paris"},
    )
    sent = gw.fakes["an"].requests[0]
    images = [b["source"] for b in sent["messages"][0]["content"] if b["type"] == "image"]
    assert images == [
        {"type": "base64", "media_type": "image/png", "data": PIXEL},
        {"type": "url", "url": "https://example.com/photo.jpg"},
    ]
    assert sent["tool_choice"] == {"type": "any"}
    assert sent["tools"][0]["input_schema"]["properties"] == {"city": {"type": "string"}}
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["args"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"},
    ]
    final = await client.chat.completions.create(
        model="claude-fake-1",
        messages=messages,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert final.choices[0].message.content == "Hello from the fake"
    turns = gw.fakes["an"].requests[1]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == [
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}
    ]
    assert turns[2]["content"][0]["type"] == "tool_result"
    assert turns[2]["content"][0]["tool_use_id"] == "toolu_1"


async def test_openai_json_mode_becomes_an_instruction(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[TO_ANTHROPIC])
    await gw.openai().chat.completions.create(
        model="claude-fake-1", messages=HI, response_format={"type": "json_object"}
    )
    assert gw.fakes["an"].requests[0]["system"] == JSON_INSTRUCTION


async def test_upstream_client_error_is_reshaped(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[TO_ANTHROPIC])
    body = {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "prompt is too long"},
    }
    gw.fakes["an"].faults.append(Fault(status=400, body=body))
    with pytest.raises(openai.BadRequestError) as exc:
        await gw.openai().chat.completions.create(model="claude-fake-1", messages=HI)
    assert "prompt is too long" in exc.value.message
    assert exc.value.body["type"] == "invalid_request_error"  # type: ignore[index]


async def test_translated_stream_breaking_ends_with_openai_error(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[TO_ANTHROPIC])
    gw.fakes["an"].faults.append(Fault(break_after=3))
    http = await gw.http()
    body = {"model": "claude-fake-1", "messages": HI, "stream": True}
    async with http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
        text = (await resp.read()).decode()
    assert "[DONE]" not in text
    last = [e for e in text.split("\n\n") if e.strip()][-1]
    assert json.loads(last.removeprefix("data: "))["error"]["type"] == "upstream_error"


# -- Anthropic client -> OpenAI upstream ---------------------------------------


async def test_anthropic_to_openai_plain(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[TO_OPENAI])
    message = await gw.anthropic().messages.create(
        model="gpt-4o",
        max_tokens=50,
        system="Be brief.",
        messages=HI,
        stop_sequences=["END"],
    )
    assert message.content[0].text == "Hello from the fake"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens == USAGE_IN - CACHED
    assert message.usage.cache_read_input_tokens == CACHED
    sent = gw.fakes["oa"].requests[0]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert sent["max_tokens"] == 50 and sent["stop"] == ["END"]


async def test_anthropic_to_openai_stream(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[TO_OPENAI])
    async with gw.anthropic().messages.stream(model="gpt-4o", max_tokens=50, messages=HI) as s:
        text = "".join([t async for t in s.text_stream])
        final = await s.get_final_message()
    assert text == "Hello from the fake"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == USAGE_OUT
    assert gw.fakes["oa"].requests[0]["stream_options"] == {"include_usage": True}


async def test_anthropic_to_openai_tool_round_trip_and_image(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[TO_OPENAI])
    client = gw.anthropic()
    messages: list[Any] = [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                },
                {"type": "text", "text": "Weather where this photo is?"},
            ],
        }
    ]
    async with client.messages.stream(
        model="gpt-4o",
        max_tokens=50,
        messages=messages,
        tools=[ANTHROPIC_TOOL],  # type: ignore[list-item]
    ) as stream:
        first = await stream.get_final_message()
    assert first.stop_reason == "tool_use"
    block = first.content[0]
    assert block.type == "tool_use" and block.input == {"city": "Paris"}
    assert block.id == "call_1" and block.name == "weather"
    sent = gw.fakes["oa"].requests[0]
    assert sent["messages"][0]["content"][0] == {
        "type": "image_url",
        "image_url": {"url": f"data:image/png;base64,{PIXEL}"},
    }
    assert sent["tools"][0]["function"]["name"] == "weather"
    messages += [
        {"role": "assistant", "content": [block.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}],
        },
    ]
    final = await client.messages.create(
        model="gpt-4o",
        max_tokens=50,
        messages=messages,
        tools=[ANTHROPIC_TOOL],  # type: ignore[list-item]
    )
    assert final.content[0].text == "Hello from the fake"  # type: ignore[union-attr]
    turns = gw.fakes["oa"].requests[1]["messages"]
    assert [t["role"] for t in turns] == ["user", "assistant", "tool"]
    assert turns[1]["tool_calls"][0]["function"] == {
        "name": "weather",
        "arguments": '{"city": "Paris"}',
    }
    assert turns[2] == {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}


async def test_anthropic_client_gets_anthropic_errors_from_openai_upstream(
    gateway: GatewayFactory,
) -> None:
    gw = await gateway(providers=[TO_OPENAI])
    body = {"error": {"message": "context_length_exceeded", "type": "invalid_request_error"}}
    gw.fakes["oa"].faults.append(Fault(status=400, body=body))
    with pytest.raises(anthropic.BadRequestError) as exc:
        await gw.anthropic().messages.create(model="gpt-4o", max_tokens=5, messages=HI)
    assert exc.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    assert "context_length_exceeded" in exc.value.message


async def test_failover_across_formats(gateway: GatewayFactory) -> None:
    first = {**TO_ANTHROPIC, "models": [{"id": "shared-model"}], "priority": 5}
    second = {**TO_OPENAI, "models": [{"id": "shared-model"}]}
    gw = await gateway(providers=[first, second])
    gw.fakes["an"].faults.append(Fault(status=529))
    raw = await gw.openai().chat.completions.with_raw_response.create(
        model="shared-model", messages=HI
    )
    assert raw.headers["x-pooldaemon-provider"] == "oa"
    assert raw.parse().choices[0].message.content == "Hello from the fake"


async def test_untranslatable_request_is_a_400_in_the_clients_shape(
    gateway: GatewayFactory,
) -> None:
    gw = await gateway(providers=[TO_ANTHROPIC])
    audio = {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as exc:
        await gw.openai().chat.completions.create(
            model="claude-fake-1",
            messages=[{"role": "user", "content": [audio]}],  # type: ignore[list-item]
        )
    assert "cannot be translated" in exc.value.message
    assert gw.fakes["an"].requests == []
