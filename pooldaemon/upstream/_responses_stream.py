"""Responses API stream events <-> IR events (see ``_responses_ir`` for the codec).

A Responses stream is SSE with an ``event:`` line per event, each carrying its
``type`` and an increasing ``sequence_number``: ``response.created`` and
``response.in_progress``, then per output item ``response.output_item.added``,
its deltas (text in content parts, function call arguments, reasoning summary
text) and ``response.output_item.done``; it ends with ``response.completed``
(or ``response.incomplete``), whose response object holds the usage and the
final status. A failure is ``response.failed`` (or an ``error`` event).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from pooldaemon.pool import Usage, usage_from_responses
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
from pooldaemon.upstream._responses_ir import (
    _dict,
    call_item,
    final_status,
    item_id,
    message_item,
    output_text,
    reasoning_item,
    response_id,
    response_json,
    stop_from,
)
from pooldaemon.upstream._sse import encode_event

__all__ = ["ResponsesDecoder", "ResponsesEncoder", "failed_event"]

Json = dict[str, Any]
_TEXT_DELTAS = ("response.output_text.delta", "response.refusal.delta")
_THINKING_DELTAS = ("response.reasoning_summary_text.delta", "response.reasoning_text.delta")
_ENDS = ("response.completed", "response.incomplete")
_WHOLE = -1  # the content index of a block that is a whole item (a call, reasoning)


def _is_text(part: object) -> bool:
    """A message content part streamed as text (``reasoning_text`` parts are thinking)."""
    return _dict(part).get("type", "output_text") in ("output_text", "refusal")


def failed_event(
    message: str,
    ident: str,
    sequence_number: int,
    model: str = "",
    output: list[Json] | None = None,
) -> bytes:
    """A ``response.failed`` event with a minimal failed response object.

    The official SDK's stream helper refuses one whose id is not the stream's
    (``Lifecycle response identity changed``): pass the stream's own id when known.
    """
    response = response_json(
        ident,
        model,
        int(time.time()),
        output or [],
        status="failed",
        error={"code": "server_error", "message": message},
    )
    data = {"type": "response.failed", "sequence_number": sequence_number, "response": response}
    return encode_event(orjson.dumps(data), "response.failed")


class ResponsesDecoder:
    """Responses stream events -> IR events.

    Each output item is streamed whole before the next one starts, so one IR
    block is open at a time: a text block per message content part, a thinking
    block per reasoning item, a tool block per function call.
    """

    def __init__(self) -> None:
        self.started = False
        self.key: tuple[int, int] | None = None  # (output_index, content_index) of the open block
        self.index = 0  # IR index of the open block
        self.blocks = 0
        self.calls: dict[int, tuple[int, bool]] = {}  # output_index -> IR index, had deltas
        self.summaries: dict[int, int] = {}  # output_index -> summary_index last streamed
        self.streamed: set[int] = set()  # output indexes that opened a block
        self.ended = False

    def feed(self, kind: str, data: Json) -> list[Event]:
        events: list[Event] = []
        if not self.started:
            self.started = True
            response = _dict(data.get("response"))
            rid, model = str(response.get("id") or ""), str(response.get("model") or "")
            events.append(StreamStart(rid, model, Usage()))
        if self.ended:
            return events
        out = int(data.get("output_index") or 0)
        content = int(data.get("content_index") or 0)
        if kind == "response.output_item.added":
            events += self._added(out, _dict(data.get("item")))
        elif kind == "response.content_part.added" and _is_text(data.get("part")):
            events += self._open((out, content), BlockStart(self.blocks, "text"))
        elif kind in _TEXT_DELTAS:
            events += self._open((out, content), BlockStart(self.blocks, "text"))
            events.append(TextDelta(self.index, str(data.get("delta", ""))))
        elif kind in _THINKING_DELTAS:
            events += self._thinking(out, data)
        elif kind == "response.function_call_arguments.delta" and out in self.calls:
            index = self.calls[out][0]
            self.calls[out] = (index, True)
            events.append(ToolArgsDelta(index, str(data.get("delta", ""))))
        elif kind == "response.content_part.done" and self.key == (out, content):
            events += self._close()
        elif kind == "response.output_item.done":
            events += self._done(out, _dict(data.get("item")))
        elif kind in _ENDS:
            events += self._end(_dict(data.get("response")))
        return events

    def _close(self) -> list[Event]:
        if self.key is None:
            return []
        self.key = None
        return [BlockStop(self.index)]

    def _open(self, key: tuple[int, int], start: BlockStart) -> list[Event]:
        if self.key == key:
            return []
        events = self._close()
        self.key, self.index = key, self.blocks
        self.blocks += 1
        self.streamed.add(key[0])
        return [*events, start]

    def _added(self, out: int, item: Json) -> list[Event]:
        if item.get("type") != "function_call":
            return []  # messages open a block per content part, reasoning at its first delta
        call_id, name = str(item.get("call_id") or ""), str(item.get("name") or "")
        events = self._open((out, _WHOLE), BlockStart(self.blocks, "tool", call_id, name))
        self.calls[out] = (self.index, False)
        return events

    def _thinking(self, out: int, data: Json) -> list[Event]:
        events = self._open((out, _WHOLE), BlockStart(self.blocks, "thinking"))
        part = int(data.get("summary_index") or 0)
        if self.summaries.setdefault(out, part) != part:
            self.summaries[out] = part
            events.append(ThinkingDelta(self.index, "\n\n"))  # between summary parts
        events.append(ThinkingDelta(self.index, str(data.get("delta", ""))))
        return events

    def _done(self, out: int, item: Json) -> list[Event]:
        """An item done; items no delta streamed (some servers send them whole) come out here."""
        events: list[Event] = []
        kind = item.get("type")
        if kind == "function_call":
            if out not in self.calls:
                events += self._added(out, item)
            index, streamed = self.calls[out]
            if not streamed and item.get("arguments"):
                events.append(ToolArgsDelta(index, str(item["arguments"])))
        elif kind == "message" and out not in self.streamed:
            for position, raw in enumerate(item.get("content") or ()):
                part = _dict(raw)
                text = part.get("text") if part.get("type") == "output_text" else None
                if text:
                    events += self._open((out, position), BlockStart(self.blocks, "text"))
                    events.append(TextDelta(self.index, str(text)))
        if self.key is not None and self.key[0] == out:
            events += self._close()
        return events

    def _end(self, response: Json) -> list[Event]:
        self.ended = True
        output = response.get("output") or ()
        called = bool(self.calls) or any(_dict(i).get("type") == "function_call" for i in output)
        usage = usage_from_responses(_dict(response.get("usage")))
        return [*self._close(), StreamEnd(stop_from(response, called), usage)]


@dataclass(slots=True)
class _Item:
    """An output item being streamed by the encoder."""

    output_index: int
    ident: str
    kind: Literal["text", "tool", "thinking"]
    chunks: list[str] = field(default_factory=list)
    call_id: str = ""
    name: str = ""


class ResponsesEncoder:
    """IR events -> Responses stream events, numbered from 0, with the final response object.

    Each IR block is one output item: text a message with one ``output_text``
    part, thinking a reasoning item with one summary part, a tool block a
    function call. Blocks still open at the end are closed first.
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = response_id("")
        self.created_at = int(time.time())
        self.sequence_number = 0  # of the next event
        self.output: list[Json] = []  # output items by output_index, as last sent
        self.open: dict[int, _Item] = {}  # IR block index -> its output item
        self.started = False
        self.ended = False

    def encode(self, event: Event) -> bytes:
        if self.ended:
            return b""
        out = b""
        if not self.started:
            self.started = True
            if isinstance(event, StreamStart):
                self.id = response_id(event.id) if event.id else self.id
            response = self._response("in_progress")
            out += self._ev("response.created", response=response)
            out += self._ev("response.in_progress", response=response)
        if isinstance(event, BlockStart):
            out += self._start(event)
        elif isinstance(event, TextDelta | ThinkingDelta | ToolArgsDelta):
            out += self._delta(event)
        elif isinstance(event, BlockStop):
            out += self._finish(event.index)
        elif isinstance(event, StreamEnd):
            for index in list(self.open):
                out += self._finish(index)
            self.ended = True
            status = final_status(event.stop)
            response = self._response(status, event.usage, event.stop)
            out += self._ev(f"response.{status}", response=response)
        return out

    def failure(self, message: str) -> bytes:
        """A ``response.failed`` ending this stream early, with its id, numbering and output."""
        if self.ended:
            return b""
        self.ended = True
        out = failed_event(message, self.id, self.sequence_number, self.model, list(self.output))
        self.sequence_number += 1
        return out

    def _ev(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self.sequence_number, **fields}
        self.sequence_number += 1
        return encode_event(orjson.dumps(data), kind)

    def _response(self, status: str, usage: Usage | None = None, stop: StopReason = "end") -> Json:
        return response_json(
            self.id,
            self.model,
            self.created_at,
            list(self.output),
            status=status,
            usage=usage,
            stop=stop,
        )

    def _start(self, event: BlockStart) -> bytes:
        if event.index in self.open:
            return b""
        position = len(self.output)
        prefix = {"text": "msg", "tool": "fc", "thinking": "rs"}[event.kind]
        item = _Item(position, item_id(prefix, self.id, position), event.kind)
        item.call_id, item.name = event.id, event.name
        self.open[event.index] = item
        self.output.append(self._item(item, "in_progress"))
        out = self._ev("response.output_item.added", output_index=position, item=self.output[-1])
        where: Json = {"item_id": item.ident, "output_index": position}
        if item.kind == "text":
            part = output_text("")
            out += self._ev("response.content_part.added", **where, content_index=0, part=part)
        elif item.kind == "thinking":
            part = {"type": "summary_text", "text": ""}
            kind = "response.reasoning_summary_part.added"
            out += self._ev(kind, **where, summary_index=0, part=part)
        return out

    def _delta(self, event: TextDelta | ThinkingDelta | ToolArgsDelta) -> bytes:
        item = self.open.get(event.index)
        text = event.json if isinstance(event, ToolArgsDelta) else event.text
        if item is None or not text:
            return b""
        item.chunks.append(text)
        where: Json = {"item_id": item.ident, "output_index": item.output_index, "delta": text}
        if item.kind == "text" and isinstance(event, TextDelta):
            kind = "response.output_text.delta"
            return self._ev(kind, **where, content_index=0, logprobs=[])
        if item.kind == "thinking" and isinstance(event, ThinkingDelta):
            return self._ev("response.reasoning_summary_text.delta", **where, summary_index=0)
        if item.kind == "tool" and isinstance(event, ToolArgsDelta):
            return self._ev("response.function_call_arguments.delta", **where)
        item.chunks.pop()  # a delta of another kind than its block: not relayable
        return b""

    def _finish(self, index: int) -> bytes:
        item = self.open.pop(index, None)
        if item is None:
            return b""
        text = "".join(item.chunks)
        where: Json = {"item_id": item.ident, "output_index": item.output_index}
        if item.kind == "text":
            out = self._ev(
                "response.output_text.done", **where, content_index=0, text=text, logprobs=[]
            )
            part = output_text(text)
            out += self._ev("response.content_part.done", **where, content_index=0, part=part)
        elif item.kind == "thinking":
            part = {"type": "summary_text", "text": text}
            kind = "response.reasoning_summary_text.done"
            out = self._ev(kind, **where, summary_index=0, text=text)
            kind = "response.reasoning_summary_part.done"
            out += self._ev(kind, **where, summary_index=0, part=part)
        else:
            kind = "response.function_call_arguments.done"
            out = self._ev(kind, **where, arguments=text or "{}")
        done = self.output[item.output_index] = self._item(item, "completed")
        return out + self._ev(
            "response.output_item.done", output_index=item.output_index, item=done
        )

    @staticmethod
    def _item(item: _Item, status: str) -> Json:
        done = status == "completed"
        text = "".join(item.chunks)
        if item.kind == "text":
            return message_item(item.ident, text if done else None, status)
        if item.kind == "thinking":
            return reasoning_item(item.ident, text if done else "")
        call = ToolCall(item.call_id, item.name, (text or "{}") if done else "")
        return call_item(item.ident, call, status)
