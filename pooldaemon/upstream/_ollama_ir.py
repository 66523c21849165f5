"""Ollama's native chat API (``POST /api/chat``) <-> IR.

Messages carry images as bare base64 strings (URLs are fetched by the proxy
first), tool calls have no ids (``call_<n>`` is made up, and a tool result
names its function), arguments are JSON objects, and a stream is NDJSON whose
last line has ``done: true`` and the token counts.
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson

from pooldaemon.pool import Usage, usage_from_ollama
from pooldaemon.upstream._ir import (
    BlockStart,
    BlockStop,
    ChatRequest,
    ChatResponse,
    Event,
    Image,
    Message,
    StopReason,
    StreamEnd,
    StreamStart,
    Text,
    TextDelta,
    Thinking,
    ThinkingDelta,
    Tool,
    ToolArgsDelta,
    ToolCall,
    ToolResult,
    TranslationError,
    malformed_request,
    malformed_response,
    tool_arguments,
)

__all__ = [
    "OllamaDecoder",
    "OllamaEncoder",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

Json = dict[str, Any]


def _stop(done_reason: object, has_calls: bool) -> StopReason:
    if has_calls:
        return "tool_calls"
    return "max_tokens" if done_reason == "length" else "end"


def _encode_message(message: Message, names: dict[str, str]) -> list[Json]:
    """One IR turn as Ollama messages: tool results become ``tool`` messages."""
    out: list[Json] = []
    texts: list[str] = []
    images: list[str] = []
    calls: list[Json] = []
    for part in message.parts:
        if isinstance(part, Text):
            texts.append(part.text)
        elif isinstance(part, Image):
            if part.data is None:
                raise TranslationError("image URLs must be fetched before they go to Ollama")
            images.append(part.data)
        elif isinstance(part, ToolCall):
            args = tool_arguments(part.arguments)
            calls.append({"function": {"name": part.name, "arguments": args}})
        elif isinstance(part, ToolResult):
            content = "".join(c.text for c in part.content if isinstance(c, Text))
            tool_name = names.get(part.call_id, "")
            out.append({"role": "tool", "content": content, "tool_name": tool_name})
    if texts or images or calls:
        entry: Json = {"role": message.role, "content": "".join(texts)}
        if images:
            entry["images"] = images
        if calls:
            entry["tool_calls"] = calls
        out.append(entry)
    return out


def _options(req: ChatRequest) -> Json:
    options: Json = {}
    for name, value in (
        ("temperature", req.temperature),
        ("top_p", req.top_p),
        ("num_predict", req.max_tokens),
    ):
        if value is not None:
            options[name] = value
    if req.stop:
        options["stop"] = req.stop
    return options


def encode_request(req: ChatRequest, model: str) -> Json:
    names = {p.id: p.name for m in req.messages for p in m.parts if isinstance(p, ToolCall)}
    messages: list[Json] = [{"role": "system", "content": req.system}] if req.system else []
    for message in req.messages:
        messages += _encode_message(message, names)
    body: Json = {"model": model, "messages": messages, "stream": req.stream}
    if req.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    "description": t.description,
                    "parameters": t.parameters,
                },
            }
            for t in req.tools
        ]
    options = _options(req)
    if options:
        body["options"] = options
    if req.json_mode:
        body["format"] = "json"
    return body


@malformed_request
def decode_request(body: Json) -> ChatRequest:
    system: list[str] = []
    messages: list[Message] = []
    calls = 0
    for raw in body.get("messages") or ():
        role = raw.get("role") if isinstance(raw, dict) else None
        if role == "system":
            system.append(str(raw.get("content", "")))
            continue
        parts: list[Any] = []
        if raw and raw.get("content"):
            parts.append(Text(str(raw["content"])))
        parts += [Image(data=str(d)) for d in (raw or {}).get("images") or ()]
        if role == "tool":
            result = ToolResult(f"call_{raw.get('tool_name', '')}", [Text(str(raw.get("content")))])
            messages.append(Message("user", [result]))
            continue
        for call in (raw or {}).get("tool_calls") or ():
            fn = call.get("function") or {}
            calls += 1
            parts.append(
                ToolCall(
                    f"call_{fn.get('name', calls)}",
                    str(fn.get("name", "")),
                    json.dumps(fn.get("arguments") or {}),
                )
            )
        if role not in ("user", "assistant"):
            raise TranslationError(f"message role {role!r} cannot be translated")
        messages.append(Message(role, parts))
    options = body.get("options") or {}
    tools = [
        Tool(
            str(t["function"].get("name", "")),
            str(t["function"].get("description") or ""),
            dict(t["function"].get("parameters") or {}),
        )
        for t in body.get("tools") or ()
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    stop = options.get("stop")
    return ChatRequest(
        model=str(body.get("model", "")),
        messages=messages,
        system="\n\n".join(system),
        tools=tools,
        max_tokens=options.get("num_predict"),
        temperature=options.get("temperature"),
        top_p=options.get("top_p"),
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        stream=bool(body.get("stream", True)),
        json_mode=body.get("format") == "json",
    )


def _message_parts(message: Json, first_call: int) -> list[Text | ToolCall | Thinking]:
    parts: list[Text | ToolCall | Thinking] = []
    if message.get("thinking"):
        parts.append(Thinking(str(message["thinking"])))
    if message.get("content"):
        parts.append(Text(str(message["content"])))
    for n, call in enumerate(message.get("tool_calls") or (), first_call):
        fn = call.get("function") or {}
        parts.append(
            ToolCall(f"call_{n}", str(fn.get("name", "")), json.dumps(fn.get("arguments") or {}))
        )
    return parts


@malformed_response
def decode_response(body: Json) -> ChatResponse:
    parts = _message_parts(body.get("message") or {}, 0)
    has_calls = any(isinstance(p, ToolCall) for p in parts)
    return ChatResponse(
        "",
        str(body.get("model", "")),
        parts,
        _stop(body.get("done_reason"), has_calls),
        usage_from_ollama(body),
    )


def encode_response(resp: ChatResponse, model: str) -> Json:
    message: Json = {
        "role": "assistant",
        "content": "".join(p.text for p in resp.parts if isinstance(p, Text)),
    }
    calls = [p for p in resp.parts if isinstance(p, ToolCall)]
    if calls:
        message["tool_calls"] = [
            {"function": {"name": c.name, "arguments": tool_arguments(c.arguments)}} for c in calls
        ]
    return {
        "model": model,
        "created_at": _now(),
        "message": message,
        "done": True,
        "done_reason": "length" if resp.stop == "max_tokens" else "stop",
        "prompt_eval_count": resp.usage.input + resp.usage.cache_read,
        "eval_count": resp.usage.output,
    }


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class OllamaDecoder:
    """NDJSON lines of ``/api/chat`` -> IR events (the ``done: true`` line ends it)."""

    def __init__(self) -> None:
        self.started = False
        self.open: int | None = None
        self.kind = ""
        self.blocks = 0
        self.calls = 0
        self.ended = False

    def feed(self, line: Json) -> list[Event]:
        events: list[Event] = []
        if not self.started:
            self.started = True
            events.append(StreamStart("", str(line.get("model", "")), Usage()))
        message = line.get("message") or {}
        if message.get("thinking"):
            events += self._delta("thinking", str(message["thinking"]))
        if message.get("content"):
            events += self._delta("text", str(message["content"]))
        for part in _message_parts({"tool_calls": message.get("tool_calls")}, self.calls):
            assert isinstance(part, ToolCall)
            self.calls += 1
            events += self._close()
            events += [
                BlockStart(self.blocks, "tool", part.id, part.name),
                ToolArgsDelta(self.blocks, part.arguments),
                BlockStop(self.blocks),
            ]
            self.blocks += 1
        if line.get("done") and not self.ended:
            self.ended = True
            events += self._close()
            events.append(
                StreamEnd(_stop(line.get("done_reason"), self.calls > 0), usage_from_ollama(line))
            )
        return events

    def _close(self) -> list[Event]:
        if self.open is None:
            return []
        index, self.open = self.open, None
        return [BlockStop(index)]

    def _delta(self, kind: str, text: str) -> list[Event]:
        events: list[Event] = []
        if self.open is None or self.kind != kind:
            events += self._close()
            self.open, self.kind = self.blocks, kind
            events.append(BlockStart(self.blocks, "text" if kind == "text" else "thinking"))
            self.blocks += 1
        events.append(
            TextDelta(self.open, text) if kind == "text" else ThinkingDelta(self.open, text)
        )
        return events


class OllamaEncoder:
    """IR events -> NDJSON lines; tool arguments are gathered and sent whole."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.tools: dict[int, list[str]] = {}
        self.names: dict[int, str] = {}

    def _line(self, data: Json) -> bytes:
        return orjson.dumps({"model": self.model, "created_at": _now(), **data}) + b"\n"

    def failure(self, message: str) -> bytes | None:
        return None  # the format's generic error event fits

    def encode(self, event: Event) -> bytes:
        if isinstance(event, TextDelta):
            return self._line(
                {"message": {"role": "assistant", "content": event.text}, "done": False}
            )
        if isinstance(event, ThinkingDelta):
            return self._line(
                {
                    "message": {"role": "assistant", "content": "", "thinking": event.text},
                    "done": False,
                }
            )
        if isinstance(event, BlockStart) and event.kind == "tool":
            self.tools[event.index] = []
            self.names[event.index] = event.name
        elif isinstance(event, ToolArgsDelta) and event.index in self.tools:
            self.tools[event.index].append(event.json)
        elif isinstance(event, BlockStop) and event.index in self.tools:
            args = tool_arguments("".join(self.tools.pop(event.index)))
            call = {"function": {"name": self.names.pop(event.index), "arguments": args}}
            return self._line(
                {
                    "message": {"role": "assistant", "content": "", "tool_calls": [call]},
                    "done": False,
                }
            )
        elif isinstance(event, StreamEnd):
            return self._line(
                {
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "length" if event.stop == "max_tokens" else "stop",
                    "prompt_eval_count": event.usage.input + event.usage.cache_read,
                    "eval_count": event.usage.output,
                }
            )
        return b""
