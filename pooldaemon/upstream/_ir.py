"""The canonical form translation goes through: wire format A -> IR -> wire format B.

With one decoder and one encoder per format, five formats need ten converters
instead of twenty pairings. The IR keeps what every chat API shares: a system
prompt, alternating turns of parts (text, images, tool calls, tool results,
thinking), tool definitions, sampling parameters; and, for streams, a small
event vocabulary (start, block start/delta/stop, end).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from pooldaemon.pool import Usage

Json = dict[str, Any]
T = TypeVar("T")

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
    "malformed_request",
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

    def __post_init__(self) -> None:
        name: object = self.name  # the decoders pass on what the client sent
        parameters: object = self.parameters
        if not isinstance(name, str) or not name:
            raise TranslationError("a tool's name must be a non-empty string")
        if not isinstance(parameters, dict):
            raise TranslationError(f"the parameters of tool {self.name!r} must be a JSON object")


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

    def __post_init__(self) -> None:
        # Every decoder builds one: the IR is where a field of the wrong type is caught.
        if self.max_tokens is not None and (
            type(self.max_tokens) is not int or self.max_tokens < 1
        ):
            raise TranslationError("max_tokens must be a positive integer")
        for name in ("temperature", "top_p"):
            value = getattr(self, name)
            if value is not None and (type(value) not in (int, float) or not math.isfinite(value)):
                raise TranslationError(f"{name} must be a number")
        stop: object = self.stop
        choice: object = self.tool_choice
        system: object = self.system
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise TranslationError("stop must be a string or a list of strings")
        if choice is not None and not isinstance(choice, str):
            raise TranslationError("tool_choice is malformed")
        if not isinstance(system, str):
            raise TranslationError("the system prompt must be text")


def malformed(what: str) -> Callable[[Callable[[Json], T]], Callable[[Json], T]]:
    """Wrap a format's decoder so any shape its code did not expect (a list where an
    object goes...) is a :class:`TranslationError` naming ``what``: a 400 for a
    request, a failed attempt for an upstream answer; never a 500."""

    def wrap(decode: Callable[[Json], T]) -> Callable[[Json], T]:
        @functools.wraps(decode)
        def guarded(body: Json) -> T:
            try:
                return decode(body)
            except TranslationError:
                raise
            except (TypeError, ValueError, LookupError, AttributeError) as exc:
                raise TranslationError(f"malformed {what}: {exc}") from None

        return guarded

    return wrap


malformed_request = malformed("request")
malformed_response = malformed("answer")


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
