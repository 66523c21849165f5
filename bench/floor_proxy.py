"""The reference floor: the least an aiohttp proxy does (its own process).

    .venv/bin/python -m bench.floor_proxy --port 8801 --upstream http://127.0.0.1:8800

Reads the body, forwards it with one shared ``ClientSession`` to the same path
upstream, and relays the answer: whole for JSON, chunk by chunk for a stream.
No parsing, routing, translation, accounting or logging: whatever pooldaemon
costs beyond this is its own.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

SESSION = web.AppKey("session", aiohttp.ClientSession)
_FORWARDED = ("Content-Type", "anthropic-version")


def build_app(upstream: str) -> web.Application:
    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            app[SESSION] = session
            yield

    async def forward(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {h: request.headers[h] for h in _FORWARDED if h in request.headers}
        session = request.app[SESSION]
        async with session.post(upstream + request.path, data=body, headers=headers) as resp:
            if resp.content_type != "text/event-stream":
                return web.Response(
                    body=await resp.read(), status=resp.status, content_type=resp.content_type
                )
            out = web.StreamResponse(
                status=resp.status, headers={"Content-Type": resp.content_type}
            )
            await out.prepare(request)
            async for chunk in resp.content.iter_any():
                await out.write(chunk)
            await out.write_eof()
            return out

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", forward)
    app.router.add_post("/v1/messages", forward)
    return app


def main() -> None:
    # Not __doc__: the bench runs this with PYTHONOPTIMIZE=2, which drops docstrings.
    parser = argparse.ArgumentParser(description="The least an aiohttp proxy does.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="base URL, e.g. http://127.0.0.1:8800")
    args = parser.parse_args()
    web.run_app(
        build_app(args.upstream.rstrip("/")),
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
    )


if __name__ == "__main__":
    main()
