"""The Responses format: codec both ways, streams (checked by the official SDK), the format
object, and the fake upstream."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import httpx2
import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from pooldaemon.pool import ProviderView, Snapshot, Usage
from pooldaemon.spec import PoolSpec
from pooldaemon.upstream import SseEvent, SseSplitter
from pooldaemon.upstream import _anthropic_ir as an
from pooldaemon.upstream import _responses_ir as rs
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
from pooldaemon.upstream.responses import RESPONSES
from tests.server.fake_responses import RESPONSE_ID, responses_app
from tests.server.fakes import CACHED, USAGE_IN, USAGE_OUT, Fake, Fault, serve

Json = dict[str, Any]
FAKE_USAGE = Usage(input=USAGE_IN - CACHED, output=USAGE_OUT, cache_read=CACHED)
STREAM_EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


def _provider(**fields: Any) -> ProviderView:
    entry = {"id": "r", "format": "responses", **fields}
    return Snapshot.build(PoolSpec.model_validate({"version": 1, "providers": [entry]})).by_id["r"]


def _events(raw: bytes) -> list[SseEvent]:
    return SseSplitter().feed(raw)


def _sse(events: list[Json]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


# -- requests -------------------------------------------------------------------

# What the openai SDK sends for the second round of a tool loop, the first round's
# output items appended to the input as the SDK's docs show.
TOOL_LOOP: Json = {
    "model": "gpt-5-mini",
    "instructions": "Be brief.",
    "input": [
        {"role": "developer", "content": "Use tools."},
        {
            "role": "user",
            "content": [
                {"type": "input_text", "text": "Weather in Paris and Rome? And what is this?"},
                {"type": "input_image", "image_url": "https://e.com/cat.png", "detail": "low"},
                {"type": "input_image", "image_url": "data:image/jpeg;base64,/9j/4AAQ"},
            ],
        },
        {
            "type": "reasoning",
            "id": "rs_1",
            "summary": [
                {"type": "summary_text", "text": "Two cities."},
                {"type": "summary_text", "text": "Call twice."},
            ],
            "encrypted_content": "gAAAA",
        },
        {
            "type": "message",
            "id": "msg_1",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Checking.", "annotations": []}],
        },
        {
            "type": "function_call",
            "id": "fc_1",
            "call_id": "call_P",
            "name": "weather",
            "arguments": '{"city": "Paris"}',
            "status": "completed",
        },
        {
            "type": "function_call",
            "id": "fc_2",
            "call_id": "call_R",
            "name": "weather",
            "arguments": '{"city": "Rome"}',
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_P", "output": "sunny"},
        {
            "type": "function_call_output",
            "call_id": "call_R",
            "output": [{"type": "input_text", "text": "rain"}],
        },
        {"type": "message", "role": "user", "content": "Thanks!"},
    ],
    "tools": [
        {
            "type": "function",
            "name": "weather",
            "description": "Current weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
            "strict": True,
        }
    ],
    "tool_choice": {"type": "function", "name": "weather"},
    "max_output_tokens": 256,
    "temperature": 0.2,
    "top_p": 0.9,
    "text": {"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}}},
    "store": False,
    "stream": True,
}


def test_decode_request_reads_a_tool_loop() -> None:
    req = rs.decode_request(TOOL_LOOP)
    assert req.model == "gpt-5-mini"
    assert req.system == "Be brief.\n\nUse tools."
    assert req.messages == [
        Message(
            "user",
            [
                Text("Weather in Paris and Rome? And what is this?"),
                Image(url="https://e.com/cat.png"),
                Image(data="/9j/4AAQ", media_type="image/jpeg"),
            ],
        ),
        # The items of one assistant turn become one IR turn.
        Message(
            "assistant",
            [
                Thinking("Two cities.\n\nCall twice."),
                Text("Checking."),
                ToolCall("call_P", "weather", '{"city": "Paris"}'),
                ToolCall("call_R", "weather", '{"city": "Rome"}'),
            ],
        ),
        Message(
            "user", [ToolResult("call_P", [Text("sunny")]), ToolResult("call_R", [Text("rain")])]
        ),
        Message("user", [Text("Thanks!")]),
    ]
    assert req.tools == [
        Tool("weather", "Current weather", TOOL_LOOP["tools"][0]["parameters"]),
    ]
    assert req.tool_choice == "tool:weather"
    assert (req.max_tokens, req.temperature, req.top_p) == (256, 0.2, 0.9)
    assert req.json_mode and req.stream
    assert req.stop == [] and not req.client_wants_usage


def test_decode_request_of_a_string_input() -> None:
    req = rs.decode_request({"model": "m", "input": "hi", "tool_choice": "required"})
    assert req.messages == [Message("user", [Text("hi")])]
    assert req.system == "" and req.tool_choice == "required" and not req.json_mode
    assert req.max_tokens is None and not req.stream


def test_allowed_tools_narrow_the_tools() -> None:
    tool = {"type": "function", "name": "a", "parameters": None, "strict": False}
    body: Json = {
        "input": "x",
        "tools": [tool, {**tool, "name": "b"}],
        "tool_choice": {
            "type": "allowed_tools",
            "mode": "required",
            "tools": [{"type": "function", "name": "b"}],
        },
    }
    req = rs.decode_request(body)
    assert req.tools == [Tool("b", "", {"type": "object", "properties": {}})]
    assert req.tool_choice == "required"


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({"previous_response_id": "resp_1", "input": "more"}, "send the full conversation"),
        ({"conversation": "conv_1", "input": "more"}, "send the full conversation"),
        (
            {"input": "x", "tools": [{"type": "web_search"}, {"type": "file_search"}]},
            "tool type\\(s\\) file_search, web_search cannot be translated",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "item_reference"),
        ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "computer_call_output"),
        (
            {"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
            "input_file",
        ),
        (
            {"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
            "file_id",
        ),
        ({"input": [{"role": "tool", "content": "x"}]}, "role 'tool'"),
        ({"input": "x", "tool_choice": {"type": "web_search_preview"}}, "web_search_preview"),
        ({"input": ["x"]}, "must be an object"),
    ],
)
def test_untranslatable_requests_are_refused(body: Json, match: str) -> None:
    with pytest.raises(TranslationError, match=match):
        rs.decode_request(body)


def _conversation() -> ChatRequest:
    return ChatRequest(
        model="claude",
        system="sys",
        messages=[
            Message("user", [Text("a"), Image(data="AAAA", media_type="image/png")]),
            Message(
                "assistant",
                [
                    Thinking("hmm", "anthropic-signature"),
                    Text("Let me check."),
                    ToolCall("toolu_1", "weather", '{"city": "Paris"}'),
                ],
            ),
            Message(
                "user",
                [
                    ToolResult("toolu_1", [Text("sunny"), Image(url="https://x/y.png")]),
                    Text("thanks"),
                ],
            ),
            Message("user", [ToolResult("toolu_2", [Text("late")], is_error=True)]),
        ],
        tools=[Tool("weather", "w", {"type": "object"})],
        tool_choice="tool:weather",
        max_tokens=5,
        temperature=0.5,
        stop=["x"],
        json_mode=True,
        stream=True,
    )


def test_encode_request_writes_items() -> None:
    body = rs.encode_request(_conversation(), "gpt-5")
    assert body["model"] == "gpt-5" and body["instructions"] == "sys"
    assert body["input"] == [
        {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "a"},
                {
                    "type": "input_image",
                    "image_url": "data:image/png;base64,AAAA",
                    "detail": "auto",
                },
            ],
        },
        # Thinking is not sent: OpenAI would need its own encrypted reasoning.
        {"type": "message", "role": "assistant", "content": "Let me check."},
        {
            "type": "function_call",
            "call_id": "toolu_1",
            "name": "weather",
            "arguments": '{"city": "Paris"}',
        },
        {
            "type": "function_call_output",
            "call_id": "toolu_1",
            "output": [
                {"type": "input_text", "text": "sunny"},
                {"type": "input_image", "image_url": "https://x/y.png", "detail": "auto"},
            ],
        },
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
        {"type": "function_call_output", "call_id": "toolu_2", "output": "late"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "name": "weather",
            "description": "w",
            "parameters": {"type": "object"},
            "strict": False,  # OpenAI's strict default refuses most foreign schemas
        }
    ]
    assert body["tool_choice"] == {"type": "function", "name": "weather"}
    assert body["max_output_tokens"] == rs.MIN_OUTPUT_TOKENS  # 5 is below OpenAI's minimum
    assert body["temperature"] == 0.5 and "top_p" not in body
    assert body["text"] == {"format": {"type": "json_object"}}
    assert body["stream"] is True
    assert not {"stop", "store", "previous_response_id"} & body.keys()


def test_encoded_requests_are_valid_sdk_params() -> None:
    """The SDK's own request types accept what the encoder writes."""
    from openai.types.responses import response_create_params

    body = rs.encode_request(_conversation(), "gpt-5")
    adapter: TypeAdapter[Any] = TypeAdapter(response_create_params.ResponseCreateParamsStreaming)
    adapter.validate_python(body)


_texts = st.lists(st.text(min_size=1, max_size=20), min_size=1, max_size=3)
_turns = st.lists(st.tuples(st.sampled_from(["user", "assistant"]), _texts), max_size=8)


@given(turns=_turns, system=st.text(max_size=20))
def test_text_conversations_round_trip(turns: list[tuple[str, list[str]]], system: str) -> None:
    req = ChatRequest(
        model="m",
        system=system,
        messages=[Message(role, [Text(t) for t in texts]) for role, texts in turns],  # type: ignore[arg-type]
    )
    back = rs.decode_request(json.loads(json.dumps(rs.encode_request(req, "m"))))
    assert back.system == system
    expected: list[tuple[str, list[str]]] = []
    for role, texts in turns:
        if role == "assistant" and expected and expected[-1][0] == "assistant":
            expected[-1][1].extend(texts)  # consecutive assistant items are one turn
        else:
            expected.append((role, list(texts)))
    assert [(m.role, [p.text for p in m.parts if isinstance(p, Text)]) for m in back.messages] == (
        expected
    )


# -- responses ------------------------------------------------------------------

RESPONSE: Json = {
    "id": "resp_abc",
    "object": "response",
    "created_at": 1767225600,
    "status": "completed",
    "error": None,
    "incomplete_details": None,
    "model": "gpt-5-mini-2025-08-07",
    "output": [
        {
            "id": "rs_1",
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Need weather."}],
        },
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}],
        },
        {
            "id": "fc_1",
            "type": "function_call",
            "status": "completed",
            "call_id": "call_1",
            "name": "weather",
            "arguments": '{"city": "Paris"}',
        },
        {
            "id": "ws_1",
            "type": "web_search_call",
            "status": "completed",
            "action": {"type": "search", "query": "weather"},
        },
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
    "usage": {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 0},
        "output_tokens": 25,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 125,
    },
}


def test_decode_response_with_reasoning_and_a_function_call() -> None:
    assert rs.decode_response(RESPONSE) == ChatResponse(
        "resp_abc",
        "gpt-5-mini-2025-08-07",
        [
            Thinking("Need weather."),
            Text("Let me look."),
            ToolCall("call_1", "weather", '{"city": "Paris"}'),
        ],
        "tool_calls",
        Usage(input=70, output=25, cache_read=30, reasoning=5),
    )


@pytest.mark.parametrize(
    ("status", "details", "calls", "stop"),
    [
        ("completed", None, False, "end"),
        ("completed", None, True, "tool_calls"),
        ("incomplete", {"reason": "max_output_tokens"}, True, "max_tokens"),
        ("incomplete", {"reason": "content_filter"}, False, "content_filter"),
    ],
)
def test_stop_reasons(status: str, details: Json | None, calls: bool, stop: str) -> None:
    output = [RESPONSE["output"][2]] if calls else [RESPONSE["output"][1]]
    body = {**RESPONSE, "status": status, "incomplete_details": details, "output": output}
    assert rs.decode_response(body).stop == stop


def test_encode_response_is_a_valid_sdk_response() -> None:
    resp = rs.decode_response(RESPONSE)
    body = rs.encode_response(resp, "alias")
    parsed = Response.model_validate(body)
    assert parsed.id == "resp_abc" and parsed.model == "alias" and parsed.status == "completed"
    assert [item.type for item in parsed.output] == ["reasoning", "message", "function_call"]
    assert parsed.output_text == "Let me look."
    assert body["output"][2] == {
        "id": "fc_abc_2",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_1",
        "name": "weather",
        "arguments": '{"city": "Paris"}',
    }
    assert body["usage"] == {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 0},
        "output_tokens": 25,
        "output_tokens_details": {"reasoning_tokens": 5},
        "total_tokens": 125,
    }
    assert rs.decode_response(body) == ChatResponse(
        resp.id, "alias", resp.parts, resp.stop, resp.usage
    )


def test_a_truncated_answer_from_another_format_is_incomplete() -> None:
    anthropic = an.decode_response(
        {
            "id": "msg_01",
            "model": "claude",
            "stop_reason": "max_tokens",
            "content": [{"type": "text", "text": "Once upon"}],
            "usage": {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 7},
        }
    )
    body = rs.encode_response(anthropic, "m")
    parsed = Response.model_validate(body)
    assert parsed.status == "incomplete"
    assert parsed.incomplete_details is not None
    assert parsed.incomplete_details.reason == "max_output_tokens"
    assert parsed.id == "resp_msg_01" and parsed.output_text == "Once upon"
    assert parsed.usage is not None and parsed.usage.input_tokens == 12
    assert rs.decode_response(body).usage == anthropic.usage


# -- streams --------------------------------------------------------------------


def _upstream_events() -> list[Json]:
    """A reasoning model's stream as the API sends it: reasoning, text, then a call."""
    events: list[Json] = []

    def ev(kind: str, **data: Any) -> None:
        events.append({"type": kind, "sequence_number": len(events), **data})

    base = {**RESPONSE, "status": "in_progress", "output": [], "usage": None}
    ev("response.created", response=base)
    ev("response.in_progress", response=base)
    reasoning: Json = {"id": "rs_1", "type": "reasoning", "summary": []}
    ev("response.output_item.added", output_index=0, item=reasoning)
    for index, text in enumerate(("Plan", "Check")):
        where = {"item_id": "rs_1", "output_index": 0, "summary_index": index}
        part: Json = {"type": "summary_text", "text": ""}
        ev("response.reasoning_summary_part.added", **where, part=part)
        ev("response.reasoning_summary_text.delta", **where, delta=text)
        ev("response.reasoning_summary_text.done", **where, text=text)
        ev("response.reasoning_summary_part.done", **where, part={**part, "text": text})
    summary = [{"type": "summary_text", "text": t} for t in ("Plan", "Check")]
    ev("response.output_item.done", output_index=0, item={**reasoning, "summary": summary})
    message: Json = {"id": "msg_1", "type": "message", "role": "assistant", "status": "in_progress"}
    ev("response.output_item.added", output_index=1, item={**message, "content": []})
    where = {"item_id": "msg_1", "output_index": 1, "content_index": 0}
    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    ev("response.content_part.added", **where, part=part)
    for text in ("It is ", "sunny."):
        ev("response.output_text.delta", **where, delta=text, logprobs=[])
    ev("response.output_text.done", **where, text="It is sunny.", logprobs=[])
    done_part = {**part, "text": "It is sunny."}
    ev("response.content_part.done", **where, part=done_part)
    message = {**message, "status": "completed", "content": [done_part]}
    ev("response.output_item.done", output_index=1, item=message)
    call = {"id": "fc_1", "type": "function_call", "status": "in_progress", "call_id": "call_A",
            "name": "weather", "arguments": ""}  # fmt: skip
    ev("response.output_item.added", output_index=2, item=call)
    where = {"item_id": "fc_1", "output_index": 2}
    for piece in ('{"city":', ' "Rome"}'):
        ev("response.function_call_arguments.delta", **where, delta=piece)
    ev("response.function_call_arguments.done", **where, arguments='{"city": "Rome"}')
    call = {**call, "status": "completed", "arguments": '{"city": "Rome"}'}
    ev("response.output_item.done", output_index=2, item=call)
    usage = {
        "input_tokens": 50,
        "input_tokens_details": {"cached_tokens": 20, "cache_write_tokens": 0},
        "output_tokens": 12,
        "output_tokens_details": {"reasoning_tokens": 3},
        "total_tokens": 62,
    }
    final = {**RESPONSE, "output": [{**reasoning, "summary": summary}, message, call]}
    ev("response.completed", response={**final, "usage": usage})
    return events


STREAM = _sse(_upstream_events())
STREAM_EVENTS: list[Event] = [
    StreamStart("resp_abc", "gpt-5-mini-2025-08-07", Usage()),
    BlockStart(0, "thinking"),
    ThinkingDelta(0, "Plan"),
    ThinkingDelta(0, "\n\n"),
    ThinkingDelta(0, "Check"),
    BlockStop(0),
    BlockStart(1, "text"),
    TextDelta(1, "It is "),
    TextDelta(1, "sunny."),
    BlockStop(1),
    BlockStart(2, "tool", "call_A", "weather"),
    ToolArgsDelta(2, '{"city":'),
    ToolArgsDelta(2, ' "Rome"}'),
    BlockStop(2),
    StreamEnd("tool_calls", Usage(input=30, output=12, cache_read=20, reasoning=3)),
]


def _decode(raw: bytes) -> list[Event]:
    decoder = RESPONSES.stream_decoder()
    events: list[Event] = []
    for event in _events(raw):
        events += decoder.feed(event)
    assert decoder.error is None
    return events + decoder.end()


def test_the_upstream_stream_is_valid_for_the_sdk() -> None:
    for event in _upstream_events():  # the fixture itself is checked, so the tests mean something
        STREAM_EVENT.validate_python(event)


def test_stream_decoder_on_a_realistic_stream() -> None:
    assert _decode(STREAM) == STREAM_EVENTS


def test_stream_decoder_reads_items_sent_whole() -> None:
    """Some compatible servers send items only in ``output_item.done``."""
    message = {"id": "m", "type": "message", "role": "assistant", "status": "completed",
               "content": [{"type": "output_text", "text": "Hi", "annotations": []}]}  # fmt: skip
    call = {"id": "f", "type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}
    final = {
        "id": "r",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
    }
    raw = _sse(
        [
            {"type": "response.created", "response": {"id": "r", "model": "m"}},
            {"type": "response.output_item.done", "output_index": 0, "item": message},
            {"type": "response.output_item.done", "output_index": 1, "item": call},
            {"type": "response.incomplete", "response": final},
        ]
    )
    assert _decode(raw) == [
        StreamStart("r", "m", Usage()),
        BlockStart(0, "text"),
        TextDelta(0, "Hi"),
        BlockStop(0),
        BlockStart(1, "tool", "c", "f"),
        ToolArgsDelta(1, "{}"),
        BlockStop(1),
        StreamEnd("max_tokens", Usage()),
    ]


def test_stream_decoder_reads_reasoning_text_parts() -> None:
    """Open-weight models (gpt-oss on vLLM) stream raw reasoning as ``reasoning_text``."""
    where = {"item_id": "rs_1", "output_index": 0, "content_index": 0}
    raw = _sse(
        [
            {"type": "response.created", "response": {"id": "r", "model": "gpt-oss"}},
            {"type": "response.output_item.added", "output_index": 0,
             "item": {"id": "rs_1", "type": "reasoning", "summary": []}},
            {"type": "response.content_part.added", **where,
             "part": {"type": "reasoning_text", "text": ""}},
            {"type": "response.reasoning_text.delta", **where, "delta": "Think"},
            {"type": "response.content_part.done", **where,
             "part": {"type": "reasoning_text", "text": "Think"}},
            {"type": "response.output_item.done", "output_index": 0,
             "item": {"id": "rs_1", "type": "reasoning", "summary": []}},
            {"type": "response.completed", "response": {"id": "r", "status": "completed"}},
        ]
    )  # fmt: skip
    assert _decode(raw) == [
        StreamStart("r", "gpt-oss", Usage()),
        BlockStart(0, "thinking"),
        ThinkingDelta(0, "Think"),
        BlockStop(0),
        StreamEnd("end", Usage()),
    ]


def test_a_stream_cut_before_its_completion_does_not_end() -> None:
    events = _decode(_sse(_upstream_events()[:-1]))
    assert not any(isinstance(e, StreamEnd) for e in events)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        (
            {
                "type": "response.failed",
                "sequence_number": 3,
                "response": {
                    **RESPONSE,
                    "status": "failed",
                    "error": {"code": "server_error", "message": "The model failed."},
                },
            },
            "The model failed.",
        ),
        (
            {
                "type": "error",
                "sequence_number": 3,
                "code": "rate_limit_exceeded",
                "message": "Slow down.",
                "param": None,
            },
            "Slow down.",
        ),
    ],
)
def test_failures_stop_the_stream(event: Json, message: str) -> None:
    STREAM_EVENT.validate_python(event)
    decoder = RESPONSES.stream_decoder()
    decoder.feed(_events(STREAM)[0])
    assert decoder.feed(_events(_sse([event]))[0]) == []
    assert decoder.error == message
    assert decoder.end() == []
    with pytest.raises(ValueError):
        decoder.feed(SseEvent(b"", "x", b"[1]"))


def _encode(events: list[Event], model: str = "alias") -> bytes:
    encoder = RESPONSES.stream_encoder(model, ChatRequest(model=model, messages=[]))
    return b"".join(encoder.encode(e) for e in events)


def _checked(raw: bytes) -> list[Json]:
    """The events of ``raw``, each valid for the SDK, named by its type, numbered from 0."""
    out: list[Json] = []
    for number, event in enumerate(_events(raw)):
        data = json.loads(event.data)
        STREAM_EVENT.validate_python(data)
        assert event.event == data["type"]
        assert data["sequence_number"] == number
        out.append(data)
    return out


def _sdk_events(raw: bytes) -> tuple[list[Any], Response | None]:
    """What the official SDK's stream helper makes of ``raw`` as an upstream's answer."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=raw)

    with (
        httpx2.Client(transport=httpx2.MockTransport(answer)) as http,
        openai.OpenAI(api_key="k", base_url="http://fake/v1", http_client=http) as client,
        client.responses.stream(model="alias", input="hi") as stream,
    ):
        events = list(stream)  # the helper checks ids, indexes and order as it accumulates
        final = events[-1].response if events[-1].type == "response.completed" else None
        return events, final


def _sdk_stream(raw: bytes) -> tuple[list[Any], Response]:
    events, final = _sdk_events(raw)
    assert final is not None
    return events, final


def test_stream_encoder_writes_what_the_sdk_reads() -> None:
    raw = _encode(STREAM_EVENTS)
    events = _checked(raw)
    assert [e["type"] for e in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.get("output_index") for e in events if "item_id" in e] == (
        [0] * 6 + [1] * 5 + [2] * 3
    )
    final = Response.model_validate(events[-1]["response"])
    assert final.id == "resp_abc" and final.model == "alias" and final.status == "completed"
    assert final.usage is not None and final.usage.total_tokens == 62
    assert final.usage.input_tokens_details.cached_tokens == 20

    sdk_events, response = _sdk_stream(raw)
    text = "".join(e.delta for e in sdk_events if e.type == "response.output_text.delta")
    assert text == "It is sunny." and response.output_text == "It is sunny."
    reasoning, message, call = response.output
    assert reasoning.type == "reasoning"
    assert [s.text for s in reasoning.summary] == ["Plan\n\nCheck"]
    assert message.type == "message" and message.status == "completed"
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == ("call_A", "weather", '{"city": "Rome"}')


def test_stream_encoder_closes_open_blocks_and_ends_incomplete() -> None:
    raw = _encode(
        [
            StreamStart("", "m", Usage()),
            BlockStart(0, "text"),
            TextDelta(0, "Once"),
            BlockStart(1, "tool", "c", "f"),  # never stopped, no arguments
            StreamEnd("max_tokens", Usage(input=3, output=4)),
        ]
    )
    events = _checked(raw)
    assert events[-1]["type"] == "response.incomplete"
    response = Response.model_validate(events[-1]["response"])
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.id.startswith("resp_") and len(response.id) > len("resp_")
    assert [item.type for item in response.output] == ["message", "function_call"]
    assert response.output_text == "Once"
    done = [e for e in events if e["type"] == "response.function_call_arguments.done"]
    assert done[0]["arguments"] == "{}"
    assert _encode([StreamEnd("end", Usage())])  # a stream without StreamStart still starts


def test_a_failure_ends_the_stream_as_the_sdk_expects() -> None:
    encoder = RESPONSES.stream_encoder("m", ChatRequest(model="m", messages=[]))
    head: list[Event] = [
        StreamStart("abc", "m", Usage()),
        BlockStart(0, "text"),
        TextDelta(0, "Hi"),
    ]
    raw = b"".join(encoder.encode(e) for e in head) + encoder.failure("upstream broke")
    assert encoder.failure("again") == b"" and encoder.encode(StreamEnd("end", Usage())) == b""
    events = _checked(raw)
    failed = Response.model_validate(events[-1]["response"])
    assert failed.id == "resp_abc" and failed.status == "failed"
    assert failed.error is not None and failed.error.message == "upstream broke"
    sdk_events, final = _sdk_events(raw)
    assert final is None and sdk_events[-1].type == "response.failed"
    assert [item.type for item in sdk_events[-1].response.output] == ["message"]


def test_stream_error_has_an_id_of_its_own() -> None:
    """Without the stream's id the SDK's helper refuses the event (raw iteration reads it)."""
    encoder = RESPONSES.stream_encoder("m", ChatRequest(model="m", messages=[]))
    raw = encoder.encode(StreamStart("abc", "m", Usage()))
    with pytest.raises(RuntimeError, match="identity changed"):
        _sdk_events(raw + RESPONSES.stream_error("boom"))
    watch = RESPONSES.watch(False)
    for event in _events(raw):
        watch.relay(event)
    sdk_events, _ = _sdk_events(raw + watch.failure("boom"))
    assert sdk_events[-1].type == "response.failed"
    assert sdk_events[-1].response.error.message == "boom"


def test_the_stream_encoder_ignores_events_after_the_end() -> None:
    encoder = RESPONSES.stream_encoder("m", ChatRequest(model="m", messages=[]))
    encoder.encode(StreamStart("x", "m", Usage()))
    encoder.encode(StreamEnd("end", Usage()))
    assert encoder.encode(TextDelta(0, "late")) == b""


def test_responses_to_responses_through_the_ir_keeps_the_stream() -> None:
    watch = TranslatingWatch(
        RESPONSES.stream_decoder(),
        RESPONSES.stream_encoder("m", ChatRequest("m", [])),
    )
    relayed = b"".join(watch.relay(e) or b"" for e in _events(STREAM))
    assert watch.done and watch.usage == STREAM_EVENTS[-1].usage  # type: ignore[union-attr]
    _checked(relayed)
    again = _decode(relayed)
    assert again[1:] == STREAM_EVENTS[1:]


def test_a_chat_stream_becomes_a_responses_stream_for_the_sdk() -> None:
    from pooldaemon.upstream.openai import OPENAI

    chunks = [
        {"id": "chatcmpl-9", "model": "gpt-4o", "choices": [{"delta": {"role": "assistant"}}]},
        {"choices": [{"delta": {"content": "Hi"}}]},
        {"choices": [{"delta": {}, "finish_reason": "stop"}]},
        {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 1}},
    ]
    raw = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    watch = TranslatingWatch(
        OPENAI.stream_decoder(), RESPONSES.stream_encoder("m", ChatRequest("m", []))
    )
    relayed = b"".join(watch.relay(e) or b"" for e in _events(raw + b"data: [DONE]\n\n"))
    _, response = _sdk_stream(relayed)
    assert response.output_text == "Hi" and response.id == "resp_chatcmpl-9"
    assert response.usage is not None and response.usage.input_tokens == 9


# -- the format object --------------------------------------------------------------


def test_url_headers_and_params_from_the_provider() -> None:
    provider = _provider(
        base_url="https://relay.example/v1",
        headers={"x-extra": "1"},
        model_params={"temperature": 0.3, "max_tokens": 99, "top_p": 0.5, "presence_penalty": 1},
    )
    assert RESPONSES.url(provider, "gpt-5", True) == "https://relay.example/v1/responses"
    assert RESPONSES.url(_provider(), "gpt-5", False) == "https://api.openai.com/v1/responses"
    assert RESPONSES.headers(provider, "sk-key", {"authorization": "Bearer client"}) == {
        "Content-Type": "application/json",
        "x-extra": "1",
        "Authorization": "Bearer sk-key",
    }
    assert "Authorization" not in RESPONSES.headers(provider, None, {})
    body: Json = {"model": "alias", "input": "hi", "temperature": 1.0, "stream": True}
    out, _ = RESPONSES.prepare(body, "gpt-5", provider)
    assert out == {
        "model": "gpt-5",
        "input": "hi",
        "temperature": 1.0,
        "top_p": 0.5,
        "max_output_tokens": 99,
        "stream": True,
    }  # no penalties (not in the Responses API), and store is left as the client sent it
    assert body["model"] == "alias" and "top_p" not in body  # the client's body is untouched
    encoded = RESPONSES.encode_request(_conversation(), "gpt-5", provider)
    assert (encoded["max_output_tokens"], encoded["top_p"]) == (rs.MIN_OUTPUT_TOKENS, 0.5)
    assert "presence_penalty" not in encoded


def test_prepare_passes_state_through() -> None:
    body: Json = {"model": "a", "input": "more", "previous_response_id": "resp_1", "store": True}
    out, _ = RESPONSES.prepare(body, "gpt-5", _provider())
    assert out == {**body, "model": "gpt-5"}


def test_capabilities() -> None:
    assert RESPONSES.capabilities(TOOL_LOOP) == {"tools", "vision", "json"}
    plain: Json = {"input": "x"}
    assert RESPONSES.capabilities(plain) == frozenset()
    plain["text"] = {"format": {"type": "json_object"}}
    assert RESPONSES.capabilities(plain) == {"json"}


def test_usage_and_errors() -> None:
    assert RESPONSES.usage(RESPONSE) == Usage(input=70, output=25, cache_read=30, reasoning=5)
    assert RESPONSES.usage({}) == Usage()
    assert RESPONSES.error_body(429, "slow down") == {
        "error": {"message": "slow down", "type": "rate_limit_error", "param": None, "code": None}
    }
    assert RESPONSES.error_body(502, "x")["error"]["type"] == "api_error"
    (event,) = _events(RESPONSES.stream_error("upstream broke"))
    assert event.event == "response.failed"
    data = json.loads(event.data)
    parsed = STREAM_EVENT.validate_python(data)
    assert parsed.type == "response.failed"
    assert parsed.sequence_number == 1_000_000_000
    assert parsed.response.status == "failed"
    assert parsed.response.error.code == "server_error"
    assert parsed.response.error.message == "upstream broke"


def test_watch_relays_unchanged_and_is_done_at_the_completion() -> None:
    watch = RESPONSES.watch(False)
    events = _events(STREAM)
    for event in events[:-1]:
        assert watch.relay(event) == event.raw
        assert not watch.done
    assert watch.relay(events[-1]) == events[-1].raw
    assert watch.done and watch.usage == STREAM_EVENTS[-1].usage  # type: ignore[union-attr]
    assert watch.error is None and watch.finish() is None


def test_watch_reads_events_without_event_lines() -> None:
    watch = RESPONSES.watch(False)
    final = {"type": "response.incomplete", "sequence_number": 9, "response": RESPONSE}
    assert watch.relay(SseEvent(b"raw", "", json.dumps(final).encode())) == b"raw"
    assert watch.done and watch.usage.cache_read == 30


@pytest.mark.parametrize(
    "failure",
    [
        RESPONSES.stream_error("quota"),
        _sse([{"type": "error", "sequence_number": 1, "message": "quota", "code": None}]),
        b'data: {"type": "error", "error": {"message": "quota"}}\n\n',
    ],
)
def test_watch_relays_a_failure_and_nothing_after(failure: bytes) -> None:
    watch = RESPONSES.watch(False)
    assert watch.relay(_events(STREAM)[0]) is not None
    (event,) = _events(failure)
    assert watch.relay(event) == failure
    assert watch.error == "quota" and watch.error_relayed and not watch.done
    assert watch.relay(_events(STREAM)[-1]) is None


# -- against the fake upstream ------------------------------------------------------


async def test_the_fake_answers_text_and_a_function_call() -> None:
    fake = Fake("responses")
    async with serve(responses_app(fake)) as url, aiohttp.ClientSession() as session:
        provider = _provider(base_url=f"{url}/v1")
        headers = RESPONSES.headers(provider, "sk-test", {})
        target = RESPONSES.url(provider, "gpt-5", False)
        req = ChatRequest(model="m", messages=[Message("user", [Text("hi")])])
        answers = []
        for tools in ([], [Tool("weather", "w", {"type": "object"})]):
            req.tools = tools
            body = RESPONSES.encode_request(req, "gpt-5", provider)
            async with session.post(target, json=body, headers=headers) as resp:
                assert resp.status == 200
                data = await resp.json()
                Response.model_validate(data)
                answers.append(RESPONSES.decode_response(data))
        output = {"type": "function_call_output", "call_id": "call_fake1", "output": "9"}
        answered = {**body, "input": [*body["input"], output]}
        async with session.post(target, json=answered, headers=headers) as resp:
            assert RESPONSES.decode_response(await resp.json()).parts == [Text(fake.text)]
        async with session.post(target, json=body) as resp:
            assert resp.status == 401
    assert answers[0] == ChatResponse(RESPONSE_ID, "gpt-5", [Text(fake.text)], "end", FAKE_USAGE)
    assert answers[1].parts == [ToolCall("call_fake1", "weather", '{"city": "Paris"}')]
    assert answers[1].stop == "tool_calls"
    assert fake.headers[0]["Authorization"] == "Bearer sk-test"
    assert len(fake.requests) == 3


async def test_the_fake_streams_and_honours_faults() -> None:
    fake = Fake("responses", faults=[Fault(status=429), Fault(), Fault(break_after=4)])
    async with serve(responses_app(fake)) as url, aiohttp.ClientSession() as session:
        target = f"{url}/v1/responses"
        headers = {"Authorization": "Bearer k"}
        body: Json = {"model": "gpt-5", "input": "hi", "stream": True}
        async with session.post(target, json=body, headers=headers) as resp:
            assert resp.status == 429
            assert (await resp.json())["error"]["message"] == "fake failure"
        async with session.post(target, json=body, headers=headers) as resp:
            raw = await resp.read()
        with pytest.raises(aiohttp.ClientPayloadError):
            async with session.post(target, json=body, headers=headers) as resp:
                await resp.read()
        tools = [{"type": "function", "name": "weather", "parameters": None, "strict": False}]
        async with session.post(target, json={**body, "tools": tools}, headers=headers) as resp:
            calls = await resp.read()
    for event in _events(raw) + _events(calls):
        STREAM_EVENT.validate_python(json.loads(event.data))
    events = _decode(raw)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Hello from the fake"
    assert events[-1] == StreamEnd("end", FAKE_USAGE)
    events = _decode(calls)
    assert events[1] == BlockStart(0, "tool", "call_fake1", "weather")
    args = "".join(e.json for e in events if isinstance(e, ToolArgsDelta))
    assert json.loads(args) == {"city": "Paris"}
    assert events[-1] == StreamEnd("tool_calls", FAKE_USAGE)


async def test_the_official_sdk_talks_to_the_fake() -> None:
    fake = Fake("responses")
    async with (
        serve(responses_app(fake)) as url,
        openai.AsyncOpenAI(api_key="sk-test", base_url=f"{url}/v1", max_retries=0) as client,
    ):
        response = await client.responses.create(model="gpt-5", input="hi")
        assert response.output_text == fake.text
        async with client.responses.stream(model="gpt-5", input="hi") as stream:
            final = await stream.get_final_response()
        assert final.output_text == "Hello from the fake"
        assert final.usage is not None and final.usage.input_tokens == USAGE_IN
    assert fake.requests[-1]["stream"] is True
