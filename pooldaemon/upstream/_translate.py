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

    def end(self) -> list[Event]:
        """Events at EOF, for formats without an end marker."""
        ...


class StreamEncoder(Protocol):
    def encode(self, event: Event) -> bytes: ...

    def failure(self, message: str) -> bytes | None: ...


class TranslatingWatch:
    """A :class:`~pooldaemon.upstream._base.StreamWatch` that re-encodes as it relays."""

    __slots__ = ("_decoder", "_encoder", "_end_at_eof", "done", "usage")
    error_relayed = False  # the client gets its own format's error event from the proxy

    def __init__(
        self, decoder: StreamDecoder, encoder: StreamEncoder, *, end_at_eof: bool = False
    ) -> None:
        self._decoder = decoder
        self._encoder = encoder
        self._end_at_eof = end_at_eof
        self.usage = Usage()
        self.done = False

    @property
    def error(self) -> str | None:
        return self._decoder.error

    def relay(self, event: SseEvent) -> bytes | None:
        if self._decoder.error is not None:
            return None  # nothing after an error, above all no normal end
        # An error event yields no IR events; later ones are not relayed (above).
        try:
            events = self._decoder.feed(event)
        except (TypeError, LookupError, AttributeError) as exc:
            # JSON of the wrong shape is as malformed as bad JSON (ValueError).
            raise ValueError(f"malformed upstream stream event: {exc}") from None
        return self._encode(events)

    def failure(self, message: str) -> bytes | None:
        return self._encoder.failure(message)

    def finish(self) -> bytes | None:
        if not self._end_at_eof or self._decoder.error is not None or self.done:
            return None
        try:
            events = self._decoder.end()
        except (TypeError, LookupError, AttributeError) as exc:
            raise ValueError(f"malformed upstream stream: {exc}") from None
        return self._encode(events)

    def _encode(self, events: list[Event]) -> bytes | None:
        out = b""
        for ir in events:
            if isinstance(ir, StreamStart):
                self.usage = ir.usage
            elif isinstance(ir, StreamEnd):
                self.usage = ir.usage
                self.done = True
            out += self._encoder.encode(ir)
        return out or None
