"""OpenAI Chat Completions <-> IR: requests, responses and stream chunks."""

from __future__ import annotations

import time
from typing import Any

import orjson

from pooldaemon.pool import Usage, usage_from_openai
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
)

__all__ = [
    "OpenAIDecoder",
    "OpenAIEncoder",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

Json = dict[str, Any]
_STOP_FROM = {
    "stop": "end",
    "length": "max_tokens",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}
_STOP_TO = {
    "end": "stop",
    "max_tokens": "length",
    "stop_sequence": "stop",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
}


def _stop_from(reason: object) -> StopReason:
    return _STOP_FROM.get(str(reason), "end")  # type: ignore[return-value]


def _image(url: str) -> Image:
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return Image(data=data, media_type=head or "image/png")
    return Image(url=url)


def _user_parts(content: object) -> list[Text | Image]:
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Text | Image] = []
    for item in content if isinstance(content, list) else ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "text":
            parts.append(Text(str(item.get("text", ""))))
        elif kind == "image_url":
            ref = item.get("image_url")
            url = ref.get("url") if isinstance(ref, dict) else ref
            if isinstance(url, str):
                parts.append(_image(url))
        else:
            raise TranslationError(f"content part type {kind!r} cannot be translated")
    return parts


def _text_of(content: object) -> str:
    return "".join(p.text for p in _user_parts(content) if isinstance(p, Text))


def _tool(fn: Json) -> Tool:
    params = fn.get("parameters") or {"type": "object", "properties": {}}
    return Tool(str(fn.get("name", "")), str(fn.get("description") or ""), dict(params))


@malformed_request
def decode_request(body: Json) -> ChatRequest:
    """A Chat Completions request body as IR."""
    system: list[str] = []
    messages: list[Message] = []
    for raw in body.get("messages") or ():
        if not isinstance(raw, dict):
            raise TranslationError("each message must be an object")
        role = raw.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(raw.get("content")))
        elif role == "user":
            messages.append(Message("user", list(_user_parts(raw.get("content")))))
        elif role == "assistant":
            parts: list[Any] = []
            if raw.get("content"):
                parts += _user_parts(raw["content"])
            for call in raw.get("tool_calls") or ():
                fn = call.get("function") or {}
                parts.append(
                    ToolCall(
                        str(call.get("id", "")),
                        str(fn.get("name", "")),
                        str(fn.get("arguments") or "{}"),
                    )
                )
            messages.append(Message("assistant", parts))
        elif role == "tool":
            result = ToolResult(str(raw.get("tool_call_id", "")), _user_parts(raw.get("content")))
            last = messages[-1] if messages else None
            if (
                last is not None
                and last.role == "user"
                and all(isinstance(p, ToolResult) for p in last.parts)
            ):
                last.parts.append(result)  # parallel calls answer in one turn
            else:
                messages.append(Message("user", [result]))
        else:
            raise TranslationError(f"message role {role!r} cannot be translated")
    tools = [
        _tool(t["function"])
        for t in body.get("tools") or ()
        if isinstance(t, dict) and isinstance(t.get("function"), dict)
    ]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = f"tool:{(choice.get('function') or {}).get('name', '')}"
    stop = body.get("stop")
    response_format = body.get("response_format")
    options = body.get("stream_options")
    return ChatRequest(
        model=str(body.get("model", "")),
        messages=messages,
        system="\n\n".join(s for s in system if s),
        tools=tools,
        tool_choice=choice if isinstance(choice, str) else None,
        max_tokens=body.get("max_completion_tokens") or body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=[stop] if isinstance(stop, str) else list(stop or []),
        stream=bool(body.get("stream")),
        json_mode=isinstance(response_format, dict)
        and response_format.get("type") in ("json_object", "json_schema"),
        client_wants_usage=isinstance(options, dict) and bool(options.get("include_usage")),
    )


def _wire_parts(parts: list[Any]) -> str | list[Json]:
    if all(isinstance(p, Text) for p in parts):
        return "".join(p.text for p in parts)
    out: list[Json] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            url = part.url or f"data:{part.media_type or 'image/png'};base64,{part.data}"
            out.append({"type": "image_url", "image_url": {"url": url}})
    return out


def encode_request(req: ChatRequest, model: str) -> Json:
    """IR as a Chat Completions request body for ``model``."""
    messages: list[Json] = [{"role": "system", "content": req.system}] if req.system else []
    for message in req.messages:
        results = [p for p in message.parts if isinstance(p, ToolResult)]
        messages.extend(
            {"role": "tool", "tool_call_id": r.call_id, "content": _wire_parts(list(r.content))}
            for r in results
        )
        rest = [p for p in message.parts if not isinstance(p, ToolResult | Thinking)]
        calls = [p for p in rest if isinstance(p, ToolCall)]
        content = [p for p in rest if not isinstance(p, ToolCall)]
        if message.role == "assistant":
            entry: Json = {"role": "assistant", "content": _wire_parts(content) or None}
            if calls:
                entry["tool_calls"] = [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in calls
                ]
            messages.append(entry)
        elif content or not results:
            messages.append({"role": "user", "content": _wire_parts(content)})
    body: Json = {"model": model, "messages": messages}
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
    if req.tool_choice:
        body["tool_choice"] = (
            {"type": "function", "function": {"name": req.tool_choice[5:]}}
            if req.tool_choice.startswith("tool:")
            else req.tool_choice
        )
    for name in ("max_tokens", "temperature", "top_p"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.stop:
        body["stop"] = req.stop
    if req.json_mode:
        body["response_format"] = {"type": "json_object"}
    if req.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


@malformed_response
def decode_response(body: Json) -> ChatResponse:
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    parts: list[Text | ToolCall | Thinking] = []
    if message.get("reasoning_content"):
        parts.append(Thinking(str(message["reasoning_content"])))
    if message.get("content"):
        parts.append(Text(_text_of(message["content"])))
    for call in message.get("tool_calls") or ():
        fn = call.get("function") or {}
        parts.append(
            ToolCall(
                str(call.get("id", "")), str(fn.get("name", "")), str(fn.get("arguments") or "{}")
            )
        )
    usage = body.get("usage")
    return ChatResponse(
        str(body.get("id", "")),
        str(body.get("model", "")),
        parts,
        _stop_from(choice.get("finish_reason")),
        usage_from_openai(usage if isinstance(usage, dict) else None),
    )


def usage_to_openai(usage: Usage) -> Json:
    prompt = usage.input + usage.cache_read + usage.cache_write
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage.output,
        "total_tokens": prompt + usage.output,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning},
    }


def encode_response(resp: ChatResponse, model: str) -> Json:
    text = "".join(p.text for p in resp.parts if isinstance(p, Text))
    calls = [p for p in resp.parts if isinstance(p, ToolCall)]
    message: Json = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return {
        "id": resp.id or "chatcmpl-pooldaemon",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _STOP_TO[resp.stop]}],
        "usage": usage_to_openai(resp.usage),
    }


class OpenAIDecoder:
    """Chat Completions chunks -> IR events."""

    def __init__(self) -> None:
        self.started = False
        self.open: int | None = None  # IR index of the block being streamed
        self.blocks = 0
        self.tools: dict[int, int] = {}  # tool_calls[].index -> IR block index
        self.stop: StopReason = "end"
        self.usage = Usage()
        self.ended = False
        self.kinds: dict[int, str] = {}  # IR block index -> text | thinking | tool

    def feed(self, chunk: Json) -> list[Event]:
        events: list[Event] = []
        if not self.started:
            self.started = True
            events.append(
                StreamStart(str(chunk.get("id", "")), str(chunk.get("model", "")), Usage())
            )
        if isinstance(chunk.get("usage"), dict):
            self.usage = usage_from_openai(chunk["usage"])
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if delta.get("reasoning_content"):
                events += self._text("thinking", str(delta["reasoning_content"]))
            if delta.get("content"):
                events += self._text("text", str(delta["content"]))
            for call in delta.get("tool_calls") or ():
                events += self._tool(call)
            if choice.get("finish_reason"):
                self.stop = _stop_from(choice["finish_reason"])
        return events

    def _close(self) -> list[Event]:
        if self.open is None:
            return []
        index, self.open = self.open, None
        return [BlockStop(index)]

    def _text(self, kind: str, text: str) -> list[Event]:
        events: list[Event] = []
        wanted = "text" if kind == "text" else "thinking"
        if self.open is None or self.kinds.get(self.open) != wanted:
            events += self._close()
            self.open = self.blocks
            self.kinds[self.blocks] = wanted
            events.append(BlockStart(self.blocks, wanted))  # type: ignore[arg-type]
            self.blocks += 1
        cls = TextDelta if wanted == "text" else ThinkingDelta
        events.append(cls(self.open, text))
        return events

    def _tool(self, call: Json) -> list[Event]:
        events: list[Event] = []
        slot = int(call.get("index", 0))
        fn = call.get("function") or {}
        if slot not in self.tools:
            events += self._close()
            self.tools[slot] = self.blocks
            self.kinds[self.blocks] = "tool"
            self.open = self.blocks
            events.append(
                BlockStart(self.blocks, "tool", str(call.get("id", "")), str(fn.get("name", "")))
            )
            self.blocks += 1
        if fn.get("arguments"):
            events.append(ToolArgsDelta(self.tools[slot], str(fn["arguments"])))
        return events

    def end(self) -> list[Event]:
        """At ``data: [DONE]``."""
        if self.ended:
            return []
        self.ended = True
        return [*self._close(), StreamEnd(self.stop, self.usage)]


class OpenAIEncoder:
    """IR events -> Chat Completions chunks (``data: ...``), ``[DONE]`` at the end."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-pooldaemon"
        self.created = int(time.time())
        self.tool_slots: dict[int, int] = {}

    def _chunk(self, delta: Json, finish: str | None = None) -> bytes:
        data = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + orjson.dumps(data) + b"\n\n"

    def failure(self, message: str) -> bytes | None:
        return None  # the format's generic error event fits

    def encode(self, event: Event) -> bytes:
        if isinstance(event, StreamStart):
            self.id = event.id or self.id
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ThinkingDelta):
            return self._chunk({"reasoning_content": event.text})
        if isinstance(event, BlockStart) and event.kind == "tool":
            slot = self.tool_slots[event.index] = len(self.tool_slots)
            return self._chunk(
                {
                    "tool_calls": [
                        {
                            "index": slot,
                            "id": event.id,
                            "type": "function",
                            "function": {"name": event.name, "arguments": ""},
                        }
                    ]
                }
            )
        if isinstance(event, ToolArgsDelta):
            slot = self.tool_slots.get(event.index, 0)
            return self._chunk(
                {"tool_calls": [{"index": slot, "function": {"arguments": event.json}}]}
            )
        if isinstance(event, StreamEnd):
            out = self._chunk({}, _STOP_TO[event.stop])
            if self.include_usage:
                usage = {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": usage_to_openai(event.usage),
                }
                out += b"data: " + orjson.dumps(usage) + b"\n\n"
            return out + b"data: [DONE]\n\n"
        return b""
