"""``POST /v1/messages/count_tokens``: Anthropic's token counting, routed like a request.

The first Anthropic-format provider that serves the model counts; when none
does, the answer is an estimate (about four characters a token) and says so
in ``x-pooldaemon-estimate: true``, so clients that size their context with it
(Claude Code) keep working against any upstream.
"""

from __future__ import annotations

import json
import time
from typing import Any

import aiohttp
from aiohttp import web

from pooldaemon.pool import classify
from pooldaemon.server._proxy import decide, log_request, request_context
from pooldaemon.server._replies import Reply, error_response, read_limited, redact, request_id
from pooldaemon.server._state import PROXY_STATE
from pooldaemon.upstream.anthropic import ANTHROPIC, messages_url

__all__ = ["count_tokens"]

_FIELDS = ("model", "messages", "system", "tools", "tool_choice", "thinking")
_TIMEOUT = aiohttp.ClientTimeout(total=30)


def _estimate(body: dict[str, Any]) -> int:
    text = json.dumps([body.get(k) for k in ("system", "messages", "tools")], ensure_ascii=False)
    return max(1, len(text) // 4)


async def count_tokens(request: web.Request) -> web.Response:
    started = time.perf_counter()
    state = request.app[PROXY_STATE]
    rid = request_id(request.headers)
    status = 200
    ctx = None
    try:
        ctx = await request_context(request, state, ANTHROPIC, rid, started)
        decision = decide(ctx)
        session = state.session
        assert session is not None
        for candidate in decision.attempts:
            provider = ctx.applied.snapshot.by_id[candidate.provider]
            if provider.spec.format != "anthropic":
                continue
            key = state.runtime.pick_key(provider, state.clock(), allowed=ctx.applied.secrets)
            if provider.keys and key is None:
                continue
            secret = ctx.applied.secrets.get(key.key_id) if key else None
            body = {k: ctx.body[k] for k in _FIELDS if k in ctx.body} | {"model": candidate.model}
            url = messages_url(provider.spec.base_url or "") + "/count_tokens"
            headers = ANTHROPIC.headers(provider, secret, request.headers)
            try:
                async with session.post(  # a redirect is not followed, keys and all
                    url, json=body, headers=headers, timeout=_TIMEOUT, allow_redirects=False
                ) as resp:
                    raw, _ = await read_limited(resp.content, 1024 * 1024)
            except (aiohttp.ClientError, TimeoutError):
                ctx.trace.append(f"{provider.id}:transient")
                continue
            ctx.trace.append(f"{provider.id}:{'ok' if resp.status == 200 else resp.status}")
            if (
                resp.status == 200
                or not classify(resp.status, raw.decode("utf-8", "replace")).fails_over
            ):
                status = resp.status
                text = redact(raw.decode("utf-8", "replace"), ctx.applied.secrets.values())
                return web.Response(
                    text=text,
                    status=resp.status,
                    content_type="application/json",
                    headers={"x-pooldaemon-provider": provider.id, "x-request-id": rid},
                )
        try:
            estimate = _estimate(ctx.body)
        except (TypeError, ValueError, LookupError, AttributeError):
            raise Reply(400, "malformed request: cannot count its tokens") from None
        return web.json_response(
            {"input_tokens": estimate},
            headers={"x-pooldaemon-estimate": "true", "x-request-id": rid},
        )
    except Reply as reply:
        status = reply.status
        return error_response(
            ANTHROPIC, reply.status, reply.message, {"x-request-id": rid, **reply.headers}
        )
    finally:
        log_request(ctx, rid, status, time.perf_counter() - started)
