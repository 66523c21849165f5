from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooldaemon.upstream import SseEvent, SseSplitter
from pooldaemon.upstream._sse import LineSplitter, _parse, _parse_fields, encode_event

STREAM = (
    b'event: message_start\ndata: {"a": 1}\n\n'
    b": keep-alive comment\n\n"
    b"data: line one\ndata: line two\n\n"
    b"data: [DONE]\n\n"
)


def test_events_with_names_multiline_data_and_comments() -> None:
    events = SseSplitter().feed(STREAM)
    assert [(e.event, e.data) for e in events] == [
        ("message_start", b'{"a": 1}'),
        ("", b"line one\nline two"),
        ("", b"[DONE]"),
    ]
    assert events[0].raw == b'event: message_start\ndata: {"a": 1}\n\n'


def test_crlf_is_accepted() -> None:
    (event,) = SseSplitter().feed(b"data: x\r\n\r\n")
    assert event.data == b"x"


_VALUE = st.binary(max_size=12).filter(lambda b: b"\n" not in b)
_LINE = st.one_of(
    _VALUE.map(lambda v: b"data: " + v),
    _VALUE.map(lambda v: b"data:" + v),
    _VALUE.map(lambda v: b"event: " + v),
    _VALUE.map(lambda v: b":" + v),
    _VALUE,
)


@given(st.lists(_LINE, min_size=1, max_size=3))
def test_one_data_line_shortcut_agrees_with_the_field_parser(lines: list[bytes]) -> None:
    block = b"\n".join(lines) + b"\n\n"
    assert _parse(block) == _parse_fields(block)


@given(st.lists(st.integers(min_value=0, max_value=len(STREAM)), max_size=10))
def test_any_chunking_gives_the_same_events(cuts: list[int]) -> None:
    splitter = SseSplitter()
    points = [0, *sorted(cuts), len(STREAM)]
    events = []
    for a, b in itertools.pairwise(points):
        events += splitter.feed(STREAM[a:b])
    assert [e.raw for e in events] == [e.raw for e in SseSplitter().feed(STREAM)]
    assert splitter.pending == b""


def test_pending_holds_an_unterminated_event() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"data: half") == []
    assert splitter.pending == b"data: half"


def test_oversized_event_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than 16 MiB"):
        SseSplitter().feed(b"data: " + b"x" * (16 * 1024 * 1024 + 1))


def test_encode_event() -> None:
    assert encode_event(b"{}") == b"data: {}\n\n"
    assert encode_event(b"{}", "error") == b"event: error\ndata: {}\n\n"


def test_ndjson_lines_across_chunks() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a": 1}\n{"b"') == [SseEvent(b'{"a": 1}\n', "", b'{"a": 1}')]
    events = splitter.feed(b': 2}\n\n{"c": 3}\n')
    assert [e.data for e in events] == [b'{"b": 2}', b'{"c": 3}']
    assert splitter.pending == b""
