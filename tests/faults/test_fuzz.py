"""Fuzzing with hypothesis: what clients and upstreams send may be anything.

- The inbound request parsers of the three client APIs, fed arbitrary JSON and
  mutated valid bodies, raise only what the proxy turns into a 400; what they
  decode can be encoded for every upstream or refused with TranslationError.
- End to end, through the in-process proxy: any body to any endpoint gets a 4xx
  in the endpoint's own error shape, never a 500.
- Each stream translator (and each pass-through watch), fed arbitrary and
  mutated event sequences cut anywhere, raises nothing but ValueError (which
  the proxy turns into the client's error event), and what it writes is
  well-formed SSE.
- Each plain-answer translation raises only what ``send_plain`` catches.

The YAML loader's fuzzing lives in tests/spec/test_properties.py (arbitrary
text and mutated valid files).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import http.client
import json
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from typing import Any

import pytest
from aiohttp import web
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from pooldaemon.pool import ProviderView, Snapshot
from pooldaemon.server import Applied, ProxyState, build_proxy_app
from pooldaemon.spec import PoolSpec
from pooldaemon.upstream import ANTHROPIC, GOOGLE, OLLAMA, OPENAI, RESPONSES, WireFormat
from pooldaemon.upstream._ir import TranslationError
from pooldaemon.upstream._sse import LineSplitter, SseSplitter
from pooldaemon.upstream._translate import TranslatingWatch
from tests.server import fake_gemini, fake_responses
from tests.server.fakes import (
    Fake,
    _anthropic_answer,
    _anthropic_events,
    _openai_answer,
    _openai_chunks,
    serve,
)

Json = dict[str, Any]
FORMATS: dict[str, WireFormat] = {
    "openai": OPENAI,
    "anthropic": ANTHROPIC,
    "responses": RESPONSES,
    "google": GOOGLE,
    "ollama": OLLAMA,
}
INBOUND = ("openai", "anthropic", "responses")
# Explicit examples keep the bugs these tests found (and that are fixed) from coming back;
# the generated examples are derandomized (a CI run is reproducible) and not shrunk (shrinking
# takes tens of seconds per failing test). By hand: FUZZ_EXAMPLES=N, FUZZ_RANDOM=1 and
# FUZZ_SHRINK=1 explore further.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "100")),
    deadline=None,
    derandomize=not os.environ.get("FUZZ_RANDOM"),
    database=None,
    phases=[Phase.explicit, Phase.generate] + [Phase.shrink] * bool(os.environ.get("FUZZ_SHRINK")),
    suppress_health_check=list(HealthCheck),
)


# -- seeds: valid requests, answers and streams of every format ------------------------

IMAGE = "https://example.com/a.png"
PARAMS = {"type": "object", "properties": {"city": {"type": "string"}}}
REQUESTS: dict[str, Json] = {
    "openai": {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
            ]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "d", "parameters": PARAMS}}],
        "tool_choice": "auto", "temperature": 0.5, "max_tokens": 100, "stop": ["x"],
        "stream": True, "stream_options": {"include_usage": True},
        "response_format": {"type": "json_object"},
    },
    "anthropic": {
        "model": "m", "max_tokens": 100,
        "system": [{"type": "text", "text": "be brief"}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "hi"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                             "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": IMAGE}},
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "let me look"},
                {"type": "tool_use", "id": "toolu_1", "name": "weather",
                 "input": {"city": "Paris"}},
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1",
                 "content": [{"type": "text", "text": "sunny"}]},
            ]},
        ],
        "tools": [{"name": "weather", "description": "d", "input_schema": PARAMS}],
        "tool_choice": {"type": "auto"}, "stop_sequences": ["x"], "temperature": 0.5,
        "stream": True,
    },
    "responses": {
        "model": "m", "instructions": "be brief",
        "input": [
            {"role": "user", "content": [
                {"type": "input_text", "text": "hi"},
                {"type": "input_image", "image_url": IMAGE},
            ]},
            {"type": "reasoning", "id": "rs_1",
             "summary": [{"type": "summary_text", "text": "hmm"}]},
            {"type": "function_call", "call_id": "call_1", "name": "weather",
             "arguments": '{"city": "Paris"}'},
            {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            {"type": "message", "role": "assistant",
             "content": [{"type": "output_text", "text": "ok"}]},
        ],
        "tools": [{"type": "function", "name": "weather", "parameters": PARAMS}],
        "tool_choice": "auto", "max_output_tokens": 100, "temperature": 0.5, "stream": True,
        "text": {"format": {"type": "json_object"}},
    },
}  # fmt: skip

_FAKE = Fake("fuzz")
_CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True,
         "stream_options": {"include_usage": True}}  # fmt: skip
_TOOLS = {**_CHAT, "tools": [{"type": "function", "function": {"name": "weather"}}]}
_ANTH = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
_ANTH_TOOLS = {**_ANTH, "tools": [{"name": "weather", "input_schema": PARAMS}]}
_GEM = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
_GEM_TOOLS = {**_GEM, "tools": [{"functionDeclarations": [{"name": "weather"}]}]}
_RESP = {"model": "m", "input": "hi"}
_RESP_TOOLS = {**_RESP, "tools": [{"type": "function", "name": "weather"}]}


def _ollama_lines(tool: bool) -> list[Json]:
    base = {"model": "m", "created_at": "2026-11-21T00:00:00Z", "done": False}
    call = {"function": {"name": "weather", "arguments": {"city": "Paris"}}}
    if tool:
        lines = [{**base, "message": {"role": "assistant", "content": "", "tool_calls": [call]}}]
    else:
        lines = [{**base, "message": {"role": "assistant", "content": w}} for w in ("Hi ", "you")]
    final = {**base, "done": True, "done_reason": "stop", "prompt_eval_count": 42,
             "eval_count": 7, "message": {"role": "assistant", "content": ""}}  # fmt: skip
    return [*lines, final]


def _sse_events(raw: list[bytes]) -> list[tuple[str, Any]]:
    out = []
    for event in SseSplitter().feed(b"".join(raw)):
        data = event.data.decode()
        out.append((event.event, data if data == "[DONE]" else json.loads(data)))
    return out


# (event name, JSON payload, or the text "[DONE]") per event, for each upstream format.
STREAMS: dict[str, list[list[tuple[str, Any]]]] = {
    "openai": [_sse_events(_openai_chunks(_FAKE, b)) for b in (_CHAT, _TOOLS)],
    "anthropic": [_sse_events(_anthropic_events(_FAKE, b)) for b in (_ANTH, _ANTH_TOOLS)],
    "google": [[("", c) for c in fake_gemini._chunks(_FAKE, b, "m")] for b in (_GEM, _GEM_TOOLS)],
    "ollama": [[("", line) for line in _ollama_lines(tool)] for tool in (False, True)],
    "responses": [_sse_events(fake_responses._events(b)) for b in (_RESP, _RESP_TOOLS)],
}
ANSWERS: dict[str, list[Json]] = {
    "openai": [_openai_answer(_FAKE, b) for b in (_CHAT, _TOOLS)],
    "anthropic": [_anthropic_answer(_FAKE, b) for b in (_ANTH, _ANTH_TOOLS)],
    "google": [fake_gemini._answer(_FAKE, b, "m") for b in (_GEM, _GEM_TOOLS)],
    "ollama": [{**_ollama_lines(False)[-1], "message": {"role": "assistant", "content": "Hi"}}],
    "responses": [fake_responses._answer(_FAKE, b) for b in (_RESP, _RESP_TOOLS)],
}


def _all_keys(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _all_keys(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _all_keys(item)


# Keys the parsers look for: arbitrary objects use them often enough to get past the
# first lookups.
KEYS = sorted(set(_all_keys([REQUESTS, STREAMS, ANSWERS])))

# -- strategies --------------------------------------------------------------------------

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),  # json.loads accepts NaN and Infinity
    st.text(max_size=10),
    st.sampled_from(["", "text", "tool", "user", "assistant", "function", "[DONE]", "{", "0"]),
)
json_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children, max_size=5)
    ),
    max_leaves=24,
)
# Replacements that keep a document's shape but change a type: what trips parsers most.
retyped = st.sampled_from([None, True, 0, -1, 1.5, "", "x", [], [None], [1], {}, {"x": None}])
# (drawn values are shared objects: deep-copy them before putting them in a document)
json_objects = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), json_values)

JsonPath = tuple[Any, ...]


def _paths(value: Any, path: JsonPath = ()) -> Iterator[JsonPath]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


# An edit of a JSON document, independent of the document (so that explicit examples can
# name one): ("set" | "delete", which node (modulo the number of nodes), the new value).
Edit = tuple[str, int, Any]
edits = st.lists(
    st.tuples(st.sampled_from(["set", "set", "set", "delete"]), st.integers(0, 10_000),
              retyped | json_values),
    min_size=1, max_size=4,
)  # fmt: skip


def edit_at(doc: Any, path: JsonPath, value: Any = None, op: str = "set") -> Edit:
    """The edit that sets (or deletes) the node at ``path`` of ``doc``."""
    return op, list(_paths(doc)).index(path), value


def apply_edits(doc: Any, script: list[Edit]) -> Any:
    doc = copy.deepcopy(doc)
    for op, where, value in script:
        nodes = list(_paths(doc))
        path = nodes[where % len(nodes)]
        if not path:
            doc = copy.deepcopy(value) if op == "set" else doc
            continue
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        if op == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(value)  # drawn values may be shared objects
    return doc


def _provider(fmt: str) -> ProviderView:
    entry = {"id": "p", "format": fmt, "base_url": "http://127.0.0.1:9", "location": "cloud"}
    return Snapshot.build(PoolSpec.model_validate({"version": 1, "providers": [entry]})).by_id["p"]


PROVIDERS = {name: _provider(name) for name in FORMATS}

# -- inbound request parsers -------------------------------------------------------------

# What the proxy turns into a 400 when decoding (server/_proxy.py, _Context.translated).
DECODE_ERRORS = (TranslationError, TypeError, KeyError, AttributeError)


def _decode_and_encode_everywhere(inbound: str, body: Json) -> None:
    fmt = FORMATS[inbound]
    fmt.capabilities(body)  # routing reads it first, unguarded
    fmt.prepare(body, "m", PROVIDERS[inbound])  # the pass-through path, unguarded
    try:
        req = fmt.decode_request(body)
    except DECODE_ERRORS:
        return
    for name, target in FORMATS.items():
        with contextlib.suppress(TranslationError):  # refused: a 400 naming the provider
            json.dumps(target.encode_request(req, "m", PROVIDERS[name]))


def test_request_seeds_are_valid() -> None:
    for inbound, body in REQUESTS.items():
        req = FORMATS[inbound].decode_request(body)
        assert req.messages and req.tools, inbound


HI = [{"role": "user", "content": "hi"}]


@FUZZ
@given(inbound=st.sampled_from(INBOUND), body=json_objects)
@example(inbound="openai", body={"model": "m", "messages": HI, "temperature": []})
@example(inbound="openai", body={"model": "m", "messages": -1})
def test_inbound_parsers_take_any_json_object(inbound: str, body: Json) -> None:
    _decode_and_encode_everywhere(inbound, body)


@FUZZ
@given(inbound=st.sampled_from(INBOUND), script=edits)
@example(
    inbound="responses", script=[edit_at(REQUESTS["responses"], ("tools", 0, "parameters"), "x")]
)
def test_inbound_parsers_take_mutated_valid_bodies(inbound: str, script: list[Edit]) -> None:
    body = apply_edits(REQUESTS[inbound], script)
    if isinstance(body, dict):
        _decode_and_encode_everywhere(inbound, body)


# -- stream translators ------------------------------------------------------------------


def _serialize(fmt: str, events: list[tuple[str, Any]]) -> bytes:
    out = b""
    for name, payload in events:
        data = payload if payload == "[DONE]" else json.dumps(payload)
        if fmt == "ollama":
            out += data.encode() + b"\n"
        else:
            out += (f"event: {name}\n" if name else "").encode() + f"data: {data}\n\n".encode()
    return out


# What is done to a seed stream: JSON edits of one event, or drop/repeat/swap events;
# then maybe bytes replaced, inserted or deleted. Indices are taken modulo the lengths.
StreamEdit = tuple[str, int, Any]
stream_edits = st.lists(
    st.tuples(st.just("edit"), st.integers(0, 100), edits)
    | st.tuples(st.sampled_from(["drop", "repeat", "swap"]), st.integers(0, 100),
                st.integers(0, 100)),
    min_size=1, max_size=5,
)  # fmt: skip
ByteEdit = tuple[str, int, int]
byte_edits = st.lists(
    st.tuples(st.sampled_from(["replace", "insert", "delete"]), st.integers(0, 100_000),
              st.sampled_from(list(b'\n\r:{}[]",0a \x00\xff'))),
    max_size=3,
)  # fmt: skip
# Mostly none: byte damage mostly just makes the first event invalid.
damages = st.just([]) | st.just([]) | st.just([]) | byte_edits


def edit_stream(events: list[tuple[str, Any]], script: list[StreamEdit]) -> list[tuple[str, Any]]:
    events = list(events)
    for op, at, arg in script:
        if not events:
            break
        i = at % len(events)
        name, payload = events[i]
        if op == "edit":
            events[i] = (name, apply_edits(payload, arg))
        elif op == "drop":
            del events[i]
        elif op == "repeat":
            events.insert(i, events[i])
        else:
            j = arg % len(events)
            events[i], events[j] = events[j], events[i]
    return events


def damage_bytes(raw: bytes, script: list[ByteEdit]) -> bytes:
    buf = bytearray(raw)
    for op, at, byte in script:
        pos = at % (len(buf) + 1)
        if op == "insert":
            buf.insert(pos, byte)
        elif pos < len(buf):
            if op == "replace":
                buf[pos] = byte
            else:
                del buf[pos]
    return bytes(buf)


def stream_edit_at(fmt: str, event: int, path: JsonPath, value: Any) -> list[StreamEdit]:
    """The stream edit that sets one node of one event of ``fmt``'s first seed stream."""
    return [("edit", event, [edit_at(STREAMS[fmt][0][event][1], path, value)])]


def _chunks(raw: bytes, cuts: list[int]) -> Iterator[bytes]:
    start = 0
    for cut in [*cuts, len(raw)]:
        yield raw[start:cut]
        start = cut


def _well_formed_sse(out: bytes, inbound: str) -> None:
    """What a translating watch wrote: whole SSE events, each with JSON data."""
    splitter = SseSplitter()
    events = splitter.feed(out)
    assert splitter.pending == b"", out[-200:]
    for event in events:
        if event.data == b"[DONE]":
            assert inbound == "openai"
            continue
        payload = json.loads(event.data)
        assert isinstance(payload, dict)
        if inbound != "openai":
            assert event.event == payload["type"], event


def _run_stream(upstream: str, inbound: str, raw: bytes, cuts: list[int]) -> None:
    up, client = FORMATS[upstream], FORMATS[inbound]
    splitter: SseSplitter | LineSplitter = SseSplitter() if up.framing == "sse" else LineSplitter()
    if upstream == inbound:
        watch: Any = up.watch(True)
    else:
        req = client.decode_request(REQUESTS[inbound])
        watch = TranslatingWatch(
            up.stream_decoder(), client.stream_encoder("m", req), end_at_eof=not up.end_marker
        )
    out = b""
    try:  # as server/_attempt.py's _first_events and _relay read a stream
        for chunk in _chunks(raw, cuts):
            for event in splitter.feed(chunk):
                out += watch.relay(event) or b""
        out += watch.finish() or b""
    except ValueError:  # the proxy ends the stream with the client's error event
        pass
    if upstream != inbound:
        _well_formed_sse(out, inbound)


PAIRS = [(u, i) for u in FORMATS for i in INBOUND]


def _pairs() -> list[Any]:
    return [pytest.param(u, i, id=f"{u}-to-{i}") for u, i in PAIRS]


def test_stream_seeds_end_normally() -> None:
    for upstream, inbound in PAIRS:
        for events in STREAMS[upstream]:
            raw = _serialize(upstream, events)
            _run_stream(upstream, inbound, raw, [])


# One event of the wrong shape, for each upstream format: each trips its decoder today.
WRONG_SHAPES = {
    "openai": stream_edit_at("openai", 1, ("choices", 0), None),
    "anthropic": stream_edit_at("anthropic", 2, ("index",), {}),
    "responses": stream_edit_at("responses", 5, ("output_index",), [1]),
    "google": stream_edit_at("google", 0, ("candidates", 0, "content", "parts"), True),
    "ollama": stream_edit_at("ollama", 0, ("message",), [None]),
}


def _with_wrong_shapes(test: Callable[..., None]) -> Callable[..., None]:
    for script in WRONG_SHAPES.values():
        test = example(seed=0, script=script, damage=[], cuts=[], arbitrary=None)(test)
    return test


@pytest.mark.parametrize(("upstream", "inbound"), _pairs())
@FUZZ
@given(
    seed=st.integers(0, 1),
    script=stream_edits,
    damage=damages,
    cuts=st.lists(st.integers(0, 100_000), max_size=4),
    arbitrary=st.none() | st.none() | st.none() | st.lists(json_values, max_size=6),
)
@_with_wrong_shapes
def test_stream_translation_of_mutated_streams(
    upstream: str,
    inbound: str,
    seed: int,
    script: list[StreamEdit],
    damage: list[ByteEdit],
    cuts: list[int],
    arbitrary: list[Any] | None,
) -> None:
    if arbitrary is not None:
        events = [("", value) for value in arbitrary]
    else:
        seeds = STREAMS[upstream]
        events = edit_stream(seeds[seed % len(seeds)], script)
    raw = damage_bytes(_serialize(upstream, events), damage)
    _run_stream(upstream, inbound, raw, sorted(c % (len(raw) + 1) for c in cuts))


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=5))
def test_splitters_take_any_bytes(raw: bytes, cuts: list[int]) -> None:
    for splitter in (SseSplitter(), LineSplitter()):
        for chunk in _chunks(raw, sorted(c for c in cuts if c <= len(raw))):
            splitter.feed(chunk)  # only ValueError, for an event over 16 MiB


# -- plain answers -----------------------------------------------------------------------

# What server/_attempt.py's send_plain turns into a failed attempt (then failover).
TRANSFORM_ERRORS = (ValueError, TypeError, KeyError)


@pytest.mark.parametrize(("upstream", "inbound"), _pairs())
@FUZZ
@given(seed=st.integers(0, 1), script=edits)
@example(seed=0, script=[edit_at(ANSWERS["openai"][0], ("choices", 0, "message"), "x")])
@example(seed=0, script=[edit_at(ANSWERS["ollama"][0], ("message",), 1.5)])
def test_answer_translation_of_mutated_answers(
    upstream: str, inbound: str, seed: int, script: list[Edit]
) -> None:
    seeds = ANSWERS[upstream]
    answer = apply_edits(seeds[seed % len(seeds)], script)
    if not isinstance(answer, dict):
        return  # send_plain refuses a non-object answer itself
    up, client = FORMATS[upstream], FORMATS[inbound]
    up.usage(answer)  # read for every answer, unguarded
    if upstream == inbound:
        return  # passed through as it came
    try:
        out = client.encode_response(up.decode_response(answer), "m")
    except TRANSFORM_ERRORS:
        return
    json.dumps(out, allow_nan=False)


# -- end to end: any body to any endpoint of the in-process proxy -------------------------

MODELS = {"openai": "m-openai", "anthropic": "m-anthropic", "responses": "m-responses"}
ENDPOINTS = {
    "/v1/chat/completions": "openai",
    "/v1/messages": "anthropic",
    "/v1/responses": "responses",
    "/v1/messages/count_tokens": "anthropic",
}
CAPABILITIES = ["chat", "vision", "tools", "json", "streaming", "thinking"]
REFUSAL = {"error": {"message": "refused by the fuzz upstream", "type": "invalid_request_error"}}


def _refusing_upstream() -> web.Application:
    """Every upstream refuses with a 400: the proxy must relay it, never fail itself."""

    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        if request.path.startswith("/v1/messages"):  # in Anthropic's own shape
            return web.json_response({"type": "error", **REFUSAL}, status=400)
        return web.json_response(REFUSAL, status=400)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    return app


class ThreadedProxy:
    """The proxy and its upstream on an event loop of their own, in a thread, so that
    hypothesis' synchronous examples can call it with a plain HTTP client."""

    def __init__(self) -> None:
        self.port = 0
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="fuzz-proxy")

    def __enter__(self) -> ThreadedProxy:
        self._thread.start()
        self._ready.wait(10)
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__ or by the tests' requests
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        async with AsyncExitStack() as stack:
            upstream = await stack.enter_async_context(serve(_refusing_upstream()))
            providers = [
                {"id": f"p-{fmt}", "format": fmt, "location": "cloud",
                 "models": [{"id": model, "capabilities": CAPABILITIES}],
                 "base_url": upstream + ("" if fmt == "anthropic" else "/v1")}
                for fmt, model in MODELS.items()
            ]  # fmt: skip
            spec = PoolSpec.model_validate({"version": 1, "providers": providers})
            state = ProxyState(Applied(Snapshot.build(spec), {}), max_request_bytes=64_000)
            url = await stack.enter_async_context(serve(build_proxy_app(state)))
            self.port = int(url.rsplit(":", 1)[1])
            self._ready.set()
            await self._stop.wait()

    def post(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, resp.getheader("Content-Type") or "", resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def proxy() -> Iterator[ThreadedProxy]:
    with ThreadedProxy() as running:
        yield running


def _check_reply(proxy: ThreadedProxy, path: str, body: bytes) -> None:
    status, content_type, raw = proxy.post(path, body)
    assert status < 500, (status, raw[:300])
    assert content_type.startswith("application/json"), (status, content_type, raw[:300])
    answer = json.loads(raw)
    if status == 200:  # only the count can answer itself (an estimate)
        assert path.endswith("count_tokens") and isinstance(answer["input_tokens"], int), answer
        return
    assert 400 <= status < 500, status
    if ENDPOINTS[path] == "anthropic":
        assert answer["type"] == "error", answer
    assert isinstance(answer["error"]["message"], str) and answer["error"]["message"], answer
    assert isinstance(answer["error"]["type"], str), answer


E2E = settings(FUZZ, max_examples=max(1, FUZZ.max_examples // 3))


@E2E
@given(path=st.sampled_from(list(ENDPOINTS)), body=st.binary(max_size=200))
def test_any_bytes_get_a_4xx(proxy: ThreadedProxy, path: str, body: bytes) -> None:
    _check_reply(proxy, path, body)


routable = st.builds(lambda obj, model: {**obj, "model": model}, json_objects,
                     st.sampled_from(list(MODELS.values())))  # fmt: skip


@E2E
@given(path=st.sampled_from(list(ENDPOINTS)), value=json_values | json_objects | routable)
def test_any_json_gets_a_4xx(proxy: ThreadedProxy, path: str, value: Any) -> None:
    _check_reply(proxy, path, json.dumps(value).encode())


@E2E
@given(path=st.sampled_from(list(ENDPOINTS)), model=st.sampled_from(list(MODELS.values())),
       script=edits)  # fmt: skip
@example(path="/v1/chat/completions", model="m-openai",
         script=[edit_at(REQUESTS["openai"], ("messages",), -1)])  # fmt: skip
def test_mutated_valid_bodies_get_a_4xx(
    proxy: ThreadedProxy, path: str, model: str, script: list[Edit]
) -> None:
    body = apply_edits({**REQUESTS[ENDPOINTS[path]], "model": model}, script)
    _check_reply(proxy, path, json.dumps(body).encode())


# The smallest cases of bugs these tests found (500s before their fix).
KNOWN = [
    ("/v1/chat/completions", {"model": "m-openai", "messages": -1}),
    ("/v1/messages", {"model": "m-anthropic", "max_tokens": 5, "messages": -1}),
    ("/v1/messages/count_tokens", {"model": "m-anthropic", "messages": -1}),
    ("/v1/chat/completions", {"model": "m-anthropic", "messages": HI, "temperature": []}),
    ("/v1/chat/completions", {"model": "m-responses", "messages": HI, "max_tokens": "x"}),
    ("/v1/responses", {"model": "m-openai", "input": "hi",
                       "tools": [{"type": "function", "name": "f", "parameters": "x"}]}),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body"), KNOWN)
def test_known_malformed_requests_get_a_4xx(proxy: ThreadedProxy, path: str, body: Json) -> None:
    _check_reply(proxy, path, json.dumps(body).encode())
