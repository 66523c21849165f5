"""Small helpers of the proxy: error replies, Retry-After, redaction, request ids."""

from __future__ import annotations

import email.utils
import math
import os
import random
import re
import time
from collections.abc import Mapping

from aiohttp import StreamReader, web

from pooldaemon.redaction import display_hash, redact
from pooldaemon.upstream._base import WireFormat

__all__ = [
    "Reply",
    "display_hash",
    "error_response",
    "read_limited",
    "redact",
    "request_id",
    "retry_after",
]

_MAX_RETRY_AFTER = 86_400.0


async def read_limited(stream: StreamReader, limit: int) -> tuple[bytes, bool]:
    """The whole body, up to ``limit`` bytes; True when there was more.

    (``StreamReader.read(n)`` returns only what is buffered: a body that arrives
    in several packets must be read in a loop.)
    """
    if stream.is_eof():  # all of it came already (a request in one packet): no loop
        data = stream.read_nowait()
        return (data[:limit], True) if len(data) > limit else (data, False)
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.readany():
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: len(chunk) - (size - limit)])
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


def _seconds(text: str, scale: float = 1.0) -> float | None:
    try:
        value = float(text) / scale
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return min(max(value, 0.0), _MAX_RETRY_AFTER)


_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Request ids tell requests apart in logs; they guard nothing, so a seeded PRNG will
# do (no syscall per request, unlike uuid4 and os.urandom).
_ids = random.Random(os.urandom(16))


class Reply(Exception):
    """Stop handling and answer with this error, in the inbound API's shape."""

    def __init__(self, status: int, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


def error_response(
    fmt: WireFormat, status: int, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.json_response(fmt.error_body(status, message), status=status, headers=headers)


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``Retry-After`` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis and (seconds := _seconds(millis, 1000.0)) is not None:
        return seconds
    value = headers.get("Retry-After")
    if not value:
        return None
    if (seconds := _seconds(value)) is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return min(max(when.timestamp() - time.time(), 0.0), _MAX_RETRY_AFTER)


def request_id(headers: Mapping[str, str]) -> str:
    """The client's ``x-request-id`` when it is a sane token, else 64 random bits in hex."""
    given = headers.get("x-request-id")
    if given and _REQUEST_ID.fullmatch(given):
        return given
    return f"{_ids.getrandbits(64):016x}"
