"""Same-format paths with the official SDKs as clients: OpenAI -> OpenAI, Anthropic -> Anthropic."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import anthropic
import pytest

from tests.server.conftest import KEYS, Gateway, GatewayFactory
from tests.server.fakes import CACHED, USAGE_IN, USAGE_OUT, Fake, Fault

OPENAI_PROVIDER = {
    "id": "oa",
    "fake": "oa",
    "location": "cloud",
    "keys": [{"env": "OPENAI_A_KEY"}],
    "models": [{"id": "gpt-4o", "capabilities": ["chat", "streaming", "tools", "vision"]}],
}
ANTHROPIC_PROVIDER = {
    "id": "an",
    "fake": "an",
    "format": "anthropic",
    "location": "cloud",
    "keys": [{"env": "ANTH_KEY"}],
    "models": [
        {
            "id": "claude-fake-1",
            "max_output": 64000,
            "capabilities": ["chat", "streaming", "tools", "vision"],
        }
    ],
}
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "Weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
# A 1x1 PNG.
PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="  # noqa: E501


async def test_openai_plain(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OPENAI_PROVIDER])
    raw = await gw.openai().chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
    )
    answer = raw.parse()
    assert answer.choices[0].message.content == "Hello from the fake"
    assert raw.headers["x-pooldaemon-provider"] == "oa"
    assert raw.headers["x-pooldaemon-attempts"] == "1"
    sent = gw.fakes["oa"].headers[0]
    assert sent["Authorization"] == f"Bearer {KEYS['OPENAI_A_KEY']}"
    gw.store.flush()
    (record,) = gw.store.records(0, 2e9)
    assert (record.usage.input, record.usage.cache_read, record.usage.output) == (
        USAGE_IN - CACHED,
        CACHED,
        USAGE_OUT,
    )
    assert record.pricing_source == "builtin" and record.cost_usd > 0


async def test_openai_stream_without_usage_request_strips_the_usage_chunk(
    gateway: GatewayFactory,
) -> None:
    gw = await gateway(providers=[OPENAI_PROVIDER])
    stream = await gw.openai().chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "Hello from the fake"
    )
    assert all(c.usage is None for c in chunks)
    assert gw.fakes["oa"].requests[0]["stream_options"] == {"include_usage": True}
    gw.store.flush()
    (record,) = gw.store.records(0, 2e9)
    assert record.usage.output == USAGE_OUT  # the proxy still read it


async def test_openai_stream_with_usage_request_keeps_it(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OPENAI_PROVIDER])
    stream = await gw.openai().chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == USAGE_OUT


async def test_openai_tool_round_trip_streamed_and_image(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[OPENAI_PROVIDER])
    client = gw.openai()
    messages: list[Any] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather where this photo is?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
            ],
        }
    ]
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=[WEATHER_TOOL],
        stream=True,  # type: ignore[list-item]
    )
    arguments = ""
    call_id = name = None
    async for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or () if chunk.choices else ():
            call_id = call.id or call_id
            name = (call.function.name if call.function else None) or name
            arguments += (call.function.arguments or "") if call.function else ""
    assert (call_id, name, json.loads(arguments)) == ("call_1", "weather", {"city": "Paris"})
    messages += [
        {
            "role": "assistant",
            "tool_calls": [
                {
                    "id": call_id,
                    "type": "function",
                    "function": {"name": name, "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": "sunny"},
    ]
    final = await client.chat.completions.create(
        model="gpt-4o",
        messages=messages,
        tools=[WEATHER_TOOL],  # type: ignore[list-item]
    )
    assert final.choices[0].message.content == "Hello from the fake"
    assert gw.fakes["oa"].requests[0]["messages"][0]["content"][1]["type"] == "image_url"


async def test_anthropic_plain_and_headers(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[ANTHROPIC_PROVIDER])
    raw = await gw.anthropic().messages.with_raw_response.create(
        model="claude-fake-1",
        max_tokens=100,
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"},
    )
    message = await raw.parse()
    assert message.content[0].text == "Hello from the fake"  # type: ignore[union-attr]
    assert raw.headers["x-pooldaemon-provider"] == "an"
    sent = gw.fakes["an"].headers[0]
    assert sent["x-api-key"] == KEYS["ANTH_KEY"]
    assert sent["anthropic-version"] == "2023-06-01"
    assert sent["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "Authorization" not in sent  # the client's credential is never forwarded


async def test_anthropic_max_tokens_default_from_the_model(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[ANTHROPIC_PROVIDER])
    http = await gw.http()
    async with http.post(
        f"{gw.url}/v1/messages",
        json={"model": "claude-fake-1", "messages": [{"role": "user", "content": "hi"}]},
    ) as resp:
        assert resp.status == 200
    assert gw.fakes["an"].requests[0]["max_tokens"] == 64000


async def test_anthropic_stream_tool_round_trip_and_image(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[ANTHROPIC_PROVIDER])
    client = gw.anthropic()
    tool = {
        "name": "weather",
        "description": "Weather",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
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
        model="claude-fake-1",
        max_tokens=100,
        messages=messages,
        tools=[tool],  # type: ignore[list-item]
    ) as stream:
        first = await stream.get_final_message()
    block = first.content[0]
    assert block.type == "tool_use" and block.input == {"city": "Paris"}
    assert first.usage.output_tokens == USAGE_OUT
    messages += [
        {"role": "assistant", "content": [block.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "sunny"}],
        },
    ]
    async with client.messages.stream(
        model="claude-fake-1",
        max_tokens=100,
        messages=messages,
        tools=[tool],  # type: ignore[list-item]
    ) as stream:
        text = "".join([t async for t in stream.text_stream])
    assert text == "Hello from the fake"
    gw.store.flush()
    records = gw.store.records(0, 2e9)
    assert len(records) == 2
    assert all(r.usage.input == USAGE_IN and r.usage.cache_read == CACHED for r in records)


async def test_models_list_in_both_shapes(gateway: GatewayFactory) -> None:
    gw = await gateway(
        providers=[OPENAI_PROVIDER, ANTHROPIC_PROVIDER], aliases={"fast": ["gpt-4o"]}
    )
    ids = {m.id async for m in gw.openai().models.list()}
    assert {"gpt-4o", "oa/gpt-4o", "claude-fake-1", "fast"} <= ids
    page = await gw.anthropic().models.list()
    assert "claude-fake-1" in {m.id for m in page.data}


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"messages": []}', 400, "'model' is required"),
        (b'{"model": "gpt-4o", "stream": "yes"}', 400, "'stream' must be a boolean"),
        (b'{"model": "gtp-4o", "messages": []}', 404, "closest: gpt-4o"),
    ],
)
async def test_bad_requests_get_the_openai_error_shape(
    gateway: GatewayFactory, payload: bytes, status: int, fragment: str
) -> None:
    gw = await gateway(providers=[OPENAI_PROVIDER])
    http = await gw.http()
    async with http.post(f"{gw.url}/v1/chat/completions", data=payload) as resp:
        body = await resp.json()
    assert resp.status == status
    assert fragment in body["error"]["message"] and body["error"]["type"]


async def test_bad_requests_get_the_anthropic_error_shape(gateway: GatewayFactory) -> None:
    gw = await gateway(providers=[ANTHROPIC_PROVIDER])
    with pytest.raises(anthropic.NotFoundError) as exc:
        await gw.anthropic().messages.create(
            model="claude-sonet", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert exc.value.body["type"] == "error"  # type: ignore[index]
    assert exc.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


async def _stream_to_its_end(gw: Gateway, body: dict[str, Any]) -> tuple[bytes, float]:
    """The whole streamed body as a client reads it to the end of the response, and
    how long that took."""
    http = await gw.http()
    started = time.monotonic()
    async with http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
        assert resp.status == 200
        raw = await resp.read()
    return raw, time.monotonic() - started


STREAM_BODY = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}


async def _stream_from_a_lingering_upstream(
    gateway: GatewayFactory, end_delay: float
) -> tuple[Gateway, Fake]:
    """One stream from an upstream that keeps its body open ``end_delay`` seconds
    after ``[DONE]``: the client has the whole stream at once, and its usage is
    recorded."""
    gw = await gateway(providers=[OPENAI_PROVIDER])
    fake = gw.fakes["oa"]
    fake.faults.append(Fault(end_delay=end_delay))
    raw, took = await _stream_to_its_end(gw, STREAM_BODY)
    assert raw.endswith(b"data: [DONE]\n\n") and took < 0.5, took
    gw.store.flush()
    assert [r.outcome for r in gw.store.records(0, 2e9)] == ["success"]
    return gw, fake


async def test_stream_ends_for_the_client_at_the_end_marker(gateway: GatewayFactory) -> None:
    """An upstream that keeps its body open after ``[DONE]`` does not hold the client:
    the end marker and the end of the response leave together, the usage is recorded
    at once, and the upstream connection is reused once its body has ended."""
    gw, fake = await _stream_from_a_lingering_upstream(gateway, 0.6)
    await asyncio.sleep(0.8)  # the upstream ends its body: its connection goes back to the pool
    raw, _ = await _stream_to_its_end(gw, STREAM_BODY)
    assert raw.endswith(b"data: [DONE]\n\n")
    assert fake.peers[0] == fake.peers[1], "the upstream connection was not reused"


async def test_the_next_request_on_a_connection_does_not_wait_for_an_upstream_that_lingers(
    gateway: GatewayFactory,
) -> None:
    """After ``[DONE]`` the handler does not wait for the upstream to end its body: a
    client that sends its next request on the same keep-alive connection gets its
    answer at once, not after the upstream has ended its body (here 0.6 s). Each
    upstream connection goes back to the pool when its body has ended."""
    gw = await gateway(providers=[OPENAI_PROVIDER])
    fake = gw.fakes["oa"]
    fake.faults.append(Fault(end_delay=0.6))
    http = await gw.http()
    sockets, took = [], []
    for _ in range(2):
        started = time.monotonic()
        async with http.post(f"{gw.url}/v1/chat/completions", json=STREAM_BODY) as resp:
            assert resp.status == 200
            assert resp.connection is not None and resp.connection.transport is not None
            sockets.append(resp.connection.transport.get_extra_info("sockname"))
            raw = await resp.read()
        took.append(time.monotonic() - started)
        assert raw.endswith(b"data: [DONE]\n\n")
    assert sockets[0] == sockets[1], "the client did not reuse its connection"
    assert max(took) < 0.4, took
    gw.store.flush()
    assert [r.outcome for r in gw.store.records(0, 2e9)] == ["success", "success"]
    await asyncio.sleep(0.7)  # both upstream bodies have ended (0.6 s): pooled, not closed
    raw, _ = await _stream_to_its_end(gw, STREAM_BODY)
    assert raw.endswith(b"data: [DONE]\n\n")
    assert fake.peers[2] in fake.peers[:2], "an upstream connection was not reused"


async def test_shutdown_closes_upstream_answers_still_ending(
    gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """An upstream answer still open after its client's stream ended is closed at
    shutdown: the proxy stops at once, not when the 1 s limit runs out, and the
    limit's timer firing afterwards finds nothing to do."""
    gw, fake = await _stream_from_a_lingering_upstream(gateway, 5.0)
    (upstream,) = fake.transports
    assert not upstream.is_closing()
    started = time.monotonic()
    await gw.stack.aclose()  # the proxy app's cleanup, then the fake's
    assert time.monotonic() - started < 0.8
    assert upstream.is_closing()
    await asyncio.sleep(1.1)  # the limit's timer fires on a closed session
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


@pytest.mark.parametrize(
    ("fault", "drain_s"),
    [
        # 1.1 MB after the end: reading pauses when the answer's buffer is full,
        # so the end is never read, and the limit closes the connection
        (Fault(after_end=b": padding\n\n" * 100_000, end_delay=0.3), 0.2),
        (Fault(end_delay=0.5), 0.05),  # the body does not end in time
    ],
    ids=["too-much-after-the-end", "no-end-in-time"],
)
async def test_stream_upstream_that_does_not_end_is_closed(
    gateway: GatewayFactory, monkeypatch: pytest.MonkeyPatch, fault: Fault, drain_s: float
) -> None:
    """What an upstream sends after its end marker never reaches the client; past the
    limit its connection is closed, not reused, and the next request works."""
    monkeypatch.setattr("pooldaemon.server._attempt._DRAIN_S", drain_s)
    gw = await gateway(providers=[OPENAI_PROVIDER])
    fake = gw.fakes["oa"]
    fake.faults.append(fault)
    raw, _ = await _stream_to_its_end(gw, STREAM_BODY)
    assert raw.endswith(b"data: [DONE]\n\n") and b"padding" not in raw
    await asyncio.sleep(0.7)
    assert fake.transports[0].is_closing(), "the upstream connection was not closed"
    raw, _ = await _stream_to_its_end(gw, STREAM_BODY)
    assert raw.endswith(b"data: [DONE]\n\n")
    assert fake.peers[0] != fake.peers[1], "a connection with an unread body was reused"
    gw.store.flush()
    assert [r.outcome for r in gw.store.records(0, 2e9)] == ["success", "success"]
