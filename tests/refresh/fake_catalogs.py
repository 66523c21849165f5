"""Fake upstreams for the refresh jobs: one small aiohttp app per wire format serving
its model list (paginated the format's way) and a minimal chat endpoint for probes,
each checking its own format's auth header, with scriptable statuses and faults.

A fake that refuses a request echoes the key it was sent, as some upstreams do, so
tests can check that no error string ever carries it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pooldaemon.pool import ProviderView, Snapshot
from pooldaemon.spec import PoolSpec, ProviderSpec

KEY = "sk-test-catalog-key-0123456789abcdef"
FORMATS = ("openai", "responses", "anthropic", "google", "ollama")


@dataclass
class CatalogFake:
    fmt: str
    models: list[dict[str, Any]]  # entries in the format's own listing shape
    key: str | None = KEY  # the key it accepts (None: no auth at all, like Ollama)
    page_size: int = 0  # > 0: paginate the listing
    prefix: str = "/v1"  # openai/responses: where /models, /chat/completions live
    statuses: list[int] = field(default_factory=list)  # next listing answers (popped)
    listing_body: bytes | None = None  # a fixed listing answer (garbage, too big)
    listing_stall: float = 0.0
    chat: dict[str, tuple[int, Any]] = field(default_factory=dict)  # model -> probe answer
    chat_delay: float = 0.0
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path?query)
    probed: list[str] = field(default_factory=list)
    probe_bodies: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    @property
    def ids(self) -> list[str]:
        if self.fmt in ("google", "ollama"):
            return [str(m["name"]).removeprefix("models/") for m in self.models]
        return [str(m["id"]) for m in self.models]


# -- entries in each format's shape -------------------------------------------------


def openai_models(*ids: str) -> list[dict[str, Any]]:
    return [{"id": i, "object": "model", "created": 1, "owned_by": "fake"} for i in ids]


def anthropic_models(*ids: str) -> list[dict[str, Any]]:
    return [
        {"id": i, "display_name": i.upper(), "type": "model", "created_at": "2025-01-01T00:00:00Z"}
        for i in ids
    ]


def gemini_model(
    model_id: str,
    methods: tuple[str, ...] = ("generateContent", "countTokens"),
    *,
    input_limit: int = 1_048_576,
    output_limit: int = 8192,
) -> dict[str, Any]:
    return {
        "name": f"models/{model_id}",
        "displayName": model_id.title(),
        "inputTokenLimit": input_limit,
        "outputTokenLimit": output_limit,
        "supportedGenerationMethods": list(methods),
    }


def ollama_models(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "model": n, "size": 1, "details": {"family": "llama", "format": "gguf"}}
        for n in names
    ]


# -- answers ------------------------------------------------------------------------


def error_body(fmt: str, status: int, message: str) -> Any:
    if fmt == "anthropic":
        return {"type": "error", "error": {"type": "api_error", "message": message}}
    if fmt == "google":
        return {"error": {"code": status, "message": message, "status": "ERROR"}}
    if fmt == "ollama":
        return {"error": message}
    return {"error": {"message": message, "type": "invalid_request_error", "code": None}}


def _sent_key(fmt: str, request: web.Request) -> str:
    headers = request.headers
    if fmt == "anthropic":
        return headers.get("x-api-key", "")
    if fmt == "google":
        return headers.get("x-goog-api-key", "")
    return headers.get("Authorization", "").removeprefix("Bearer ")


def _authorized(fake: CatalogFake, request: web.Request) -> bool:
    if fake.key is None:
        return True
    if fake.fmt == "anthropic" and "anthropic-version" not in request.headers:
        return False
    return _sent_key(fake.fmt, request) == fake.key


def _refused(fake: CatalogFake, request: web.Request, status: int = 401) -> web.Response:
    message = f"Incorrect API key provided: {_sent_key(fake.fmt, request)}"
    return web.json_response(error_body(fake.fmt, status, message), status=status)


def _page(fake: CatalogFake, query: Any) -> dict[str, Any]:
    entries = fake.models
    size = fake.page_size or len(entries) or 1
    if fake.fmt == "google":
        start = int(query.get("pageToken", "tok-0").removeprefix("tok-"))
        chunk = entries[start : start + size]
        out: dict[str, Any] = {"models": chunk}
        if start + size < len(entries):
            out["nextPageToken"] = f"tok-{start + size}"
        return out
    if fake.fmt == "ollama":
        return {"models": entries}
    after = query.get("after_id" if fake.fmt == "anthropic" else "after")
    ids = fake.ids
    start = ids.index(after) + 1 if after in ids else 0
    if fake.fmt == "anthropic":
        size = min(size, int(query.get("limit", "20")))
    chunk = entries[start : start + size]
    out = {"data": chunk}
    if fake.fmt == "anthropic":
        out.update(first_id=chunk[0]["id"] if chunk else None)
    else:
        out["object"] = "list"
    if fake.fmt == "anthropic" or fake.page_size:
        out["has_more"] = start + size < len(entries)
        out["last_id"] = chunk[-1]["id"] if chunk else None
    return out


def catalog_app(fake: CatalogFake) -> web.Application:
    """The fake's listing and chat endpoints, at the paths its format uses."""

    async def listing(request: web.Request) -> web.StreamResponse:
        fake.requests.append(("GET", request.path_qs))
        if fake.listing_stall:
            await asyncio.sleep(fake.listing_stall)
        if not _authorized(fake, request):
            return _refused(fake, request)
        status = fake.statuses.pop(0) if fake.statuses else 200
        if status in (401, 403):
            return _refused(fake, request, status)
        if status != 200:
            message = f"upstream broke (key {_sent_key(fake.fmt, request)})"
            return web.json_response(error_body(fake.fmt, status, message), status=status)
        if fake.listing_body is not None:
            return web.Response(body=fake.listing_body, content_type="application/json")
        return web.json_response(_page(fake, request.query))

    async def chat(request: web.Request) -> web.StreamResponse:
        fake.requests.append(("POST", request.path_qs))
        body = await request.json()
        if fake.fmt == "google":
            model = request.match_info["tail"].removeprefix("models/").split(":")[0]
        else:
            model = body.get("model")
        if not _authorized(fake, request):
            return _refused(fake, request)
        if not model:
            return web.json_response(error_body(fake.fmt, 400, "model is required"), status=400)
        fake.probed.append(model)
        fake.probe_bodies.append(body)
        fake.in_flight += 1
        fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            await asyncio.sleep(fake.chat_delay)
        finally:
            fake.in_flight -= 1
        if model in fake.chat:
            status, answer = fake.chat[model]
            return web.json_response(answer, status=status)
        if model not in fake.ids:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return web.json_response(error_body(fake.fmt, 404, message), status=404)
        return web.json_response({"id": "x", "model": model, "ok": True})

    app = web.Application()
    listing_path, chat_path = _paths(fake)
    app.router.add_get(listing_path, listing)
    app.router.add_post(chat_path, chat)
    return app


def _paths(fake: CatalogFake) -> tuple[str, str]:
    """Where the fake's format lists its models and answers a chat request."""
    if fake.fmt == "openai":
        return f"{fake.prefix}/models", f"{fake.prefix}/chat/completions"
    if fake.fmt == "responses":
        return f"{fake.prefix}/models", f"{fake.prefix}/responses"
    if fake.fmt == "anthropic":
        return "/v1/models", "/v1/messages"
    if fake.fmt == "google":
        return "/v1beta/models", "/v1beta/{tail:models/.+}"
    return "/api/tags", "/api/chat"


# -- providers ----------------------------------------------------------------------


def provider_spec(**fields: Any) -> ProviderSpec:
    """A validated ProviderSpec with id ``p`` (unless given) and the given fields."""
    entry = {"id": "p", **fields}
    return PoolSpec.model_validate({"version": 1, "providers": [entry]}).providers[0]


def provider_view(**fields: Any) -> ProviderView:
    """The ProviderView routing would see for a provider with these fields."""
    entry = {"id": "p", **fields}
    spec = PoolSpec.model_validate({"version": 1, "providers": [entry]})
    return Snapshot.build(spec).by_id[entry["id"]]
