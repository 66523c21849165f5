"""Fake upstreams: small real aiohttp apps speaking OpenAI Chat Completions and
Anthropic Messages, plain and streamed, with scriptable faults."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

USAGE_IN, USAGE_OUT, CACHED = 42, 7, 10
COUNTED = 123


@dataclass
class Fault:
    """What the next request gets instead of a normal answer."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    stall: float = 0.0  # seconds before any header
    break_after: int | None = None  # stream: close the connection after N events
    garbage: bool = False  # 200 with a body that is not JSON
    event_delay: float = 0.0  # stream: seconds between events
    after_end: bytes = b""  # stream: sent after the last event (after the end marker)
    end_delay: float = 0.0  # stream: seconds between the last event and the body's end


@dataclass
class Fake:
    name: str
    faults: list[Fault] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    peers: list[int] = field(default_factory=list)  # the client port of each request
    transports: list[asyncio.Transport] = field(default_factory=list)  # of each request
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    text: str = "Hello from the fake"


def _openai_answer(fake: Fake, body: dict[str, Any]) -> dict[str, Any]:
    tools = body.get("tools")
    message: dict[str, Any] = {"role": "assistant", "content": fake.text}
    finish = "stop"
    if tools and not any(m.get("role") == "tool" for m in body["messages"]):
        message = {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": tools[0]["function"]["name"], "arguments": '{"city": "Paris"}'}}
        ]}  # fmt: skip
        finish = "tool_calls"
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                  "total_tokens": USAGE_IN + USAGE_OUT,
                  "prompt_tokens_details": {"cached_tokens": CACHED}},
    }  # fmt: skip


def _openai_chunks(fake: Fake, body: dict[str, Any]) -> list[bytes]:
    base = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": body["model"]}  # fmt: skip

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(data)}\n\n".encode()

    answer = _openai_answer(fake, body)["choices"][0]
    out = [chunk({"role": "assistant", "content": ""})]
    if answer["finish_reason"] == "tool_calls":
        call = answer["message"]["tool_calls"][0]
        out.append(chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                          "function": {"name": call["function"]["name"],
                                                       "arguments": ""}}]}))  # fmt: skip
        out.extend(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            for piece in ('{"ci', 'ty": ', '"Paris"}')
        )
    else:
        out.extend(chunk({"content": word}) for word in ("Hello ", "from ", "the ", "fake"))
    out.append(chunk({}, answer["finish_reason"]))
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = _openai_answer(fake, body)["usage"]
        out.append(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode())
    out.append(b"data: [DONE]\n\n")
    return out


def _anthropic_answer(fake: Fake, body: dict[str, Any]) -> dict[str, Any]:
    tools = body.get("tools")
    content: list[dict[str, Any]] = [{"type": "text", "text": fake.text}]
    stop = "end_turn"
    last = body["messages"][-1]["content"]
    answered = isinstance(last, list) and any(p.get("type") == "tool_result" for p in last)
    if tools and not answered:
        content = [{"type": "tool_use", "id": "toolu_1", "name": tools[0]["name"],
                    "input": {"city": "Paris"}}]  # fmt: skip
        stop = "tool_use"
    return {
        "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
        "content": content, "stop_reason": stop, "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT,
                  "cache_read_input_tokens": CACHED, "cache_creation_input_tokens": 0},
    }  # fmt: skip


def _anthropic_events(fake: Fake, body: dict[str, Any]) -> list[bytes]:
    def ev(kind: str, data: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()

    answer = _anthropic_answer(fake, body)
    start = {**answer, "content": [], "stop_reason": None,
             "usage": {**answer["usage"], "output_tokens": 1}}  # fmt: skip
    out = [ev("message_start", {"message": start})]
    block = answer["content"][0]
    if block["type"] == "tool_use":
        out.append(ev("content_block_start", {"index": 0, "content_block": {**block, "input": {}}}))
        out.extend(
            ev("content_block_delta",
               {"index": 0, "delta": {"type": "input_json_delta", "partial_json": piece}})
            for piece in ('{"ci', 'ty": ', '"Paris"}')
        )  # fmt: skip
    else:
        out.append(
            ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        )
        out.extend(
            ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": w}})
            for w in ("Hello ", "from ", "the ", "fake")
        )
    out.append(ev("content_block_stop", {"index": 0}))
    out.append(ev("message_delta", {"delta": {"stop_reason": answer["stop_reason"],
                                              "stop_sequence": None},
                                    "usage": {"output_tokens": USAGE_OUT}}))  # fmt: skip
    out.append(ev("message_stop", {}))
    return out


def fake_app(fake: Fake) -> web.Application:
    async def handle(request: web.Request, kind: str) -> web.StreamResponse:
        body = await request.json()
        fake.requests.append(body)
        fake.headers.append(dict(request.headers))
        assert request.transport is not None
        fake.peers.append(request.transport.get_extra_info("peername")[1])
        fake.transports.append(request.transport)
        fault = fake.faults.pop(0) if fake.faults else Fault()
        try:
            if fault.stall:
                await asyncio.sleep(fault.stall)
            if fault.status != 200:
                return web.json_response(fault.body or {"error": {"message": "fake failure"}},
                                         status=fault.status, headers=fault.headers)  # fmt: skip
            if fault.garbage:
                return web.Response(text="<html>502 Bad Gateway</html>",
                                    content_type="application/json")  # fmt: skip
            if not body.get("stream"):
                answer = _openai_answer if kind == "openai" else _anthropic_answer
                return web.json_response(answer(fake, body))
            events = (_openai_chunks if kind == "openai" else _anthropic_events)(fake, body)
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i, event in enumerate(events):
                if fault.break_after is not None and i >= fault.break_after:
                    assert request.transport is not None
                    request.transport.close()  # the connection drops mid-stream
                    return resp
                await resp.write(event)
                await asyncio.sleep(fault.event_delay)
            if fault.after_end:
                await resp.write(fault.after_end)
            await asyncio.sleep(fault.end_delay)
            await resp.write_eof()
            return resp
        except asyncio.CancelledError:
            fake.cancelled.set()
            raise

    async def chat(request: web.Request) -> web.StreamResponse:
        return await handle(request, "openai")

    async def messages(request: web.Request) -> web.StreamResponse:
        return await handle(request, "anthropic")

    async def count(request: web.Request) -> web.Response:
        body = await request.json()
        fake.requests.append(body)
        fake.headers.append(dict(request.headers))
        return web.json_response({"input_tokens": COUNTED})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    app.router.add_post("/v1/messages/count_tokens", count)
    return app


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 with a free port; yields its base URL."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()
