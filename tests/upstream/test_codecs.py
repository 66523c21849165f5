"""The IR codecs on their own: edge cases the end-to-end tests do not reach."""

from __future__ import annotations

import pytest

from pooldaemon.pool import Usage
from pooldaemon.upstream import _anthropic_ir as an
from pooldaemon.upstream import _openai_ir as oa
from pooldaemon.upstream._ir import (
    BlockStart,
    BlockStop,
    ChatRequest,
    Message,
    StreamEnd,
    StreamStart,
    Text,
    TextDelta,
    ToolArgsDelta,
    ToolCall,
    ToolResult,
    TranslationError,
)


def test_anthropic_merges_consecutive_turns_and_puts_tool_results_first() -> None:
    req = ChatRequest(
        model="m",
        messages=[
            Message("user", [Text("a")]),
            Message("user", [Text("b")]),
            Message("assistant", [ToolCall("c1", "f", '{"x": 1}'), ToolCall("c2", "f", "{}")]),
            Message("user", [ToolResult("c1", [Text("r1")]), ToolResult("c2", [Text("r2")])]),
            Message("user", [Text("next")]),
        ],
    )
    body = an.encode_request(req, "m", 100)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in body["messages"][0]["content"]] == ["text", "text"]
    last = body["messages"][2]["content"]
    assert [b["type"] for b in last] == ["tool_result", "tool_result", "text"]
    assert body["max_tokens"] == 100


def test_invalid_tool_arguments_cannot_go_to_anthropic() -> None:
    req = ChatRequest(model="m", messages=[Message("assistant", [ToolCall("c", "f", "{oops")])])
    with pytest.raises(TranslationError, match="not valid JSON"):
        an.encode_request(req, "m", 10)


def test_untranslatable_openai_parts_are_refused() -> None:
    body = {
        "model": "m",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}],
            }
        ],
    }
    with pytest.raises(TranslationError, match="input_audio"):
        oa.decode_request(body)


def test_openai_parallel_tool_results_share_one_user_turn() -> None:
    req = oa.decode_request(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "q"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "a",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        },
                        {
                            "id": "b",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "a", "content": "1"},
                {"role": "tool", "tool_call_id": "b", "content": "2"},
            ],
        }
    )
    assert [m.role for m in req.messages] == ["user", "assistant", "user"]
    assert [p.call_id for p in req.messages[2].parts if isinstance(p, ToolResult)] == ["a", "b"]


def test_openai_decoder_opens_and_closes_blocks() -> None:
    decoder = oa.OpenAIDecoder()
    events = decoder.feed({"id": "x", "model": "m", "choices": [{"delta": {"content": "hi"}}]})
    events += decoder.feed(
        {
            "choices": [
                {
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "id": "c", "function": {"name": "f", "arguments": '{"a"'}}
                        ]
                    }
                }
            ]
        }
    )
    events += decoder.feed(
        {
            "choices": [
                {
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": ": 1}"}}]},
                    "finish_reason": "tool_calls",
                }
            ]
        }
    )
    events += decoder.feed({"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4}})
    events += decoder.end()
    assert events == [
        StreamStart("x", "m", Usage()),
        BlockStart(0, "text"),
        TextDelta(0, "hi"),
        BlockStop(0),
        BlockStart(1, "tool", "c", "f"),
        ToolArgsDelta(1, '{"a"'),
        ToolArgsDelta(1, ": 1}"),
        BlockStop(1),
        StreamEnd("tool_calls", Usage(input=3, output=4)),
    ]
    assert decoder.end() == []


def test_anthropic_encoder_closes_open_blocks_before_the_end() -> None:
    encoder = an.AnthropicEncoder("m")
    out = b"".join(
        encoder.encode(e)
        for e in (
            StreamStart("1", "m", Usage()),
            BlockStart(0, "text"),
            TextDelta(0, "x"),
            StreamEnd("end", Usage(output=1)),
        )
    )
    kinds = [line[7:] for line in out.decode().splitlines() if line.startswith("event: ")]
    assert kinds == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]


def test_anthropic_stop_reasons_and_usage_round_trip() -> None:
    body = {
        "id": "msg_1",
        "model": "m",
        "stop_reason": "max_tokens",
        "content": [{"type": "text", "text": "t"}],
        "usage": {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 7},
    }
    resp = an.decode_response(body)
    assert resp.stop == "max_tokens" and resp.usage == Usage(input=5, output=6, cache_read=7)
    openai_body = oa.encode_response(resp, "m")
    assert openai_body["choices"][0]["finish_reason"] == "length"
    assert openai_body["usage"]["prompt_tokens"] == 12
    assert oa.decode_response(openai_body).usage == resp.usage
