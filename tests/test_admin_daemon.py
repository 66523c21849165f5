"""Acceptance: the admin API of a running daemon (a real subprocess in front of an
in-process fake OpenAI upstream) answers every documented route as
``schemas/admin-openapi.yaml`` says, and every protected route refuses a missing or
wrong token."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.refresh.fake_catalogs import openai_models
from tests.server.fakes import Fake, fake_app, serve
from tests.server.openapi import load_document, operations, validate_response
from tests.test_daemon import ADMIN_TOKEN, Daemon, daemon

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
UPSTREAM_KEY = "sk-test-upstream-key-0123456789abcdef"
CONFIG = """version: 1
providers:
  - id: up
    base_url: {url}/v1
    location: cloud
    keys: [{{env: UPSTREAM_KEY}}]
pricing:
  models: [{{match: gpt-4o, input: 2.5, output: 10}}]
aliases:
  fast: [up/gpt-4o]
"""
PATH_VALUES = {"id": "up", "provider": "up", "kind": "catalog"}
QUERY_VALUES = {"model": "gpt-4o"}
# GETs beyond the default call of each documented operation: (path, query).
MORE_GETS = [
    ("/admin/v1/route", {"model": "fast", "strategy": "cost"}),
    ("/admin/v1/pricing", {}),
    ("/admin/v1/pricing", {"model": "gpt-4o", "provider": "up"}),
    ("/admin/v1/usage", {"group_by": "model"}),
]


def _upstream(fake: Fake) -> web.Application:
    """The fake OpenAI upstream, plus the model listing the catalog job reads."""
    app = fake_app(fake)

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": openai_models("gpt-4o", "o3-mini")})

    app.router.add_get("/v1/models", models)
    return app


async def _call(
    http: aiohttp.ClientSession,
    d: Daemon,
    method: str,
    template: str,
    status: int,
    *,
    query: dict[str, str] | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """Call ``METHOD template`` on the daemon's admin listener; check the status and
    validate the answer (body and headers) against the document."""
    path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m[1]], template)
    async with http.request(
        method,
        d.admin + path,
        params=query or {},
        data=body,
        headers=AUTH if headers is None else headers,
    ) as resp:
        payload = await (resp.json() if resp.content_type == "application/json" else resp.text())
        where = f"{method} {path} {query or ''}"
        assert resp.status == status, f"{where}: {resp.status}: {str(payload)[:300]}"
        validate_response(
            load_document(),
            method,
            template,
            resp.status,
            payload,
            content_type=resp.headers.get("Content-Type", ""),
            headers=resp.headers,
        )
        return payload


async def _usage_recorded(http: aiohttp.ClientSession, d: Daemon) -> Any:
    """The usage view once the proxied request is written (write-behind, 0.5 s)."""
    deadline = time.monotonic() + 5
    while True:
        body = await _call(http, d, "GET", "/admin/v1/usage", 200)
        if body["groups"] or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.1)


async def test_the_admin_api_of_a_running_daemon_is_as_documented(tmp_path: Path) -> None:
    doc = load_document()
    fake = Fake("up")
    async with serve(_upstream(fake)) as url:
        config = tmp_path / "pool.yaml"
        config.write_text(CONFIG.format(url=url))
        env = {"UPSTREAM_KEY": UPSTREAM_KEY}
        async with daemon(config, tmp_path / "state", env) as d, aiohttp.ClientSession() as http:
            chat = {"model": "fast", "messages": [{"role": "user", "content": "hi"}]}
            async with http.post(f"http://127.0.0.1:{d.port}/v1/chat/completions", json=chat) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["choices"][0]["message"]["content"] == fake.text
            assert fake.headers[-1]["Authorization"] == f"Bearer {UPSTREAM_KEY}"

            usage = await _usage_recorded(http, d)
            assert [g["key"] for g in usage["groups"]] == ["up"], usage
            for method, template, op in operations(doc):
                if method != "GET":
                    continue
                required = [p for p in op.get("parameters", []) if p.get("required")]
                query = {p["name"]: QUERY_VALUES[p["name"]] for p in required if p["in"] == "query"}
                await _call(http, d, method, template, 200, query=query)
            for template, query in MORE_GETS:
                await _call(http, d, "GET", template, 200, query=query)

            done = await _call(http, d, "POST", "/admin/v1/refresh/{kind}", 200)
            assert done["result"] == "success", done
            provider = await _call(http, d, "GET", "/admin/v1/providers/{id}", 200)
            (key,) = provider["keys"]
            assert key["requests"] == 1 and isinstance(key["last_used"], float)
            assert provider["catalog"]["models"] == 2
            jobs = await _call(http, d, "GET", "/admin/v1/jobs", 200)
            catalog = next(j for j in jobs["jobs"] if j["id"] == "catalog")
            assert catalog["last_result"] == "success" and catalog["last_success"] > 0
            reload = await _call(http, d, "POST", "/admin/v1/reload", 200)
            assert reload["result"] == "unchanged"
            plan = await _call(http, d, "POST", "/admin/v1/plan", 200, body=config.read_bytes())
            assert plan["empty"] is True
            cleared = await _call(http, d, "DELETE", "/admin/v1/cooldowns/{provider}", 200)
            assert cleared == {"provider": "up", "cleared": False}

            wrong: tuple[dict[str, str], ...] = (
                {},
                {"Authorization": "Bearer not-the-admin-token"},
            )
            for method, template, op in operations(doc):
                if op.get("security", doc["security"]):
                    for headers in wrong:
                        await _call(http, d, method, template, 401, headers=headers)
