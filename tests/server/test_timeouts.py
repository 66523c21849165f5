"""The provider's three limits as a client sees them: first_byte_timeout covers the
headers (and a stream's first event) only, timeout the whole answer, its body and
an error's body included, whatever aiohttp's own defaults are."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from tests.server.conftest import GatewayFactory
from tests.server.fakes import serve

HI = [{"role": "user", "content": "hi"}]
ANSWER = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}


def _provider(url: str, **limits: str) -> dict[str, Any]:
    return {
        "id": "c",
        "location": "cloud",
        "format": "openai",
        "keys": [{"env": "OPENAI_A_KEY"}],
        "base_url": url + "/v1",
        "models": [{"id": "gpt-4o"}],
        **limits,
    }


def _app(handler: Any) -> web.Application:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    return app


async def _half_then(request: web.Request, status: int, body: bytes, pause: float) -> None:
    """Headers and half of ``body`` at once, the rest after ``pause`` seconds."""
    await request.read()
    resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
    resp.content_length = len(body)
    await resp.prepare(request)
    await resp.write(body[: len(body) // 2])
    await asyncio.sleep(pause)
    await resp.write(body[len(body) // 2 :])
    await resp.write_eof()


async def _ask(
    gateway: GatewayFactory, handler: Any, *, stream: bool, total: str
) -> tuple[int, str, float]:
    """One request through a gateway whose only provider is ``handler``, with a
    first_byte_timeout of 200 ms and a timeout of ``total``: the status, the body and
    the seconds it took."""
    async with serve(_app(handler)) as up:
        gw = await gateway(providers=[_provider(up, first_byte_timeout="200ms", timeout=total)])
        http = await gw.http()
        started = time.monotonic()
        body = {"model": "gpt-4o", "messages": HI, "stream": stream}
        async with http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
            text = await resp.text()
        return resp.status, text, time.monotonic() - started


async def test_a_body_slower_than_the_first_byte_timeout_still_arrives(
    gateway: GatewayFactory,
) -> None:
    async def slow_body(request: web.Request) -> web.StreamResponse:
        await _half_then(request, 200, json.dumps(ANSWER).encode(), 0.6)
        return web.StreamResponse()

    status, text, _ = await _ask(gateway, slow_body, stream=False, total="5s")
    assert status == 200, text
    assert json.loads(text)["choices"][0]["message"]["content"] == "hi"


async def test_a_stalled_body_ends_at_the_total_timeout(gateway: GatewayFactory) -> None:
    async def stalled(request: web.Request) -> web.StreamResponse:
        await _half_then(request, 200, json.dumps(ANSWER).encode(), 3600)
        return web.StreamResponse()

    status, text, elapsed = await _ask(gateway, stalled, stream=False, total="700ms")
    assert status == 504, text
    assert "c:timeout" in json.loads(text)["error"]["message"]
    assert 0.6 <= elapsed < 3.0, elapsed  # the total, not the first byte's 0.2 s


async def test_a_stalled_error_body_of_a_stream_ends_at_the_total_timeout(
    gateway: GatewayFactory,
) -> None:
    async def stalled_error(request: web.Request) -> web.StreamResponse:
        error = {"error": {"message": "overloaded", "type": "server_error"}}
        await _half_then(request, 503, json.dumps(error).encode(), 3600)
        return web.StreamResponse()

    status, text, elapsed = await _ask(gateway, stalled_error, stream=True, total="700ms")
    assert status == 504, text
    assert 0.6 <= elapsed < 3.0, elapsed


async def test_a_stream_longer_than_the_total_timeout_ends_with_an_error_event(
    gateway: GatewayFactory,
) -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        chunk = {"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o"}
        delta = {**chunk, "choices": [{"index": 0, "delta": {"content": "a"}}]}
        try:
            while True:  # events keep coming: no idle timeout would end this
                await resp.write(f"data: {json.dumps(delta)}\n\n".encode())
                await asyncio.sleep(0.05)
        except ConnectionResetError:
            pass
        return resp

    status, text, elapsed = await _ask(gateway, endless, stream=True, total="700ms")
    assert status == 200
    assert text.count('"content": "a"') >= 5, text[:300]  # events flowed for a while
    last = text.strip().rsplit("\n\n", 1)[-1]
    assert '"error"' in last and "timeout" in last, last
    assert "[DONE]" not in text
    assert 0.6 <= elapsed < 3.0, elapsed
