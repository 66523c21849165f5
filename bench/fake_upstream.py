"""A fast fake LLM upstream for the load benchmark (its own process).

    .venv/bin/python -m bench.fake_upstream --port 8800

Answers OpenAI ``POST /v1/chat/completions`` and Anthropic ``POST /v1/messages``,
plain JSON or SSE streams, with fixed small bodies serialized once at start, and
``GET /v1/models`` for the daemon's catalog job. Only ``stream`` and
``stream_options.include_usage`` of a request change the answer, so every path
costs the upstream the same. A stream pauses ``--gap`` seconds after its first
event, as a real model does before its next token: the time to the first chunk
then measures the proxy's relay of that event alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiohttp import web

MODEL = "gpt-4o-mini"
WORDS = ("Hello ", "from ", "the ", "fake")
USAGE_IN, USAGE_OUT = 42, 7
SSE = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def openai_plain() -> bytes:
    return _dumps(
        {
            "id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": MODEL,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "".join(WORDS)}}],
            "usage": {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                      "total_tokens": USAGE_IN + USAGE_OUT},
        }
    )  # fmt: skip


def openai_stream(include_usage: bool) -> list[bytes]:
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": MODEL}

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
        return b"data: " + _dumps({**base, "choices": choices, **extra}) + b"\n\n"

    events = [chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": word}) for word in WORDS]
    events.append(chunk({}, "stop"))
    if include_usage:
        usage = {"prompt_tokens": USAGE_IN, "completion_tokens": USAGE_OUT,
                 "total_tokens": USAGE_IN + USAGE_OUT}  # fmt: skip
        events.append(b"data: " + _dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def anthropic_plain() -> bytes:
    return _dumps(
        {
            "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL,
            "content": [{"type": "text", "text": "".join(WORDS)}],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
        }
    )  # fmt: skip


def anthropic_stream() -> list[bytes]:
    def ev(kind: str, data: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: ".encode() + _dumps({"type": kind, **data}) + b"\n\n"

    start: dict[str, Any] = {
        "id": "msg_bench", "type": "message", "role": "assistant", "model": MODEL, "content": [],
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": 1},
    }  # fmt: skip
    events = [
        ev("message_start", {"message": start}),
        ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
    ]
    events += [
        ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}})
        for word in WORDS
    ]
    events += [
        ev("content_block_stop", {"index": 0}),
        ev(
            "message_delta",
            {
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": USAGE_OUT},
            },
        ),
        ev("message_stop", {}),
    ]
    return events


def build_app(gap: float) -> web.Application:
    plain = {"openai": openai_plain(), "anthropic": anthropic_plain()}
    streams = {
        ("openai", False): openai_stream(False),
        ("openai", True): openai_stream(True),
        ("anthropic", False): anthropic_stream(),
        ("anthropic", True): anthropic_stream(),
    }
    models = _dumps({"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0,
                                                 "owned_by": "bench"}]})  # fmt: skip

    async def answer(request: web.Request, kind: str) -> web.StreamResponse:
        body = json.loads(await request.read())
        if not body.get("stream"):
            return web.Response(body=plain[kind], content_type="application/json")
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        first, *rest = streams[kind, usage]
        resp = web.StreamResponse(headers=SSE)
        await resp.prepare(request)
        await resp.write(first)
        if gap:
            await asyncio.sleep(gap)
        await resp.write(b"".join(rest))
        await resp.write_eof()
        return resp

    async def chat(request: web.Request) -> web.StreamResponse:
        return await answer(request, "openai")

    async def messages(request: web.Request) -> web.StreamResponse:
        return await answer(request, "anthropic")

    async def list_models(request: web.Request) -> web.Response:
        return web.Response(body=models, content_type="application/json")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/messages", messages)
    app.router.add_get("/v1/models", list_models)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--gap", type=float, default=0.001, help="seconds after the first event")
    args = parser.parse_args()
    web.run_app(build_app(args.gap), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
