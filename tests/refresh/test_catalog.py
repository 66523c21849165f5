"""Catalog refresh against real local servers speaking each format's listing."""

from __future__ import annotations

import json

import aiohttp
import pytest

from pooldaemon.pool import ModelInfo, Snapshot
from pooldaemon.pool._builtin import load_builtin_table
from pooldaemon.refresh import CatalogResult, base_url_candidates, catalog_models, fetch_catalog
from pooldaemon.spec import PoolSpec
from pooldaemon.upstream._listing import ListedModel
from tests.refresh.conftest import Start
from tests.refresh.fake_catalogs import (
    KEY,
    CatalogFake,
    anthropic_models,
    gemini_model,
    ollama_models,
    openai_models,
    provider_spec,
    provider_view,
)


def _ids(result: CatalogResult) -> list[str]:
    assert result.error is None, result.error
    assert result.models is not None
    return [m.id for m in result.models]


def _by_id(result: CatalogResult) -> dict[str, ModelInfo]:
    return {m.id: m for m in result.models or ()}


def _assert_failed(result: CatalogResult, *needles: str) -> None:
    assert result.models is None
    assert result.error is not None
    assert "'p'" in result.error  # names the provider
    assert KEY not in result.error
    for needle in needles:
        assert needle in result.error, result.error


async def test_openai_filters_chat_and_enriches(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake(
        "openai",
        openai_models("gpt-4o", "text-embedding-3-small", "dall-e-3", "tts-1", "my-custom-llm"),
    )
    url = await start(fake)
    result = await fetch_catalog(session, provider_view(base_url=f"{url}/v1"), KEY)
    assert _ids(result) == ["gpt-4o", "my-custom-llm"]  # embeddings, images, tts dropped
    assert result.listed == 5
    assert result.base_url == f"{url}/v1"
    assert result.fetched_at > 0
    gpt = _by_id(result)["gpt-4o"]
    assert (gpt.context_window, gpt.max_output) == (128000, 16384)  # from the built-in table
    assert gpt.capabilities is not None and "vision" in gpt.capabilities
    custom = _by_id(result)["my-custom-llm"]
    assert custom.capabilities is None and custom.context_window is None and custom.chat


async def test_openai_relay_pagination(start: Start, session: aiohttp.ClientSession) -> None:
    ids = [f"relay-model-{i}" for i in range(5)]
    fake = CatalogFake("openai", openai_models(*ids), page_size=2)
    url = await start(fake)
    result = await fetch_catalog(session, provider_view(base_url=f"{url}/v1"), KEY)
    assert _ids(result) == ids
    assert [path for _, path in fake.requests] == [
        "/v1/models",
        "/v1/models?after=relay-model-1",
        "/v1/models?after=relay-model-3",
    ]


async def test_anthropic_pagination(start: Start, session: aiohttp.ClientSession) -> None:
    ids = ["claude-sonnet-4-5-20250929", "claude-3-5-haiku-20241022", "claude-opus-4-1"]
    fake = CatalogFake("anthropic", anthropic_models(*ids), page_size=2)
    url = await start(fake)
    view = provider_view(format="anthropic", base_url=url)
    result = await fetch_catalog(session, view, KEY)
    assert _ids(result) == ids
    assert len(fake.requests) == 2
    assert "after_id=claude-3-5-haiku-20241022" in fake.requests[1][1]
    assert "limit=1000" in fake.requests[0][1]
    sonnet = _by_id(result)[ids[0]]
    assert sonnet.name == ids[0].upper()  # display_name
    assert sonnet.context_window == 200000


async def test_gemini_pagination_methods_and_listing_wins(
    start: Start, session: aiohttp.ClientSession
) -> None:
    models = [
        gemini_model("gemini-2.0-flash", input_limit=999_000, output_limit=7000),
        gemini_model("text-embedding-004", ("embedContent",)),
        gemini_model("gemini-2.5-pro"),
        gemini_model("aqa", ("generateAnswer",)),
        gemini_model("imagen-3.0-generate-002", ("predict",)),
    ]
    fake = CatalogFake("google", models, page_size=2)
    url = await start(fake)
    view = provider_view(format="google", base_url=url)
    result = await fetch_catalog(session, view, KEY)
    assert _ids(result) == ["gemini-2.0-flash", "gemini-2.5-pro"]
    assert result.listed == 5
    assert len(fake.requests) == 3
    assert "pageToken=tok-2" in fake.requests[1][1]
    flash = _by_id(result)["gemini-2.0-flash"]
    # Gemini's own numbers win over the table's (1048576 / 8192); capabilities from the table.
    assert (flash.name, flash.context_window, flash.max_output) == (
        "Gemini-2.0-Flash",
        999_000,
        7000,
    )
    assert flash.capabilities is not None and "tools" in flash.capabilities


async def test_ollama_without_key(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake(
        "ollama", ollama_models("llama3.2:latest", "nomic-embed-text:latest"), key=None
    )
    url = await start(fake)
    result = await fetch_catalog(session, provider_view(format="ollama", base_url=url), None)
    assert _ids(result) == ["llama3.2:latest"]
    assert fake.requests == [("GET", "/api/tags")]


async def test_responses_lists_like_openai(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("responses", openai_models("gpt-5-codex", "o3-pro"))
    url = await start(fake)
    view = provider_view(format="responses", base_url=f"{url}/v1")
    assert _ids(await fetch_catalog(session, view, KEY)) == ["gpt-5-codex", "o3-pro"]


async def test_auto_provider_lists_in_the_detected_format(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("anthropic", anthropic_models("claude-x"))
    url = await start(fake)
    view = provider_view(format="auto", base_url=url)
    undetected = await fetch_catalog(session, view, KEY)
    _assert_failed(undetected, "not detected")
    assert fake.requests == []
    detected = await fetch_catalog(session, view, KEY, wire_format="anthropic")
    assert _ids(detected) == ["claude-x"]


async def test_allowlist(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o", "gpt-4o-mini", "o3", "gpt-4.1"))
    url = await start(fake)
    view = provider_view(base_url=f"{url}/v1", allow_models=["gpt-4o*", "o3"])
    result = await fetch_catalog(session, view, KEY)
    assert _ids(result) == ["gpt-4o", "gpt-4o-mini", "o3"]
    assert result.listed == 4


async def test_the_result_builds_a_snapshot(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o", "relay-only-model"))
    url = await start(fake)
    spec = PoolSpec.model_validate(
        {"version": 1, "providers": [{"id": "p", "base_url": f"{url}/v1"}]}
    )
    view = Snapshot.build(spec).by_id["p"]
    result = await fetch_catalog(session, view, KEY)
    assert result.models is not None
    snap = Snapshot.build(spec, {"p": result.models})
    assert [t.provider.id for t in snap.resolve("relay-only-model")] == ["p"]
    assert not snap.by_id["p"].wildcard


@pytest.mark.parametrize("status", [500, 404, 429])
async def test_http_error(start: Start, session: aiohttp.ClientSession, status: int) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"), statuses=[status])
    url = await start(fake)
    result = await fetch_catalog(session, provider_view(base_url=f"{url}/v1"), KEY)
    _assert_failed(result, f"HTTP {status}", f"{url}/v1/models")  # the fake echoed the key
    # Only a missing listing points at the setting for relays without one.
    assert ("set discover: false" in str(result.error)) is (status == 404)


async def test_error_on_a_later_page_fails_the_whole_refresh(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("anthropic", anthropic_models("a", "b", "c"), page_size=1)
    fake.statuses = [200, 503]
    url = await start(fake)
    result = await fetch_catalog(session, provider_view(format="anthropic", base_url=url), KEY)
    _assert_failed(result, "HTTP 503")


async def test_bad_json(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", [], listing_body=b"<html>Bad Gateway</html>")
    url = await start(fake)
    result = await fetch_catalog(session, provider_view(base_url=f"{url}/v1"), KEY)
    _assert_failed(result, "not JSON")


async def test_wrong_shape(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", [], listing_body=json.dumps({"models": []}).encode())
    url = await start(fake)
    result = await fetch_catalog(session, provider_view(base_url=f"{url}/v1"), KEY)
    _assert_failed(result, "not a model list")


async def test_timeout(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"), listing_stall=5.0)
    url = await start(fake)
    view = provider_view(base_url=f"{url}/v1")
    result = await fetch_catalog(session, view, KEY, timeout=0.2)
    _assert_failed(result, "timed out after 0.2s")


async def test_oversize_page(start: Start, session: aiohttp.ClientSession) -> None:
    big = json.dumps({"data": openai_models(*(f"m{i}" for i in range(200)))}).encode()
    fake = CatalogFake("openai", [], listing_body=big)
    url = await start(fake)
    view = provider_view(base_url=f"{url}/v1")
    result = await fetch_catalog(session, view, KEY, max_page_bytes=1024)
    _assert_failed(result, "larger than 1024 bytes")
    ok = await fetch_catalog(session, view, KEY, max_page_bytes=len(big))
    assert len(_ids(ok)) == 200


async def test_too_many_pages(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", openai_models("a", "b", "c"), page_size=1)
    url = await start(fake)
    view = provider_view(base_url=f"{url}/v1")
    result = await fetch_catalog(session, view, KEY, max_pages=2)
    _assert_failed(result, "more than 2 pages")
    assert len(fake.requests) == 2


async def test_connection_refused(session: aiohttp.ClientSession) -> None:
    view = provider_view(base_url="http://127.0.0.1:9/v1")
    result = await fetch_catalog(session, view, KEY, timeout=5)
    _assert_failed(result, "http://127.0.0.1:9/v1")


async def test_alternate_base_url_after_401(start: Start, session: aiohttp.ClientSession) -> None:
    primary = CatalogFake("openai", openai_models("gpt-4o"), key="sk-some-other-key")
    alternate = CatalogFake("openai", openai_models("gpt-4o", "o3"))
    primary_url, alternate_url = await start(primary), await start(alternate)
    view = provider_view(
        base_url=f"{primary_url}/v1",
        alternate_base_urls=["http://127.0.0.1:9/never-tried", f"{alternate_url}/v1"],
    )
    # The unreachable first alternate shows that only 401/403 moves on, not errors.
    result = await fetch_catalog(session, view, KEY)
    _assert_failed(result, "http://127.0.0.1:9/never-tried")
    assert alternate.requests == []
    primary.requests.clear()

    view = provider_view(
        base_url=f"{primary_url}/v1",
        alternate_base_urls=[f"{alternate_url}/v1"],
    )
    result = await fetch_catalog(session, view, KEY)
    assert _ids(result) == ["gpt-4o", "o3"]
    assert result.base_url == f"{alternate_url}/v1"
    assert len(primary.requests) == 1

    # The caller remembers it: the next refresh starts there.
    again = await fetch_catalog(session, view, KEY, base_url=result.base_url)
    assert again.base_url == f"{alternate_url}/v1"
    assert len(primary.requests) == 1


async def test_every_base_url_refuses(start: Start, session: aiohttp.ClientSession) -> None:
    fakes = [CatalogFake("google", [gemini_model("gemini-2.0-flash")], key="other") for _ in "ab"]
    urls = [await start(f) for f in fakes]
    view = provider_view(format="google", base_url=urls[0], alternate_base_urls=[urls[1]])
    result = await fetch_catalog(session, view, KEY)
    _assert_failed(result, "HTTP 401", "1 alternate")
    assert result.base_url == urls[1]
    assert [len(f.requests) for f in fakes] == [1, 1]


def test_base_url_candidates() -> None:
    spec = provider_spec(
        base_url="https://a.example/v1",
        alternate_base_urls=["https://b.example/v1", "https://a.example/v1"],
    )
    assert base_url_candidates(spec) == ("https://a.example/v1", "https://b.example/v1")
    assert base_url_candidates(spec, "https://b.example/v1/") == (
        "https://b.example/v1",
        "https://a.example/v1",
    )


def test_catalog_models_is_pure() -> None:
    view = provider_view(allow_models=["*"])
    listed = [
        ListedModel("gpt-4o", context_window=1000),
        ListedModel("gpt-4o", name="duplicate"),
        ListedModel("text-embedding-3-small"),
        ListedModel("omni-moderation-latest"),
        ListedModel("gemini-thing", generates=False),
    ]
    (only,) = catalog_models(view, listed, load_builtin_table())
    assert (only.id, only.name, only.context_window, only.max_output) == (
        "gpt-4o",
        None,
        1000,
        16384,
    )
