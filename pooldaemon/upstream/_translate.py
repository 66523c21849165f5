"""Streams between two formats: upstream events -> IR -> the client's format, event by event."""

from __future__ import annotations

from typing import Protocol

from pooldaemon.pool import Usage
from pooldaemon.upstream._ir import Event, StreamEnd, StreamStart
from pooldaemon.upstream._sse import SseEvent

__all__ = ["StreamDecoder", "StreamEncoder", "TranslatingWatch"]


class StreamDecoder(Protocol):
    error: str | None

    def feed(self, event: SseEvent) -> list[Event]: ...


class StreamEncoder(Protocol):
    def encode(self, event: Event) -> bytes: ...


class TranslatingWatch:
    """A :class:`~pooldaemon.upstream._base.StreamWatch` that re-encodes as it relays."""

    __slots__ = ("_decoder", "_encoder", "done", "usage")
    error_relayed = False  # the client gets its own format's error event from the proxy

    def __init__(self, decoder: StreamDecoder, encoder: StreamEncoder) -> None:
        self._decoder = decoder
        self._encoder = encoder
        self.usage = Usage()
        self.done = False

    @property
    def error(self) -> str | None:
        return self._decoder.error

    def relay(self, event: SseEvent) -> bytes | None:
        if self._decoder.error is not None:
            return None  # nothing after an error, above all no normal end
        out = b""
        # An error event yields no IR events; later ones are not relayed (above).
        for ir in self._decoder.feed(event):  # ValueError: a malformed upstream stream
            if isinstance(ir, StreamStart):
                self.usage = ir.usage
            elif isinstance(ir, StreamEnd):
                self.usage = ir.usage
                self.done = True
            out += self._encoder.encode(ir)
        return out or None
