"""Format detection for ``format: auto``: from the base URL when it says, else by probing.

:func:`format_from_url` is pure and answers only for signals that fix the
format (first match wins; paths are compared lower-case, without a trailing
slash):

=====================================================  ============
signal                                                 format
=====================================================  ============
path ends ``/chat/completions``                        openai
path ends ``/responses`` or ``/codex``                 responses
path ends ``/messages`` or ``/anthropic``              anthropic
path ends ``/openai`` or ``/openai/v<N>``              openai
host ``api.anthropic.com``                             anthropic
host ``generativelanguage.googleapis.com``             google
host ``api.openai.com``                                openai
path ends ``/v1beta`` or ``/v1alpha``                  google
port 11434 (Ollama's) with no path or ``/api``         ollama
=====================================================  ============

Paths come before hosts: ``generativelanguage.googleapis.com/v1beta/openai``
is Gemini's OpenAI-compatible endpoint, and ``api.deepseek.com/anthropic``
its Anthropic one. A bare version path (``/v1``, ``/api/v3``) is *not* a
signal: OpenAI-compatible relays use it, but so do relays that also speak
Anthropic, so it only orders the probes (a bare host is also probed as an
OpenAI base URL at ``/v1``). Endpoint paths (``/chat/completions``,
``/responses``, ``/messages``) are removed from the base URL the detection
reports, since the wire-format modules append them again.

:func:`detect_format` otherwise probes with the model-listing call of each
format, cheapest first and stopping at the first proof: a 200 with the
format's JSON shape proves it; 401/403 says the path exists but the key was
refused (kept as the answer if nothing proves better); anything else means
no. An OpenAI-shaped list is then told apart from a Responses-only endpoint
by an empty ``POST`` to ``/chat/completions`` (404/405: absent) and
``/responses``; an empty body is refused with a 400 and costs nothing.

Sources: ``pinned`` (``format_mode: pinned``: never probes), ``configured``
(a format other than ``auto`` is used as written), ``endpoint_lock`` (from the
URL), ``detected`` (probed), ``default`` (nothing answered: openai).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from pooldaemon.refresh._http import TooLarge, read_capped, safe_text
from pooldaemon.spec import ProviderSpec
from pooldaemon.upstream._listing import listing_request, matches_shape

__all__ = ["Detection", "detect_format", "endpoint_base", "format_from_url", "probe_plan"]

_PROBE_BYTES: Final = 1 << 20
_OPENAI_VERSIONED: Final = re.compile(r"/openai/v\d+$")
_VERSION_PATH: Final = re.compile(r"/v\d+$")
# Path suffix -> format, first match wins.
_PATH_LOCKS: Final = (
    ("/chat/completions", "openai"),
    ("/responses", "responses"),
    ("/codex", "responses"),
    ("/messages", "anthropic"),
    ("/anthropic", "anthropic"),
    ("/openai", "openai"),
)
_HOST_LOCKS: Final = {
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "google",
    "api.openai.com": "openai",
}
# Endpoint paths the wire-format modules append themselves.
_ENDPOINT_PATHS: Final = {
    "openai": "/chat/completions",
    "responses": "/responses",
    "anthropic": "/messages",
}
_OLLAMA_PORT: Final = 11434
_PROBE_ORDER: Final = ("openai", "anthropic", "google", "ollama")


@dataclass(frozen=True, slots=True)
class Detection:
    """Which format a provider speaks, where, and how that was decided."""

    format: str
    source: str  # pinned | configured | endpoint_lock | detected | default
    base_url: str  # the base URL to use with that format
    detected_at: float  # unix time
    error: str | None = None  # why nothing better was found (auth refused, no answer)


def _path(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url.strip())
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or "").lower(), parts.path.lower().rstrip("/"), port


def format_from_url(url: str) -> str | None:
    """The format ``url`` fixes by its path, host or port (see the table above), else None."""
    host, path, port = _path(url)
    for suffix, fmt in _PATH_LOCKS:
        if path.endswith(suffix):
            return fmt
    if _OPENAI_VERSIONED.search(path):
        return "openai"
    if host in _HOST_LOCKS:
        return _HOST_LOCKS[host]
    if path.endswith(("/v1beta", "/v1alpha")):
        return "google"
    if port == _OLLAMA_PORT and path in ("", "/api"):
        return "ollama"
    return None


def endpoint_base(url: str, fmt: str) -> str:
    """``url`` without the endpoint path ``fmt``'s module appends itself
    (``.../v1/responses`` -> ``.../v1``), and without a trailing slash."""
    parts = urlsplit(url.strip())
    path = parts.path.rstrip("/")
    suffix = _ENDPOINT_PATHS.get(fmt)
    if suffix and path.lower().endswith(suffix):
        path = path[: -len(suffix)]
    return urlunsplit(parts._replace(path=path)).rstrip("/")


def probe_plan(url: str) -> tuple[tuple[str, str], ...]:
    """Which (format, base URL) pairs to probe at ``url``, most likely first.

    openai, anthropic, google, ollama; a path ending ``/api`` puts Ollama first. A
    bare host also gets OpenAI at ``/v1`` last: relays are often given by their root,
    and an OpenAI base URL includes the version.
    """
    base = url.rstrip("/")
    _, path, _ = _path(base)
    order: tuple[str, ...] = _PROBE_ORDER
    if path.endswith("/api"):
        order = ("ollama", *(f for f in _PROBE_ORDER if f != "ollama"))
    plan = [(fmt, base) for fmt in order]
    if not path:
        plan.append(("openai", f"{base}/v1"))
    return tuple(plan)


@dataclass(frozen=True, slots=True)
class _Answer:
    verdict: str  # ok | auth | no
    note: str


class _Prober:
    """Probes one provider's endpoints, keeping what it learned should time run out."""

    def __init__(self, session: aiohttp.ClientSession, spec: ProviderSpec, key: str | None):
        self.session = session
        self.spec = spec
        self.key = key
        self.auth: tuple[str, str] | None = None  # (format, base) of the first 401/403
        self.notes: list[str] = []

    async def listing(self, fmt: str, base: str) -> _Answer:
        req = listing_request(fmt, base, self.spec, self.key)
        try:
            async with self.session.get(
                req.url,
                headers=dict(req.headers),
                params=req.params,
                ssl=self.spec.tls_verify,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                body = await read_capped(resp, _PROBE_BYTES)
        except (aiohttp.ClientError, TooLarge) as exc:
            return _Answer("no", f"{fmt}: {type(exc).__name__}")
        if status in (401, 403):
            return _Answer("auth", f"{fmt}: HTTP {status}")
        if status != 200:
            return _Answer("no", f"{fmt}: HTTP {status}")
        try:
            data = json.loads(body)
        except ValueError:
            return _Answer("no", f"{fmt}: not JSON")
        if not matches_shape(fmt, data):
            return _Answer("no", f"{fmt}: another shape")
        return _Answer("ok", f"{fmt}: listed")

    async def answers_post(self, url: str) -> bool:
        """Whether ``url`` exists for POST: anything but 404/405 (and no network error)."""
        headers = {"Content-Type": "application/json", **self.spec.headers}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        try:
            async with self.session.post(
                url, data=b"{}", headers=headers, ssl=self.spec.tls_verify, allow_redirects=False
            ) as resp:
                return resp.status not in (404, 405)
        except aiohttp.ClientError:
            return False

    async def openai_flavour(self, base: str) -> str:
        if await self.answers_post(f"{base}/chat/completions"):
            return "openai"
        if await self.answers_post(f"{base}/responses"):
            return "responses"
        return "openai"

    async def run(self, bases: tuple[str, ...]) -> tuple[str, str] | None:
        """The first (format, base) proved by a listing, else None."""
        for url in bases:
            for fmt, base in probe_plan(url):
                answer = await self.listing(fmt, base)
                self.notes.append(answer.note if base == url else f"{answer.note} at {base}")
                if answer.verdict == "ok":
                    if fmt == "openai":
                        fmt = await self.openai_flavour(base)
                    return fmt, base
                if answer.verdict == "auth" and self.auth is None:
                    self.auth = (fmt, base)
        return None


async def detect_format(
    session: aiohttp.ClientSession,
    spec: ProviderSpec,
    key: str | None,
    *,
    timeout: float = 10.0,  # noqa: ASYNC109 - what was learned before it still counts
) -> Detection:
    """The format ``spec``'s endpoint speaks (see the module docstring for the order).

    The base URL and then its alternates are probed; ``timeout`` bounds it all.
    """
    base = (spec.base_url or "").rstrip("/")
    if spec.format_mode == "pinned" or spec.format != "auto":
        source = "pinned" if spec.format_mode == "pinned" else "configured"
        if spec.format != "auto":
            return Detection(spec.format, source, base, time.time())
        fmt = format_from_url(base) or "openai"
        return Detection(fmt, source, endpoint_base(base, fmt), time.time())
    locked = format_from_url(base)
    if locked is not None:
        return Detection(locked, "endpoint_lock", endpoint_base(base, locked), time.time())
    bases = tuple(dict.fromkeys(u.rstrip("/") for u in (base, *spec.alternate_base_urls)))
    prober = _Prober(session, spec, key)
    found: tuple[str, str] | None = None
    timed_out = False
    try:
        async with asyncio.timeout(timeout):
            found = await prober.run(bases)
    except TimeoutError:
        timed_out = True
    if found is not None:
        return Detection(found[0], "detected", found[1], time.time())
    tried = "; ".join(prober.notes) or "nothing"
    late = f" (timed out after {timeout:g}s)" if timed_out else ""
    if prober.auth is not None:
        fmt, at = prober.auth
        error = f"{fmt} at {at} refused the key; probes: {tried}{late}"
        return Detection(fmt, "detected", at, time.time(), safe_text(error, key))
    error = f"no format answered at {base}; probes: {tried}{late}"
    return Detection("openai", "default", base, time.time(), safe_text(error, key))
