"""Gemini upstream (generateContent / streamGenerateContent?alt=sse), from both client APIs."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.server.conftest import KEYS, GatewayFactory
from tests.server.fake_ollama import PNG, ollama_app
from tests.server.fakes import USAGE_IN, USAGE_OUT, Fake, Fault, serve
from tests.server.test_passthrough import WEATHER_TOOL

GEMINI = {
    "id": "gm",
    "fake": "gm",
    "format": "google",
    "location": "cloud",
    "keys": [{"env": "ANTH_KEY_2"}],
    "models": [
        {"id": "gemini-2.5-flash", "capabilities": ["chat", "streaming", "tools", "vision"]}
    ],
}
HI = [{"role": "user", "content": "hi"}]


async def test_openai_client_plain(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[GEMINI])
    answer = await gw.openai().chat.completions.create(
        model="gemini-2.5-flash",
        messages=[{"role": "system", "content": "Be brief."}, *HI],
        max_tokens=64,
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens == USAGE_OUT
    headers = gw.fakes["gm"].headers[0]
    assert headers[":path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert headers["x-goog-api-key"] == KEYS["ANTH_KEY_2"]
    sent = gw.fakes["gm"].requests[0]
    assert sent["systemInstruction"]["parts"][0]["text"] == "Be brief."
    assert sent["generationConfig"]["maxOutputTokens"] == 64
    gw.store.flush()
    (record,) = gw.store.records(0, 2e9)
    assert record.usage.output == USAGE_OUT and record.cost_usd > 0


async def test_openai_client_stream(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[GEMINI])
    stream = await gw.openai().chat.completions.create(
        model="gemini-2.5-flash", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == USAGE_IN
    assert gw.fakes["gm"].headers[0][":path"].endswith(":streamGenerateContent?alt=sse")


async def test_openai_client_tool_round_trip_with_fetched_image(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[GEMINI])
    images = Fake("images")
    async with serve(ollama_app(images)) as image_host:
        client = gw.openai()
        messages: list[Any] = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Weather there?"},
                    {"type": "image_url", "image_url": {"url": f"{image_host}/image.png"}},
                ],
            }
        ]
        stream = await client.chat.completions.create(
            model="gemini-2.5-flash",
            messages=messages,
            tools=[WEATHER_TOOL],
            stream=True,  # type: ignore[list-item]
        )
        calls = [
            c.choices[0].delta.tool_calls[0]
            async for c in stream
            if c.choices and c.choices[0].delta.tool_calls
        ]
        await _second_round(gw, client, messages, calls)


async def _second_round(gw: Any, client: Any, messages: list[Any], calls: list[Any]) -> None:
    name = next(c.function.name for c in calls if c.function and c.function.name)
    args = "".join(c.function.arguments or "" for c in calls if c.function)
    call_id = next(c.id for c in calls if c.id)
    assert name == "weather" and json.loads(args) == {"city": "Paris"}
    parts = gw.fakes["gm"].requests[0]["contents"][0]["parts"]
    inline = [p["inlineData"] for p in parts if "inlineData" in p]
    assert inline == [{"mimeType": "image/png", "data": base64.b64encode(PNG).decode()}]
    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": name, "arguments": args}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
    ]
    final = await client.chat.completions.create(
        model="gemini-2.5-flash",
        messages=messages,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert final.choices[0].message.content
    contents = gw.fakes["gm"].requests[1]["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    response = contents[2]["parts"][0]["functionResponse"]
    assert response["name"] == "weather" and response["response"] == {"result": "sunny"}


async def test_anthropic_client_stream(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[GEMINI])
    async with gw.anthropic().messages.stream(
        model="gemini-2.5-flash", max_tokens=50, messages=HI
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == USAGE_OUT


async def test_gemini_error_fails_over(gateway: GatewayFactory) -> None:
    backup = {
        "id": "oa",
        "fake": "oa",
        "location": "cloud",
        "priority": -1,
        "keys": [{"env": "OPENAI_A_KEY"}],
        "models": [{"id": "gemini-2.5-flash"}],
    }
    gw = await gateway(providers=[GEMINI, backup])
    gw.fakes["gm"].faults.append(
        Fault(
            status=503,
            body={
                "error": {
                    "code": 503,
                    "message": "The model is overloaded.",
                    "status": "UNAVAILABLE",
                }
            },
        )
    )
    raw = await gw.openai().chat.completions.with_raw_response.create(
        model="gemini-2.5-flash", messages=HI
    )
    assert raw.headers["x-pooldaemon-provider"] == "oa"
