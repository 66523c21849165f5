"""The canonical form translation goes through: wire format A -> IR -> wire format B.

With one decoder and one encoder per format, five formats need ten converters
instead of twenty pairings. The IR keeps what every chat API shares: a system
prompt, alternating turns of parts (text, images, tool calls, tool results,
thinking), tool definitions, sampling parameters; and, for streams, a small
event vocabulary (start, block start/delta/stop, end).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from pooldaemon.pool import Usage

__all__ = [
    "BlockStart",
    "BlockStop",
    "ChatRequest",
    "ChatResponse",
    "Event",
    "Image",
    "Message",
    "StopReason",
    "StreamEnd",
    "StreamStart",
    "Text",
    "TextDelta",
    "Thinking",
    "ThinkingDelta",
    "Tool",
    "ToolArgsDelta",
    "ToolCall",
    "ToolResult",
    "TranslationError",
    "tool_arguments",
]

StopReason = Literal["end", "max_tokens", "stop_sequence", "tool_calls", "content_filter"]


class TranslationError(ValueError):
    """A request or response cannot be expressed in the other format (a 400 for clients)."""


def tool_arguments(text: str) -> dict[str, Any]:
    """A tool call's arguments (JSON text in the IR) as the object formats that need one
    (Anthropic, Gemini, Ollama) send. Raises TranslationError."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        raise TranslationError("tool call arguments are not valid JSON") from None
    if not isinstance(value, dict):
        raise TranslationError("tool call arguments must be a JSON object")
    return value


@dataclass(slots=True)
class Text:
    text: str


@dataclass(slots=True)
class Image:
    """An image by URL, or inline as base64 ``data`` with its media type."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None


@dataclass(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, as the model wrote it


@dataclass(slots=True)
class ToolResult:
    call_id: str
    content: list[Text | Image]
    is_error: bool = False


@dataclass(slots=True)
class Thinking:
    text: str
    signature: str | None = None  # Anthropic: required to send thinking back


Part = Text | Image | ToolCall | ToolResult | Thinking


@dataclass(slots=True)
class Message:
    role: Literal["user", "assistant"]
    parts: list[Part]


@dataclass(slots=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    system: str = ""
    tools: list[Tool] = field(default_factory=list)
    tool_choice: str | None = None  # "auto", "none", "required" or "tool:NAME"
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    json_mode: bool = False
    client_wants_usage: bool = False  # OpenAI stream_options.include_usage


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    parts: list[Text | ToolCall | Thinking]
    stop: StopReason
    usage: Usage


# -- stream events -----------------------------------------------------------


@dataclass(slots=True)
class StreamStart:
    id: str
    model: str
    usage: Usage  # input usage when the upstream reports it at the start


@dataclass(slots=True)
class BlockStart:
    index: int
    kind: Literal["text", "tool", "thinking"]
    id: str = ""  # tool call id
    name: str = ""  # tool name


@dataclass(slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True)
class ToolArgsDelta:
    index: int
    json: str


@dataclass(slots=True)
class ThinkingDelta:
    index: int
    text: str


@dataclass(slots=True)
class BlockStop:
    index: int


@dataclass(slots=True)
class StreamEnd:
    stop: StopReason
    usage: Usage


Event = StreamStart | BlockStart | TextDelta | ToolArgsDelta | ThinkingDelta | BlockStop | StreamEnd
