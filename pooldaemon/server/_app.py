"""The proxy application: ``/v1/chat/completions``, ``/v1/messages``, ``/v1/models``.

Run it with ``web.AppRunner(app, handler_cancellation=True)`` so that a client
that disconnects cancels its handler, and with it the upstream request.
"""

from __future__ import annotations

import fnmatch
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from pooldaemon import __version__
from pooldaemon.errors import SettingsError
from pooldaemon.server._auth import AuthError, authenticate
from pooldaemon.server._count import count_tokens
from pooldaemon.server._proxy import proxy_handler
from pooldaemon.server._replies import error_response
from pooldaemon.server._state import PROXY_STATE, ProxyState
from pooldaemon.settings import is_loopback
from pooldaemon.spec import PoolSpec
from pooldaemon.upstream.anthropic import ANTHROPIC
from pooldaemon.upstream.openai import OPENAI
from pooldaemon.upstream.responses import RESPONSES

__all__ = ["build_proxy_app", "check_open_proxy"]


def check_open_proxy(spec: PoolSpec, host: str) -> None:
    """With no ``clients`` the proxy is open: refuse any address but loopback."""
    if spec.clients:
        return
    if not is_loopback(host):
        raise SettingsError(
            f"the config lists no clients, so anyone reaching {host} could use your keys; "
            "listen on 127.0.0.1 or add clients: to the YAML"
        )


async def _client_session(app: web.Application) -> AsyncIterator[None]:
    state = app[PROXY_STATE]
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=256, ttl_dns_cache=300)
    async with aiohttp.ClientSession(
        connector=connector,
        # One session serves every client: cookies an upstream sets for one request
        # must not go out with another client's (and nothing here needs cookies).
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": f"pooldaemon/{__version__}"},
        auto_decompress=True,
    ) as session:
        state.session = session
        yield
        # Closing the session closes every upstream connection, those of answers
        # still ending after their client's stream (Served.let_go) too.
        state.session = None


async def _models(request: web.Request) -> web.Response:
    """Routable names (models, provider/model ids and aliases), OpenAI or Anthropic shape."""
    state = request.app[PROXY_STATE]
    snapshot = state.applied.snapshot
    fmt = ANTHROPIC if "anthropic-version" in request.headers else OPENAI
    try:
        client = authenticate(request.headers, snapshot.spec)
    except AuthError as exc:
        return error_response(fmt, 401, str(exc))
    names = [
        n
        for n in snapshot.names
        if client is None
        or not client.allow_models
        or any(fnmatch.fnmatchcase(n, g) for g in client.allow_models)
    ]
    if fmt is ANTHROPIC:
        listed = [
            {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
            for n in names
        ]
        return web.json_response(
            {
                "data": listed,
                "has_more": False,
                "first_id": names[0] if names else None,
                "last_id": names[-1] if names else None,
            }
        )
    owners = {n: n.split("/", 1)[0] if "/" in n else "pooldaemon" for n in names}
    data: list[dict[str, object]] = [
        {"id": n, "object": "model", "created": 0, "owned_by": owners[n]} for n in names
    ]
    return web.json_response({"object": "list", "data": data})


def build_proxy_app(state: ProxyState) -> web.Application:
    """The proxy application over ``state`` (which reloads swap ``applied`` in)."""
    app = web.Application(client_max_size=state.max_request_bytes)
    app[PROXY_STATE] = state
    app.cleanup_ctx.append(_client_session)
    app.router.add_post("/v1/chat/completions", proxy_handler(OPENAI))
    app.router.add_post("/v1/messages", proxy_handler(ANTHROPIC))
    app.router.add_post("/v1/messages/count_tokens", count_tokens)
    app.router.add_post("/v1/responses", proxy_handler(RESPONSES))
    app.router.add_get("/v1/models", _models)
    return app
