"""A fake Ollama speaking the native ``/api/chat`` (JSON and NDJSON streams)."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

from aiohttp import web

from tests.server.fakes import USAGE_IN, USAGE_OUT, Fake, Fault

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)


def _wants_tool(body: dict[str, Any]) -> bool:
    return bool(body.get("tools")) and body["messages"][-1].get("role") != "tool"


def _final(body: dict[str, Any], reason: str = "stop") -> dict[str, Any]:
    return {
        "model": body["model"],
        "created_at": "2026-11-21T00:00:00Z",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": reason,
        "prompt_eval_count": USAGE_IN,
        "eval_count": USAGE_OUT,
    }


def ollama_app(fake: Fake) -> web.Application:
    async def chat(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        fake.requests.append(body)
        fake.headers.append(dict(request.headers))
        fault = fake.faults.pop(0) if fake.faults else Fault()
        if fault.status != 200:
            return web.json_response(fault.body or {"error": "fake failure"}, status=fault.status)
        call = {"function": {"name": "weather", "arguments": {"city": "Paris"}}}
        if not body.get("stream", True):
            answer = _final(body)
            if _wants_tool(body):
                answer["message"] = {"role": "assistant", "content": "", "tool_calls": [call]}
            else:
                answer["message"] = {"role": "assistant", "content": fake.text}
            return web.json_response(answer)
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        lines: list[dict[str, Any]] = []
        base = {"model": body["model"], "created_at": "2026-11-21T00:00:00Z", "done": False}
        if _wants_tool(body):
            lines.append(
                {**base, "message": {"role": "assistant", "content": "", "tool_calls": [call]}}
            )
        else:
            lines += [
                {**base, "message": {"role": "assistant", "content": w}}
                for w in ("Hello ", "from ", "the ", "fake")
            ]
        lines.append(_final(body))
        for i, line in enumerate(lines):
            if fault.break_after is not None and i >= fault.break_after:
                assert request.transport is not None
                request.transport.close()
                return resp
            await resp.write(json.dumps(line).encode() + b"\n")
            await asyncio.sleep(0)
        await resp.write_eof()
        return resp

    async def image(request: web.Request) -> web.Response:
        return web.Response(body=PNG, content_type="image/png")

    app = web.Application()
    app.router.add_post("/api/chat", chat)
    app.router.add_get("/image.png", image)
    return app
