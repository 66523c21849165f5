"""Gemini stream chunks <-> IR events (see ``_google_ir`` for what the codec absorbs)."""

from __future__ import annotations

import json
from typing import Any

import orjson

from pooldaemon.pool import Usage, usage_from_gemini
from pooldaemon.upstream._google_ir import (
    _STOP_TO,
    _blocked,
    _CallIds,
    _candidate,
    _dict,
    _response_call,
    _response_json,
    _response_tag,
    _stop_from,
)
from pooldaemon.upstream._ir import (
    BlockStart,
    BlockStop,
    Event,
    StopReason,
    StreamEnd,
    StreamStart,
    TextDelta,
    ThinkingDelta,
    ToolArgsDelta,
    ToolCall,
)
from pooldaemon.upstream._sse import encode_event

__all__ = ["GeminiDecoder", "GeminiEncoder"]

Json = dict[str, Any]


class GeminiDecoder:
    """``streamGenerateContent?alt=sse`` chunks -> IR events.

    Text parts are deltas; a function call comes whole in one chunk (so its
    block opens, gets all its arguments and closes at once); each chunk may
    repeat ``usageMetadata``, the last is final. The stream has no end marker:
    :meth:`end` is called at EOF and ends the IR stream only if a chunk carried
    a ``finishReason`` (or a prompt block); otherwise the stream was cut.
    """

    def __init__(self) -> None:
        self.started = False
        self.open: int | None = None  # IR index of the text or thinking block being streamed
        self.kind = ""
        self.blocks = 0
        self.stop: StopReason = "end"
        self.called = False
        self.finished = False
        self.ended = False
        self.usage = Usage()
        self.ids = _CallIds()

    def feed(self, chunk: Json) -> list[Event]:
        events: list[Event] = []
        meta = chunk.get("usageMetadata")
        if isinstance(meta, dict):
            self.usage = usage_from_gemini(meta)
        if not self.started:
            self.started = True
            self.ids = _CallIds(_response_tag(chunk))
            start = Usage(input=self.usage.input, cache_read=self.usage.cache_read)
            rid, model = str(chunk.get("responseId") or ""), str(chunk.get("modelVersion") or "")
            events.append(StreamStart(rid, model, start))
        candidate = _candidate(chunk)
        for raw in _dict(candidate.get("content")).get("parts") or ():
            part = _dict(raw)
            if "functionCall" in part:
                events += self._call(_dict(part["functionCall"]))
            elif part.get("text"):
                events += self._text("thinking" if part.get("thought") else "text", part["text"])
        if candidate.get("finishReason"):
            self.finished = True
            self.stop = _stop_from(candidate["finishReason"], False)
        elif _blocked(chunk):
            self.finished = True
            self.stop = "content_filter"
        return events

    def _close(self) -> list[Event]:
        if self.open is None:
            return []
        index, self.open = self.open, None
        return [BlockStop(index)]

    def _text(self, kind: str, text: object) -> list[Event]:
        events: list[Event] = []
        if self.open is None or self.kind != kind:
            events += self._close()
            self.open, self.kind = self.blocks, kind
            events.append(BlockStart(self.blocks, "thinking" if kind == "thinking" else "text"))
            self.blocks += 1
        delta = TextDelta if kind == "text" else ThinkingDelta
        events.append(delta(self.open, str(text)))
        return events

    def _call(self, fc: Json) -> list[Event]:
        self.called = True
        index = self.blocks
        self.blocks += 1
        name = str(fc.get("name", ""))
        return [
            *self._close(),
            BlockStart(index, "tool", self.ids.call(fc), name),
            ToolArgsDelta(index, json.dumps(fc.get("args") or {})),
            BlockStop(index),
        ]

    def end(self) -> list[Event]:
        """At EOF: the closing events, or none when the stream was cut before its finish."""
        if self.ended or not self.finished:
            return []
        self.ended = True
        stop: StopReason = "tool_calls" if self.called and self.stop == "end" else self.stop
        return [*self._close(), StreamEnd(stop, self.usage)]


class GeminiEncoder:
    """IR events -> ``alt=sse`` chunks; a function call goes out whole when its block stops."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = "pooldaemon"
        self.calls: dict[int, tuple[str, str, list[str]]] = {}  # index -> id, name, args so far

    def _chunk(
        self, parts: list[Json], finish: str | None = None, usage: Usage | None = None
    ) -> bytes:
        body = _response_json(self.model, self.id, parts, finish, usage)
        return encode_event(orjson.dumps(body))

    def _call(self, index: int) -> Json:
        call_id, name, args = self.calls.pop(index)
        return _response_call(ToolCall(call_id, name, "".join(args)))

    def failure(self, message: str) -> bytes | None:
        return None  # the format's generic error event fits

    def encode(self, event: Event) -> bytes:
        if isinstance(event, StreamStart):
            self.id = event.id or self.id
        elif isinstance(event, BlockStart) and event.kind == "tool":
            self.calls[event.index] = (event.id, event.name, [])
        elif isinstance(event, TextDelta) and event.text:
            return self._chunk([{"text": event.text}])
        elif isinstance(event, ThinkingDelta) and event.text:
            return self._chunk([{"text": event.text, "thought": True}])
        elif isinstance(event, ToolArgsDelta) and event.index in self.calls:
            self.calls[event.index][2].append(event.json)
        elif isinstance(event, BlockStop) and event.index in self.calls:
            return self._chunk([self._call(event.index)])
        elif isinstance(event, StreamEnd):
            parts = [self._call(index) for index in sorted(self.calls)] or [{"text": ""}]
            return self._chunk(parts, _STOP_TO[event.stop], event.usage)
        return b""
