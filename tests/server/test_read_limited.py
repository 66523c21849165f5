"""read_limited: a whole body up to a limit, from aiohttp's own StreamReader, whether
the body is all there already (one read, no wait) or still arriving."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import StreamReader
from aiohttp.base_protocol import BaseProtocol

from pooldaemon.server._replies import read_limited


def _reader(*chunks: bytes, eof: bool = True) -> StreamReader:
    loop = asyncio.get_running_loop()
    protocol = BaseProtocol(loop)
    protocol.connection_made(asyncio.Transport())  # "connected": readers may wait
    stream = StreamReader(protocol, 2**16, loop=loop)
    for chunk in chunks:
        stream.feed_data(chunk)
    if eof:
        stream.feed_eof()
    return stream


@pytest.mark.parametrize(
    ("limit", "expected"),
    [(11, (b"hello world", False)), (12, (b"hello world", False)), (10, (b"hello worl", True))],
)
async def test_a_body_all_there(limit: int, expected: tuple[bytes, bool]) -> None:
    assert await read_limited(_reader(b"hello", b" ", b"world"), limit) == expected


async def test_an_empty_body() -> None:
    assert await read_limited(_reader(), 10) == (b"", False)


@pytest.mark.parametrize(
    ("limit", "expected"), [(11, (b"hello world", False)), (7, (b"hello w", True))]
)
async def test_a_body_still_arriving(limit: int, expected: tuple[bytes, bool]) -> None:
    stream = _reader(b"hello", eof=False)

    async def rest() -> None:
        await asyncio.sleep(0.01)
        stream.feed_data(b" world")
        await asyncio.sleep(0.01)
        stream.feed_eof()

    task = asyncio.create_task(rest())
    assert await read_limited(stream, limit) == expected
    await task


async def test_a_broken_body_raises_its_error() -> None:
    stream = _reader(b"hel", eof=False)
    stream.set_exception(ConnectionResetError("gone"))
    with pytest.raises(ConnectionResetError):
        await read_limited(stream, 10)
    stream = _reader(b"hel")
    stream.set_exception(ConnectionResetError("gone"))
    with pytest.raises(ConnectionResetError):
        await read_limited(stream, 10)
