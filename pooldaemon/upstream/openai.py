"""OpenAI Chat Completions (``POST {base_url}/chat/completions``), and its relays.

Used by OpenAI, OpenRouter, DeepSeek, LM Studio, vLLM and most relays. Streams
are SSE ``data:`` chunks ending with ``data: [DONE]``; usage comes in a last
chunk with empty ``choices`` when ``stream_options.include_usage`` is set,
which the proxy always asks for and strips when the client did not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pooldaemon.pool import ProviderView, Usage, usage_from_openai
from pooldaemon.upstream import _openai_ir as _ir
from pooldaemon.upstream._base import bearer_headers, error_text, has_content_part
from pooldaemon.upstream._ir import ChatRequest, ChatResponse, Event
from pooldaemon.upstream._sse import SseEvent, encode_event

__all__ = ["OPENAI"]

Json = dict[str, Any]
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


def apply_params(body: Json, provider: ProviderView, *, max_tokens_field: str) -> None:
    """Provider ``model_params`` fill in what the client did not set."""
    params = provider.spec.model_params
    if params is None:
        return
    for name in ("temperature", "top_p", "frequency_penalty", "presence_penalty"):
        value = getattr(params, name)
        if value is not None and name not in body:
            body[name] = value
    if params.max_tokens is not None and not any(
        k in body for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")
    ):
        body[max_tokens_field] = params.max_tokens


class _OpenAIWatch:
    __slots__ = ("client_wants_usage", "done", "error", "error_relayed", "usage")

    def __init__(self, client_wants_usage: bool) -> None:
        self.client_wants_usage = client_wants_usage
        self.usage = Usage()
        self.done = False
        self.error: str | None = None
        self.error_relayed = False

    def relay(self, event: SseEvent) -> bytes | None:
        data = event.data
        if self.error is not None:
            return None  # nothing after an error, above all no normal end
        if data == b"[DONE]":
            self.done = True
            return event.raw
        # Parse only the chunks that can matter: most are plain deltas, which get a
        # cheap shape check instead (garbage must fail the attempt, not reach clients).
        if b'"usage"' not in data and b'"error"' not in data:
            if data and not (data[:1] == b"{" and data.rstrip()[-1:] == b"}"):
                raise ValueError("upstream sent a stream event that is not a JSON object")
            return event.raw
        try:
            chunk = orjson.loads(data)
        except ValueError:
            raise ValueError("upstream sent a stream event that is not valid JSON") from None
        if not isinstance(chunk, dict):
            raise ValueError("upstream sent a stream event that is not a JSON object")
        if chunk.get("error"):
            err = chunk["error"]
            self.error = error_text(err)
            self.error_relayed = True
            return event.raw
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage_from_openai(usage)
            if not self.client_wants_usage and not chunk.get("choices"):
                return None  # the usage-only chunk we asked for on the client's behalf
        return event.raw

    def finish(self) -> bytes | None:
        return None

    def failure(self, message: str) -> bytes | None:
        return None  # the format's generic error event fits


class _OpenAIStreamDecoder:
    """SSE events of a Chat Completions stream -> IR events."""

    def __init__(self) -> None:
        self._decoder = _ir.OpenAIDecoder()
        self.error: str | None = None

    def end(self) -> list[Event]:
        return []  # a stream without [DONE] did not end normally

    def feed(self, event: SseEvent) -> list[Event]:
        if event.data == b"[DONE]":
            return self._decoder.end()
        chunk = orjson.loads(event.data)  # ValueError: a malformed stream
        if not isinstance(chunk, dict):
            raise ValueError("a stream chunk is not a JSON object")
        if chunk.get("error"):
            err = chunk["error"]
            self.error = error_text(err)
            return []
        return self._decoder.feed(chunk)


class OpenAIFormat:
    name = "openai"
    framing = "sse"
    end_marker = True
    inline_images = False

    def url(self, provider: ProviderView, model: str, stream: bool) -> str:
        return f"{provider.spec.base_url}/chat/completions"

    def headers(
        self, provider: ProviderView, key: str | None, inbound: Mapping[str, str]
    ) -> dict[str, str]:
        return bearer_headers(provider, key)

    def prepare(self, body: Json, model: str, provider: ProviderView) -> tuple[Json, bool]:
        out = dict(body)
        out["model"] = model
        apply_params(out, provider, max_tokens_field="max_tokens")
        wants_usage = False
        if out.get("stream"):
            options = out.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            wants_usage = bool(options.get("include_usage"))
            options["include_usage"] = True
            out["stream_options"] = options
        return out, wants_usage

    def capabilities(self, body: Json) -> frozenset[str]:
        caps: set[str] = set()
        if body.get("tools") or body.get("functions"):
            caps.add("tools")
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") in (
            "json_object",
            "json_schema",
        ):
            caps.add("json")
        if has_content_part(body, "image_url"):
            caps.add("vision")
        return frozenset(caps)

    def usage(self, body: Mapping[str, Any]) -> Usage:
        usage = body.get("usage")
        return usage_from_openai(usage if isinstance(usage, dict) else None)

    def watch(self, client_wants_usage: bool) -> _OpenAIWatch:
        return _OpenAIWatch(client_wants_usage)

    # -- translation (through the IR) -------------------------------------------
    def decode_request(self, body: Json) -> ChatRequest:
        return _ir.decode_request(body)

    def encode_request(self, req: ChatRequest, model: str, provider: ProviderView) -> Json:
        body = _ir.encode_request(req, model)
        apply_params(body, provider, max_tokens_field="max_tokens")
        return body

    def decode_response(self, body: Json) -> ChatResponse:
        return _ir.decode_response(body)

    def encode_response(self, resp: ChatResponse, model: str) -> Json:
        return _ir.encode_response(resp, model)

    def stream_decoder(self) -> _OpenAIStreamDecoder:
        return _OpenAIStreamDecoder()

    def stream_encoder(self, model: str, req: ChatRequest) -> _ir.OpenAIEncoder:
        return _ir.OpenAIEncoder(model, req.client_wants_usage)

    def error_body(self, status: int, message: str) -> Json:
        kind = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}

    def stream_error(self, message: str) -> bytes:
        payload = {"error": {"message": message, "type": "upstream_error"}}
        return encode_event(orjson.dumps(payload))


OPENAI = OpenAIFormat()
