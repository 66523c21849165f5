"""Anthropic Messages <-> IR: requests, responses and stream events.

Anthropic requires alternating user/assistant turns (consecutive turns of one
role are merged), tool results first in the user turn that follows the call,
and ``max_tokens``. It has no JSON mode: the instruction goes into the system
prompt. Thinking is only sent back with its signature (the API refuses it
otherwise).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from pooldaemon.pool import Usage, usage_from_anthropic
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
from pooldaemon.upstream._sse import encode_event

__all__ = [
    "JSON_INSTRUCTION",
    "AnthropicDecoder",
    "AnthropicEncoder",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

Json = dict[str, Any]
JSON_INSTRUCTION = "Respond with a single valid JSON object and nothing else."
_STOP_FROM = {
    "end_turn": "end",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "end",
}
_STOP_TO = {
    "end": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def _stop_from(reason: object) -> StopReason:
    return _STOP_FROM.get(str(reason), "end")  # type: ignore[return-value]


def _content_parts(content: object) -> list[Text | Image]:
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Text | Image] = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(Text(str(block.get("text", ""))))
        elif block.get("type") == "image":
            parts.append(_image(block.get("source") or {}))
    return parts


def _image(source: Json) -> Image:
    if source.get("type") == "url":
        return Image(url=str(source.get("url", "")))
    return Image(data=str(source.get("data", "")), media_type=source.get("media_type"))


def _block(block: Json) -> Any:
    kind = block.get("type")
    if kind == "text":
        return Text(str(block.get("text", "")))
    if kind == "image":
        return _image(block.get("source") or {})
    if kind == "tool_use":
        return ToolCall(
            str(block.get("id", "")), str(block.get("name", "")), json.dumps(block.get("input", {}))
        )
    if kind == "tool_result":
        return ToolResult(
            str(block.get("tool_use_id", "")),
            _content_parts(block.get("content", "")),
            bool(block.get("is_error", False)),
        )
    if kind in ("thinking", "redacted_thinking"):
        return Thinking(str(block.get("thinking", "")), block.get("signature"))
    raise TranslationError(f"content block type {kind!r} cannot be translated")


@malformed_request
def decode_request(body: Json) -> ChatRequest:
    system = body.get("system") or ""
    if isinstance(system, list):
        system = "\n\n".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    messages: list[Message] = []
    for raw in body.get("messages") or ():
        if not isinstance(raw, dict) or raw.get("role") not in ("user", "assistant"):
            raise TranslationError("each message needs role 'user' or 'assistant'")
        content = raw.get("content")
        parts = (
            [Text(content)]
            if isinstance(content, str)
            else [_block(b) for b in content or () if isinstance(b, dict)]
        )
        messages.append(Message(raw["role"], parts))
    tools = [
        Tool(
            str(t.get("name", "")),
            str(t.get("description") or ""),
            dict(t.get("input_schema") or {"type": "object", "properties": {}}),
        )
        for t in body.get("tools") or ()
        if isinstance(t, dict) and "input_schema" in t
    ]
    choice = body.get("tool_choice")
    tool_choice = None
    if isinstance(choice, dict):
        kind = choice.get("type")
        tool_choice = {"auto": "auto", "any": "required", "none": "none"}.get(str(kind))
        if kind == "tool":
            tool_choice = f"tool:{choice.get('name', '')}"
    return ChatRequest(
        model=str(body.get("model", "")),
        messages=messages,
        system=str(system),
        tools=tools,
        tool_choice=tool_choice,
        max_tokens=body.get("max_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stop=list(body.get("stop_sequences") or []),
        stream=bool(body.get("stream")),
    )


def _wire_content(parts: list[Any]) -> list[Json]:
    out: list[Json] = []
    for part in sorted(parts, key=lambda p: not isinstance(p, ToolResult)):
        if isinstance(part, Text):
            if part.text:
                out.append({"type": "text", "text": part.text})
        elif isinstance(part, Image):
            out.append({"type": "image", "source": _wire_image(part)})
        elif isinstance(part, ToolCall):
            out.append(
                {
                    "type": "tool_use",
                    "id": part.id,
                    "name": part.name,
                    "input": tool_arguments(part.arguments),
                }
            )
        elif isinstance(part, ToolResult):
            out.append(
                {
                    "type": "tool_result",
                    "tool_use_id": part.call_id,
                    "content": _wire_content(list(part.content)),
                    "is_error": part.is_error,
                }
            )
        elif isinstance(part, Thinking) and part.signature:
            out.append({"type": "thinking", "thinking": part.text, "signature": part.signature})
    return out


def _wire_image(image: Image) -> Json:
    if image.url is not None:
        return {"type": "url", "url": image.url}
    return {"type": "base64", "media_type": image.media_type or "image/png", "data": image.data}


def encode_request(req: ChatRequest, model: str, max_tokens: int) -> Json:
    """IR as a Messages request body; ``max_tokens`` is used when the request has none."""
    messages: list[Json] = []
    for message in req.messages:
        content = _wire_content(message.parts)
        if not content:
            continue
        if messages and messages[-1]["role"] == message.role:
            messages[-1]["content"] += content  # Anthropic needs alternating roles
        else:
            messages.append({"role": message.role, "content": content})
    body: Json = {"model": model, "messages": messages, "max_tokens": req.max_tokens or max_tokens}
    system = req.system
    if req.json_mode:
        system = f"{system}\n\n{JSON_INSTRUCTION}" if system else JSON_INSTRUCTION
    if system:
        body["system"] = system
    if req.tools:
        body["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters}
            for t in req.tools
        ]
    if req.tool_choice:
        choice = req.tool_choice
        body["tool_choice"] = (
            {"type": "tool", "name": choice[5:]}
            if choice.startswith("tool:")
            else {"type": {"required": "any"}.get(choice, choice)}
        )
    for name in ("temperature", "top_p"):
        value = getattr(req, name)
        if value is not None:
            body[name] = min(value, 1.0) if name == "temperature" else value  # Anthropic: 0..1
    if req.stop:
        body["stop_sequences"] = req.stop
    if req.stream:
        body["stream"] = True
    return body


@malformed_response
def decode_response(body: Json) -> ChatResponse:
    parts: list[Text | ToolCall | Thinking] = [
        _block(block)
        for block in body.get("content") or ()
        if isinstance(block, dict) and block.get("type") in ("text", "tool_use", "thinking")
    ]
    usage = body.get("usage")
    return ChatResponse(
        str(body.get("id", "")),
        str(body.get("model", "")),
        parts,
        _stop_from(body.get("stop_reason")),
        usage_from_anthropic(usage if isinstance(usage, dict) else None),
    )


def usage_to_anthropic(usage: Usage) -> Json:
    return {
        "input_tokens": usage.input,
        "output_tokens": usage.output,
        "cache_read_input_tokens": usage.cache_read,
        "cache_creation_input_tokens": usage.cache_write,
    }


def encode_response(resp: ChatResponse, model: str) -> Json:
    content: list[Json] = []
    for part in resp.parts:
        if isinstance(part, Text):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCall):
            try:
                arguments = tool_arguments(part.arguments)
            except TranslationError:
                arguments = {}
            content.append(
                {"type": "tool_use", "id": part.id, "name": part.name, "input": arguments}
            )
    return {
        "id": resp.id if resp.id.startswith("msg_") else f"msg_{resp.id or 'pooldaemon'}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _STOP_TO[resp.stop],
        "stop_sequence": None,
        "usage": usage_to_anthropic(resp.usage),
    }


class AnthropicDecoder:
    """Messages stream events -> IR events."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.stop: StopReason = "end"
        self.ended = False

    def feed(self, kind: str, data: Json) -> list[Event]:
        if kind == "message_start":
            message = data.get("message") or {}
            self.usage = usage_from_anthropic(message.get("usage") or {})
            return [
                StreamStart(str(message.get("id", "")), str(message.get("model", "")), self.usage)
            ]
        index = int(data.get("index", 0))
        if kind == "content_block_start":
            block = data.get("content_block") or {}
            if block.get("type") == "tool_use":
                return [
                    BlockStart(index, "tool", str(block.get("id", "")), str(block.get("name", "")))
                ]
            return [
                BlockStart(index, "thinking" if "thinking" in str(block.get("type")) else "text")
            ]
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            if delta.get("type") == "text_delta":
                return [TextDelta(index, str(delta.get("text", "")))]
            if delta.get("type") == "input_json_delta":
                return [ToolArgsDelta(index, str(delta.get("partial_json", "")))]
            if delta.get("type") == "thinking_delta":
                return [ThinkingDelta(index, str(delta.get("thinking", "")))]
            return []
        if kind == "content_block_stop":
            return [BlockStop(index)]
        if kind == "message_delta":
            self.stop = _stop_from((data.get("delta") or {}).get("stop_reason"))
            seen = usage_from_anthropic(data.get("usage") or {})
            self.usage = Usage(
                input=seen.input or self.usage.input,
                output=seen.output,
                cache_read=seen.cache_read or self.usage.cache_read,
                cache_write=seen.cache_write or self.usage.cache_write,
            )
            return []
        if kind == "message_stop" and not self.ended:
            self.ended = True
            return [StreamEnd(self.stop, self.usage)]
        return []


class AnthropicEncoder:
    """IR events -> Messages stream events; open blocks are closed before the end."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.open: set[int] = set()
        self.started = False

    def failure(self, message: str) -> bytes | None:
        return None  # the format's generic error event fits

    def encode(self, event: Event) -> bytes:
        out = b""
        if isinstance(event, StreamStart):
            self.started = True
            message: Json = {
                "id": event.id if event.id.startswith("msg_") else f"msg_{event.id}",
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": usage_to_anthropic(event.usage),
            }
            return self._ev("message_start", {"message": message})
        if isinstance(event, BlockStart):
            self.open.add(event.index)
            if event.kind == "tool":
                block: Json = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            elif event.kind == "thinking":
                block = {"type": "thinking", "thinking": ""}
            else:
                block = {"type": "text", "text": ""}
            return self._ev("content_block_start", {"index": event.index, "content_block": block})
        if isinstance(event, TextDelta):
            delta: Json = {"type": "text_delta", "text": event.text}
        elif isinstance(event, ToolArgsDelta):
            delta = {"type": "input_json_delta", "partial_json": event.json}
        elif isinstance(event, ThinkingDelta):
            delta = {"type": "thinking_delta", "thinking": event.text}
        elif isinstance(event, BlockStop):
            if event.index not in self.open:
                return b""
            self.open.discard(event.index)
            return self._ev("content_block_stop", {"index": event.index})
        elif isinstance(event, StreamEnd):
            for index in sorted(self.open):
                out += self._ev("content_block_stop", {"index": index})
            self.open.clear()
            out += self._ev(
                "message_delta",
                {
                    "delta": {"stop_reason": _STOP_TO[event.stop], "stop_sequence": None},
                    "usage": usage_to_anthropic(event.usage),
                },
            )
            return out + self._ev("message_stop", {})
        return self._ev("content_block_delta", {"index": event.index, "delta": delta})

    @staticmethod
    def _ev(kind: str, data: Json) -> bytes:
        return encode_event(orjson.dumps({"type": kind, **data}), kind)
