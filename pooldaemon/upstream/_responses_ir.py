"""OpenAI Responses API <-> IR: requests and response objects (streams: ``_responses_stream``).

What the codec absorbs:

- ``input`` is a string or a list of items. An assistant turn is several items
  (reasoning, message, function calls): consecutive ones become one IR turn;
  the ``function_call_output`` items answering calls become one user turn of
  tool results. ``system`` and ``developer`` messages join ``instructions`` as
  the system prompt.
- State kept at OpenAI (``previous_response_id``, ``conversation``,
  ``item_reference``) and built-in tools (web search, file search, ...) exist
  only there: they are refused with a :class:`TranslationError`.
- Reasoning items: their summaries become Thinking; the encrypted content only
  OpenAI can read is dropped, and Thinking is never sent to a Responses
  upstream (it would need that content).
- The Responses API has no stop sequences: IR ``stop`` lists are dropped.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from pooldaemon.pool import Usage, usage_from_responses
from pooldaemon.upstream._ir import (
    ChatRequest,
    ChatResponse,
    Image,
    Message,
    Part,
    StopReason,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolResult,
    TranslationError,
    malformed_request,
    malformed_response,
)

__all__ = [
    "MIN_OUTPUT_TOKENS",
    "call_item",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "final_status",
    "item_id",
    "message_item",
    "output_text",
    "reasoning_item",
    "reasoning_text",
    "response_id",
    "response_json",
    "stop_from",
    "usage_to_responses",
]

Json = dict[str, Any]
MIN_OUTPUT_TOKENS = 16  # OpenAI refuses a smaller max_output_tokens with a 400
_TEXT_PARTS = ("input_text", "output_text", "text")
_CHOICES = ("auto", "none", "required")
_INCOMPLETE_FROM: dict[str, StopReason] = {
    "max_output_tokens": "max_tokens",
    "content_filter": "content_filter",
}
_INCOMPLETE_TO = {"max_tokens": "max_output_tokens", "content_filter": "content_filter"}


def _dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


# -- requests -----------------------------------------------------------------


def _image(url: str) -> Image:
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return Image(data=data, media_type=head or "image/png")
    return Image(url=url)


def _content(content: object) -> list[Text | Image]:
    """Message content (a string or content parts) as IR parts."""
    if isinstance(content, str):
        return [Text(content)]
    parts: list[Text | Image] = []
    for raw in content if isinstance(content, list) else ():
        part = _dict(raw)
        kind = part.get("type")
        if kind in _TEXT_PARTS:
            parts.append(Text(str(part.get("text", ""))))
        elif kind == "refusal":
            parts.append(Text(str(part.get("refusal", ""))))
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise TranslationError(
                    "an input_image by file_id cannot be translated: send image_url "
                    "(a URL or a data: URL)"
                )
            parts.append(_image(url))
        else:
            raise TranslationError(f"content part type {kind!r} cannot be translated")
    return parts


def _text(content: object) -> str:
    return "".join(p.text for p in _content(content) if isinstance(p, Text))


def reasoning_text(item: Json) -> str:
    """The readable text of a reasoning item: its summaries, else its reasoning text."""
    for field in ("summary", "content"):
        texts = [str(_dict(p).get("text") or "") for p in item.get(field) or ()]
        if any(texts):
            return "\n\n".join(t for t in texts if t)
    return ""


def _assistant(messages: list[Message]) -> list[Part]:
    """The parts of the assistant turn being built (a new one unless the last turn is)."""
    if not messages or messages[-1].role != "assistant":
        messages.append(Message("assistant", []))
    return messages[-1].parts


def _add_result(messages: list[Message], result: ToolResult) -> None:
    last = messages[-1] if messages else None
    if last and last.role == "user" and all(isinstance(p, ToolResult) for p in last.parts):
        last.parts.append(result)  # parallel calls answer in one turn
    else:
        messages.append(Message("user", [result]))


def _message(item: Json, messages: list[Message], system: list[str]) -> None:
    role, content = item.get("role"), item.get("content")
    if role in ("system", "developer"):
        system.append(_text(content))
    elif role == "user":
        messages.append(Message("user", list(_content(content))))
    elif role == "assistant":
        _assistant(messages).extend(p for p in _content(content) if isinstance(p, Text))
    else:
        raise TranslationError(f"message role {role!r} cannot be translated")


def _add_item(item: Json, messages: list[Message], system: list[str]) -> None:
    kind = item.get("type") or "message"
    if kind == "message":
        _message(item, messages, system)
    elif kind == "function_call":
        call = ToolCall(
            str(item.get("call_id", "")),
            str(item.get("name", "")),
            str(item.get("arguments") or "{}"),
        )
        _assistant(messages).append(call)
    elif kind == "function_call_output":
        output = item.get("output")
        parts: list[Text | Image] = [Text(output)] if isinstance(output, str) else _content(output)
        _add_result(messages, ToolResult(str(item.get("call_id", "")), parts))
    elif kind == "reasoning":
        if text := reasoning_text(item):
            _assistant(messages).append(Thinking(text))
    elif kind == "item_reference":
        raise TranslationError(
            "item_reference points at items stored at OpenAI: send the items themselves in input"
        )
    else:
        raise TranslationError(f"input item type {kind!r} cannot be translated")


def _refuse_state(body: Json) -> None:
    for name in ("previous_response_id", "conversation"):
        if body.get(name):
            raise TranslationError(
                f"{name} refers to state stored at OpenAI and cannot be translated for this "
                "upstream: send the full conversation in input instead"
            )


def _tools(body: Json) -> list[Tool]:
    tools: list[Tool] = []
    refused: set[str] = set()
    for raw in body.get("tools") or ():
        tool = _dict(raw)
        if tool.get("type") != "function":
            refused.add(str(tool.get("type")))
            continue
        params = tool.get("parameters") or {"type": "object", "properties": {}}
        tools.append(
            Tool(str(tool.get("name", "")), str(tool.get("description") or ""), dict(params))
        )
    if refused:
        names = ", ".join(sorted(refused))
        raise TranslationError(
            f"tool type(s) {names} cannot be translated for this upstream (only function tools)"
        )
    return tools


def _tool_choice(choice: object, tools: list[Tool]) -> tuple[str | None, list[Tool]]:
    """The IR tool choice, and the tools it leaves available."""
    if choice is None or choice in _CHOICES:
        return choice, tools
    spec = _dict(choice)
    kind = spec.get("type")
    if kind == "function":
        return f"tool:{spec.get('name', '')}", tools
    if kind == "allowed_tools":  # a subset of the tools, for caching: the same as fewer tools
        names = {str(_dict(t).get("name")) for t in spec.get("tools") or ()}
        mode = spec.get("mode")
        return (mode if mode in _CHOICES else "auto"), [t for t in tools if t.name in names]
    raise TranslationError(f"tool_choice {kind or choice!r} cannot be translated")


@malformed_request
def decode_request(body: Json) -> ChatRequest:
    """A Responses request body as IR."""
    _refuse_state(body)
    instructions = body.get("instructions")
    system = [instructions] if isinstance(instructions, str) and instructions else []
    messages: list[Message] = []
    raw = body.get("input")
    items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw or []
    if not isinstance(items, list):
        raise TranslationError("input must be a string or a list of items")
    for item in items:
        if not isinstance(item, dict):
            raise TranslationError("each input item must be an object")
        _add_item(item, messages, system)
    choice, tools = _tool_choice(body.get("tool_choice"), _tools(body))
    text_format = _dict(_dict(body.get("text")).get("format"))
    return ChatRequest(
        model=str(body.get("model", "")),
        messages=messages,
        system="\n\n".join(s for s in system if s),
        tools=tools,
        tool_choice=choice,
        max_tokens=body.get("max_output_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        stream=bool(body.get("stream")),
        json_mode=text_format.get("type") in ("json_object", "json_schema"),
    )


def _wire_content(parts: list[Text | Image]) -> list[Json]:
    out: list[Json] = []
    for part in parts:
        if isinstance(part, Text):
            out.append({"type": "input_text", "text": part.text})
        else:
            url = part.url or f"data:{part.media_type or 'image/png'};base64,{part.data}"
            out.append({"type": "input_image", "image_url": url, "detail": "auto"})
    return out


def _wire_output(result: ToolResult) -> str | list[Json]:
    if all(isinstance(p, Text) for p in result.content):
        return "".join(p.text for p in result.content if isinstance(p, Text))
    return _wire_content(list(result.content))


def _user_items(parts: list[Part]) -> list[Json]:
    items: list[Json] = [
        {"type": "function_call_output", "call_id": p.call_id, "output": _wire_output(p)}
        for p in parts
        if isinstance(p, ToolResult)
    ]
    content = [p for p in parts if isinstance(p, Image) or (isinstance(p, Text) and p.text)]
    if content:
        items.append({"type": "message", "role": "user", "content": _wire_content(content)})
    return items


def _assistant_items(parts: list[Part]) -> list[Json]:
    items: list[Json] = []
    for part in parts:
        if isinstance(part, Text) and part.text:
            items.append({"type": "message", "role": "assistant", "content": part.text})
        elif isinstance(part, ToolCall):
            items.append(
                {
                    "type": "function_call",
                    "call_id": part.id,
                    "name": part.name,
                    "arguments": part.arguments,
                }
            )
    return items  # Thinking (OpenAI needs its encrypted content) and images are not sent


def encode_request(req: ChatRequest, model: str) -> Json:
    """IR as a Responses request body for ``model``."""
    items: list[Json] = []
    for message in req.messages:
        encode = _assistant_items if message.role == "assistant" else _user_items
        items += encode(message.parts)
    body: Json = {"model": model, "input": items}
    if req.system:
        body["instructions"] = req.system
    if req.tools:
        # OpenAI's default is strict mode, which refuses most schemas written for other APIs.
        body["tools"] = [
            {
                "type": "function",
                "name": t.name,
                "description": t.description,
                "parameters": t.parameters,
                "strict": False,
            }
            for t in req.tools
        ]
    if req.tool_choice:
        choice = req.tool_choice
        body["tool_choice"] = (
            {"type": "function", "name": choice[5:]} if choice.startswith("tool:") else choice
        )
    if req.max_tokens is not None:
        body["max_output_tokens"] = max(req.max_tokens, MIN_OUTPUT_TOKENS)
    for name in ("temperature", "top_p"):
        value = getattr(req, name)
        if value is not None:
            body[name] = value
    if req.json_mode:
        body["text"] = {"format": {"type": "json_object"}}
    if req.stream:
        body["stream"] = True
    return body


# -- responses ----------------------------------------------------------------


def stop_from(response: Json, called: bool) -> StopReason:
    """The IR stop reason of a response object (``called``: it holds function calls)."""
    reason = _dict(response.get("incomplete_details")).get("reason")
    if response.get("status") == "incomplete" or reason:
        return _INCOMPLETE_FROM.get(str(reason), "end")
    return "tool_calls" if called else "end"


@malformed_response
def decode_response(body: Json) -> ChatResponse:
    parts: list[Text | ToolCall | Thinking] = []
    for raw in body.get("output") or ():
        item = _dict(raw)
        kind = item.get("type")
        if kind == "message":
            parts += [p for p in _message_texts(item) if p.text]
        elif kind == "function_call":
            parts.append(
                ToolCall(
                    str(item.get("call_id", "")),
                    str(item.get("name", "")),
                    str(item.get("arguments") or "{}"),
                )
            )
        elif kind == "reasoning" and (text := reasoning_text(item)):
            parts.append(Thinking(text))
        # Items of built-in tools (web_search_call, ...) ran at OpenAI: nothing to relay.
    called = any(isinstance(p, ToolCall) for p in parts)
    return ChatResponse(
        str(body.get("id", "")),
        str(body.get("model", "")),
        parts,
        stop_from(body, called),
        usage_from_responses(_dict(body.get("usage"))),
    )


def _message_texts(item: Json) -> list[Text]:
    texts: list[Text] = []
    for raw in item.get("content") or ():
        part = _dict(raw)
        if part.get("type") == "output_text":
            texts.append(Text(str(part.get("text", ""))))
        elif part.get("type") == "refusal":
            texts.append(Text(str(part.get("refusal", ""))))
    return texts


def usage_to_responses(usage: Usage) -> Json:
    prompt = usage.input + usage.cache_read + usage.cache_write
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read,
            "cache_write_tokens": usage.cache_write,
        },
        "output_tokens": usage.output,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning},
        "total_tokens": prompt + usage.output,
    }


def response_id(ir_id: str) -> str:
    """A Responses id (``resp_...``) for an IR response id, unique when it is empty."""
    if ir_id.startswith("resp_"):
        return ir_id
    return f"resp_{ir_id or uuid.uuid4().hex}"


def item_id(prefix: str, response: str, index: int) -> str:
    """The id of output item ``index`` (``msg``, ``fc`` or ``rs``) of ``response``."""
    return f"{prefix}_{response.removeprefix('resp_')}_{index}"


def output_text(text: str) -> Json:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(ident: str, text: str | None, status: str) -> Json:
    """A message output item; ``None`` text: no content part yet."""
    content = [] if text is None else [output_text(text)]
    return {
        "id": ident,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def call_item(ident: str, call: ToolCall, status: str) -> Json:
    return {
        "id": ident,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
    }


def reasoning_item(ident: str, text: str) -> Json:
    summary = [{"type": "summary_text", "text": text}] if text else []
    return {"id": ident, "type": "reasoning", "summary": summary}


def response_json(
    ident: str,
    model: str,
    created_at: int,
    output: list[Json],
    *,
    status: str,
    usage: Usage | None = None,
    stop: StopReason = "end",
    error: Json | None = None,
) -> Json:
    """A response object with the fields the API always sends."""
    reason = _INCOMPLETE_TO.get(stop) if status == "incomplete" else None
    return {
        "id": ident,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": {"reason": reason} if reason else None,
        "model": model,
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": None if usage is None else usage_to_responses(usage),
    }


def final_status(stop: StopReason) -> str:
    return "incomplete" if stop in _INCOMPLETE_TO else "completed"


def encode_response(resp: ChatResponse, model: str) -> Json:
    ident = response_id(resp.id)
    output: list[Json] = []
    for part in resp.parts:
        index = len(output)
        if isinstance(part, Text):
            if part.text:
                output.append(message_item(item_id("msg", ident, index), part.text, "completed"))
        elif isinstance(part, ToolCall):
            output.append(call_item(item_id("fc", ident, index), part, "completed"))
        else:
            output.append(reasoning_item(item_id("rs", ident, index), part.text))
    return response_json(
        ident,
        model,
        int(time.time()),
        output,
        status=final_status(resp.stop),
        usage=resp.usage,
        stop=resp.stop,
    )
