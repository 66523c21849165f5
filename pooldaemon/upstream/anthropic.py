"""Anthropic Messages (``POST {base_url}/v1/messages``; ``x-api-key``, ``anthropic-version``).

Streams are SSE with an ``event:`` line per event: ``message_start`` (input
usage), ``content_block_*``, ``message_delta`` (cumulative output usage),
``message_stop``; errors arrive as ``event: error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pooldaemon.pool import ProviderView, Usage, usage_from_anthropic
from pooldaemon.upstream import _anthropic_ir as _ir
from pooldaemon.upstream._base import error_text, has_content_part
from pooldaemon.upstream._ir import ChatRequest, ChatResponse, Event
from pooldaemon.upstream._sse import SseEvent, encode_event
from pooldaemon.upstream.openai import apply_params

__all__ = ["ANTHROPIC", "DEFAULT_MAX_TOKENS", "DEFAULT_VERSION"]

Json = dict[str, Any]
DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
_FORWARDED = ("anthropic-beta",)  # client headers that change what the API does
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


def messages_url(base_url: str) -> str:
    base = base_url.removesuffix("/v1")  # a redundant version segment is tolerated
    return f"{base}/v1/messages"


class _AnthropicWatch:
    __slots__ = ("done", "error", "error_relayed", "usage")

    def __init__(self) -> None:
        self.usage = Usage()
        self.done = False
        self.error: str | None = None
        self.error_relayed = False

    def relay(self, event: SseEvent) -> bytes | None:
        if self.error is not None:
            return None  # nothing after an error, above all no normal end
        kind = event.event
        if kind == "message_stop":
            self.done = True
        elif kind in ("message_start", "message_delta", "error"):
            try:
                data = orjson.loads(event.data)
            except ValueError:
                return event.raw
            if not isinstance(data, dict):
                return event.raw
            if kind == "error":
                err = data.get("error")
                self.error = error_text(err)
                self.error_relayed = True
            elif kind == "message_start":
                message = data.get("message")
                usage = message.get("usage") if isinstance(message, dict) else None
                self.usage = usage_from_anthropic(usage if isinstance(usage, dict) else None)
            else:
                self.usage = _merge_delta(self.usage, data.get("usage"))
        return event.raw

    def finish(self) -> bytes | None:
        return None

    def failure(self, message: str) -> bytes | None:
        return None  # the format's generic error event fits


def _merge_delta(start: Usage, delta: object) -> Usage:
    """``message_delta`` usage is cumulative; input counts appear there only sometimes."""
    if not isinstance(delta, dict):
        return start
    seen = usage_from_anthropic(delta)
    return Usage(
        input=seen.input or start.input,
        output=seen.output,
        cache_read=seen.cache_read or start.cache_read,
        cache_write=seen.cache_write or start.cache_write,
    )


class _AnthropicStreamDecoder:
    """SSE events of a Messages stream -> IR events."""

    def __init__(self) -> None:
        self._decoder = _ir.AnthropicDecoder()
        self.error: str | None = None

    def end(self) -> list[Event]:
        return []  # a stream without message_stop did not end normally

    def feed(self, event: SseEvent) -> list[Event]:
        if event.event == "ping" or not event.data:
            return []
        data = orjson.loads(event.data)  # ValueError: a malformed stream
        if not isinstance(data, dict):
            raise ValueError("a stream event is not a JSON object")
        kind = event.event or str(data.get("type", ""))
        if kind == "error":
            err = data.get("error")
            self.error = error_text(err)
            return []
        return self._decoder.feed(kind, data)


class AnthropicFormat:
    name = "anthropic"
    framing = "sse"
    end_marker = True
    inline_images = False

    def url(self, provider: ProviderView, model: str, stream: bool) -> str:
        return messages_url(provider.spec.base_url or "")

    def headers(
        self, provider: ProviderView, key: str | None, inbound: Mapping[str, str]
    ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "anthropic-version": provider.spec.api_version or DEFAULT_VERSION,
            **provider.spec.headers,
        }
        for name in _FORWARDED:
            if name in inbound:
                headers[name] = inbound[name]
        if key:
            headers["x-api-key"] = key
        return headers

    def prepare(self, body: Json, model: str, provider: ProviderView) -> tuple[Json, bool]:
        out = dict(body)
        out["model"] = model
        apply_params(out, provider, max_tokens_field="max_tokens")
        out.pop("frequency_penalty", None)  # not in the Messages API
        out.pop("presence_penalty", None)
        if "max_tokens" not in out:
            info = provider.models.get(model)
            out["max_tokens"] = (info.max_output if info else None) or DEFAULT_MAX_TOKENS
        return out, True

    def capabilities(self, body: Json) -> frozenset[str]:
        caps: set[str] = set()
        if body.get("tools"):
            caps.add("tools")
        if isinstance(body.get("thinking"), dict):
            caps.add("thinking")
        if has_content_part(body, "image"):
            caps.add("vision")
        return frozenset(caps)

    def usage(self, body: Mapping[str, Any]) -> Usage:
        usage = body.get("usage")
        return usage_from_anthropic(usage if isinstance(usage, dict) else None)

    def watch(self, client_wants_usage: bool) -> _AnthropicWatch:
        return _AnthropicWatch()

    # -- translation (through the IR) -------------------------------------------
    def decode_request(self, body: Json) -> ChatRequest:
        return _ir.decode_request(body)

    def encode_request(self, req: ChatRequest, model: str, provider: ProviderView) -> Json:
        info = provider.models.get(model)
        params = provider.spec.model_params
        default = (params.max_tokens if params else None) or (info.max_output if info else None)
        body = _ir.encode_request(req, model, default or DEFAULT_MAX_TOKENS)
        apply_params(body, provider, max_tokens_field="max_tokens")
        body.pop("frequency_penalty", None)
        body.pop("presence_penalty", None)
        return body

    def decode_response(self, body: Json) -> ChatResponse:
        return _ir.decode_response(body)

    def encode_response(self, resp: ChatResponse, model: str) -> Json:
        return _ir.encode_response(resp, model)

    def stream_decoder(self) -> _AnthropicStreamDecoder:
        return _AnthropicStreamDecoder()

    def stream_encoder(self, model: str, req: ChatRequest) -> _ir.AnthropicEncoder:
        return _ir.AnthropicEncoder(model)

    def error_body(self, status: int, message: str) -> Json:
        kind = _ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def stream_error(self, message: str) -> bytes:
        payload = {"type": "error", "error": {"type": "api_error", "message": message}}
        return encode_event(orjson.dumps(payload), "error")


ANTHROPIC = AnthropicFormat()
