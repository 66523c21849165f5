"""Gemini ``generateContent`` <-> IR: requests, responses and stream chunks.

What the codec absorbs:

- Roles are ``user`` and ``model`` and must alternate: consecutive turns of one
  role are merged. The system prompt is ``systemInstruction``.
- Function calls carry no id (newer API versions may add one). Decoding
  synthesizes ``call_<n>`` ids; an id Gemini did send is kept in the IR with
  the :data:`ID_PREFIX`, so that only ids Gemini issued are sent back to it.
- A ``functionResponse`` names the function, not the call: encoding finds the
  name from the call earlier in the conversation; decoding pairs a response
  with its call by id, else with the first unanswered call of that name. The
  response must be an object: ``{"result": text}`` or ``{"error": text}``.
  Images in tool results are dropped (Gemini takes text results here).
- Images go inline (``inlineData``) or as Gemini file URIs (``fileData``);
  the proxy fetches any other URL before encoding.
- Thinking arrives as text parts marked ``thought``; it is never sent back.
  Gemini keeps reasoning state in thought signatures, which the IR does not
  carry: function calls sent to Gemini get the placeholder signature Google
  documents for history that comes from elsewhere (Gemini 3 refuses function
  calls without one).
- Streams are SSE events each holding a whole response chunk, with no end
  marker: ``GeminiDecoder.end`` (``_google_stream``) is called at EOF.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from pooldaemon.pool import Usage, usage_from_gemini
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
    tool_arguments,
)

__all__ = [
    "ID_PREFIX",
    "PLACEHOLDER_SIGNATURE",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
    "usage_to_gemini",
]

Json = dict[str, Any]
ID_PREFIX = "gemini_"
PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"
# URIs Gemini reads itself; any other image URL must arrive inlined.
_FILE_URIS = ("gs://", "https://generativelanguage.googleapis.com/")
_FILTERED = ("SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY")
_STOP_FROM: dict[str, StopReason] = {
    "STOP": "end",
    "MAX_TOKENS": "max_tokens",
    **dict.fromkeys(_FILTERED, "content_filter"),
}
_STOP_TO = {
    "end": "STOP",
    "max_tokens": "MAX_TOKENS",
    "stop_sequence": "STOP",
    "tool_calls": "STOP",
    "content_filter": "SAFETY",
}
_MODES_FROM = {"AUTO": "auto", "ANY": "required", "NONE": "none", "VALIDATED": "auto"}
_MODES_TO = {"auto": "AUTO", "required": "ANY", "none": "NONE"}
_SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
# Part fields that annotate the data field of a part rather than being one.
_PART_META = frozenset({"thought", "thoughtSignature", "videoMetadata", "partMetadata"})
_UNSAFE_ID = re.compile(r"[^A-Za-z0-9_-]")


def _stop_from(reason: object, called: bool) -> StopReason:
    stop = _STOP_FROM.get(str(reason), "end")
    return "tool_calls" if called and stop == "end" else stop


def _dict(value: object) -> Json:
    return value if isinstance(value, dict) else {}


class _CallIds:
    """IR ids for the function calls of one conversation or response, and their answers."""

    def __init__(self, tag: str = "") -> None:
        self.prefix = f"call_{tag}_" if tag else "call_"
        self.count = 0
        self.pending: list[tuple[str, str]] = []  # (function name, IR id), not answered yet

    def _fresh(self) -> str:
        self.count += 1
        return f"{self.prefix}{self.count - 1}"

    def call(self, fc: Json) -> str:
        given = fc.get("id")
        ir = f"{ID_PREFIX}{given}" if given else self._fresh()
        self.pending.append((str(fc.get("name", "")), ir))
        return ir

    def answer(self, fr: Json) -> str:
        given, name = fr.get("id"), str(fr.get("name", ""))
        for i, (pending_name, ir) in enumerate(self.pending):
            if (ir == f"{ID_PREFIX}{given}") if given else (pending_name == name):
                del self.pending[i]
                return ir
        return f"{ID_PREFIX}{given}" if given else self._fresh()  # answers no call we saw


def _response_tag(body: Json) -> str:
    """Makes synthesized ids unique across turns (clients and other APIs may require it)."""
    tag = _UNSAFE_ID.sub("", str(body.get("responseId") or ""))[:24]
    return tag or uuid.uuid4().hex[:12]


# -- requests -----------------------------------------------------------------


def _image(data: Json, key: str) -> Image:
    mime = data.get("mimeType")
    if mime is not None and not str(mime).startswith("image/"):
        raise TranslationError(f"{mime} content cannot be translated (only images)")
    if key == "inlineData":
        return Image(data=str(data.get("data", "")), media_type=mime)
    return Image(url=str(data.get("fileUri", "")), media_type=mime)


def _result_content(response: object) -> tuple[list[Text | Image], bool]:
    """A ``functionResponse.response`` as text: the wrapped value when there is just one."""
    if isinstance(response, dict) and len(response) == 1:
        ((key, value),) = response.items()
        text = value if isinstance(value, str) else json.dumps(value)
        if key == "error":
            return [Text(text)], True
        if key in ("result", "output", "content") and isinstance(value, str):
            return [Text(value)], False
    return [Text(json.dumps(response))], False


def _part(part: Json, ids: _CallIds) -> Part | None:
    if "text" in part:
        text = str(part["text"] or "")
        return Thinking(text) if part.get("thought") else Text(text)
    for key in ("inlineData", "fileData"):
        if key in part:
            return _image(_dict(part[key]), key)
    if "functionCall" in part:
        fc = _dict(part["functionCall"])
        return ToolCall(ids.call(fc), str(fc.get("name", "")), json.dumps(fc.get("args") or {}))
    if "functionResponse" in part:
        fr = _dict(part["functionResponse"])
        content, is_error = _result_content(fr.get("response"))
        return ToolResult(ids.answer(fr), content, is_error)
    kind = next((k for k in part if k not in _PART_META), None)
    if kind is None:
        return None  # only a signature or metadata: nothing to translate
    raise TranslationError(f"part {kind!r} cannot be translated")


def _lower_types(schema: Any) -> Any:
    """Gemini's OpenAPI-style schemas spell types in capitals; JSON Schema does not."""
    if isinstance(schema, list):
        return [_lower_types(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _lower_types(v) for k, v in schema.items()}
    if isinstance(out.get("type"), str) and out["type"] in _SCHEMA_TYPES:
        out["type"] = out["type"].lower()
    return out


def _tools(body: Json) -> list[Tool]:
    tools: list[Tool] = []
    for entry in body.get("tools") or ():
        if not isinstance(entry, dict):
            continue
        other = [k for k in entry if k != "functionDeclarations"]
        if other:
            raise TranslationError(f"tool {other[0]!r} cannot be translated")
        for raw in entry.get("functionDeclarations") or ():
            decl = _dict(raw)
            params = decl.get("parametersJsonSchema") or _lower_types(decl.get("parameters"))
            tools.append(
                Tool(
                    str(decl.get("name", "")),
                    str(decl.get("description") or ""),
                    dict(params or {"type": "object", "properties": {}}),
                )
            )
    return tools


def _tool_choice(body: Json) -> str | None:
    config = _dict(_dict(body.get("toolConfig")).get("functionCallingConfig"))
    mode = _MODES_FROM.get(str(config.get("mode", "")).upper())
    names = config.get("allowedFunctionNames")
    if mode == "required" and isinstance(names, list) and len(names) == 1:
        return f"tool:{names[0]}"
    return mode


def _system(value: object) -> str:
    if isinstance(value, str):
        return value
    parts = _dict(value).get("parts") or ()
    return "\n\n".join(str(p.get("text", "")) for p in parts if isinstance(p, dict))


@malformed_request
def decode_request(body: Json) -> ChatRequest:
    """A ``generateContent`` body as IR; model and stream come from the URL (set them after)."""
    ids = _CallIds()
    messages: list[Message] = []
    for raw in body.get("contents") or ():
        if not isinstance(raw, dict):
            raise TranslationError("each content must be an object")
        role = raw.get("role") or "user"
        if role not in ("user", "model", "function"):  # "function": older API's tool turns
            raise TranslationError(f"content role {role!r} cannot be translated")
        parts = [p for p in (_part(_dict(p), ids) for p in raw.get("parts") or ()) if p]
        messages.append(Message("assistant" if role == "model" else "user", parts))
    config = _dict(body.get("generationConfig"))
    return ChatRequest(
        model="",
        messages=messages,
        system=_system(body.get("systemInstruction")),
        tools=_tools(body),
        tool_choice=_tool_choice(body),
        max_tokens=config.get("maxOutputTokens"),
        temperature=config.get("temperature"),
        top_p=config.get("topP"),
        stop=list(config.get("stopSequences") or []),
        json_mode=config.get("responseMimeType") == "application/json",
    )


def _gemini_id(ir_id: str) -> str | None:
    return ir_id.removeprefix(ID_PREFIX) if ir_id.startswith(ID_PREFIX) else None


def _wire_image(image: Image) -> Json:
    if image.data is not None:
        return {"inlineData": {"mimeType": image.media_type or "image/png", "data": image.data}}
    url = image.url or ""
    if url.startswith("data:") and ";base64," in url:
        head, data = url[5:].split(";base64,", 1)
        return {"inlineData": {"mimeType": head or "image/png", "data": data}}
    if url.startswith(_FILE_URIS):
        ref = {"fileUri": url}
        return {"fileData": {"mimeType": image.media_type, **ref} if image.media_type else ref}
    raise TranslationError(f"image URL {url[:100]!r} was not fetched and inlined for Gemini")


def _wire_call(call: ToolCall) -> Json:
    fc: Json = {"name": call.name, "args": tool_arguments(call.arguments)}
    if (given := _gemini_id(call.id)) is not None:
        fc["id"] = given
    return {"functionCall": fc}


def _wire_result(result: ToolResult, names: dict[str, str]) -> Json:
    name = names.get(result.call_id)
    if name is None:
        raise TranslationError(
            f"tool result {result.call_id!r} answers no tool call earlier in the conversation"
        )
    text = "".join(p.text for p in result.content if isinstance(p, Text))
    fr: Json = {"name": name, "response": {"error" if result.is_error else "result": text}}
    if (given := _gemini_id(result.call_id)) is not None:
        fr["id"] = given
    return {"functionResponse": fr}


def _wire_parts(parts: list[Part], names: dict[str, str]) -> list[Json]:
    out: list[Json] = []
    for part in parts:
        if isinstance(part, Text):
            if part.text:
                out.append({"text": part.text})
        elif isinstance(part, Image):
            out.append(_wire_image(part))
        elif isinstance(part, ToolCall):
            names[part.id] = part.name
            out.append(_wire_call(part))
        elif isinstance(part, ToolResult):
            out.append(_wire_result(part, names))
    return out  # Thinking is not sent back


def _generation_config(req: ChatRequest) -> Json:
    config: Json = {}
    for field, value in (
        ("maxOutputTokens", req.max_tokens),
        ("temperature", req.temperature),
        ("topP", req.top_p),
    ):
        if value is not None:
            config[field] = value
    if req.stop:
        config["stopSequences"] = req.stop
    if req.json_mode:
        config["responseMimeType"] = "application/json"
    return config


def encode_request(req: ChatRequest) -> Json:
    """IR as a ``generateContent`` body (the model goes in the URL, streaming too)."""
    names: dict[str, str] = {}  # IR call id -> function name, from the calls seen so far
    contents: list[Json] = []
    for message in req.messages:
        parts = _wire_parts(message.parts, names)
        if not parts:
            continue
        role = "model" if message.role == "assistant" else "user"
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"] += parts  # Gemini needs alternating roles
        else:
            contents.append({"role": role, "parts": parts})
    for content in contents:
        if content["role"] == "model":
            calls = (p for p in content["parts"] if "functionCall" in p)
            if (first := next(calls, None)) is not None:
                first["thoughtSignature"] = PLACEHOLDER_SIGNATURE
    body: Json = {"contents": contents}
    if req.system:
        body["systemInstruction"] = {"parts": [{"text": req.system}]}
    if req.tools:
        declarations = [
            {"name": t.name, "description": t.description, "parametersJsonSchema": t.parameters}
            for t in req.tools
        ]
        body["tools"] = [{"functionDeclarations": declarations}]
    if req.tool_choice:
        choice = req.tool_choice
        config: Json = {"mode": _MODES_TO.get(choice, "ANY")}
        if choice.startswith("tool:"):
            config["allowedFunctionNames"] = [choice[5:]]
        body["toolConfig"] = {"functionCallingConfig": config}
    if generation := _generation_config(req):
        body["generationConfig"] = generation
    return body


# -- responses ----------------------------------------------------------------


def _candidate(body: Json) -> Json:
    candidates = body.get("candidates")
    return _dict(candidates[0]) if isinstance(candidates, list) and candidates else {}


def _blocked(body: Json) -> bool:
    """The prompt itself was refused: no candidates, a ``promptFeedback.blockReason``."""
    return not body.get("candidates") and bool(_dict(body.get("promptFeedback")).get("blockReason"))


@malformed_response
def decode_response(body: Json) -> ChatResponse:
    ids = _CallIds(_response_tag(body))
    candidate = _candidate(body)
    parts: list[Text | ToolCall | Thinking] = []
    for raw in _dict(candidate.get("content")).get("parts") or ():
        raw = _dict(raw)
        if "functionCall" in raw:
            fc = _dict(raw["functionCall"])
            args = json.dumps(fc.get("args") or {})
            parts.append(ToolCall(ids.call(fc), str(fc.get("name", "")), args))
        elif raw.get("text"):
            text = str(raw["text"])
            parts.append(Thinking(text) if raw.get("thought") else Text(text))
    called = any(isinstance(p, ToolCall) for p in parts)
    stop = "content_filter" if _blocked(body) else _stop_from(candidate.get("finishReason"), called)
    return ChatResponse(
        str(body.get("responseId") or ""),
        str(body.get("modelVersion") or ""),
        parts,
        stop,
        usage_from_gemini(_dict(body.get("usageMetadata"))),
    )


def usage_to_gemini(usage: Usage) -> Json:
    prompt = usage.input + usage.cache_read + usage.cache_write
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": usage.output - usage.reasoning,
        "cachedContentTokenCount": usage.cache_read,
        "thoughtsTokenCount": usage.reasoning,
        "totalTokenCount": prompt + usage.output,
    }


def _response_call(call: ToolCall) -> Json:
    try:
        args = tool_arguments(call.arguments)
    except TranslationError:
        args = {}
    return {"functionCall": {"name": call.name, "args": args, "id": _client_id(call.id)}}


def _client_id(ir_id: str) -> str:
    """Gemini clients echo the id in their ``functionResponse``; ours are opaque to them."""
    given = _gemini_id(ir_id)
    return ir_id if given is None else given


def _response_json(
    model: str, response_id: str, parts: list[Json], finish: str | None, usage: Usage | None
) -> Json:
    candidate: Json = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish is not None:
        candidate["finishReason"] = finish
    body: Json = {"candidates": [candidate]}
    if usage is not None:
        body["usageMetadata"] = usage_to_gemini(usage)
    return {**body, "modelVersion": model, "responseId": response_id}


def encode_response(resp: ChatResponse, model: str) -> Json:
    parts: list[Json] = []
    for part in resp.parts:
        if isinstance(part, Text):
            parts.append({"text": part.text})
        elif isinstance(part, Thinking):
            parts.append({"text": part.text, "thought": True})
        else:
            parts.append(_response_call(part))
    return _response_json(
        model, resp.id or "pooldaemon", parts or [{"text": ""}], _STOP_TO[resp.stop], resp.usage
    )


# -- streams ------------------------------------------------------------------
