"""OpenAI Responses API (``POST {base_url}/responses``; ``Authorization: Bearer``).

Streams are SSE with an ``event:`` line per event and an increasing
``sequence_number``; they end with ``response.completed`` (or
``response.incomplete``), whose response object carries the usage, and fail
with ``response.failed`` or an ``error`` event. Errors outside streams have
the OpenAI shape ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pooldaemon.pool import ProviderView, Usage, usage_from_responses
from pooldaemon.upstream import _responses_ir as _ir
from pooldaemon.upstream import _responses_stream as _stream
from pooldaemon.upstream._base import bearer_headers
from pooldaemon.upstream._ir import ChatRequest, ChatResponse, Event
from pooldaemon.upstream._sse import SseEvent
from pooldaemon.upstream.openai import OPENAI

__all__ = ["DEFAULT_BASE_URL", "RESPONSES", "apply_params"]

Json = dict[str, Any]
DEFAULT_BASE_URL = "https://api.openai.com/v1"
_START = "response.created"
_ENDS = frozenset({"response.completed", "response.incomplete"})
_FAILURES = frozenset({"response.failed", "error"})
# Without an ``event:`` line, only events holding one of these need parsing by the watch.
_MARKERS = (
    b"response.created",
    b"response.completed",
    b"response.incomplete",
    b"response.failed",
    b'"error"',
)
# stream_error() cannot know how far the stream it ends got: a number above any real
# stream's keeps the sequence increasing (clients only expect it to grow).
_LATE_SEQUENCE = 1_000_000_000


def apply_params(body: Json, provider: ProviderView) -> None:
    """Provider ``model_params`` fill in what the client did not set (no penalties here)."""
    params = provider.spec.model_params
    if params is None:
        return
    for name in ("temperature", "top_p"):
        value = getattr(params, name)
        if value is not None and name not in body:
            body[name] = value
    if params.max_tokens is not None and "max_output_tokens" not in body:
        body["max_output_tokens"] = max(params.max_tokens, _ir.MIN_OUTPUT_TOKENS)


def _failure(kind: str, data: Json) -> str:
    """The message of a ``response.failed`` or ``error`` event."""
    if kind == "response.failed":
        response = data.get("response")
        err = response.get("error") if isinstance(response, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
        return str(message or "the upstream response failed")[:500]
    err = data.get("error")
    message = data.get("message") or (err.get("message") if isinstance(err, dict) else err)
    return str(message or "the upstream stream failed")[:500]


def _usage_of(data: Json) -> Usage:
    response = data.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    return usage_from_responses(usage if isinstance(usage, dict) else None)


class _ResponsesWatch:
    """Relays a Responses stream unchanged; done at its completion, stopped at a failure."""

    __slots__ = ("done", "error", "error_relayed", "response_id", "usage")

    def __init__(self) -> None:
        self.usage = Usage()
        self.done = False
        self.error: str | None = None
        self.error_relayed = False
        self.response_id = ""  # from response.created

    def failure(self, message: str) -> bytes:
        """Like :meth:`ResponsesFormat.stream_error`, with the id of the stream relayed."""
        ident = self.response_id or _ir.response_id("")
        return _stream.failed_event(message, ident, _LATE_SEQUENCE)

    def relay(self, event: SseEvent) -> bytes | None:
        if self.error is not None:
            return None  # nothing after an error, above all no normal end
        kind = event.event
        if kind and kind != _START and kind not in _ENDS and kind not in _FAILURES:
            return event.raw  # a delta or an item event: nothing to learn from it
        if not kind and not any(marker in event.data for marker in _MARKERS):
            return event.raw
        try:
            data = orjson.loads(event.data)
        except ValueError:
            return event.raw
        if not isinstance(data, dict):
            return event.raw
        kind = kind or str(data.get("type", ""))
        if kind == _START:
            response = data.get("response")
            self.response_id = str(response.get("id") or "") if isinstance(response, dict) else ""
        elif kind in _ENDS:
            self.usage = _usage_of(data)
            self.done = True
        elif kind in _FAILURES:
            self.error = _failure(kind, data)
            self.error_relayed = True
        return event.raw

    def finish(self) -> bytes | None:
        return None


class _ResponsesStreamDecoder:
    """SSE events of a Responses stream -> IR events."""

    def __init__(self) -> None:
        self._decoder = _stream.ResponsesDecoder()
        self.error: str | None = None

    def end(self) -> list[Event]:
        return []  # a stream without response.completed did not end normally

    def feed(self, event: SseEvent) -> list[Event]:
        if not event.data:
            return []
        data = orjson.loads(event.data)  # ValueError: a malformed stream
        if not isinstance(data, dict):
            raise ValueError("a stream event is not a JSON object")
        kind = str(data.get("type") or event.event)
        if kind in _FAILURES:
            self.error = _failure(kind, data)
            return []
        return self._decoder.feed(kind, data)


def _has_image(body: Json) -> bool:
    items = body.get("input")
    for item in items if isinstance(items, list) else ():
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == "input_image" for p in content
        ):
            return True
    return False


class ResponsesFormat:
    name = "responses"
    framing = "sse"
    end_marker = True
    inline_images = False

    def url(self, provider: ProviderView, model: str, stream: bool) -> str:
        return f"{provider.spec.base_url or DEFAULT_BASE_URL}/responses"

    def headers(
        self, provider: ProviderView, key: str | None, inbound: Mapping[str, str]
    ) -> dict[str, str]:
        return bearer_headers(provider, key)

    def prepare(self, body: Json, model: str, provider: ProviderView) -> tuple[Json, bool]:
        out = dict(body)  # store, previous_response_id and the rest pass as the client sent them
        out["model"] = model
        apply_params(out, provider)
        return out, True  # usage is always in the final event

    def capabilities(self, body: Json) -> frozenset[str]:
        caps: set[str] = set()
        if body.get("tools"):
            caps.add("tools")
        text = body.get("text")
        text_format = text.get("format") if isinstance(text, dict) else None
        if isinstance(text_format, dict) and text_format.get("type") in (
            "json_object",
            "json_schema",
        ):
            caps.add("json")
        if _has_image(body):
            caps.add("vision")
        return frozenset(caps)

    def usage(self, body: Mapping[str, Any]) -> Usage:
        usage = body.get("usage")
        return usage_from_responses(usage if isinstance(usage, dict) else None)

    def watch(self, client_wants_usage: bool) -> _ResponsesWatch:
        return _ResponsesWatch()

    # -- translation (through the IR) -------------------------------------------
    def decode_request(self, body: Json) -> ChatRequest:
        return _ir.decode_request(body)

    def encode_request(self, req: ChatRequest, model: str, provider: ProviderView) -> Json:
        body = _ir.encode_request(req, model)
        apply_params(body, provider)
        return body

    def decode_response(self, body: Json) -> ChatResponse:
        return _ir.decode_response(body)

    def encode_response(self, resp: ChatResponse, model: str) -> Json:
        return _ir.encode_response(resp, model)

    def stream_decoder(self) -> _ResponsesStreamDecoder:
        return _ResponsesStreamDecoder()

    def stream_encoder(self, model: str, req: ChatRequest) -> _stream.ResponsesEncoder:
        return _stream.ResponsesEncoder(model)

    def error_body(self, status: int, message: str) -> Json:
        return OPENAI.error_body(status, message)  # the same shape as Chat Completions

    def stream_error(self, message: str) -> bytes:
        return _stream.failed_event(message, _ir.response_id(""), _LATE_SEQUENCE)


RESPONSES = ResponsesFormat()
