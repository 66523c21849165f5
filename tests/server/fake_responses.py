"""A fake OpenAI Responses upstream: a small real aiohttp app speaking ``POST /v1/responses``,
plain and streamed (``event:`` lines, increasing ``sequence_number``), with the scriptable
faults of :mod:`tests.server.fakes`.

It answers text, or a call of the first function tool (``{"city": "Paris"}``) when tools
are given and the input holds no ``function_call_output`` yet.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from tests.server.fakes import CACHED, USAGE_IN, USAGE_OUT, Fake, Fault

__all__ = ["RESPONSE_ID", "responses_app"]

RESPONSE_ID = "resp_fake1"
USAGE = {
    "input_tokens": USAGE_IN,
    "input_tokens_details": {"cached_tokens": CACHED, "cache_write_tokens": 0},
    "output_tokens": USAGE_OUT,
    "output_tokens_details": {"reasoning_tokens": 0},
    "total_tokens": USAGE_IN + USAGE_OUT,
}
WORDS = ("Hello ", "from ", "the ", "fake")
ARGUMENTS = ('{"ci', 'ty": ', '"Paris"}')


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _wants_call(body: dict[str, Any]) -> str | None:
    """The function to call: the first declared one, unless the input already answers a call."""
    names = [
        t.get("name", "weather") for t in body.get("tools") or () if t.get("type") == "function"
    ]
    items = body.get("input")
    answered = isinstance(items, list) and any(
        isinstance(i, dict) and i.get("type") == "function_call_output" for i in items
    )
    return names[0] if names and not answered else None


def _response(body: dict[str, Any], output: list[dict[str, Any]], status: str) -> dict[str, Any]:
    done = status == "completed"
    return {
        "id": RESPONSE_ID, "object": "response", "created_at": 1_767_225_600,
        "status": status, "error": None, "incomplete_details": None,
        "instructions": body.get("instructions"), "max_output_tokens": None,
        "model": body["model"], "output": output, "parallel_tool_calls": True,
        "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
        "store": body.get("store", True), "temperature": 1.0,
        "text": {"format": {"type": "text"}}, "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []), "top_p": 1.0, "truncation": "disabled",
        "usage": USAGE if done else None, "user": None, "metadata": {},
    }  # fmt: skip


def _item(body: dict[str, Any], status: str, text: str) -> dict[str, Any]:
    name = _wants_call(body)
    done = status == "completed"
    if name is not None:
        return {"id": "fc_fake1", "type": "function_call", "status": status,
                "call_id": "call_fake1", "name": name,
                "arguments": "".join(ARGUMENTS) if done else ""}  # fmt: skip
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
    return {"id": "msg_fake1", "type": "message", "role": "assistant", "status": status,
            "content": content if done else []}  # fmt: skip


def _answer(fake: Fake, body: dict[str, Any]) -> dict[str, Any]:
    return _response(body, [_item(body, "completed", fake.text)], "completed")


def _events(body: dict[str, Any]) -> list[bytes]:
    sequence: list[dict[str, Any]] = []

    def ev(kind: str, **data: Any) -> None:
        sequence.append({"type": kind, "sequence_number": len(sequence), **data})

    ev("response.created", response=_response(body, [], "in_progress"))
    ev("response.in_progress", response=_response(body, [], "in_progress"))
    text = "".join(WORDS)  # streams always say these words, as the other fakes do
    item = _item(body, "in_progress", text)
    where = {"item_id": item["id"], "output_index": 0}
    ev("response.output_item.added", output_index=0, item=item)
    if item["type"] == "function_call":
        for piece in ARGUMENTS:
            ev("response.function_call_arguments.delta", **where, delta=piece)
        ev("response.function_call_arguments.done", **where, arguments="".join(ARGUMENTS))
    else:
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        ev("response.content_part.added", **where, content_index=0, part=part)
        for word in WORDS:
            ev("response.output_text.delta", **where, content_index=0, delta=word, logprobs=[])
        ev("response.output_text.done", **where, content_index=0, text=text, logprobs=[])
        ev("response.content_part.done", **where, content_index=0, part={**part, "text": text})
    done = _item(body, "completed", text)
    ev("response.output_item.done", output_index=0, item=done)
    ev("response.completed", response=_response(body, [done], "completed"))
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in sequence]


async def _fault_response(fault: Fault) -> web.Response | None:
    if fault.stall:
        await asyncio.sleep(fault.stall)
    if fault.status != 200:
        body = fault.body or _error("fake failure", "server_error")
        return web.json_response(body, status=fault.status, headers=fault.headers)
    if fault.garbage:
        return web.Response(text="<html>502 Bad Gateway</html>", content_type="application/json")
    return None


def responses_app(fake: Fake) -> web.Application:
    """``POST /v1/responses``; a request without a Bearer key gets OpenAI's 401."""

    async def handle(request: web.Request) -> web.StreamResponse:
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            message = "You didn't provide an API key."
            return web.json_response(_error(message, "invalid_request_error"), status=401)
        body = await request.json()
        fake.requests.append(body)
        fake.headers.append(dict(request.headers))
        fault = fake.faults.pop(0) if fake.faults else Fault()
        try:
            failed = await _fault_response(fault)
            if failed is not None:
                return failed
            if not body.get("stream"):
                return web.json_response(_answer(fake, body))
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            for i, event in enumerate(_events(body)):
                if fault.break_after is not None and i >= fault.break_after:
                    assert request.transport is not None
                    request.transport.close()  # the connection drops mid-stream
                    return resp
                await resp.write(event)
                await asyncio.sleep(0)
            await resp.write_eof()
            return resp
        except asyncio.CancelledError:
            fake.cancelled.set()
            raise

    app = web.Application()
    app.router.add_post("/v1/responses", handle)
    return app
