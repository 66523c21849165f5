"""A fault-injecting OpenAI Chat Completions upstream (plain and SSE).

Each request takes the next :class:`Fault` of its script (or, with none left,
whatever ``choose`` returns: the soak draws random faults that way). The
answers themselves are the ones of ``tests.server.fakes``, so a healthy answer
here is byte for byte what the other proxy tests see.

Used by ``tests/faults`` and by ``bench/soak.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from aiohttp import web

from tests.server.fakes import Fake, _openai_answer, _openai_chunks

__all__ = ["RETRY_AFTER", "Fault", "FaultUpstream", "fault_app"]

RETRY_AFTER = 7  # seconds, sent with the 429 (by default)
FOREVER = 3600.0  # a stall: the proxy hangs up long before, which cancels the handler


class Fault(StrEnum):
    """What one request gets. Stream and plain requests see the same fault in their
    own shape; ``commits`` says whether a stream has already started when it strikes."""

    ok = "ok"
    status_500 = "status_500"
    status_502 = "status_502"
    status_503 = "status_503"
    rate_limit = "rate_limit"  # 429 with Retry-After
    reset = "reset"  # TCP RST before any byte of the answer
    error_reset = "error_reset"  # a 503 whose error body breaks off with a TCP RST
    partial_head = "partial_head"  # half a status line, then RST
    stall_headers = "stall_headers"  # nothing at all, until the proxy gives up
    stall_mid = "stall_mid"  # half the body (plain) or two events (stream), then nothing
    malformed = "malformed"  # 200 with invalid JSON (plain) / garbage lines and bad data: (SSE)
    malformed_mid = "malformed_mid"  # stream: valid events, then a bad data: line, then [DONE]
    wrong_shape = "wrong_shape"  # valid JSON of the wrong shape: a string message, a null choice
    wrong_shape_mid = "wrong_shape_mid"  # stream: valid events, then a null choice
    truncated = "truncated"  # plain: shorter than Content-Length; stream: clean EOF, no [DONE]
    endless = "endless"  # a body (plain) or a stream of deltas that never ends
    slow = "slow"  # a healthy answer, slowly (within every timeout)

    @property
    def commits(self) -> bool:
        """For a stream: the first event reached the client before the fault struck."""
        return self in (
            Fault.stall_mid,
            Fault.malformed_mid,
            Fault.wrong_shape_mid,
            Fault.truncated,
            Fault.endless,
        )


@dataclass
class FaultUpstream:
    """The scripted upstream and what it saw."""

    script: list[Fault] = field(default_factory=list)
    choose: Callable[[], Fault] = lambda: Fault.ok
    slow_delay: float = 0.1  # seconds before the headers of a slow answer
    retry_after: int = RETRY_AFTER  # seconds, sent with the 429
    served: Counter[Fault] = field(default_factory=Counter)
    active: int = 0  # handlers running now
    idle: asyncio.Event = field(default_factory=lambda: _set(asyncio.Event()))  # none runs
    cancelled: int = 0  # handlers cancelled because the proxy hung up
    url: str = ""

    def next_fault(self) -> Fault:
        return self.script.pop(0) if self.script else self.choose()


def _set(event: asyncio.Event) -> asyncio.Event:
    event.set()
    return event


_TEXT = Fake("fault-upstream")  # the answers of tests.server.fakes read only its text


def _rst(request: web.Request) -> None:
    """Drop the connection with a TCP reset (SO_LINGER 0), not a graceful close."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def _hang() -> web.StreamResponse:
    await asyncio.sleep(FOREVER)
    raise AssertionError("the proxy should have hung up")


async def _plain(request: web.Request, body: dict[str, Any], fault: Fault) -> web.StreamResponse:
    answer = json.dumps(_openai_answer(_TEXT, body)).encode()
    if fault in (Fault.malformed, Fault.malformed_mid):
        return web.Response(body=answer[: len(answer) // 2], content_type="application/json")
    if fault in (Fault.wrong_shape, Fault.wrong_shape_mid):
        wrong = {**json.loads(answer), "choices": [{"index": 0, "message": "not an object"}]}
        return web.json_response(wrong)
    if fault in (Fault.stall_mid, Fault.truncated):
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = len(answer)
        await resp.prepare(request)
        await resp.write(answer[: len(answer) // 2])
        if fault is Fault.stall_mid:
            return await _hang()
        assert request.transport is not None
        request.transport.close()  # shorter than announced
        return resp
    if fault is Fault.endless:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        await resp.write(b'{"id": "chatcmpl-endless", "padding": "')
        with contextlib.suppress(ConnectionResetError):
            while True:  # until the proxy stops reading and hangs up
                await resp.write(b"a" * 65536)
        return resp
    return web.Response(body=answer, content_type="application/json")


async def _stream(request: web.Request, body: dict[str, Any], fault: Fault) -> web.StreamResponse:
    events = _openai_chunks(_TEXT, body)
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)
    if fault is Fault.malformed:
        await resp.write(b"this is not SSE at all\n\n: a comment\n\ndata: {not json\n\n")
        await resp.write_eof()
        return resp
    if fault is Fault.wrong_shape:
        await resp.write(_WRONG_CHUNK)
    delay = 0.01 if fault is Fault.slow else 0.0
    if fault is Fault.endless:
        await resp.write(events[0])
        with contextlib.suppress(ConnectionResetError):
            while True:  # content deltas, never a finish_reason nor [DONE]
                await resp.write(events[1])
                await asyncio.sleep(0.005)
        return resp
    for i, event in enumerate(events):
        if i == 2 and fault is Fault.stall_mid:
            return await _hang()
        if i == 2 and fault is Fault.malformed_mid:
            await resp.write(b'data: {"id": "chatcmpl-1", "choices": [{"delta": \n\n')
        if i == 2 and fault is Fault.wrong_shape_mid:
            await resp.write(_WRONG_CHUNK)
        if event == b"data: [DONE]\n\n" and fault is Fault.truncated:
            break  # a clean end of the body without the end marker
        await resp.write(event)
        await asyncio.sleep(delay)
    await resp.write_eof()
    return resp


_WRONG_CHUNK = (
    b'data: {"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [null]}\n\n'
)

_STATUS = {
    Fault.status_500: 500,
    Fault.status_502: 502,
    Fault.status_503: 503,
    Fault.rate_limit: 429,
}


async def _answer(request: web.Request, fault: Fault) -> web.StreamResponse:
    if fault in _STATUS:
        wait = request.app[UPSTREAM].retry_after
        headers = {"Retry-After": str(wait)} if fault is Fault.rate_limit else {}
        error = {"error": {"message": f"injected {fault}", "type": "server_error"}}
        return web.json_response(error, status=_STATUS[fault], headers=headers)
    if fault is Fault.reset:
        _rst(request)
        return await _hang()
    if fault is Fault.error_reset:
        body = json.dumps({"error": {"message": "injected", "type": "server_error"}}).encode()
        resp = web.StreamResponse(status=503, headers={"Content-Type": "application/json"})
        resp.content_length = len(body)
        await resp.prepare(request)
        await resp.write(body[: len(body) // 2])
        await asyncio.sleep(0.01)  # let the half body leave before the reset
        _rst(request)
        return await _hang()
    if fault is Fault.partial_head:
        assert request.transport is not None
        request.transport.write(b"HTTP/1.1 200 OK\r\nContent-Ty")
        await asyncio.sleep(0.01)  # let the half line leave before the reset
        _rst(request)
        return await _hang()
    if fault is Fault.stall_headers:
        return await _hang()
    body = await request.json()
    if fault is Fault.slow:
        await asyncio.sleep(request.app[UPSTREAM].slow_delay)
    if body.get("stream"):
        return await _stream(request, body, fault)
    return await _plain(request, body, fault)


UPSTREAM = web.AppKey("fault_upstream", FaultUpstream)


def fault_app(upstream: FaultUpstream) -> web.Application:
    """``POST /v1/chat/completions`` (the script decides) and ``GET /v1/models``."""

    async def chat(request: web.Request) -> web.StreamResponse:
        fault = upstream.next_fault()
        upstream.served[fault] += 1
        upstream.active += 1
        upstream.idle.clear()
        try:
            await request.read()
            return await _answer(request, fault)
        except asyncio.CancelledError:
            upstream.cancelled += 1
            raise
        finally:
            upstream.active -= 1
            if not upstream.active:
                upstream.idle.set()

    async def models(request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fault"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})

    app = web.Application()
    app[UPSTREAM] = upstream
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    return app


MODELS = ("gpt-4o", "gpt-4o-mini")
