"""The proxy handlers: authenticate, route, try candidates in order, record usage.

One snapshot is read at the start of a request and used to its end, so a
reload never changes a request half-way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from pooldaemon.errors import BudgetExceededError, UnknownModelError
from pooldaemon.pool import (
    Candidate,
    Failure,
    FailureClass,
    PoolEvent,
    ProviderView,
    RouteDecision,
    RouteRequest,
    SkipReason,
    Usage,
    cost_usd,
    route,
)
from pooldaemon.server._attempt import Failed, Served, Upstream, send_plain, send_stream
from pooldaemon.server._attempt import upstream_timeout as _timeout
from pooldaemon.server._auth import AuthError, authenticate
from pooldaemon.server._images import inline_images
from pooldaemon.server._metrics import OTHER, ProxyMetrics, model_label, provider_label
from pooldaemon.server._replies import Reply, error_response, read_limited, redact, request_id
from pooldaemon.server._state import PROXY_STATE, Applied, ProxyState
from pooldaemon.spec import ClientSpec
from pooldaemon.upstream._base import StreamWatch, WireFormat
from pooldaemon.upstream._ir import ChatRequest, TranslationError
from pooldaemon.upstream._translate import TranslatingWatch
from pooldaemon.upstream.anthropic import ANTHROPIC
from pooldaemon.upstream.google import GOOGLE
from pooldaemon.upstream.ollama import OLLAMA
from pooldaemon.upstream.openai import OPENAI
from pooldaemon.upstream.responses import RESPONSES
from pooldaemon.usage import UsageRecord

__all__ = ["decide", "log_request", "proxy_handler", "request_context"]

_log = logging.getLogger("pooldaemon.proxy")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_ROTATE_KEY = (FailureClass.auth, FailureClass.rate_limit)
# Formats this build speaks upstream; ``auto`` is taken as OpenAI until detection lands.
_FORMATS: dict[str, WireFormat] = {
    "openai": OPENAI,
    "anthropic": ANTHROPIC,
    "ollama": OLLAMA,
    "google": GOOGLE,
    "responses": RESPONSES,
    "auto": OPENAI,
}


@dataclass(slots=True)
class _Context:
    """One request as it goes through its attempts."""

    state: ProxyState
    applied: Applied
    fmt: WireFormat
    request: web.Request
    request_id: str
    client: ClientSpec | None
    body: dict[str, Any]
    model: str
    stream: bool
    size: int = 0  # bytes of the request body
    started: float = 0.0  # perf_counter at arrival
    trace: list[str] = field(default_factory=list)
    attempts: int = 0
    usage: Usage = field(default_factory=Usage)
    provider: str | None = None  # who answered (or was tried last)
    outcome: str | None = None  # success, broken_stream, client_disconnected
    first_send: float | None = None  # perf_counter when the first upstream request left
    ir: ChatRequest | None = None  # the request in the IR, decoded when first translated
    images_inlined: bool = False
    untranslatable: str | None = None  # why the request could not go to another format
    reported: bool = False  # request metrics and log line done (a stream does them early)

    async def translated(self, fmt: WireFormat) -> ChatRequest:
        """The request in the IR, ready for ``fmt``; raises TranslationError."""
        if self.ir is None:
            try:
                self.ir = self.fmt.decode_request(self.body)
            except TranslationError:
                raise
            except (TypeError, LookupError, AttributeError, ValueError) as exc:
                raise TranslationError(f"malformed request: {exc}") from None
        if fmt.inline_images and not self.images_inlined:
            assert self.state.session is not None
            await inline_images(self.ir, self.state.session)
            self.images_inlined = True
        return self.ir


def proxy_handler(fmt: WireFormat) -> Handler:
    """The aiohttp handler for clients speaking ``fmt``."""

    async def handle(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        state = request.app[PROXY_STATE]
        rid = request_id(request.headers)
        ctx: _Context | None = None
        status = 500
        try:
            ctx = await request_context(request, state, fmt, rid, started)
            response = await _serve(ctx)
            status = response.status
            return response
        except Reply as reply:
            status = reply.status
            headers = {"x-request-id": rid, **reply.headers}
            return error_response(fmt, reply.status, reply.message, headers)
        except (ConnectionResetError, web.HTTPException):
            raise
        except Exception:  # a bug: the client still gets its API's error shape
            _log.exception("request_id=%s failed unexpectedly", rid)
            status = 500
            return error_response(fmt, 500, "internal error", {"x-request-id": rid})
        finally:
            if ctx is None or not ctx.reported:
                _report(state, ctx, rid, status, time.perf_counter() - started)

    return handle


def _report(state: ProxyState, ctx: _Context | None, rid: str, status: int, elapsed: float) -> None:
    """The request's metrics and log line, once its answer is settled."""
    if state.metrics is not None:
        _observe_request(state.metrics, ctx, status, elapsed)
    log_request(ctx, rid, status, elapsed)


async def request_context(
    request: web.Request, state: ProxyState, fmt: WireFormat, rid: str, started: float
) -> _Context:
    applied = state.applied
    try:
        client = authenticate(request.headers, applied.snapshot.spec)
    except AuthError as exc:
        raise Reply(401, str(exc)) from None
    body, size = await _read_json(request, state.max_request_bytes)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise Reply(400, "'model' is required and must be a string")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise Reply(400, "'stream' must be a boolean")
    return _Context(state, applied, fmt, request, rid, client, body, model, stream, size, started)


async def _read_json(request: web.Request, limit: int) -> tuple[dict[str, Any], int]:
    """The body's JSON object and its size in bytes."""
    if request.content_length is not None and request.content_length > limit:
        raise Reply(413, f"request body is larger than {limit} bytes")
    raw, too_large = await read_limited(request.content, limit)
    if too_large:
        raise Reply(413, f"request body is larger than {limit} bytes")
    try:
        body = orjson.loads(raw)
    except ValueError as exc:
        raise Reply(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise Reply(400, "request body must be a JSON object")
    return body, len(raw)


def decide(ctx: _Context) -> RouteDecision:
    state, snapshot = ctx.state, ctx.applied.snapshot
    sticky = snapshot.spec.routing.sticky and ctx.request.headers.get("x-pooldaemon-provider")
    request = RouteRequest(
        model=ctx.model,
        capabilities=ctx.fmt.capabilities(ctx.body),
        client=ctx.client.name if ctx.client else None,
        preferred_provider=sticky or None,
        input_tokens=ctx.size // 4,  # the body's size, chunked bodies too
        stream=ctx.stream,
    )
    try:
        decision = route(request, snapshot, state.runtime, state.clock(), state.wall())
    except UnknownModelError as exc:
        raise Reply(404, str(exc)) from None
    except BudgetExceededError as exc:
        raise Reply(429, str(exc)) from None
    if decision.strategy == "round_robin":
        state.runtime.advance(ctx.model)  # the next request starts at the next provider
    return decision


def _no_candidate(decision: RouteDecision) -> Reply:
    reasons = {s.reason for s in decision.skipped}
    why = "; ".join(
        f"{s.provider}: {s.reason}{f' ({s.detail})' if s.detail else ''}" for s in decision.skipped
    )
    if decision.retry_after is not None:
        wait = max(1, round(decision.retry_after + 0.5))
        return Reply(
            503,
            f"every provider for {decision.model!r} is cooling down; {why}",
            {"Retry-After": str(wait)},
        )
    if reasons == {SkipReason.client_not_allowed}:
        return Reply(403, f"this client may not use {decision.model!r}")
    return Reply(503, f"no provider can take {decision.model!r} now: {why}")


async def _serve(ctx: _Context) -> web.StreamResponse:
    decision = decide(ctx)
    if not decision.candidates:
        raise _no_candidate(decision)
    queue = list(decision.candidates)
    providers_tried: set[str] = set()
    tried_keys: dict[str, set[str]] = {}
    last: Failed | None = None
    while queue:
        candidate = queue.pop(0)
        provider = ctx.applied.snapshot.by_id[candidate.provider]
        if provider.id not in providers_tried and len(providers_tried) >= decision.max_attempts:
            break  # skipped candidates cost nothing; providers tried are bounded
        result = await _try(ctx, candidate, provider, tried_keys.setdefault(provider.id, set()))
        if result is None:
            continue  # not tried (no usable key, unsupported format)
        providers_tried.add(provider.id)
        if isinstance(result, web.StreamResponse):
            return result
        last = result
        if not result.failure.kind.fails_over:
            return _relay_error(ctx, result, provider)
        if result.failure.kind in _ROTATE_KEY and _another_key(ctx, provider, tried_keys):
            queue.insert(0, candidate)  # the same provider with its next key
    raise _exhausted(ctx, last)


def _another_key(ctx: _Context, provider: ProviderView, tried: dict[str, set[str]]) -> bool:
    usable = ctx.state.runtime.usable_keys(provider, ctx.state.clock())
    secrets = ctx.applied.secrets
    return any(k.key_id in secrets and k.key_id not in tried[provider.id] for k in usable)


async def _try(
    ctx: _Context, candidate: Candidate, provider: ProviderView, tried_keys: set[str]
) -> web.StreamResponse | Failed | None:
    """One attempt at ``provider``; None when it could not be tried at all."""
    state, runtime = ctx.state, ctx.state.runtime
    fmt = upstream_format(provider)
    if fmt is None:
        ctx.trace.append(f"{provider.id}:format_{provider.spec.format}_not_supported_yet")
        return None
    if fmt is not ctx.fmt:
        try:
            await ctx.translated(fmt)
        except TranslationError as exc:
            # Providers of the client's own format may still take it as it is.
            ctx.trace.append(f"{provider.id}:untranslatable")
            ctx.untranslatable = str(exc)
            return None
    key = None
    if provider.keys:
        secrets = ctx.applied.secrets
        key = runtime.pick_key(provider, state.clock(), allowed=secrets, exclude=tried_keys)
        if key is None:
            resolved = any(k.key_id in secrets for k in provider.keys if k.enabled)
            ctx.trace.append(f"{provider.id}:{'no_key' if resolved else 'key_unresolved'}")
            return None
        tried_keys.add(key.key_id)
    if candidate.half_open:
        runtime.begin_probe(provider.id, state.clock())
    ctx.attempts += 1
    key_id = key.key_id if key else ""
    result = await _attempt(ctx, candidate, ctx.applied.secrets.get(key_id), key_id)
    if isinstance(result, Served):
        if result.response.prepared:  # a stream: sent and accounted for by the attempt
            result.let_go()
            return result.response
        try:  # a whole answer goes out before the bookkeeping: the client has it sooner
            await result.response.prepare(ctx.request)
            await result.response.write_eof()
        finally:  # recorded even when the client went away: the upstream answered
            _record(ctx, candidate, key_id, result.usage, result.ttfb, None)
        return result.response
    events = runtime.record_failure(
        provider, result.failure, state.clock(), key_id=key_id or None, model=candidate.model
    )
    ctx.trace.append(f"{provider.id}:{result.failure.kind}")
    if state.metrics is not None:
        _count_cooldowns(state.metrics, events)
        if result.failure.kind.fails_over:
            state.metrics.failovers(provider.id, str(result.failure.kind)).inc()
    return result


def _count_cooldowns(metrics: ProxyMetrics, events: list[PoolEvent]) -> None:
    for event in events:
        if event.kind in ("opened", "reopened"):
            metrics.cooldowns(event.provider, str(event.reason or "unknown")).inc()


def upstream_format(provider: ProviderView) -> WireFormat | None:
    """The wire format spoken to a provider (None: not supported by this build yet)."""
    return _FORMATS.get(provider.spec.format)


async def _upstream(ctx: _Context, candidate: Candidate, secret: str | None) -> Upstream:
    provider = ctx.applied.snapshot.by_id[candidate.provider]
    fmt = upstream_format(provider)
    assert fmt is not None, "checked by the caller"
    model = candidate.model
    inbound = ctx.fmt
    transform: Callable[[dict[str, Any]], tuple[bytes, Usage]] | None = None
    watch: Callable[[], StreamWatch]
    if fmt is inbound:  # the fast path: the body passes through, model rewritten
        body, wants_usage = fmt.prepare(ctx.body, model, provider)
        watch = lambda: fmt.watch(wants_usage)  # noqa: E731
    else:
        req = await ctx.translated(fmt)  # already prepared by _try: no I/O here
        try:
            body = fmt.encode_request(req, model, provider)
        except (TranslationError, TypeError, ValueError, LookupError, AttributeError) as exc:
            # A field of the wrong type (temperature: []) is the client's mistake.
            raise Reply(400, f"request cannot be sent to {provider.id}: {exc}") from None

        def transform(data: dict[str, Any]) -> tuple[bytes, Usage]:
            answer = fmt.decode_response(data)
            return orjson.dumps(inbound.encode_response(answer, model)), answer.usage

        def watch() -> StreamWatch:
            return TranslatingWatch(
                fmt.stream_decoder(),
                inbound.stream_encoder(model, req),
                end_at_eof=not fmt.end_marker,
            )

    return Upstream(
        fmt=fmt,
        inbound=inbound,
        provider=provider,
        url=fmt.url(provider, model, ctx.stream),
        headers=fmt.headers(provider, secret, ctx.request.headers),
        body=orjson.dumps(body),
        watch=watch,
        max_response_bytes=ctx.state.max_response_bytes,
        timeout=_timeout(provider),
        transform=transform,
    )


async def _attempt(
    ctx: _Context, candidate: Candidate, secret: str | None, key_id: str
) -> Served | Failed:
    state = ctx.state
    up = await _upstream(ctx, candidate, secret)
    headers = {
        "x-pooldaemon-provider": candidate.provider,
        "x-pooldaemon-attempts": str(ctx.attempts),
        "x-request-id": ctx.request_id,
    }
    session = state.session
    assert session is not None, "the proxy app's client session is opened by its cleanup_ctx"
    ctx.provider = candidate.provider
    if ctx.first_send is None:
        ctx.first_send = time.perf_counter()
    if not ctx.stream:
        return await send_plain(session, up, headers)

    def account(usage: Usage, ttfb: float, broken: str | None, outcome: str) -> None:
        # Synchronous on purpose: it may run while the handler is being cancelled.
        # The stream's status is settled (200, sent); the handler's own report would
        # come only after the client has the end of the stream.
        _record(ctx, candidate, key_id, usage, ttfb, broken, outcome=outcome)
        ctx.reported = True
        _report(state, ctx, ctx.request_id, 200, time.perf_counter() - ctx.started)

    return await send_stream(session, up, ctx.request, headers, account)


def _relay_error(ctx: _Context, failed: Failed, provider: ProviderView) -> web.Response:
    """A client error (400 and such): the upstream's answer, in the client's format."""
    status = failed.status or 400
    headers = {"x-request-id": ctx.request_id, "x-pooldaemon-attempts": str(ctx.attempts)}
    secrets = ctx.applied.secrets.values()
    if upstream_format(provider) is not ctx.fmt:
        message = redact(failed.failure.message, secrets)
        return error_response(ctx.fmt, status, f"upstream {provider.id}: {message}", headers)
    body = redact(failed.body.decode("utf-8", "replace"), secrets)
    return web.Response(text=body, status=status, content_type="application/json", headers=headers)


def _exhausted(ctx: _Context, last: Failed | None) -> Reply:
    trace = " -> ".join(ctx.trace) or "nothing tried"
    headers = {"x-pooldaemon-attempts": str(ctx.attempts)}
    if last is None and ctx.untranslatable is not None:
        return Reply(
            400,
            f"request cannot be translated for the providers of "
            f"{ctx.model!r} ({trace}): {ctx.untranslatable}",
            headers,
        )
    if last is None:
        return Reply(503, f"no provider could be tried ({trace})", headers)
    message = redact(last.failure.message, ctx.applied.secrets.values())
    text = f"all attempts failed ({trace}); last: {message}"
    kind = last.failure.kind
    if kind is FailureClass.rate_limit:
        if last.failure.retry_after is not None:
            headers["Retry-After"] = str(max(1, round(last.failure.retry_after + 0.5)))
        return Reply(429, text, headers)
    if kind is FailureClass.timeout:
        return Reply(504, text, headers)
    return Reply(502, text, headers)


def _record(
    ctx: _Context,
    candidate: Candidate,
    key_id: str,
    usage: Usage,
    ttfb: float,
    broken: str | None,
    *,
    outcome: str | None = None,
) -> None:
    """Runtime state, budgets and the usage store after an answer reached the client."""
    state, runtime = ctx.state, ctx.state.runtime
    now = state.clock()
    provider_id = candidate.provider
    latency = time.perf_counter() - ctx.started
    if broken is None:
        runtime.record_success(provider_id, now, key_id=key_id or None, latency=latency, ttfb=ttfb)
    else:
        provider = ctx.applied.snapshot.by_id[provider_id]
        events = runtime.record_failure(provider, Failure(FailureClass.transient, broken), now)
        if state.metrics is not None:
            _count_cooldowns(state.metrics, events)
    outcome = outcome or ("success" if broken is None else "broken_stream")
    ctx.outcome = outcome
    ctx.trace.append(f"{provider_id}:{'ok' if outcome == 'success' else outcome}")
    quote = (
        candidate.target.quote
        if candidate.target
        else ctx.applied.snapshot.quote(provider_id, candidate.model)
    )
    cost = cost_usd(usage, quote.price) if usage.total or quote.price.per_request else 0.0
    wall = state.wall()
    runtime.ledger.add("provider", provider_id, cost, usage.total, wall)
    runtime.consume(provider_id, usage, wall)  # e.g. a trial licence's token limit
    if ctx.client is not None:
        runtime.ledger.add("client", ctx.client.name, cost, usage.total, wall)
    if state.store is not None:
        state.store.add(
            UsageRecord(
                ts=wall,
                request_id=ctx.request_id,
                provider=provider_id,
                model=candidate.model,
                key_id=key_id,
                client=ctx.client.name if ctx.client else None,
                usage=usage,
                latency_ms=latency * 1000,
                ttfb_ms=ttfb * 1000,
                outcome=outcome,
                cost_usd=cost,
                pricing_source=quote.label,
            )
        )
    ctx.usage = usage
    if state.metrics is not None:
        _observe_usage(state.metrics, ctx, provider_id, candidate.model, usage, cost, ttfb)


def _observe_usage(
    metrics: ProxyMetrics,
    ctx: _Context,
    provider: str,
    model: str,
    usage: Usage,
    cost: float,
    ttfb: float,
) -> None:
    snapshot = ctx.applied.snapshot
    p, m = provider_label(snapshot, provider), model_label(snapshot, model)
    metrics.ttfb(p).observe(ttfb)
    for kind, count in (
        ("input", usage.input),
        ("output", usage.output),
        ("cache_read", usage.cache_read),
        ("cache_write", usage.cache_write),
        ("reasoning", usage.reasoning),
    ):
        if count:
            metrics.tokens(p, m, kind).inc(count)
    if cost:
        metrics.cost(p, m).inc(cost)


_OUTCOMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "unknown_model",
    413: "too_large",
    429: "rate_limited",
    502: "upstream_error",
    503: "unavailable",
    504: "timeout",
}


def _observe_request(
    metrics: ProxyMetrics, ctx: _Context | None, status: int, elapsed: float
) -> None:
    if ctx is None:
        metrics.requests(OTHER, OTHER, _OUTCOMES.get(status, "error")).inc()
        return
    snapshot = ctx.applied.snapshot
    p, m = provider_label(snapshot, ctx.provider), model_label(snapshot, ctx.model)
    outcome = ctx.outcome or _OUTCOMES.get(status, "success" if status < 400 else "error")
    metrics.requests(p, m, outcome).inc()
    metrics.duration(p, m).observe(elapsed)
    if ctx.first_send is not None:
        metrics.overhead.observe(ctx.first_send - ctx.started)


def log_request(ctx: _Context | None, rid: str, status: int, elapsed: float) -> None:
    if not _log.isEnabledFor(logging.INFO):
        return  # the arguments below cost more than the call (e.g. at log level warning)
    if ctx is None:
        _log.info("request_id=%s status=%d latency_ms=%.1f", rid, status, elapsed * 1000)
        return
    usage = ctx.usage
    model = ctx.model.encode("unicode_escape").decode()[:200]  # client text: one log line
    _log.info(
        "request_id=%s client=%s model=%s stream=%s status=%d attempts=%d trace=%s "
        "latency_ms=%.1f input=%d output=%d",
        rid,
        ctx.client.name if ctx.client else "-",
        model,
        ctx.stream,
        status,
        ctx.attempts,
        " -> ".join(ctx.trace) or "-",
        elapsed * 1000,
        usage.input,
        usage.output,
    )
