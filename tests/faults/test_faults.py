"""Every upstream fault x plain/streamed x client API, through the in-process proxy.

One proxy serves two models: ``gpt-4o`` on a faulty provider with a healthy one
behind it (the request must succeed by failover, unless a stream had already
started), and ``solo`` on a faulty provider alone (the client must get its own
API's well-formed error: before the stream, or as the stream's error event).
Never a silent normal end, never a hang, never a crash; and no task, socket or
upstream connection outlives the requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from tests.faults.fault_upstream import RETRY_AFTER, Fault, FaultUpstream, fault_app
from tests.server.conftest import Gateway, GatewayFactory
from tests.server.fakes import serve

HI = [{"role": "user", "content": "hi"}]
TEXT = "Hello from the fake"
# Small limits, so that stalls and endless answers cost well under a second each.
LIMITS = {"first_byte_timeout": "500ms", "timeout": "900ms", "connect_timeout": "500ms"}
MAX_RESPONSE_BYTES = 256 * 1024
CLIENT_TIMEOUT = 10.0  # a hang fails the test long before pytest's own timeout

# The status the client gets when the only provider fails this way.
SOLO_STATUS = {
    Fault.status_500: 502,
    Fault.status_502: 502,
    Fault.status_503: 502,
    Fault.rate_limit: 429,
    Fault.reset: 502,
    Fault.error_reset: 502,
    Fault.partial_head: 502,
    Fault.stall_headers: 504,
    Fault.stall_mid: 504,
    Fault.malformed: 502,
    Fault.malformed_mid: 502,
    Fault.wrong_shape: 502,
    Fault.wrong_shape_mid: 502,
    Fault.truncated: 502,
    Fault.endless: 502,
}
FAULTS: list[Fault] = [f for f in Fault if f is not Fault.ok]


@dataclass
class Result:
    """What one client saw: ``ok``, ``error`` (before any stream), ``broken`` (a stream
    ended by its error event) or ``silent`` (a stream that ended without its end)."""

    kind: str
    status: int
    provider: str | None = None
    text: str = ""
    message: str = ""
    headers: Mapping[str, str] | None = None


def _provider(pid: str, url: str, priority: int, model: str) -> dict[str, Any]:
    return {
        "id": pid,
        "location": "cloud",
        "priority": priority,
        "base_url": f"{url}/v1",
        "keys": [{"env": "OPENAI_A_KEY"}],
        "models": [{"id": model}],
        **LIMITS,
    }


@dataclass
class Rig:
    gw: Gateway
    bad: FaultUpstream  # in front of ``good`` for gpt-4o
    good: FaultUpstream
    solo: FaultUpstream  # alone for ``solo``
    stack: AsyncExitStack
    _openai: openai.AsyncOpenAI | None = None
    _anthropic: anthropic.AsyncAnthropic | None = None

    def openai(self) -> openai.AsyncOpenAI:
        if self._openai is None:  # one per test: building a client costs ~20 ms
            self._openai = openai.AsyncOpenAI(
                base_url=f"{self.gw.url}/v1", api_key="-", max_retries=0, timeout=CLIENT_TIMEOUT
            )
            self.stack.push_async_callback(self._openai.close)
        return self._openai

    def anthropic(self) -> anthropic.AsyncAnthropic:
        if self._anthropic is None:
            self._anthropic = anthropic.AsyncAnthropic(
                base_url=self.gw.url, api_key="-", max_retries=0, timeout=CLIENT_TIMEOUT
            )
            self.stack.push_async_callback(self._anthropic.close)
        return self._anthropic

    @property
    def upstreams(self) -> tuple[FaultUpstream, ...]:
        return (self.bad, self.good, self.solo)

    def records(self) -> list[tuple[str, str, str]]:
        """(request_id, provider, outcome) of every usage record, flushed now."""
        self.gw.store.flush()
        with sqlite3.connect(self.gw.store.path) as db:
            rows = db.execute("SELECT request_id, provider, outcome FROM usage").fetchall()
        return [(str(a), str(b), str(c)) for a, b, c in rows]


@asynccontextmanager
async def rig(gateway: GatewayFactory) -> AsyncIterator[Rig]:
    async with AsyncExitStack() as stack:
        # "slow" answers at half the first-byte limit: late, yet in time
        bad, good, solo = (FaultUpstream(slow_delay=0.25) for _ in range(3))
        for up in (bad, good, solo):
            up.url = await stack.enter_async_context(serve(fault_app(up)))
        gw = await gateway(
            providers=[
                _provider("bad", bad.url, 2, "gpt-4o"),
                _provider("good", good.url, 1, "gpt-4o"),
                _provider("solo", solo.url, 1, "solo"),
            ]
        )
        gw.state.max_response_bytes = MAX_RESPONSE_BYTES
        yield Rig(gw, bad, good, solo, stack)


# -- the three client APIs, through their official SDKs ------------------------------


def _error(exc: openai.APIStatusError | anthropic.APIStatusError, api: str) -> Result:
    """An error answer before any stream: it must be in the client API's own shape."""
    body = exc.response.json()
    if api == "messages":
        assert body["type"] == "error", body
    error = body["error"]
    assert isinstance(error["type"], str) and error["type"], body
    assert isinstance(error["message"], str) and error["message"], body
    return Result("error", exc.status_code, message=error["message"], headers=exc.response.headers)


async def _chat(rig: Rig, model: str, stream: bool) -> Result:
    create = rig.openai().chat.completions.with_raw_response.create
    try:
        raw = await create(model=model, messages=HI, stream=stream)  # type: ignore[call-overload]
    except openai.APIStatusError as exc:
        return _error(exc, "chat")
    provider = raw.headers.get("x-pooldaemon-provider")
    if not stream:
        return Result("ok", 200, provider, raw.parse().choices[0].message.content or "")
    text, finish = "", None
    try:
        async for chunk in raw.parse():
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
    except openai.APIError as exc:  # the stream's error event
        return Result("broken", 200, provider, text, exc.message)
    return Result("ok" if finish == "stop" else "silent", 200, provider, text)


async def _messages(rig: Rig, model: str, stream: bool) -> Result:
    create = rig.anthropic().messages.with_raw_response.create
    try:
        raw = await create(model=model, max_tokens=16, messages=HI, stream=stream)  # type: ignore[arg-type]
    except anthropic.APIStatusError as exc:
        return _error(exc, "messages")
    provider = raw.headers.get("x-pooldaemon-provider")
    if not stream:
        message = await raw.parse()
        return Result("ok", 200, provider, "".join(b.text for b in message.content))
    text, stopped = "", False
    try:
        async for event in await raw.parse():
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text += event.delta.text
            stopped = event.type == "message_stop"
    except anthropic.APIError as exc:  # event: error
        return Result("broken", 200, provider, text, exc.message)
    return Result("ok" if stopped else "silent", 200, provider, text)


async def _responses(rig: Rig, model: str, stream: bool) -> Result:
    create = rig.openai().responses.with_raw_response.create
    try:
        raw = await create(model=model, input="hi", stream=stream)  # type: ignore[call-overload]
    except openai.APIStatusError as exc:
        return _error(exc, "responses")
    provider = raw.headers.get("x-pooldaemon-provider")
    if not stream:
        return Result("ok", 200, provider, raw.parse().output_text)
    text, end = "", None
    async for event in raw.parse():
        assert end is None, f"{event.type} after {end}"  # nothing after the end
        if event.type == "response.output_text.delta":
            text += event.delta
        elif event.type == "response.completed":
            end = "ok"
        elif event.type == "response.failed":
            error = event.response.error
            assert error is not None and error.message, event
            return Result("broken", 200, provider, text, error.message)
    return Result(end or "silent", 200, provider, text)


CLIENTS: dict[str, Callable[[Rig, str, bool], Awaitable[Result]]] = {
    "chat": _chat,
    "messages": _messages,
    "responses": _responses,
}


def _served(fault: Fault, stream: bool) -> str:
    """What the client must see from a faulty provider: ok, broken or error."""
    if fault is Fault.slow:
        return "ok"
    return "broken" if stream and fault.commits else "error"


def _check(result: Result, expected: str, fault: Fault, provider: str, case: str) -> None:
    assert result.kind == expected, (case, result)
    if expected == "ok":
        assert result.text == TEXT, (case, result)
        assert result.provider == provider, (case, result)
    elif expected == "broken":
        assert result.message, (case, result)  # a message the client can show
        assert result.provider == provider, (case, result)
    else:
        assert result.status == SOLO_STATUS[fault], (case, result)
        assert result.headers is not None
        if fault is Fault.rate_limit:
            assert int(result.headers["Retry-After"]) >= RETRY_AFTER, (case, result)


def _cases() -> list[Any]:
    cases = []
    for fault in FAULTS:
        for api in CLIENTS:
            if api == "chat" and fault in (Fault.wrong_shape, Fault.wrong_shape_mid):
                continue  # the pass-through relays valid JSON as it came, by design
            cases.append(pytest.param(fault, api, id=f"{fault}-{api}"))
    return cases


@pytest.mark.parametrize(("fault", "api"), _cases())
async def test_fault(gateway: GatewayFactory, fault: Fault, api: str) -> None:
    """Plain and streamed, with a healthy provider behind and alone, all at once."""
    async with rig(gateway) as r:
        r.bad.script.extend([fault, fault])
        r.solo.script.extend([fault, fault])
        call = CLIENTS[api]
        cases = [(model, stream) for stream in (False, True) for model in ("gpt-4o", "solo")]
        outcomes = await asyncio.gather(*(call(r, m, s) for m, s in cases), return_exceptions=True)
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

        expected_records = []
        for (model, stream), result in zip(cases, outcomes, strict=True):
            assert isinstance(result, Result)
            case = f"{model} {'stream' if stream else 'plain'}"
            served = _served(fault, stream)
            if model == "solo":
                provider, want = "solo", served
            elif served == "error":  # the healthy provider behind takes it
                provider, want = "good", "ok"
            else:
                provider, want = "bad", served
            _check(result, want, fault, provider, case)
            if want != "error":
                expected_records.append((provider, {"ok": "success"}.get(want, "broken_stream")))
        # Exactly the answers that reached a client are in the usage store.
        assert sorted((p, o) for _, p, o in r.records()) == sorted(expected_records)


# -- leaks -------------------------------------------------------------------------


def _sockets() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # closed between listdir and readlink
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return count


@dataclass(frozen=True)
class Census:
    tasks: int
    sockets: int  # of this process: clients, proxy and upstreams alike
    pooled: int  # idle keep-alive connections of the proxy's upstream pool
    acquired: int  # upstream connections in use by the proxy
    handlers: int  # upstream handlers still running

    @classmethod
    def take(cls, r: Rig) -> Census:
        session = r.gw.state.session
        assert session is not None
        connector: Any = session.connector  # counts only aiohttp itself keeps
        pooled = sum(len(conns) for conns in connector._conns.values())
        return cls(
            tasks=len(asyncio.all_tasks()),
            sockets=_sockets(),
            pooled=pooled,
            acquired=len(connector._acquired),
            handlers=sum(up.active for up in r.upstreams),
        )

    def settled_like(self, before: Census) -> bool:
        # A pooled idle connection is two sockets of this process (both ends) and the
        # upstream server's task reading the next request on it.
        return (
            self.tasks - self.pooled <= before.tasks - before.pooled
            and self.acquired == 0
            and self.handlers == 0
            and self.sockets - 2 * self.pooled <= before.sockets - 2 * before.pooled
        )


async def _raw_batch(r: Rig, faults: list[Fault]) -> list[int]:
    """One request per fault, plain and streamed, on fresh connections (no client pool)."""
    connector = aiohttp.TCPConnector(force_close=True)
    timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def one(stream: bool) -> int:
            body = {"model": "solo", "messages": HI, "stream": stream}
            async with http.post(f"{r.gw.url}/v1/chat/completions", json=body) as resp:
                await resp.read()
                return resp.status

        r.solo.script.extend(faults)  # served in arrival order: which gets which does not matter
        return await asyncio.gather(*(one(i % 2 == 1) for i in range(len(faults))))


async def test_no_task_socket_or_connection_outlives_faulty_requests(
    gateway: GatewayFactory,
) -> None:
    async with rig(gateway) as r:
        await _raw_batch(r, [Fault.ok] * 4)  # warm up: the proxy's pool, lazy imports
        await asyncio.sleep(0.1)
        before = Census.take(r)
        statuses = await _raw_batch(r, FAULTS * 2)
        assert all(s in (200, 429, 502, 504) for s in statuses), statuses
        after = Census.take(r)
        for _ in range(40):  # handlers of hung-up upstreams finish their cancellation
            if after.settled_like(before):
                break
            await asyncio.sleep(0.05)
            after = Census.take(r)
        assert after.settled_like(before), (before, after)


async def test_client_disconnect_mid_stream_cancels_the_upstream(gateway: GatewayFactory) -> None:
    """(Disconnecting while waiting for headers is tests/server/test_failover.py's.)"""
    async with rig(gateway) as r:
        r.solo.script.append(Fault.endless)  # a stream that would go on for the whole timeout
        before = Census.take(r)
        body = {"model": "solo", "messages": HI, "stream": True}
        async with aiohttp.ClientSession() as http:
            resp = await http.post(f"{r.gw.url}/v1/chat/completions", json=body)
            assert resp.status == 200
            await resp.content.readany()  # the stream has started
            resp.close()  # and the client goes away
            gone = time.perf_counter()
        await asyncio.wait_for(r.solo.idle.wait(), 5)
        # At once: the proxy's own 0.9 s timeout would end it too, later.
        assert time.perf_counter() - gone < 0.6
        after = Census.take(r)
        assert after.acquired == 0 and after.tasks <= before.tasks, (before, after)
        assert [o for _, _, o in r.records()] == ["client_disconnected"]


def test_every_fault_has_an_expected_status() -> None:
    assert set(SOLO_STATUS) | {Fault.slow} == set(FAULTS)
