"""Model probing: one max_tokens=1 request per model, in the provider's own format."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from pooldaemon.refresh import ProbeResult, probe_models, probe_request
from tests.refresh.conftest import Start
from tests.refresh.fake_catalogs import (
    KEY,
    CatalogFake,
    anthropic_models,
    error_body,
    gemini_model,
    ollama_models,
    openai_models,
    provider_view,
)


async def test_not_found_is_unavailable_others_available(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o", "o3"))
    url = await start(fake)
    view = provider_view(base_url=f"{url}/v1")
    results = await probe_models(session, view, KEY, ["gpt-4o", "gone-model", "o3", "gpt-4o"])
    assert results == {
        "gpt-4o": ProbeResult("gpt-4o", True, 200, None),
        "gone-model": ProbeResult(
            "gone-model",
            False,
            404,
            "HTTP 404 (model_not_found): The model `gone-model` does not exist or you do not "
            "have access to it.",
        ),
        "o3": ProbeResult("o3", True, 200, None),
    }
    assert sorted(fake.probed) == ["gone-model", "gpt-4o", "o3"]  # each model once
    body = fake.probe_bodies[0]
    assert body["max_tokens"] == 1
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert not body.get("stream")


async def test_a_400_saying_model_not_found(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("anthropic", anthropic_models("claude-a", "claude-b"))
    fake.chat["claude-b"] = (
        400,
        error_body("anthropic", 400, "model: claude-b is not configured on this relay"),
    )
    url = await start(fake)
    view = provider_view(format="anthropic", base_url=url)
    results = await probe_models(session, view, KEY, ["claude-a", "claude-b"])
    assert results["claude-a"].available is True
    assert (results["claude-b"].available, results["claude-b"].status) == (False, 400)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(429, "rate_limit"), (500, "server"), (503, "transient"), (401, "auth"), (400, "client")],
)
async def test_other_failures_leave_the_model_unknown(
    start: Start, session: aiohttp.ClientSession, status: int, kind: str
) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"))
    fake.chat["gpt-4o"] = (status, error_body("openai", status, f"failure, key {KEY}"))
    url = await start(fake)
    results = await probe_models(session, provider_view(base_url=f"{url}/v1"), KEY, ["gpt-4o"])
    result = results["gpt-4o"]
    assert (result.available, result.status) == (None, status)
    assert result.error is not None and f"({kind})" in result.error
    assert KEY not in result.error


async def test_a_refused_key_says_nothing_of_the_model(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("google", [gemini_model("gemini-2.0-flash")], key="other")
    url = await start(fake)
    view = provider_view(format="google", base_url=url)
    result = (await probe_models(session, view, KEY, ["gemini-2.0-flash"]))["gemini-2.0-flash"]
    assert (result.available, result.status) == (None, 401)
    assert result.error is not None and KEY not in result.error


async def test_timeout_is_unknown(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", openai_models("slow"), chat_delay=5.0)
    url = await start(fake)
    view = provider_view(base_url=f"{url}/v1")
    results = await probe_models(session, view, KEY, ["slow"], timeout=0.2)
    assert results["slow"] == ProbeResult("slow", None, None, "timed out after 0.2s")


async def test_connection_refused_is_unknown(session: aiohttp.ClientSession) -> None:
    view = provider_view(base_url="http://127.0.0.1:9/v1")
    results = await probe_models(session, view, KEY, ["m"])
    assert results["m"].available is None
    assert results["m"].error is not None and "request failed" in results["m"].error


async def test_concurrency_is_bounded(start: Start, session: aiohttp.ClientSession) -> None:
    ids = [f"m{i}" for i in range(10)]
    fake = CatalogFake("openai", openai_models(*ids), chat_delay=0.05)
    url = await start(fake)
    view = provider_view(base_url=f"{url}/v1")
    results = await probe_models(session, view, KEY, ids, concurrency=3)
    assert all(r.available for r in results.values())
    assert fake.max_in_flight == 3
    fake.max_in_flight = 0
    await probe_models(session, view, KEY, ids)
    assert fake.max_in_flight == 4  # the default


@pytest.mark.parametrize(
    ("fmt", "models", "model", "path"),
    [
        ("anthropic", anthropic_models("claude-x"), "claude-x", "/v1/messages"),
        ("google", [gemini_model("gemini-2.0-flash")], "gemini-2.0-flash",
         "/v1beta/models/gemini-2.0-flash:generateContent"),
        ("ollama", ollama_models("llama3.2:latest"), "llama3.2:latest", "/api/chat"),
        ("responses", openai_models("gpt-5"), "gpt-5", "/v1/responses"),
    ],
)  # fmt: skip
async def test_each_format_probes_its_own_endpoint(
    start: Start,
    session: aiohttp.ClientSession,
    fmt: str,
    models: list[dict[str, Any]],
    model: str,
    path: str,
) -> None:
    fake = CatalogFake(fmt, models)
    url = await start(fake)
    base = f"{url}/v1" if fmt == "responses" else url
    view = provider_view(format=fmt, base_url=base)
    results = await probe_models(session, view, KEY, [model, "not-there"])
    assert results[model].available is True  # the fake checked the format's auth header
    assert results["not-there"].available is False
    assert ("POST", path) in fake.requests


async def test_auto_provider_needs_the_detected_format(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("anthropic", anthropic_models("claude-x"))
    url = await start(fake)
    view = provider_view(format="auto", base_url="https://wrong.example")
    with pytest.raises(ValueError, match="auto"):
        await probe_models(session, view, KEY, ["claude-x"])
    results = await probe_models(
        session, view, KEY, ["claude-x"], wire_format="anthropic", base_url=url
    )
    assert results["claude-x"].available is True
    assert view.spec.base_url == "https://wrong.example"  # the view itself is unchanged


def test_probe_request_uses_the_format_module() -> None:
    view = provider_view(format="anthropic", base_url="https://a.example", headers={"X-T": "1"})
    url, headers, body = probe_request(view, KEY, "claude-x")
    assert url == "https://a.example/v1/messages"
    assert headers["x-api-key"] == KEY and headers["X-T"] == "1"
    assert body["max_tokens"] == 1 and body["model"] == "claude-x"


async def test_concurrency_must_be_positive(session: aiohttp.ClientSession) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        await probe_models(session, provider_view(), KEY, ["m"], concurrency=0)
