"""A fake Gemini upstream: a small real aiohttp app speaking ``generateContent``,
plain and streamed (``alt=sse``), with the scriptable faults of :mod:`tests.server.fakes`.

Each request is recorded like the other fakes do; since Gemini puts the model
and the method in the URL, the recorded headers also hold the request's path
and query under the HTTP/2-style pseudo-header ``:path``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from tests.server.fakes import CACHED, USAGE_IN, USAGE_OUT, Fake, Fault

__all__ = ["gemini_app"]

RESPONSE_ID = "fakeResp-1"
USAGE = {
    "promptTokenCount": USAGE_IN,
    "candidatesTokenCount": USAGE_OUT,
    "cachedContentTokenCount": CACHED,
    "thoughtsTokenCount": 0,
    "totalTokenCount": USAGE_IN + USAGE_OUT,
}


def _error(code: int, message: str, status: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _wants_call(body: dict[str, Any]) -> str | None:
    """The function to call: the first declared one, unless the last turn answers a call."""
    names = [
        d.get("name", "weather")
        for tool in body.get("tools") or ()
        for d in tool.get("functionDeclarations") or ()
    ]
    contents = body.get("contents") or [{}]
    answered = any("functionResponse" in p for p in contents[-1].get("parts") or ())
    return names[0] if names and not answered else None


def _chunk(model: str, parts: list[dict[str, Any]], finish: str | None) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    usage: dict[str, Any] = {"promptTokenCount": USAGE_IN, "totalTokenCount": USAGE_IN}
    if finish is not None:
        candidate["finishReason"] = finish
        usage = USAGE
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": RESPONSE_ID,
    }


def _answer(fake: Fake, body: dict[str, Any], model: str) -> dict[str, Any]:
    name = _wants_call(body)
    if name is not None:
        part: dict[str, Any] = {"functionCall": {"name": name, "args": {"city": "Paris"}}}
        return _chunk(model, [part], "STOP")
    return _chunk(model, [{"text": fake.text}], "STOP")


def _chunks(fake: Fake, body: dict[str, Any], model: str) -> list[dict[str, Any]]:
    name = _wants_call(body)
    if name is not None:
        return [_answer(fake, body, model)]  # a function call comes whole, in one chunk
    words = ("Hello ", "from ", "the ", "fake")
    out = [_chunk(model, [{"text": word}], None) for word in words[:-1]]
    return [*out, _chunk(model, [{"text": words[-1]}], "STOP")]


async def _fault_response(fault: Fault) -> web.Response | None:
    if fault.stall:
        await asyncio.sleep(fault.stall)
    if fault.status != 200:
        body = fault.body or _error(fault.status, "fake failure", "INTERNAL")
        return web.json_response(body, status=fault.status, headers=fault.headers)
    if fault.garbage:
        return web.Response(text="<html>502 Bad Gateway</html>", content_type="application/json")
    return None


def gemini_app(fake: Fake) -> web.Application:
    """``POST /v1beta/models/{model}:generateContent`` and ``:streamGenerateContent``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        model, _, method = request.match_info["call"].rpartition(":")
        if method not in ("generateContent", "streamGenerateContent") or not model:
            return web.json_response(_error(404, "no such method", "NOT_FOUND"), status=404)
        if not request.headers.get("x-goog-api-key"):
            message = "Method doesn't allow unregistered callers"
            return web.json_response(_error(403, message, "PERMISSION_DENIED"), status=403)
        body = await request.json()
        fake.requests.append(body)
        fake.headers.append({**request.headers, ":path": request.path_qs})
        fault = fake.faults.pop(0) if fake.faults else Fault()
        try:
            failed = await _fault_response(fault)
            if failed is not None:
                return failed
            if method == "generateContent":
                return web.json_response(_answer(fake, body, model))
            chunks = _chunks(fake, body, model)
            if request.query.get("alt") != "sse":
                return web.json_response(chunks)  # without alt=sse Gemini streams a JSON array
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i, chunk in enumerate(chunks):
                if fault.break_after is not None and i >= fault.break_after:
                    assert request.transport is not None
                    request.transport.close()  # the connection drops mid-stream
                    return resp
                await resp.write(f"data: {json.dumps(chunk)}\r\n\r\n".encode())
                await asyncio.sleep(0)
            await resp.write_eof()
            return resp
        except asyncio.CancelledError:
            fake.cancelled.set()
            raise

    app = web.Application()
    app.router.add_post("/v1beta/models/{call}", handle)
    return app
