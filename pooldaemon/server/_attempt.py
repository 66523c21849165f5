"""One upstream attempt: send, then either answer the client or report a failure.

Nothing reaches the client before the upstream has answered 200 and, for a
stream, sent its first event: until then every failure can still fail over.
Once a stream has started, a failure ends it with the inbound API's error
event, never with a silent clean end.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import aiohttp
import orjson
from aiohttp import web
from yarl import URL

from pooldaemon._values import value_type
from pooldaemon.pool import Failure, FailureClass, ProviderView, Usage, classify
from pooldaemon.server._post import post
from pooldaemon.server._replies import read_limited, retry_after
from pooldaemon.upstream._base import StreamWatch, WireFormat
from pooldaemon.upstream._sse import LineSplitter, SseEvent, SseSplitter

__all__ = ["Failed", "Served", "Upstream", "relay_read", "send_plain", "send_stream"]

_ERROR_BODY_LIMIT = 64 * 1024
_DRAIN_S = 1.0  # how long an upstream may take to end its body after its end marker


class Splitter(Protocol):
    """Stream framing: SSE events or NDJSON lines, as events."""

    def feed(self, chunk: bytes) -> list[SseEvent]: ...


@value_type
class Upstream:
    """Where and what one attempt sends."""

    fmt: WireFormat  # the upstream's format
    inbound: WireFormat  # the client's format (errors in streams are written in it)
    provider: ProviderView
    url: str
    headers: Mapping[str, str]
    body: bytes
    watch: Callable[[], StreamWatch]
    max_response_bytes: int
    timeout: aiohttp.ClientTimeout
    # For a translated answer: the upstream's JSON -> the client's body and the usage
    # (read once, by the decoder that reads the rest of the answer).
    transform: Callable[[dict[str, Any]], tuple[bytes, Usage]] | None = None


@value_type
class Served:
    """The client got an answer (for a stream: possibly ended by an error event).

    A stream's ``response`` is sent (prepared) and accounted for already; a whole
    answer's is not sent yet, so that the caller sends it before its bookkeeping."""

    response: web.StreamResponse
    usage: Usage
    ttfb: float
    # A stream whose end marker came before the upstream ended its body: still open.
    upstream: aiohttp.ClientResponse | None = None

    def let_go(self) -> None:
        """Leave the upstream answer to end on its own, with a limit.

        aiohttp gives the connection back to its pool as soon as the body's end
        (usually the chunked terminator alone) has been read off the socket,
        whether or not anyone reads the body; what the upstream sends after its
        end marker stays in the answer's buffer, which pauses the socket when full.
        A body that has not ended :data:`_DRAIN_S` seconds later is closed
        with its connection. A timer rather than a task: when the end comes in
        time, all that runs is the timer's cancel.
        """
        up = self.upstream
        if up is not None:
            timer = asyncio.get_running_loop().call_later(_DRAIN_S, up.close)
            up.content.on_eof(timer.cancel)


@value_type
class Failed:
    """Nothing was sent to the client; ``status``/``body`` are the upstream's, if any."""

    failure: Failure
    status: int | None = None
    body: bytes = b""
    content_type: str = "application/json"


class _EventStream(web.StreamResponse):
    """A stream whose headers leave with its first event, in one write.

    ``prepare`` would otherwise send the headers on their own: one more
    syscall and one more wake-up of the client before the first event, on
    the path that decides time to first token. The first event is ready
    when ``prepare`` runs, so nothing is held back. (aiohttp's own
    ``web.Response`` buffers its headers the same way.)
    """

    _send_headers_immediately = False


@functools.lru_cache(maxsize=1024)
def _parsed(url: str) -> URL:
    """The URL, parsed once: aiohttp would parse the string again on every request."""
    return URL(url)


def upstream_timeout(provider: ProviderView) -> aiohttp.ClientTimeout:
    """aiohttp's own limit: opening a new connection (TCP and TLS) only.

    The first byte and the total are timed by the attempt itself (:func:`_deadlines`),
    with one timer moved from the one deadline to the other. aiohttp's ``total`` and
    ``connect`` would be two more timers on every request, pooled connection or not,
    all before the first byte (10-20 us of a stream's first chunk here); ``sock_read``
    would cut a long stream that pauses between events.
    """
    return _client_timeout(provider.spec.connect_timeout.total_seconds())


@functools.lru_cache(maxsize=64)
def _client_timeout(connect: float) -> aiohttp.ClientTimeout:
    # Immutable: one per value. It replaces the session's default (5 min in total).
    return aiohttp.ClientTimeout(total=None, connect=None, sock_connect=connect)


def _deadlines(up: Upstream) -> tuple[float, float]:
    """Loop times by which the first byte (headers and, for a stream, its first
    event) and the whole answer must have come: the provider's first_byte_timeout
    and timeout, from now. A name lookup, or a wait for a free connection, counts
    toward the first byte."""
    spec = up.provider.spec
    now = asyncio.get_running_loop().time()
    total = now + spec.timeout.total_seconds()
    return min(now + spec.first_byte_timeout.total_seconds(), total), total


def _ssl(provider: ProviderView) -> bool:
    """True: verify certificates (the default); False only when the spec says so."""
    return provider.spec.tls_verify


async def _failed_from(resp: aiohttp.ClientResponse) -> Failed:
    body, _ = await read_limited(resp.content, _ERROR_BODY_LIMIT)
    text = body.decode("utf-8", "replace")
    kind = classify(resp.status, text)
    if 300 <= resp.status < 400:
        where = resp.headers.get("Location", "nowhere")[:200]
        message = f"HTTP {resp.status}: redirect to {where} not followed (check base_url)"
    else:
        message = f"HTTP {resp.status}: {_error_message(text)}"
    return Failed(
        Failure(kind, message, retry_after(resp.headers)),
        resp.status,
        body,
        resp.headers.get("Content-Type", "application/json"),
    )


def _error_message(text: str) -> str:
    """The message of an upstream JSON error, else the start of the body."""
    try:
        data: Any = json.loads(text)
    except ValueError:
        return text[:200].strip() or "no body"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])[:300]
    return text[:200]


def _transport_failure(exc: BaseException) -> Failure:
    if isinstance(exc, TimeoutError):
        return Failure(FailureClass.timeout, "upstream timed out")
    return Failure(FailureClass.transient, f"{type(exc).__name__}: {exc}"[:300])


async def send_plain(
    session: aiohttp.ClientSession, up: Upstream, extra_headers: Mapping[str, str]
) -> Served | Failed:
    started = time.perf_counter()
    first_at, total_at = _deadlines(up)
    try:
        async with asyncio.timeout_at(first_at) as deadline:
            resp = await post(
                session, _parsed(up.url), up.body, up.headers, up.timeout, _ssl(up.provider)
            )
            deadline.reschedule(total_at)  # the body, an error's too, within the total
            async with resp:
                ttfb = time.perf_counter() - started
                if resp.status != 200:
                    return await _failed_from(resp)
                declared = resp.content_length
                too_large = declared is not None and declared > up.max_response_bytes
                if not too_large:
                    raw, too_large = await read_limited(resp.content, up.max_response_bytes)
                if too_large:
                    message = "answer larger than max_response_bytes"
                    return Failed(Failure(FailureClass.server, message))
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Failed(_transport_failure(exc))
    try:
        data = orjson.loads(raw)
    except ValueError:
        return Failed(Failure(FailureClass.server, "upstream answered with invalid JSON"))
    if not isinstance(data, dict):
        return Failed(Failure(FailureClass.server, "upstream answered with a non-object JSON"))
    if up.transform is None:
        usage = up.fmt.usage(data)
    else:
        try:
            raw, usage = up.transform(data)
        except (ValueError, TypeError, LookupError, AttributeError) as exc:
            message = f"upstream answer cannot be translated: {exc}"
            return Failed(Failure(FailureClass.server, message[:300]))
    response = web.Response(
        body=raw, status=200, content_type="application/json", headers=extra_headers
    )
    return Served(response, usage, ttfb)


async def send_stream(
    session: aiohttp.ClientSession,
    up: Upstream,
    request: web.Request,
    extra_headers: Mapping[str, str],
    account: Callable[[Usage, float, str | None, str], None],
) -> Served | Failed:
    """Stream ``up``'s answer to the client, relayed or translated event by event.

    ``account(usage, ttfb, broken, outcome)`` is called once the client has had
    something: before the stream's last bytes are written (the bookkeeping is
    done while the client still reads the end, not while its next request on
    the connection waits), or when the client has gone.
    """
    started = time.perf_counter()
    # One deadline for the headers and the first event together; an error body is
    # read within the total instead (it can still be classified), and so is the rest
    # of the stream (_relay).
    first_at, total_at = _deadlines(up)
    first_byte = asyncio.timeout_at(first_at)
    pending: aiohttp.ClientResponse | None = None
    resp: aiohttp.ClientResponse | None = None
    try:
        async with first_byte:
            resp = await post(
                session, _parsed(up.url), up.body, up.headers, up.timeout, _ssl(up.provider)
            )
            if resp.status != 200 or (
                up.fmt.framing == "sse" and resp.content_type == "application/json"
            ):
                first_byte.reschedule(total_at)
                return await _not_a_stream(resp)
            splitter: Splitter = SseSplitter() if up.fmt.framing == "sse" else LineSplitter()
            watch = up.watch()
            first = await _first_events(resp, splitter, watch)
    except BaseException as exc:  # a cancelled handler too: no half-read connection kept
        if resp is not None:
            resp.close()
        if isinstance(exc, (TimeoutError, aiohttp.ClientError)):
            return Failed(_transport_failure(exc))
        raise
    try:
        if isinstance(first, Failed):
            return first
        ttfb = time.perf_counter() - started
        out = _EventStream(
            status=200,
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-cache",
                **extra_headers,
            },
        )
        accounted = False
        try:
            await out.prepare(request)
            await out.write(first)
            broken, rest = await _relay(resp, splitter, watch, out, total_at)
            if broken is not None and not watch.error_relayed:
                rest += watch.failure(broken) or up.inbound.stream_error(broken)
            broken = broken or watch.error
            accounted = True
            account(watch.usage, ttfb, broken, "success" if broken is None else "broken_stream")
            await out.write_eof(rest)  # the last events and the end of the body: one write
        except (asyncio.CancelledError, ConnectionResetError):
            # What was streamed still counts; after the end marker went out, the client
            # closing (as SDKs do on [DONE]) is a normal end, not a disconnect.
            if not accounted:
                outcome = "success" if watch.done else "client_disconnected"
                account(watch.usage, ttfb, None, outcome)
            raise
        # The client has its whole stream; the upstream's body (usually only its
        # chunked terminator is left) ends on its own (Served.let_go).
        pending = resp if watch.done and not resp.content.at_eof() else None
        return Served(out, watch.usage, ttfb, pending)
    finally:
        if pending is None:
            resp.close()  # never keep a half-read connection; a no-op after a full read


async def _not_a_stream(resp: aiohttp.ClientResponse) -> Failed:
    """The failure of a stream request answered with an error or without a stream."""
    try:
        failed = await _failed_from(resp)
    finally:
        resp.close()
    if resp.status != 200:
        return failed
    # A stream was asked for and JSON came (an error, or a relay ignoring ``stream``).
    message = f"answered a stream request without a stream: {failed.failure.message}"
    return Failed(Failure(FailureClass.server, message[:300]))


def relay_read(chunk: bytes, splitter: Splitter, watch: StreamWatch) -> bytes:
    """What one read of the upstream's body gives the client: its events, framed by
    ``splitter`` and relayed (or translated) by ``watch``; b"" when none is due."""
    events = splitter.feed(chunk)
    if len(events) == 1:  # a token stream's usual read: one event, nothing to join
        return watch.relay(events[0]) or b""
    return b"".join([b for b in map(watch.relay, events) if b])


async def _first_events(
    resp: aiohttp.ClientResponse, splitter: Splitter, watch: StreamWatch
) -> bytes | Failed:
    """Read until the first relayable event; a failure here can still fail over."""
    try:
        while True:
            chunk = await resp.content.readany()
            if not chunk:
                return Failed(Failure(FailureClass.transient, "stream ended before any event"))
            out = relay_read(chunk, splitter, watch)
            if watch.error is not None:
                kind = classify(529 if "overload" in watch.error.lower() else 500, watch.error)
                return Failed(Failure(kind, f"stream error: {watch.error}"))
            if out:
                return out
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        return Failed(_transport_failure(exc))


async def _relay(
    resp: aiohttp.ClientResponse,
    splitter: Splitter,
    watch: StreamWatch,
    out: web.StreamResponse,
    total_at: float,
) -> tuple[str | None, bytes]:
    """Relay the rest event by event, until the loop time ``total_at`` at the latest;
    why it broke (None for a normal end) and the bytes not sent yet.

    The bytes that end the client's stream are returned rather than written, so
    they leave with the end of the response in one write, as soon as they are
    known: a stream whose end marker came is over for the client even before the
    upstream has ended its body (the caller drains that afterwards). Upstream
    errors end the relay with a reason; a client that went away makes
    ``out.write`` raise, which propagates and closes the upstream request.
    """
    if _ended(watch):  # the first chunk held the whole stream
        return None, b""
    try:
        async with asyncio.timeout_at(total_at):
            while True:
                try:
                    chunk = await resp.content.readany()
                    if not chunk:
                        break
                    data = relay_read(chunk, splitter, watch)
                except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError) as exc:
                    return f"upstream connection broke: {type(exc).__name__}", b""
                except ValueError as exc:
                    return f"upstream sent a malformed stream: {exc}", b""
                if _ended(watch):
                    return None, data
                if data:
                    await out.write(data)  # a client too slow for the total ends it too
    except TimeoutError:
        return "upstream answer took longer than the provider's timeout", b""
    try:
        tail = watch.finish() or b""  # formats without an end marker end here
    except ValueError as exc:
        return f"upstream sent a malformed stream: {exc}", b""
    if watch.error is not None:
        return watch.error, tail
    if not _ended(watch):
        return "upstream stream ended before its end marker", tail
    return None, tail


def _ended(watch: StreamWatch) -> bool:
    """Whether the client's stream has its normal end (``relay`` and ``finish`` set
    it: a function, so that the type checker does not keep an earlier answer)."""
    return watch.done
