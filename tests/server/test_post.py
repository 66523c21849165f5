"""The upstream POST, on both of its paths: aiohttp's parts driven directly (the
installed aiohttp's minor version is a checked one) and ``session.post`` (any
other). Both must send and answer the same, against a real server."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from pooldaemon.server import _post
from tests.server.fakes import serve

TIMEOUT = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=5)
PORT = web.RequestKey("port", int)  # the client's port of a request


@pytest.fixture(params=["direct", "session.post"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(_post, "DIRECT", request.param == "direct")
    return str(request.param)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": "pooldaemon/test", "X-Default": "session"},
    ) as s:
        yield s


def _app(seen: list[web.Request], bodies: list[bytes]) -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        assert request.transport is not None
        request[PORT] = request.transport.get_extra_info("peername")[1]
        seen.append(request)
        bodies.append(await request.read())
        return web.json_response({"ok": True}, headers={"X-Answer": "1"})

    async def redirect(request: web.Request) -> web.Response:
        seen.append(request)
        raise web.HTTPTemporaryRedirect("/echo")

    async def gzipped(request: web.Request) -> web.Response:
        body = gzip.compress(b'{"packed": true}')
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async def huge_header(request: web.Request) -> web.Response:
        return web.Response(text="{}", headers={"X-Huge": "x" * 9000})

    async def hang_up(request: web.Request) -> web.Response:
        assert request.transport is not None
        request.transport.close()
        await asyncio.sleep(1)
        return web.Response()

    app = web.Application()
    for name, handler in (
        ("echo", echo),
        ("redirect", redirect),
        ("gzipped", gzipped),
        ("huge", huge_header),
        ("hang-up", hang_up),
    ):
        app.router.add_post(f"/{name}", handler)
    return app


async def _post_to(session: aiohttp.ClientSession, url: str, body: bytes = b"{}") -> bytes:
    headers = {"Content-Type": "application/json"}
    resp = await _post.post(session, URL(url), body, headers, TIMEOUT, True)
    async with resp:
        assert resp.status == 200, resp.status
        return await resp.read()


async def test_the_request_and_its_answer(path: str, session: aiohttp.ClientSession) -> None:
    seen: list[web.Request] = []
    bodies: list[bytes] = []
    async with serve(_app(seen, bodies)) as base:
        body = b'{"model": "m", "note": "' + "é".encode() * 300 + b'"}'
        headers = {"Content-Type": "application/json", "X-Default": "request", "x-api-key": "k"}
        resp = await _post.post(session, URL(base + "/echo"), body, headers, TIMEOUT, True)
        async with resp:
            assert (resp.status, resp.headers["X-Answer"]) == (200, "1")
            assert await resp.json() == {"ok": True}
    (request,) = seen
    assert bodies == [body]
    assert request.method == "POST" and request.path == "/echo"
    assert request.headers["Content-Length"] == str(len(body))
    assert request.headers["User-Agent"] == "pooldaemon/test"  # the session's default
    assert request.headers.getall("X-Default") == ["request"]  # the request's wins
    assert request.headers["x-api-key"] == "k"
    assert request.headers["Host"] == base.removeprefix("http://")


async def test_connections_are_pooled(path: str, session: aiohttp.ClientSession) -> None:
    seen: list[web.Request] = []
    async with serve(_app(seen, [])) as base:
        for _ in range(3):
            assert await _post_to(session, base + "/echo") == b'{"ok": true}'
    ports = {r[PORT] for r in seen}
    assert len(seen) == 3 and len(ports) == 1


async def test_a_redirect_is_answered_not_followed(
    path: str, session: aiohttp.ClientSession
) -> None:
    seen: list[web.Request] = []
    async with serve(_app(seen, [])) as base:
        resp = await _post.post(session, URL(base + "/redirect"), b"{}", {}, TIMEOUT, True)
        async with resp:
            assert resp.status == 307 and resp.headers["Location"] == "/echo"
        assert [r.path for r in seen] == ["/redirect"]


async def test_a_gzipped_answer_is_decompressed(path: str, session: aiohttp.ClientSession) -> None:
    async with serve(_app([], [])) as base:
        assert await _post_to(session, base + "/gzipped") == b'{"packed": true}'


async def test_a_header_over_aiohttps_limit_is_a_client_error(
    path: str, session: aiohttp.ClientSession
) -> None:
    async with serve(_app([], [])) as base:
        with pytest.raises(aiohttp.ClientResponseError, match="8190"):
            await _post_to(session, base + "/huge")
        # The connection that failed is not handed to the next request.
        assert await _post_to(session, base + "/echo") == b'{"ok": true}'


async def test_a_server_hanging_up_is_a_client_error(
    path: str, session: aiohttp.ClientSession
) -> None:
    async with serve(_app([], [])) as base:
        with pytest.raises(aiohttp.ServerDisconnectedError):
            await _post_to(session, base + "/hang-up")
        assert await _post_to(session, base + "/echo") == b'{"ok": true}'


async def test_a_refused_connection_is_a_client_error(
    path: str, session: aiohttp.ClientSession
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(aiohttp.ClientConnectorError):
        await _post_to(session, f"http://127.0.0.1:{port}/echo")


async def test_a_closed_session_is_refused(path: str) -> None:
    session = aiohttp.ClientSession()
    await session.close()
    with pytest.raises(RuntimeError, match="closed"):
        await _post_to(session, "http://127.0.0.1:9/echo")


async def test_no_connection_is_left_behind(path: str) -> None:
    # One connection in all: a request or a failure that kept it would leave the
    # next request waiting for it (until the timeout fails the test).
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        serve(_app([], [])) as base,
        asyncio.timeout(10),
    ):
        for name in ("echo", "huge", "hang-up", "redirect", "echo"):
            try:
                resp = await _post.post(session, URL(f"{base}/{name}"), b"{}", {}, TIMEOUT, True)
            except aiohttp.ClientError:
                continue
            async with resp:
                await resp.read()
        assert await _post_to(session, base + "/echo") == b'{"ok": true}'
