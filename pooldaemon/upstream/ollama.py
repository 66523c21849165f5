"""Ollama's native API (``POST {base_url}/api/chat``), streaming NDJSON.

Ollama also serves an OpenAI-compatible API under ``/v1`` (use ``format:
openai`` for that); the native API adds ``keep_alive``, ``options`` and
thinking models' ``thinking`` field. The base URL is the server root, e.g.
``http://127.0.0.1:11434``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pooldaemon.pool import ProviderView, Usage, usage_from_ollama
from pooldaemon.upstream import _ollama_ir as _ir
from pooldaemon.upstream._base import bearer_headers, error_text
from pooldaemon.upstream._ir import ChatRequest, ChatResponse, Event
from pooldaemon.upstream._sse import SseEvent

__all__ = ["OLLAMA"]

Json = dict[str, Any]
_PARAMS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "num_predict",
    "frequency_penalty": "frequency_penalty",
    "presence_penalty": "presence_penalty",
}


def _error_text(data: Json) -> str:
    return error_text(data.get("error"))


class _OllamaWatch:
    """Relays NDJSON lines unchanged; the ``done: true`` line carries usage and ends it."""

    __slots__ = ("done", "error", "error_relayed", "usage")

    def __init__(self) -> None:
        self.usage = Usage()
        self.done = False
        self.error: str | None = None
        self.error_relayed = False

    def relay(self, event: SseEvent) -> bytes | None:
        if self.error is not None:
            return None
        if b'"done":true' in event.data.replace(b" ", b"") or b'"error"' in event.data:
            data = orjson.loads(event.data)
            if isinstance(data, dict) and data.get("error"):
                self.error, self.error_relayed = _error_text(data), True
            elif isinstance(data, dict) and data.get("done"):
                self.usage, self.done = usage_from_ollama(data), True
        return event.raw

    def finish(self) -> bytes | None:
        return None

    def failure(self, message: str) -> bytes | None:
        return None  # the format's generic error event fits


class _OllamaStreamDecoder:
    def __init__(self) -> None:
        self._decoder = _ir.OllamaDecoder()
        self.error: str | None = None

    def feed(self, event: SseEvent) -> list[Event]:
        data = orjson.loads(event.data)  # ValueError: a malformed stream
        if not isinstance(data, dict):
            raise ValueError("an NDJSON line is not a JSON object")
        if data.get("error"):
            self.error = _error_text(data)
            return []
        return self._decoder.feed(data)

    def end(self) -> list[Event]:
        return []  # a stream without its done line did not end normally


class OllamaFormat:
    name = "ollama"
    framing = "ndjson"
    end_marker = True
    inline_images = True

    def url(self, provider: ProviderView, model: str, stream: bool) -> str:
        base = (provider.spec.base_url or "").removesuffix("/api")
        return f"{base}/api/chat"

    def headers(
        self, provider: ProviderView, key: str | None, inbound: Mapping[str, str]
    ) -> dict[str, str]:
        return bearer_headers(provider, key)

    def _options(self, body: Json, provider: ProviderView) -> None:
        params = provider.spec.model_params
        if params is None:
            return
        options = dict(body.get("options") or {})
        for name, option in _PARAMS.items():
            value = getattr(params, name)
            if value is not None:
                options.setdefault(option, value)
        body["options"] = options

    def prepare(self, body: Json, model: str, provider: ProviderView) -> tuple[Json, bool]:
        out = {**body, "model": model, "stream": bool(body.get("stream", False))}
        self._options(out, provider)
        return out, False

    def capabilities(self, body: Json) -> frozenset[str]:
        caps = {"tools"} if body.get("tools") else set()
        if any(m.get("images") for m in body.get("messages") or () if isinstance(m, dict)):
            caps.add("vision")
        if body.get("format"):
            caps.add("json")
        return frozenset(caps)

    def usage(self, body: Mapping[str, Any]) -> Usage:
        return usage_from_ollama(body)

    def watch(self, client_wants_usage: bool) -> _OllamaWatch:
        return _OllamaWatch()

    def error_body(self, status: int, message: str) -> Json:
        return {"error": message}

    def stream_error(self, message: str) -> bytes:
        return orjson.dumps({"error": message}) + b"\n"

    def decode_request(self, body: Json) -> ChatRequest:
        return _ir.decode_request(body)

    def encode_request(self, req: ChatRequest, model: str, provider: ProviderView) -> Json:
        body = _ir.encode_request(req, model)
        self._options(body, provider)
        return body

    def decode_response(self, body: Json) -> ChatResponse:
        return _ir.decode_response(body)

    def encode_response(self, resp: ChatResponse, model: str) -> Json:
        return _ir.encode_response(resp, model)

    def stream_decoder(self) -> _OllamaStreamDecoder:
        return _OllamaStreamDecoder()

    def stream_encoder(self, model: str, req: ChatRequest) -> _ir.OllamaEncoder:
        return _ir.OllamaEncoder(model)


OLLAMA = OllamaFormat()
