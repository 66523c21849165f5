"""Gemini (``POST {base}/{version}/models/{model}:generateContent``; ``x-goog-api-key``).

The model is in the URL, not the body, and so is streaming:
``:streamGenerateContent?alt=sse`` answers SSE ``data:`` events, each a whole
response chunk (text parts are deltas, ``usageMetadata`` is repeated and final
in the last chunk, which carries the ``finishReason``). There is no end
marker: the stream simply ends, so ``end_marker`` is False and the proxy calls
the stream decoder's ``end()`` at EOF. Errors are ``{"error": {"code",
"message", "status"}}``, in a body or as a stream event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import orjson

from pooldaemon.pool import ProviderView, Usage, usage_from_gemini
from pooldaemon.upstream import _google_ir as _ir
from pooldaemon.upstream import _google_stream as _stream
from pooldaemon.upstream._base import error_text
from pooldaemon.upstream._ir import ChatRequest, ChatResponse, Event
from pooldaemon.upstream._sse import SseEvent, encode_event

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_VERSION", "GOOGLE", "apply_params", "model_url"]

Json = dict[str, Any]
DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"
DEFAULT_VERSION = "v1beta"
_VERSION_SUFFIX = re.compile(r"/v1(?:alpha|beta)?$")  # a redundant version segment is tolerated
# model_params -> generationConfig fields
_PARAMS = (
    ("temperature", "temperature"),
    ("top_p", "topP"),
    ("max_tokens", "maxOutputTokens"),
    ("frequency_penalty", "frequencyPenalty"),
    ("presence_penalty", "presencePenalty"),
)
# Only chunks holding one of these need parsing by the pass-through watch.
_MARKERS = (b'"usageMetadata"', b'"finishReason"', b'"blockReason"', b'"error"')
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def model_url(base_url: str, api_version: str | None, model: str, stream: bool) -> str:
    """The endpoint for ``model``; ``models/`` prefixes and ``tunedModels/...`` are handled."""
    base = _VERSION_SUFFIX.sub("", base_url.rstrip("/"))
    name = model.removeprefix("models/")
    resource = quote(name if "/" in name else f"models/{name}", safe="/")
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{base}/{api_version or DEFAULT_VERSION}/{resource}:{method}"


def apply_params(body: Json, provider: ProviderView) -> None:
    """Provider ``model_params`` fill in the ``generationConfig`` fields the client did not set."""
    params = provider.spec.model_params
    if params is None:
        return
    config = dict(body.get("generationConfig") or {})  # a copy: the client's body stays as sent
    for name, field in _PARAMS:
        value = getattr(params, name)
        if value is not None and field not in config:
            config[field] = value
    if config:
        body["generationConfig"] = config


def _finished(chunk: Json) -> bool:
    candidates = chunk.get("candidates")
    if isinstance(candidates, list) and candidates:
        return any(isinstance(c, dict) and c.get("finishReason") for c in candidates)
    feedback = chunk.get("promptFeedback")
    return isinstance(feedback, dict) and bool(feedback.get("blockReason"))


class _GeminiWatch:
    """Relays a Gemini stream unchanged; done at the chunk that carries the finish."""

    __slots__ = ("done", "error", "error_relayed", "usage")

    def __init__(self) -> None:
        self.usage = Usage()
        self.done = False
        self.error: str | None = None
        self.error_relayed = False

    def relay(self, event: SseEvent) -> bytes | None:
        if self.error is not None:
            return None
        data = event.data
        if not any(marker in data for marker in _MARKERS):
            return event.raw  # a plain delta: nothing to learn from it
        try:
            chunk = orjson.loads(data)
        except ValueError:
            return event.raw
        if not isinstance(chunk, dict):
            return event.raw
        if chunk.get("error"):
            self.error = error_text(chunk["error"])
            self.error_relayed = True
            return event.raw
        meta = chunk.get("usageMetadata")
        if isinstance(meta, dict):
            self.usage = usage_from_gemini(meta)  # cumulative: the last one is final
        if _finished(chunk):
            self.done = True
        return event.raw

    def finish(self) -> bytes | None:
        """At EOF: nothing to add (a pass-through relays what came)."""
        return None

    def failure(self, message: str) -> bytes | None:
        return None  # the format's generic error event fits


class _GeminiStreamDecoder:
    """SSE events of a Gemini stream -> IR events; :meth:`end` at EOF."""

    def __init__(self) -> None:
        self._decoder = _stream.GeminiDecoder()
        self.error: str | None = None

    def feed(self, event: SseEvent) -> list[Event]:
        if not event.data:
            return []
        chunk = orjson.loads(event.data)  # ValueError: a malformed stream
        if not isinstance(chunk, dict):
            raise ValueError("a stream chunk is not a JSON object")
        if chunk.get("error"):
            self.error = error_text(chunk["error"])
            return []
        return self._decoder.feed(chunk)

    def end(self) -> list[Event]:
        """The closing IR events at EOF; none after an error or before a finish."""
        return [] if self.error is not None else self._decoder.end()


def _image_part(part: object) -> bool:
    if not isinstance(part, dict):
        return False
    data = part.get("inlineData") or part.get("fileData")
    if not isinstance(data, dict):
        return False
    mime = data.get("mimeType")
    return mime is None or str(mime).startswith("image/")


class GoogleFormat:
    name = "google"
    framing = "sse"
    inline_images = True  # only inlineData or Gemini file URIs
    end_marker = False  # the stream ends at EOF: call the stream decoder's end() there

    def url(self, provider: ProviderView, model: str, stream: bool) -> str:
        base = provider.spec.base_url or DEFAULT_BASE_URL
        return model_url(base, provider.spec.api_version, model, stream)

    def headers(
        self, provider: ProviderView, key: str | None, inbound: Mapping[str, str]
    ) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **provider.spec.headers}
        if key:
            headers["x-goog-api-key"] = key
        return headers

    def prepare(self, body: Json, model: str, provider: ProviderView) -> tuple[Json, bool]:
        out = dict(body)  # the model is in the URL
        apply_params(out, provider)
        return out, False

    def capabilities(self, body: Json) -> frozenset[str]:
        caps: set[str] = set()
        if body.get("tools"):
            caps.add("tools")
        config = body.get("generationConfig")
        config = config if isinstance(config, dict) else {}
        if config.get("responseMimeType") == "application/json":
            caps.add("json")
        thinking = config.get("thinkingConfig")
        if isinstance(thinking, dict) and thinking.get("includeThoughts"):
            caps.add("thinking")
        for content in body.get("contents") or ():
            parts = content.get("parts") if isinstance(content, dict) else None
            if isinstance(parts, list) and any(_image_part(p) for p in parts):
                caps.add("vision")
                break
        return frozenset(caps)

    def usage(self, body: Mapping[str, Any]) -> Usage:
        meta = body.get("usageMetadata")
        return usage_from_gemini(meta if isinstance(meta, dict) else None)

    def watch(self, client_wants_usage: bool) -> _GeminiWatch:
        return _GeminiWatch()

    # -- translation (through the IR) -------------------------------------------
    def decode_request(self, body: Json) -> ChatRequest:
        return _ir.decode_request(body)

    def encode_request(self, req: ChatRequest, model: str, provider: ProviderView) -> Json:
        body = _ir.encode_request(req)
        apply_params(body, provider)
        return body

    def decode_response(self, body: Json) -> ChatResponse:
        return _ir.decode_response(body)

    def encode_response(self, resp: ChatResponse, model: str) -> Json:
        return _ir.encode_response(resp, model)

    def stream_decoder(self) -> _GeminiStreamDecoder:
        return _GeminiStreamDecoder()

    def stream_encoder(self, model: str, req: ChatRequest) -> _stream.GeminiEncoder:
        return _stream.GeminiEncoder(model)

    def error_body(self, status: int, message: str) -> Json:
        kind = _STATUSES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
        return {"error": {"code": status, "message": message, "status": kind}}

    def stream_error(self, message: str) -> bytes:
        return encode_event(orjson.dumps(self.error_body(500, message)))


GOOGLE = GoogleFormat()
