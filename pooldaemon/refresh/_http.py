"""The few HTTP helpers the refresh shells share: bounded reads, error snippets, overrides.

Every request of the refresh jobs carries a key, so none follows redirects
(a redirect to another host would take the key with it) and no body is read
past a limit (a relay gone wrong must not fill the daemon's memory).
"""

from __future__ import annotations

import dataclasses
import json

import aiohttp

from pooldaemon.pool import ProviderView
from pooldaemon.redaction import redact

__all__ = ["TooLarge", "read_capped", "safe_text", "snippet", "with_endpoint"]

_CHUNK = 64 * 1024


class TooLarge(Exception):
    """An answer was larger than the limit it was read with."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


async def read_capped(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of ``resp``, at most ``limit`` bytes; raises :class:`TooLarge` beyond."""
    if resp.content_length is not None and resp.content_length > limit:
        raise TooLarge(limit)
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        buf += chunk
        if len(buf) > limit:
            raise TooLarge(limit)
    return bytes(buf)


def snippet(body: bytes, limit: int = 200) -> str:
    """A short, single-line text of an error answer: its ``error.message`` when it has
    one, else its first characters."""
    text = body[: limit * 20].decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        err = data.get("error")
        message = err.get("message") if isinstance(err, dict) else err
        if isinstance(message, str) and message:
            text = message
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_text(text: str, key: str | None) -> str:
    """``text`` with the key, should an upstream have echoed it, replaced by its display hash."""
    return redact(text, [key] if key else [])


def with_endpoint(
    provider: ProviderView, *, wire_format: str | None = None, base_url: str | None = None
) -> ProviderView:
    """``provider`` as if its spec named ``wire_format`` and ``base_url`` (a detected format,
    a base URL that worked): the wire-format modules read both from the spec."""
    update: dict[str, str] = {}
    if wire_format is not None and wire_format != provider.spec.format:
        update["format"] = wire_format
    if base_url is not None and base_url != provider.spec.base_url:
        update["base_url"] = base_url
    if not update:
        return provider
    return dataclasses.replace(provider, spec=provider.spec.model_copy(update=update))
