"""POST one upstream request with aiohttp's own parts, minus ClientSession's general path.

``ClientSession.post`` wraps every request in machinery that the proxy's
requests never use: redirects, cookies (the session's jar is a dummy), basic
auth and .netrc, proxies from the environment (``trust_env`` is off), tracing,
client middlewares, a timeout handle (each attempt times itself), and the
merge of its arguments with the session's defaults. On this machine that
wrapping is 25-30 us of a stream's first chunk (bench/results/2026-11-22-profile.txt,
session 14).
:func:`post` builds the same ``ClientRequest``, takes a connection from the
session's connector, sends the request and reads the answer's headers, as
``ClientSession._request`` does for a request that uses none of those.

Those parts are aiohttp's internals, so :data:`DIRECT` is true only on the
aiohttp minor versions this was written and tested against; on any other,
the same request goes through ``session.post``, which behaves the same.

Redirects are not followed on either path: an upstream answering 3xx fails
the attempt. Following one would send the request, API key headers and all,
to wherever the ``Location`` points (aiohttp drops ``Authorization`` on a
cross-origin redirect, but not ``x-api-key`` or ``x-goog-api-key``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
from aiohttp.client_reqrep import ClientRequest, ClientResponse
from aiohttp.helpers import TimerNoop
from multidict import CIMultiDict
from yarl import URL

__all__ = ["DIRECT", "post"]

# The minor versions whose ClientRequest, BaseConnector.connect,
# ResponseHandler.set_response_params, ClientRequest.send and
# ClientResponse.start this module was checked against (tests/server/test_post.py
# runs both paths on the installed one).
_CHECKED = ((3, 14),)


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


DIRECT = _minor(aiohttp.__version__) in _CHECKED
_NO_TIMER = TimerNoop()  # stateless: the attempt's own deadline times the request


async def post(
    session: aiohttp.ClientSession,
    url: URL,
    body: bytes,
    headers: Mapping[str, str],
    limits: aiohttp.ClientTimeout,
    ssl: bool,
) -> ClientResponse:
    """Send ``body`` to ``url``; the answer with its status and headers read.

    The session's default headers apply under ``headers``; of ``limits``,
    ``sock_connect`` and ``sock_read`` apply (the caller times the rest).
    Errors are aiohttp's ``ClientError`` subclasses (or a ``TimeoutError``),
    as from ``session.post``.
    """
    if not DIRECT:
        return await session.post(
            url, data=body, headers=headers, timeout=limits, ssl=ssl, allow_redirects=False
        )
    connector = session.connector
    if connector is None or session.closed:
        raise RuntimeError("Session is closed")
    merged = CIMultiDict(session.headers)
    merged.update(headers)
    req = ClientRequest(
        "POST",
        url,
        headers=merged,
        data=body,
        loop=asyncio.get_running_loop(),
        response_class=ClientResponse,
        session=session,
        ssl=ssl,
        timer=_NO_TIMER,
    )
    try:
        conn = await connector.connect(req, traces=[], timeout=limits)
    except TimeoutError as exc:  # as _request words it
        raise aiohttp.ConnectionTimeoutError(f"Connection timeout to host {url}") from exc
    protocol = conn.protocol
    assert protocol is not None, "a connection from the pool has its protocol"
    protocol.set_response_params(
        timer=_NO_TIMER,
        read_until_eof=True,
        auto_decompress=session.auto_decompress,
        read_timeout=limits.sock_read,
    )  # the other limits: aiohttp's defaults, as the session (_app) has them
    try:
        resp = await req.send(conn)
        try:
            await resp.start(conn)
        except BaseException:
            resp.close()
            raise
    except BaseException as exc:
        conn.close()
        if isinstance(exc, OSError) and not isinstance(exc, aiohttp.ClientError | TimeoutError):
            raise aiohttp.ClientOSError(*exc.args) from exc  # as _request wraps it
        raise
    return resp
