"""The Gemini format: codec both ways, streams, the format object, and the fake upstream."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooldaemon.pool import ProviderView, Snapshot, Usage
from pooldaemon.spec import PoolSpec
from pooldaemon.upstream import SseEvent, SseSplitter
from pooldaemon.upstream import _google_ir as gm
from pooldaemon.upstream import _google_stream as gs
from pooldaemon.upstream import _openai_ir as oa
from pooldaemon.upstream._ir import (
    BlockStart,
    BlockStop,
    ChatRequest,
    ChatResponse,
    Event,
    Image,
    Message,
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
)
from pooldaemon.upstream._translate import TranslatingWatch
from pooldaemon.upstream.google import GOOGLE, model_url
from tests.server.fake_gemini import gemini_app
from tests.server.fakes import CACHED, USAGE_IN, USAGE_OUT, Fake, Fault, serve

Json = dict[str, Any]
FAKE_USAGE = Usage(input=USAGE_IN - CACHED, output=USAGE_OUT, cache_read=CACHED)


def _provider(**fields: Any) -> ProviderView:
    entry = {"id": "g", "format": "google", **fields}
    return Snapshot.build(PoolSpec.model_validate({"version": 1, "providers": [entry]})).by_id["g"]


def _events(raw: bytes) -> list[SseEvent]:
    return SseSplitter().feed(raw)


def _chunks(raw: bytes) -> list[Json]:
    return [json.loads(e.data) for e in _events(raw)]


# -- requests -------------------------------------------------------------------

# What the google-genai SDK sends for a tool loop: no call ids, OpenAPI-style schema types.
TOOL_LOOP: Json = {
    "systemInstruction": {"parts": [{"text": "Be brief."}, {"text": "Use tools."}]},
    "contents": [
        {
            "role": "user",
            "parts": [
                {"text": "Weather in Paris and Rome? And what is this?"},
                {"inlineData": {"mimeType": "image/jpeg", "data": "/9j/4AAQ"}},
                {"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/cat.png"}},
            ],
        },
        {
            "role": "model",
            "parts": [
                {"text": "Let me think.", "thought": True},
                {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "weather", "args": {"city": "Rome"}}},
                {"thoughtSignature": "c2ln"},
            ],
        },
        {
            "role": "user",
            "parts": [
                {"functionResponse": {"name": "weather", "response": {"result": "sunny"}}},
                {"functionResponse": {"name": "weather", "response": {"temp": 21}}},
            ],
        },
    ],
    "tools": [
        {
            "functionDeclarations": [
                {
                    "name": "weather",
                    "description": "Current weather",
                    "parameters": {
                        "type": "OBJECT",
                        "properties": {"city": {"type": "STRING"}},
                        "required": ["city"],
                    },
                }
            ]
        }
    ],
    "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}},
    "generationConfig": {
        "maxOutputTokens": 256,
        "temperature": 0.2,
        "topP": 0.9,
        "stopSequences": ["END"],
        "thinkingConfig": {"includeThoughts": True},
    },
}


def test_decode_request_reads_every_part_kind() -> None:
    req = gm.decode_request(TOOL_LOOP)
    assert req.system == "Be brief.\n\nUse tools."
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert req.messages[0].parts[1:] == [
        Image(data="/9j/4AAQ", media_type="image/jpeg"),
        Image(url="gs://bucket/cat.png", media_type="image/png"),
    ]
    assert req.messages[1].parts == [
        Thinking("Let me think."),
        ToolCall("call_0", "weather", '{"city": "Paris"}'),
        ToolCall("call_1", "weather", '{"city": "Rome"}'),
    ]
    # Responses without ids answer the calls of that name in order.
    assert req.messages[2].parts == [
        ToolResult("call_0", [Text("sunny")]),
        ToolResult("call_1", [Text('{"temp": 21}')]),
    ]
    assert req.tools == [
        Tool(
            "weather",
            "Current weather",
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        )
    ]
    assert req.tool_choice == "tool:weather"
    assert (req.max_tokens, req.temperature, req.top_p, req.stop) == (256, 0.2, 0.9, ["END"])
    assert req.model == "" and not req.stream and not req.json_mode


def test_decode_request_pairs_responses_by_id_when_gemini_sent_ids() -> None:
    body = {
        "contents": [
            {"role": "user", "parts": [{"text": "go"}]},
            {
                "role": "model",
                "parts": [
                    {"functionCall": {"id": "a1", "name": "f", "args": {}}},
                    {"functionCall": {"id": "b2", "name": "f", "args": {}}},
                ],
            },
            {
                "role": "function",
                "parts": [
                    {"functionResponse": {"id": "b2", "name": "f", "response": {"error": "x"}}},
                    {"functionResponse": {"id": "a1", "name": "f", "response": {"output": "y"}}},
                ],
            },
        ]
    }
    req = gm.decode_request(body)
    calls = [p.id for p in req.messages[1].parts if isinstance(p, ToolCall)]
    assert calls == ["gemini_a1", "gemini_b2"]
    assert req.messages[2] == Message(
        "user",
        [ToolResult("gemini_b2", [Text("x")], is_error=True), ToolResult("gemini_a1", [Text("y")])],
    )


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"contents": [{"role": "user", "parts": [{"executableCode": {}}]}]}, "executableCode"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "role 'system'"),
        ({"tools": [{"googleSearch": {}}]}, "googleSearch"),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "audio/wav", "data": "x"}}]}]},
            "audio/wav",
        ),
    ],
)
def test_untranslatable_requests_are_refused(body: Json, match: str) -> None:
    with pytest.raises(TranslationError, match=match):
        gm.decode_request(body)


def test_decode_request_json_mode_and_tool_modes() -> None:
    body: Json = {
        "contents": [{"parts": [{"text": "hi"}]}],
        "generationConfig": {"responseMimeType": "application/json"},
        "toolConfig": {"functionCallingConfig": {"mode": "NONE"}},
    }
    req = gm.decode_request(body)
    assert req.json_mode and req.tool_choice == "none"
    assert req.messages == [Message("user", [Text("hi")])]
    body["toolConfig"]["functionCallingConfig"] = {"mode": "ANY"}
    assert gm.decode_request(body).tool_choice == "required"


def _conversation() -> ChatRequest:
    return ChatRequest(
        model="gemini-2.5-flash",
        system="sys",
        messages=[
            Message("user", [Text("a"), Image(data="AAAA", media_type="image/png")]),
            Message("user", [Text("b")]),
            Message(
                "assistant",
                [
                    Thinking("hmm", "anthropic-signature"),
                    Text(""),
                    ToolCall("toolu_1", "weather", '{"city": "Paris"}'),
                    ToolCall("gemini_g7", "clock", "{}"),
                ],
            ),
            Message(
                "user",
                [
                    ToolResult("toolu_1", [Text("sunny"), Image(url="https://x/y.png")]),
                    ToolResult("gemini_g7", [Text("boom")], is_error=True),
                ],
            ),
            Message("user", [Text("thanks")]),
        ],
        tools=[Tool("weather", "w", {"type": "object", "additionalProperties": False})],
        tool_choice="tool:weather",
        max_tokens=50,
        temperature=0.5,
        stop=["x"],
        json_mode=True,
    )


def test_encode_request_merges_roles_and_names_function_responses() -> None:
    body = gm.encode_request(_conversation())
    assert body["systemInstruction"] == {"parts": [{"text": "sys"}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][0]["parts"] == [
        {"text": "a"},
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        {"text": "b"},
    ]
    # Thinking and empty text are not sent; only Gemini's own ids go back, and the first
    # call of the turn carries the placeholder thought signature.
    assert body["contents"][1]["parts"] == [
        {
            "functionCall": {"name": "weather", "args": {"city": "Paris"}},
            "thoughtSignature": gm.PLACEHOLDER_SIGNATURE,
        },
        {"functionCall": {"name": "clock", "args": {}, "id": "g7"}},
    ]
    assert body["contents"][2]["parts"] == [
        {"functionResponse": {"name": "weather", "response": {"result": "sunny"}}},
        {"functionResponse": {"name": "clock", "response": {"error": "boom"}, "id": "g7"}},
        {"text": "thanks"},
    ]
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "weather",
                    "description": "w",
                    "parametersJsonSchema": {"type": "object", "additionalProperties": False},
                }
            ]
        }
    ]
    assert body["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["weather"]}
    }
    assert body["generationConfig"] == {
        "maxOutputTokens": 50,
        "temperature": 0.5,
        "stopSequences": ["x"],
        "responseMimeType": "application/json",
    }
    assert "model" not in body


def test_a_tool_result_needs_its_call_earlier_in_the_conversation() -> None:
    req = ChatRequest(model="m", messages=[Message("user", [ToolResult("nope", [Text("r")])])])
    with pytest.raises(TranslationError, match="'nope' answers no tool call"):
        gm.encode_request(req)


@pytest.mark.parametrize(
    ("image", "wire"),
    [
        (
            Image(url="data:image/webp;base64,UklG"),
            {"inlineData": {"mimeType": "image/webp", "data": "UklG"}},
        ),
        (
            Image(url="https://generativelanguage.googleapis.com/v1beta/files/abc"),
            {"fileData": {"fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc"}},
        ),
        (
            Image(url="gs://b/o.jpg", media_type="image/jpeg"),
            {"fileData": {"mimeType": "image/jpeg", "fileUri": "gs://b/o.jpg"}},
        ),
    ],
)
def test_images_go_inline_or_as_gemini_files(image: Image, wire: Json) -> None:
    req = ChatRequest(model="m", messages=[Message("user", [image])])
    assert gm.encode_request(req)["contents"][0]["parts"] == [wire]


def test_an_image_url_must_be_inlined_by_the_proxy_first() -> None:
    req = ChatRequest(model="m", messages=[Message("user", [Image(url="https://e.com/a.png")])])
    with pytest.raises(TranslationError, match="not fetched and inlined"):
        gm.encode_request(req)


def test_invalid_tool_arguments_cannot_go_to_gemini() -> None:
    req = ChatRequest(model="m", messages=[Message("assistant", [ToolCall("c", "f", "[1]")])])
    with pytest.raises(TranslationError, match="JSON object"):
        gm.encode_request(req)


@pytest.mark.parametrize(
    ("choice", "config"),
    [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        ("required", {"mode": "ANY"}),
    ],
)
def test_tool_choices(choice: str, config: Json) -> None:
    req = ChatRequest(model="m", messages=[Message("user", [Text("x")])], tool_choice=choice)
    assert gm.encode_request(req)["toolConfig"] == {"functionCallingConfig": config}


# -- responses ------------------------------------------------------------------

RESPONSE: Json = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Checking.", "thought": True},
                    {"text": "Let me look."},
                    {
                        "functionCall": {"name": "weather", "args": {"city": "Paris"}},
                        "thoughtSignature": "c2ln",
                    },
                ],
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 100,
        "candidatesTokenCount": 20,
        "cachedContentTokenCount": 30,
        "thoughtsTokenCount": 5,
        "totalTokenCount": 125,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "Abc-12_x",
}


def test_decode_response_with_a_function_call() -> None:
    resp = gm.decode_response(RESPONSE)
    assert resp == ChatResponse(
        "Abc-12_x",
        "gemini-2.5-flash",
        [
            Thinking("Checking."),
            Text("Let me look."),
            ToolCall("call_Abc-12_x_0", "weather", '{"city": "Paris"}'),
        ],
        "tool_calls",
        Usage(input=70, output=25, cache_read=30, reasoning=5),
    )


@pytest.mark.parametrize(
    ("reason", "stop"),
    [
        ("STOP", "end"),
        ("MAX_TOKENS", "max_tokens"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("OTHER", "end"),
        (None, "end"),
    ],
)
def test_finish_reasons(reason: str | None, stop: str) -> None:
    body = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    assert gm.decode_response(body).stop == stop


def test_a_blocked_prompt_is_a_content_filter_stop_without_parts() -> None:
    body = {
        "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
        "usageMetadata": {"promptTokenCount": 8, "totalTokenCount": 8},
    }
    resp = gm.decode_response(body)
    assert (resp.parts, resp.stop, resp.usage) == ([], "content_filter", Usage(input=8))


def test_encode_response_round_trips() -> None:
    resp = gm.decode_response(RESPONSE)
    body = gm.encode_response(resp, "alias-model")
    candidate = body["candidates"][0]
    assert candidate["finishReason"] == "STOP"
    assert candidate["content"]["parts"][2] == {
        "functionCall": {"name": "weather", "args": {"city": "Paris"}, "id": "call_Abc-12_x_0"}
    }
    assert body["usageMetadata"] == RESPONSE["usageMetadata"]
    assert body["modelVersion"] == "alias-model"
    again = gm.decode_response(body)
    assert again.parts[:2] == resp.parts[:2] and again.usage == resp.usage


def test_usage_of_other_formats_is_reported_in_gemini_terms() -> None:
    openai = oa.decode_response(
        {
            "choices": [{"message": {"content": "x"}, "finish_reason": "length"}],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": 4,
                "prompt_tokens_details": {"cached_tokens": 2},
            },
        }
    )
    body = gm.encode_response(openai, "m")
    assert body["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert body["usageMetadata"] == {
        "promptTokenCount": 12,
        "candidatesTokenCount": 4,
        "cachedContentTokenCount": 2,
        "thoughtsTokenCount": 0,
        "totalTokenCount": 16,
    }


# -- streams --------------------------------------------------------------------

# As streamGenerateContent?alt=sse sends them: CRLF framing, usage in every chunk.
STREAM = b"".join(
    b"data: " + json.dumps(chunk).encode() + b"\r\n\r\n"
    for chunk in (
        {
            "candidates": [
                {"content": {"parts": [{"text": "Plan", "thought": True}], "role": "model"}}
            ],
            "usageMetadata": {"promptTokenCount": 50, "cachedContentTokenCount": 20},
            "modelVersion": "gemini-2.5-pro",
            "responseId": "r1",
        },
        {
            "candidates": [{"content": {"parts": [{"text": "It is "}], "role": "model"}}],
            "usageMetadata": {"promptTokenCount": 50, "cachedContentTokenCount": 20},
            "modelVersion": "gemini-2.5-pro",
            "responseId": "r1",
        },
        {
            "candidates": [{"content": {"parts": [{"text": "sunny."}], "role": "model"}}],
            "modelVersion": "gemini-2.5-pro",
            "responseId": "r1",
        },
        {
            "candidates": [
                {
                    "content": {
                        "parts": [
                            {"functionCall": {"name": "weather", "args": {"city": "Rome"}}},
                            {"functionCall": {"name": "clock", "args": {}}},
                        ],
                        "role": "model",
                    },
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 50,
                "cachedContentTokenCount": 20,
                "candidatesTokenCount": 9,
                "thoughtsTokenCount": 3,
                "totalTokenCount": 62,
            },
            "modelVersion": "gemini-2.5-pro",
            "responseId": "r1",
        },
    )
)
STREAM_EVENTS: list[Event] = [
    StreamStart("r1", "gemini-2.5-pro", Usage(input=30, cache_read=20)),
    BlockStart(0, "thinking"),
    ThinkingDelta(0, "Plan"),
    BlockStop(0),
    BlockStart(1, "text"),
    TextDelta(1, "It is "),
    TextDelta(1, "sunny."),
    BlockStop(1),
    BlockStart(2, "tool", "call_r1_0", "weather"),
    ToolArgsDelta(2, '{"city": "Rome"}'),
    BlockStop(2),
    BlockStart(3, "tool", "call_r1_1", "clock"),
    ToolArgsDelta(3, "{}"),
    BlockStop(3),
]
STREAM_END = StreamEnd("tool_calls", Usage(input=30, output=12, cache_read=20, reasoning=3))


def test_stream_decoder_on_a_realistic_stream() -> None:
    decoder = GOOGLE.stream_decoder()
    events: list[Event] = []
    for event in _events(STREAM):
        events += decoder.feed(event)
    assert events == STREAM_EVENTS  # nothing ends before EOF: Gemini has no end marker
    assert decoder.end() == [STREAM_END]
    assert decoder.end() == []
    assert decoder.error is None


def test_a_stream_cut_before_its_finish_does_not_end_normally() -> None:
    decoder = GOOGLE.stream_decoder()
    for event in _events(STREAM)[:2]:
        decoder.feed(event)
    assert decoder.end() == []


def test_an_error_event_stops_the_stream() -> None:
    decoder = GOOGLE.stream_decoder()
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    decoder.feed(_events(STREAM)[0])
    assert decoder.feed(SseEvent(b"", "", json.dumps(error).encode())) == []
    assert decoder.error == "The model is overloaded."
    assert decoder.end() == []
    with pytest.raises(ValueError):
        decoder.feed(SseEvent(b"", "", b"[1]"))


def test_a_stream_blocked_at_the_prompt_ends_with_content_filter() -> None:
    decoder = gs.GeminiDecoder()
    events = decoder.feed({"promptFeedback": {"blockReason": "SAFETY"}, "responseId": "z"})
    assert events == [StreamStart("z", "", Usage())]
    assert decoder.end() == [StreamEnd("content_filter", Usage())]


def _encode(events: list[Event]) -> bytes:
    encoder = GOOGLE.stream_encoder("alias", ChatRequest(model="alias", messages=[]))
    return b"".join(encoder.encode(e) for e in events)


def test_stream_encoder_emits_calls_whole_and_usage_at_the_end() -> None:
    chunks = _chunks(_encode([*STREAM_EVENTS, STREAM_END]))
    parts = [c["candidates"][0]["content"]["parts"] for c in chunks]
    assert parts == [
        [{"text": "Plan", "thought": True}],
        [{"text": "It is "}],
        [{"text": "sunny."}],
        [{"functionCall": {"name": "weather", "args": {"city": "Rome"}, "id": "call_r1_0"}}],
        [{"functionCall": {"name": "clock", "args": {}, "id": "call_r1_1"}}],
        [{"text": ""}],
    ]
    assert all(c["responseId"] == "r1" and c["modelVersion"] == "alias" for c in chunks)
    assert [c["candidates"][0].get("finishReason") for c in chunks][-2:] == [None, "STOP"]
    assert [("usageMetadata" in c) for c in chunks] == [False] * 5 + [True]
    assert chunks[-1]["usageMetadata"]["thoughtsTokenCount"] == 3


def test_stream_encoder_accumulates_streamed_arguments() -> None:
    events: list[Event] = [
        StreamStart("x", "m", Usage()),
        BlockStart(0, "tool", "call_9", "f"),
        ToolArgsDelta(0, '{"a'),
        ToolArgsDelta(0, '": 1}'),
        StreamEnd("tool_calls", Usage(output=2)),  # the block was never stopped
    ]
    (chunk,) = _chunks(_encode(events))
    candidate = chunk["candidates"][0]
    assert candidate["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {"a": 1}, "id": "call_9"}}
    ]
    assert candidate["finishReason"] == "STOP"


def test_gemini_to_gemini_through_the_ir_keeps_the_stream() -> None:
    decoder = GOOGLE.stream_decoder()
    encoder = GOOGLE.stream_encoder("m", ChatRequest("m", []))
    watch = TranslatingWatch(decoder, encoder)
    relayed = b"".join(watch.relay(e) or b"" for e in _events(STREAM))
    assert not watch.done  # until EOF, when the proxy runs the decoder's end() through
    relayed += b"".join(encoder.encode(e) for e in decoder.end())
    again = gs.GeminiDecoder()
    events: list[Event] = []
    for chunk in _chunks(relayed):
        events += again.feed(chunk)
    events += again.end()
    assert events[-1] == STREAM_END
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert texts == ["It is ", "sunny."]


# -- the format object --------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "version", "model", "stream", "url"),
    [
        ("https://g.example", None, "gemini-2.5-flash", False,
         "https://g.example/v1beta/models/gemini-2.5-flash:generateContent"),
        ("https://g.example/v1beta", None, "models/gemini-2.5-flash", True,
         "https://g.example/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
        ("https://g.example/v1/", "v1", "gemini-pro", False,
         "https://g.example/v1/models/gemini-pro:generateContent"),
        ("https://g.example", None, "tunedModels/my-model", False,
         "https://g.example/v1beta/tunedModels/my-model:generateContent"),
    ],
)  # fmt: skip
def test_urls(base: str, version: str | None, model: str, stream: bool, url: str) -> None:
    assert model_url(base, version, model, stream) == url


def test_url_headers_and_params_from_the_provider() -> None:
    provider = _provider(
        base_url="https://generativelanguage.googleapis.com/v1beta",
        api_version="v1alpha",
        headers={"x-extra": "1"},
        model_params={"temperature": 0.3, "max_tokens": 99, "top_p": 0.5, "presence_penalty": 1},
    )
    assert GOOGLE.url(provider, "gemini-x", False) == (
        "https://generativelanguage.googleapis.com/v1alpha/models/gemini-x:generateContent"
    )
    assert GOOGLE.headers(provider, "AIza-key", {"x-goog-api-key": "client"}) == {
        "Content-Type": "application/json",
        "x-extra": "1",
        "x-goog-api-key": "AIza-key",
    }
    assert "x-goog-api-key" not in GOOGLE.headers(provider, None, {})
    body: Json = {"contents": [], "generationConfig": {"temperature": 1.0}}
    out, wants_usage = GOOGLE.prepare(body, "gemini-x", provider)
    assert not wants_usage
    assert out["generationConfig"] == {
        "temperature": 1.0,
        "topP": 0.5,
        "maxOutputTokens": 99,
        "presencePenalty": 1,
    }
    assert body["generationConfig"] == {"temperature": 1.0}  # the client's body is untouched
    encoded = GOOGLE.encode_request(_conversation(), "gemini-x", provider)
    assert encoded["generationConfig"]["maxOutputTokens"] == 50
    assert encoded["generationConfig"]["topP"] == 0.5


def test_prepare_without_params_passes_the_body_through() -> None:
    body: Json = {"contents": [{"parts": [{"text": "x"}]}]}
    assert GOOGLE.prepare(body, "m", _provider()) == (body, False)


def test_capabilities() -> None:
    assert GOOGLE.capabilities(TOOL_LOOP) == {"tools", "vision", "thinking"}
    plain: Json = {"contents": [{"parts": [{"text": "x"}]}]}
    assert GOOGLE.capabilities(plain) == frozenset()
    plain["generationConfig"] = {"responseMimeType": "application/json"}
    assert GOOGLE.capabilities(plain) == {"json"}


def test_usage_and_errors() -> None:
    assert GOOGLE.usage(RESPONSE) == Usage(input=70, output=25, cache_read=30, reasoning=5)
    assert GOOGLE.usage({}) == Usage()
    assert GOOGLE.error_body(429, "slow down") == {
        "error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}
    }
    assert GOOGLE.error_body(502, "x")["error"]["status"] == "INTERNAL"
    assert GOOGLE.error_body(422, "x")["error"]["status"] == "INVALID_ARGUMENT"
    (event,) = _events(GOOGLE.stream_error("upstream broke"))
    assert json.loads(event.data) == {
        "error": {"code": 500, "message": "upstream broke", "status": "INTERNAL"}
    }


def test_watch_relays_unchanged_and_is_done_at_the_finish() -> None:
    watch = GOOGLE.watch(False)
    events = _events(STREAM)
    for event in events[:-1]:
        assert watch.relay(event) == event.raw
        assert not watch.done
    assert watch.usage == Usage(input=30, cache_read=20)
    assert watch.relay(events[-1]) == events[-1].raw
    assert watch.done and watch.usage == STREAM_END.usage
    assert watch.error is None and watch.finish() is None


def test_watch_relays_an_error_and_nothing_after() -> None:
    watch = GOOGLE.watch(False)
    error = GOOGLE.stream_error("quota")
    (event,) = _events(error)
    assert watch.relay(event) == error
    assert watch.error == "quota" and watch.error_relayed
    assert watch.relay(_events(STREAM)[0]) is None


# -- properties ---------------------------------------------------------------------

_texts = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=3)
_turns = st.lists(st.tuples(st.sampled_from(["user", "assistant"]), _texts), max_size=8)


@given(turns=_turns, system=st.text(max_size=20))
def test_text_conversations_round_trip(turns: list[tuple[str, list[str]]], system: str) -> None:
    req = ChatRequest(
        model="m",
        system=system,
        messages=[Message(role, [Text(t) for t in texts]) for role, texts in turns],  # type: ignore[arg-type]
    )
    merged: list[tuple[str, list[str]]] = []
    for role, texts in turns:
        if merged and merged[-1][0] == role:
            merged[-1][1].extend(texts)
        else:
            merged.append((role, list(texts)))
    back = gm.decode_request(json.loads(json.dumps(gm.encode_request(req))))
    assert back.system == system
    assert [(m.role, [p.text for p in m.parts if isinstance(p, Text)]) for m in back.messages] == (
        merged
    )


# -- against the fake upstream ------------------------------------------------------


async def test_the_fake_answers_text_and_a_function_call() -> None:
    fake = Fake("gemini")
    async with serve(gemini_app(fake)) as url, aiohttp.ClientSession() as session:
        provider = _provider(base_url=url)
        headers = GOOGLE.headers(provider, "AIza-test", {})
        req = ChatRequest(model="m", messages=[Message("user", [Text("hi")])])
        tools = [Tool("weather", "w", {"type": "object"})]
        answers = []
        for tool_list in ([], tools):
            req.tools = tool_list
            body = GOOGLE.encode_request(req, "gemini-x", provider)
            target = GOOGLE.url(provider, "models/gemini-x", False)
            async with session.post(target, json=body, headers=headers) as resp:
                assert resp.status == 200
                answers.append(GOOGLE.decode_response(await resp.json()))
        async with session.post(target, json=body, headers={}) as resp:
            assert resp.status == 403
    assert answers[0].parts == [Text(fake.text)] and answers[0].stop == "end"
    assert answers[0].usage == FAKE_USAGE
    assert answers[1].parts == [ToolCall("call_fakeResp-1_0", "weather", '{"city": "Paris"}')]
    assert answers[1].stop == "tool_calls"
    assert fake.headers[0][":path"] == "/v1beta/models/gemini-x:generateContent"
    assert fake.headers[0]["x-goog-api-key"] == "AIza-test"
    assert len(fake.requests) == 2


async def test_the_fake_streams_and_honours_faults() -> None:
    fake = Fake("gemini", faults=[Fault(status=429)])
    async with serve(gemini_app(fake)) as url, aiohttp.ClientSession() as session:
        provider = _provider(base_url=url)
        target = GOOGLE.url(provider, "gemini-x", True)
        headers = GOOGLE.headers(provider, "k", {})
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        async with session.post(target, json=body, headers=headers) as resp:
            assert resp.status == 429
        async with session.post(target, json=body, headers=headers) as resp:
            raw = await resp.read()
    decoder = GOOGLE.stream_decoder()
    events: list[Event] = []
    for event in _events(raw):
        events += decoder.feed(event)
    events += decoder.end()
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello from the fake"
    assert events[-1] == StreamEnd("end", FAKE_USAGE)
    assert fake.headers[-1][":path"] == "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
