"""Model probing: which listed models does the provider actually serve?

Relays often list models they are not configured for. One minimal request per
model (one user word, ``max_tokens`` 1, not streamed), built by the provider's
own wire-format module and sent with bounded concurrency, tells: an answer
proves the model available; a model-not-found answer (404, or a 400 that says
so, as :func:`pooldaemon.pool.classify` reads it) marks it unavailable; any
other failure (401, 429, 5xx, timeout) says nothing about the model, so it
stays unknown and keeps being routed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import aiohttp

from pooldaemon.pool import FailureClass, ProviderView, classify
from pooldaemon.refresh._http import TooLarge, read_capped, safe_text, snippet, with_endpoint
from pooldaemon.upstream import ANTHROPIC, GOOGLE, OLLAMA, OPENAI, RESPONSES, WireFormat
from pooldaemon.upstream._ir import ChatRequest, Message, Text

__all__ = ["ProbeResult", "probe_models", "probe_request"]

_FORMATS: Final[dict[str, WireFormat]] = {
    f.name: f for f in (OPENAI, ANTHROPIC, GOOGLE, OLLAMA, RESPONSES)
}
_ANSWER_BYTES: Final = 1 << 20  # only an error's text is read


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What one probe said of one model (``available`` None: it could not tell)."""

    model: str
    available: bool | None
    status: int | None  # None: no HTTP answer
    error: str | None


def probe_request(
    provider: ProviderView, key: str | None, model: str
) -> tuple[str, dict[str, str], dict[str, object]]:
    """The URL, headers and JSON body of the probe of ``model``, in the provider's format.

    Raises ValueError when the provider's format has no module (``auto`` not resolved).
    """
    fmt = _FORMATS.get(provider.spec.format)
    if fmt is None:
        raise ValueError(f"format {provider.spec.format!r} cannot be probed (not detected yet?)")
    req = ChatRequest(model=model, messages=[Message("user", [Text("hi")])], max_tokens=1)
    body: dict[str, object] = dict(fmt.encode_request(req, model, provider))
    return fmt.url(provider, model, False), fmt.headers(provider, key, {}), body


async def _probe_one(
    session: aiohttp.ClientSession,
    provider: ProviderView,
    key: str | None,
    model: str,
    timeout: float,  # noqa: ASYNC109 - a timeout is a result here, not an exception
) -> ProbeResult:
    url, headers, body = probe_request(provider, key, model)
    try:
        async with (
            asyncio.timeout(timeout),
            session.post(
                url,
                json=body,
                headers=headers,
                ssl=provider.spec.tls_verify,
                allow_redirects=False,
            ) as resp,
        ):
            status = resp.status
            if 200 <= status < 300:
                return ProbeResult(model, True, status, None)
            try:
                text = snippet(await read_capped(resp, _ANSWER_BYTES), 500)
            except TooLarge:
                text = ""
    except TimeoutError:
        return ProbeResult(model, None, None, f"timed out after {timeout:g}s")
    except aiohttp.ClientError as exc:
        return ProbeResult(model, None, None, f"request failed: {type(exc).__name__}: {exc}")
    kind = classify(status, text)
    error = safe_text(f"HTTP {status} ({kind}): {text}", key)
    return ProbeResult(
        model, False if kind is FailureClass.model_not_found else None, status, error
    )


async def probe_models(
    session: aiohttp.ClientSession,
    provider: ProviderView,
    key: str | None,
    models: Sequence[str],
    *,
    concurrency: int = 4,
    timeout: float = 30.0,  # noqa: ASYNC109 - per model, not for the whole call
    wire_format: str | None = None,
    base_url: str | None = None,
) -> dict[str, ProbeResult]:
    """Probe each of ``models`` (at most ``concurrency`` at once, ``timeout`` each).

    ``wire_format`` and ``base_url`` override the spec's (a detected format, the
    base URL that answered the catalog). Raises ValueError for a format with no
    module (``auto`` not resolved) and for ``concurrency`` < 1.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    view = with_endpoint(provider, wire_format=wire_format, base_url=base_url)
    if view.spec.format not in _FORMATS:
        raise ValueError(f"format {view.spec.format!r} cannot be probed (not detected yet?)")
    gate = asyncio.Semaphore(concurrency)

    async def one(model: str) -> ProbeResult:
        async with gate:
            return await _probe_one(session, view, key, model, timeout)

    unique = list(dict.fromkeys(models))
    results = await asyncio.gather(*(one(m) for m in unique))
    return {r.model: r for r in results}
