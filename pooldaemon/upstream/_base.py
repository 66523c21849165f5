"""The small interface every wire format implements.

A format module knows its endpoint URL and auth headers, how to prepare a
request body for an upstream of its own format (the pass-through fast path:
model rewritten, provider defaults applied), how to read usage from a response
and from a stream as it passes, and how to write errors in its own shape for
clients that speak it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from pooldaemon.pool import ProviderView, Usage
from pooldaemon.upstream._ir import ChatRequest, ChatResponse
from pooldaemon.upstream._sse import SseEvent
from pooldaemon.upstream._translate import StreamDecoder, StreamEncoder

__all__ = ["StreamWatch", "WireFormat", "bearer_headers", "error_text", "has_content_part"]

Json = dict[str, Any]


def bearer_headers(provider: ProviderView, key: str | None) -> dict[str, str]:
    """JSON content type, the provider's extra headers, and ``Authorization: Bearer``."""
    headers = {"Content-Type": "application/json", **provider.spec.headers}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return headers


def error_text(err: object) -> str:
    """The message of an upstream error object (``{"message": ...}`` or a bare value)."""
    return str(err.get("message", err) if isinstance(err, dict) else err)[:500]


def has_content_part(body: Mapping[str, Any], part_type: str) -> bool:
    """Whether any message of ``body`` has a content part of ``part_type`` (e.g. an image)."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return False  # malformed: the format's decoder says why
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list) and any(
            isinstance(p, dict) and p.get("type") == part_type for p in content
        ):
            return True
    return False


class StreamWatch(Protocol):
    """Follows one relayed stream event by event."""

    usage: Usage
    done: bool  # the stream's normal end was seen
    error_relayed: bool  # the upstream's error event went to the client as it was

    @property
    def error(self) -> str | None:
        """The message of an error event the upstream sent, if any."""
        ...

    def relay(self, event: SseEvent) -> bytes | None:
        """The bytes to send on for ``event`` (None: drop it)."""
        ...

    def finish(self) -> bytes | None:
        """Bytes to send when the upstream stream ended (its format may have no end marker)."""
        ...

    def failure(self, message: str) -> bytes | None:
        """The client's error event for a stream that broke, when it must carry the
        stream's own identity (Responses); None: the format's generic one."""
        ...


class WireFormat(Protocol):
    name: str
    framing: str  # "sse" or "ndjson"
    end_marker: bool  # a stream ends with an explicit event (else simply at EOF)
    inline_images: bool  # image URLs must be fetched and sent as data

    def url(self, provider: ProviderView, model: str, stream: bool) -> str: ...

    def headers(
        self, provider: ProviderView, key: str | None, inbound: Mapping[str, str]
    ) -> dict[str, str]: ...

    def prepare(self, body: Json, model: str, provider: ProviderView) -> tuple[Json, bool]:
        """The upstream body, and whether the client asked for usage in its stream."""
        ...

    def capabilities(self, body: Json) -> frozenset[str]: ...

    def usage(self, body: Mapping[str, Any]) -> Usage: ...

    def watch(self, client_wants_usage: bool) -> StreamWatch: ...

    def error_body(self, status: int, message: str) -> Json: ...

    def stream_error(self, message: str) -> bytes: ...

    # Translation through the IR, for clients and upstreams of different formats.
    def decode_request(self, body: Json) -> ChatRequest: ...

    def encode_request(self, req: ChatRequest, model: str, provider: ProviderView) -> Json: ...

    def decode_response(self, body: Json) -> ChatResponse: ...

    def encode_response(self, resp: ChatResponse, model: str) -> Json: ...

    def stream_decoder(self) -> StreamDecoder: ...

    def stream_encoder(self, model: str, req: ChatRequest) -> StreamEncoder: ...
