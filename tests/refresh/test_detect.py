"""Format detection: the URL table (pure) and probing against real local fakes."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from pooldaemon.refresh import Detection, detect_format, endpoint_base, format_from_url
from pooldaemon.refresh._detect import probe_plan
from pooldaemon.spec import ProviderSpec
from tests.refresh.conftest import Start
from tests.refresh.fake_catalogs import (
    KEY,
    CatalogFake,
    anthropic_models,
    gemini_model,
    ollama_models,
    openai_models,
    provider_spec,
)


@pytest.mark.parametrize(
    ("url", "fmt"),
    [
        ("https://api.openai.com/v1", "openai"),
        ("https://api.openai.com", "openai"),
        ("https://api.openai.com/v1/responses", "responses"),
        ("https://relay.example/v1/responses/", "responses"),
        ("https://chatgpt.com/backend-api/codex", "responses"),
        ("https://relay.example/v1/chat/completions", "openai"),
        ("https://api.groq.com/openai/v1", "openai"),
        ("https://generativelanguage.googleapis.com/v1beta/openai/", "openai"),
        ("https://api.anthropic.com", "anthropic"),
        ("https://api.anthropic.com/v1", "anthropic"),
        ("https://API.Anthropic.com/", "anthropic"),
        ("https://api.deepseek.com/anthropic", "anthropic"),
        ("https://open.bigmodel.cn/api/anthropic", "anthropic"),
        ("https://relay.example/v1/messages", "anthropic"),
        ("https://generativelanguage.googleapis.com", "google"),
        ("https://generativelanguage.googleapis.com/v1beta", "google"),
        ("https://gemini-relay.example/v1beta", "google"),
        ("https://gemini-relay.example/v1alpha/", "google"),
        ("http://127.0.0.1:11434", "ollama"),
        ("http://gpu-box.lan:11434/", "ollama"),
        ("http://gpu-box.lan:11434/api", "ollama"),
        # not signals: probe instead
        ("http://127.0.0.1:11434/v1", None),
        ("https://relay.example/v1", None),
        ("https://openrouter.ai/api/v1", None),
        ("https://relay.example", None),
        ("https://relay.example/api", None),
        ("https://ark.cn-beijing.volces.com/api/v3", None),
        ("http://[::1]:bad", None),
        ("not a url", None),
    ],
)
def test_format_from_url(url: str, fmt: str | None) -> None:
    assert format_from_url(url) == fmt


@pytest.mark.parametrize(
    ("url", "fmt", "base"),
    [
        ("https://relay.example/v1/responses/", "responses", "https://relay.example/v1"),
        ("https://relay.example/v1/chat/completions", "openai", "https://relay.example/v1"),
        ("https://relay.example/v1/messages", "anthropic", "https://relay.example/v1"),
        ("https://api.deepseek.com/anthropic", "anthropic", "https://api.deepseek.com/anthropic"),
        (
            "https://chatgpt.com/backend-api/codex",
            "responses",
            "https://chatgpt.com/backend-api/codex",
        ),
        ("http://127.0.0.1:11434/", "ollama", "http://127.0.0.1:11434"),
    ],
)
def test_endpoint_base(url: str, fmt: str, base: str) -> None:
    assert endpoint_base(url, fmt) == base


def test_probe_plan() -> None:
    assert probe_plan("https://relay.example/v1/") == (
        ("openai", "https://relay.example/v1"),
        ("anthropic", "https://relay.example/v1"),
        ("google", "https://relay.example/v1"),
        ("ollama", "https://relay.example/v1"),
    )
    assert probe_plan("https://relay.example/api")[0] == ("ollama", "https://relay.example/api")
    root = probe_plan("https://relay.example/")
    assert root[0] == ("openai", "https://relay.example")
    assert root[-1] == ("openai", "https://relay.example/v1")


def _auto(url: str, **fields: Any) -> ProviderSpec:
    return provider_spec(format="auto", base_url=url, keys=[{"env": "K"}], **fields)


def _detected(det: Detection, fmt: str, base: str) -> None:
    assert (det.format, det.source, det.base_url, det.error) == (fmt, "detected", base, None)
    assert det.detected_at > 0


async def test_detects_openai(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"))
    url = await start(fake)
    _detected(await detect_format(session, _auto(f"{url}/v1"), KEY), "openai", f"{url}/v1")
    assert fake.requests == [("GET", "/v1/models"), ("POST", "/v1/chat/completions")]
    assert fake.probed == []  # the empty POST names no model: nothing ran


async def test_detects_responses(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("responses", openai_models("gpt-5-codex"))
    url = await start(fake)
    det = await detect_format(session, _auto(f"{url}/v1"), KEY)
    _detected(det, "responses", f"{url}/v1")
    assert fake.requests[-1] == ("POST", "/v1/responses")


async def test_a_root_url_finds_openai_under_v1(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"))
    url = await start(fake)
    det = await detect_format(session, _auto(url), KEY)
    _detected(det, "openai", f"{url}/v1")
    assert fake.requests[-2:] == [("GET", "/v1/models"), ("POST", "/v1/chat/completions")]


async def test_detects_anthropic(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("anthropic", anthropic_models("claude-x"))
    url = await start(fake)
    _detected(await detect_format(session, _auto(url), KEY), "anthropic", url)


async def test_detects_anthropic_with_an_empty_list(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("anthropic", [])
    url = await start(fake)
    _detected(await detect_format(session, _auto(url), KEY), "anthropic", url)


async def test_detects_google(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("google", [gemini_model("gemini-2.0-flash")])
    url = await start(fake)
    _detected(await detect_format(session, _auto(url), KEY), "google", url)


async def test_detects_ollama_without_key(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("ollama", ollama_models("llama3.2:latest"), key=None)
    url = await start(fake)
    spec = provider_spec(format="auto", base_url=url)
    _detected(await detect_format(session, spec, None), "ollama", url)
    assert fake.requests == [("GET", "/api/tags")]


async def test_auth_refusal_is_kept_when_nothing_proves_better(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("anthropic", anthropic_models("claude-x"), key="sk-other")
    url = await start(fake)
    det = await detect_format(session, _auto(url), KEY)
    assert (det.format, det.source, det.base_url) == ("anthropic", "detected", url)
    assert det.error is not None and "refused the key" in det.error
    assert KEY not in det.error


async def test_alternate_base_url_proves_it(start: Start, session: aiohttp.ClientSession) -> None:
    refusing = CatalogFake("anthropic", anthropic_models("claude-x"), key="sk-other")
    working = CatalogFake("anthropic", anthropic_models("claude-x"))
    url, alt = await start(refusing), await start(working)
    det = await detect_format(session, _auto(url, alternate_base_urls=[alt]), KEY)
    _detected(det, "anthropic", alt)


async def test_nothing_answers_gives_the_default(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("ollama", [], key=None)
    url = await start(fake)
    det = await detect_format(session, _auto(f"{url}/nothing/here"), KEY)
    assert (det.format, det.source, det.base_url) == ("openai", "default", f"{url}/nothing/here")
    assert det.error is not None and "no format answered" in det.error
    assert "ollama: HTTP 404" in det.error
    assert fake.requests == []  # every probe missed the fake's routes


async def test_timeout_keeps_what_was_learned(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"), listing_stall=5.0)
    url = await start(fake)
    det = await detect_format(session, _auto(f"{url}/v1"), KEY, timeout=0.2)
    assert (det.format, det.source) == ("openai", "default")
    assert det.error is not None and "timed out after 0.2s" in det.error


async def test_endpoint_lock_sends_nothing(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("responses", openai_models("gpt-5"))
    url = await start(fake)
    det = await detect_format(session, _auto(f"{url}/v1/responses"), KEY)
    assert (det.format, det.source, det.base_url) == ("responses", "endpoint_lock", f"{url}/v1")
    assert fake.requests == []


async def test_pinned_never_probes(start: Start, session: aiohttp.ClientSession) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"))
    url = await start(fake)
    pinned = provider_spec(format="anthropic", format_mode="pinned", base_url=f"{url}/v1")
    det = await detect_format(session, pinned, KEY)
    assert (det.format, det.source, det.base_url) == ("anthropic", "pinned", f"{url}/v1")
    auto_pinned = _auto(f"{url}/v1", format_mode="pinned")
    det = await detect_format(session, auto_pinned, KEY)
    assert (det.format, det.source, det.error) == ("openai", "pinned", None)
    assert fake.requests == []


async def test_a_configured_format_is_used_as_written(
    start: Start, session: aiohttp.ClientSession
) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"))
    url = await start(fake)
    det = await detect_format(session, provider_spec(format="google", base_url=url), KEY)
    assert (det.format, det.source, det.base_url) == ("google", "configured", url)
    assert fake.requests == []
