"""Every inbound API x every upstream format: plain text, streamed text, and a streamed
tool-call round trip whose first turn carries an image, with the official SDKs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.server.conftest import Gateway, GatewayFactory
from tests.server.test_passthrough import PIXEL

CAPS = ["chat", "streaming", "tools", "vision"]
UPSTREAMS = {
    "openai": {"keys": [{"env": "OPENAI_A_KEY"}]},
    "anthropic": {"keys": [{"env": "ANTH_KEY"}]},
    "google": {"keys": [{"env": "ANTH_KEY_2"}]},
    "ollama": {},
    "responses": {"keys": [{"env": "OPENAI_B_KEY"}]},
}
INBOUND = ["openai", "anthropic", "responses"]
WEATHER = {
    "name": "weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
QUESTION = "Weather where this photo was taken?"


def _provider(fmt: str) -> dict[str, Any]:
    return {
        "id": f"up-{fmt}",
        "fake": f"up-{fmt}",
        "format": fmt,
        "location": "cloud",
        "models": [{"id": "m", "capabilities": CAPS}],
        **UPSTREAMS[fmt],
    }


class _OpenAIClient:
    def __init__(self, gw: Gateway) -> None:
        self.client = gw.openai()

    async def plain(self) -> str:
        answer = await self.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        return answer.choices[0].message.content or ""

    async def stream(self) -> str:
        stream = await self.client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async def tool_round(self) -> tuple[str, dict[str, Any], str]:
        tools: Any = [{"type": "function", "function": WEATHER}]
        messages: list[Any] = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": QUESTION},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                ],
            }
        ]
        stream = await self.client.chat.completions.create(
            model="m", messages=messages, tools=tools, stream=True
        )
        call_id, name, args = "", "", ""
        async for chunk in stream:
            for call in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
                call_id = call.id or call_id
                if call.function:
                    name = call.function.name or name
                    args += call.function.arguments or ""
        messages += [
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": args},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
        ]
        final = await self.client.chat.completions.create(model="m", messages=messages, tools=tools)
        return name, json.loads(args), final.choices[0].message.content or ""


class _AnthropicClient:
    def __init__(self, gw: Gateway) -> None:
        self.client = gw.anthropic()

    async def plain(self) -> str:
        message = await self.client.messages.create(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        )
        return "".join(b.text for b in message.content if b.type == "text")

    async def stream(self) -> str:
        async with self.client.messages.stream(
            model="m", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            return "".join([t async for t in stream.text_stream])

    async def tool_round(self) -> tuple[str, dict[str, Any], str]:
        tools: Any = [
            {
                "name": WEATHER["name"],
                "description": WEATHER["description"],
                "input_schema": WEATHER["parameters"],
            }
        ]
        messages: list[Any] = [
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                    },
                    {"type": "text", "text": QUESTION},
                ],
            }
        ]
        async with self.client.messages.stream(
            model="m", max_tokens=50, messages=messages, tools=tools
        ) as stream:
            first = await stream.get_final_message()
        block = next(b for b in first.content if b.type == "tool_use")
        messages += [
            {"role": "assistant", "content": [block.model_dump()]},
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}],
            },
        ]
        final = await self.client.messages.create(
            model="m", max_tokens=50, messages=messages, tools=tools
        )
        text = "".join(b.text for b in final.content if b.type == "text")
        return block.name, dict(block.input), text  # type: ignore[arg-type]


class _ResponsesClient:
    def __init__(self, gw: Gateway) -> None:
        self.client = gw.openai()

    async def plain(self) -> str:
        response = await self.client.responses.create(model="m", input="hi")
        return response.output_text

    async def stream(self) -> str:
        stream = await self.client.responses.create(model="m", input="hi", stream=True)
        return "".join([e.delta async for e in stream if e.type == "response.output_text.delta"])

    async def tool_round(self) -> tuple[str, dict[str, Any], str]:
        tools: Any = [{"type": "function", "strict": False, **WEATHER}]
        items: list[Any] = [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": QUESTION},
                    {
                        "type": "input_image",
                        "image_url": f"data:image/png;base64,{PIXEL}",
                        "detail": "auto",
                    },
                ],
            }
        ]
        stream = await self.client.responses.create(
            model="m", input=items, tools=tools, stream=True
        )
        args, call = "", None
        async for event in stream:
            if event.type == "response.function_call_arguments.delta":
                args += event.delta
            elif event.type == "response.completed":
                call = next(o for o in event.response.output if o.type == "function_call")
        assert call is not None and call.arguments == args
        items += [
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": args,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ]
        final = await self.client.responses.create(model="m", input=items, tools=tools)
        return call.name, json.loads(args), final.output_text


CLIENTS = {"openai": _OpenAIClient, "anthropic": _AnthropicClient, "responses": _ResponsesClient}


@pytest.mark.parametrize("upstream", list(UPSTREAMS))
@pytest.mark.parametrize("inbound", INBOUND)
async def test_pair(gateway: GatewayFactory, inbound: str, upstream: str) -> None:
    gw = await gateway(providers=[_provider(upstream)])
    client = CLIENTS[inbound](gw)
    assert await client.plain()
    assert await client.stream()
    name, args, final = await client.tool_round()
    assert (name, args) == ("weather", {"city": "Paris"})
    assert final
    gw.store.flush()
    records = gw.store.records(0, 2e9)
    assert len(records) == 4 and all(r.usage.output > 0 for r in records)
    # The image reached the upstream, in its own format.
    first_turn = json.dumps(gw.fakes[f"up-{upstream}"].requests[2])
    assert PIXEL in first_turn
