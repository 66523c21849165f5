"""Fetch image URLs for upstreams that only take inline data (Gemini, Ollama).

http/https only, at most 10 MiB, 10 s, and the answer must be an image.
"""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import aiohttp

from pooldaemon.server._replies import read_limited
from pooldaemon.upstream._ir import ChatRequest, Image, ToolResult, TranslationError

__all__ = ["MAX_IMAGE_BYTES", "inline_images"]

MAX_IMAGE_BYTES = 10 * 1024 * 1024
_TIMEOUT = aiohttp.ClientTimeout(total=10)


def _images(req: ChatRequest) -> list[Image]:
    found: list[Image] = []
    for message in req.messages:
        for part in message.parts:
            if isinstance(part, Image):
                found.append(part)
            elif isinstance(part, ToolResult):
                found += [c for c in part.content if isinstance(c, Image)]
    return [i for i in found if i.data is None and i.url]


async def _fetch(session: aiohttp.ClientSession, url: str) -> tuple[str, str]:
    if urlsplit(url).scheme not in ("http", "https"):
        raise TranslationError(f"image URL scheme not supported (http/https only): {url[:100]}")
    try:
        async with session.get(url, timeout=_TIMEOUT, max_redirects=3) as resp:
            if resp.status != 200:
                raise TranslationError(f"image URL answered HTTP {resp.status}: {url[:100]}")
            if not resp.content_type.startswith("image/"):
                raise TranslationError(f"image URL is not an image ({resp.content_type})")
            data, too_large = await read_limited(resp.content, MAX_IMAGE_BYTES)
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TranslationError(f"image URL could not be fetched: {type(exc).__name__}") from None
    if too_large:
        raise TranslationError("image at URL is larger than 10 MiB")
    return base64.b64encode(data).decode(), resp.content_type


async def inline_images(req: ChatRequest, session: aiohttp.ClientSession) -> None:
    """Replace image URLs in ``req`` by their data (once per URL)."""
    fetched: dict[str, tuple[str, str]] = {}
    for image in _images(req):
        assert image.url is not None
        if image.url not in fetched:
            fetched[image.url] = await _fetch(session, image.url)
        image.data, image.media_type = fetched[image.url]
