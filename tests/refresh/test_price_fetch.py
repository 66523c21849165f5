"""Fetching pricing sources from a real local server: ETag / 304, failures that keep the
previous prices, the guard rail, persistence in ``state_dir`` and the merged map."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import stat
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pooldaemon.pool import Price, RemotePrice
from pooldaemon.refresh._price_fetch import (
    SourceState,
    fetch_source,
    load_source_states,
    merged_prices,
    save_source_state,
    state_path,
)
from pooldaemon.refresh._price_sources import RemoteModel
from pooldaemon.spec import PricingSource
from tests.server.fakes import serve

FIXTURES = Path(__file__).parent / "fixtures"
LITELLM = (FIXTURES / "litellm_sample.json").read_bytes()
MODELS_DEV = (FIXTURES / "models_dev_sample.json").read_bytes()
LAST_MODIFIED = "Wed, 01 Oct 2025 07:28:00 GMT"


@dataclass
class PriceServer:
    """A static-file host: ETag and Last-Modified, 304 on a matching If-None-Match."""

    body: bytes
    status: int = 200
    delay: float = 0.0  # seconds before the headers
    trickle: float = 0.0  # seconds between the first and the rest of the body
    chunked: bool = False  # no Content-Length
    requests: list[dict[str, str]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)

    @property
    def etag(self) -> str:
        return f'"{hashlib.sha256(self.body).hexdigest()[:16]}"'


def _price_app(server: PriceServer) -> web.Application:
    async def handle(request: web.Request) -> web.StreamResponse:
        server.requests.append(dict(request.headers))
        await asyncio.sleep(server.delay)
        if server.status != 200:
            server.answers.append(server.status)
            return web.Response(status=server.status)
        headers = {"ETag": server.etag, "Last-Modified": LAST_MODIFIED}
        if request.headers.get("If-None-Match") == server.etag:
            server.answers.append(304)
            return web.Response(status=304, headers=headers)
        server.answers.append(200)
        if not (server.chunked or server.trickle):
            return web.Response(body=server.body, headers=headers, content_type="application/json")
        response = web.StreamResponse(headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(server.body[:100])
        await asyncio.sleep(server.trickle)
        await response.write(server.body[100:])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/{name}", handle)
    return app


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _serve(server: PriceServer, stack: AsyncExitStack) -> str:
    url: str = await stack.enter_async_context(serve(_price_app(server)))
    return url


@pytest.fixture
async def host() -> AsyncIterator[AsyncExitStack]:
    """Where the tests' servers run until the test ends."""
    async with AsyncExitStack() as stack:
        yield stack


def _source(url: str, fmt: str = "litellm", max_change: float = 10.0) -> PricingSource:
    return PricingSource.model_validate({"url": url, "format": fmt, "max_change": max_change})


def _litellm_with(**changes: dict[str, Any]) -> bytes:
    document = json.loads(LITELLM)
    for key, fields in changes.items():
        document[key].update(fields)
    return json.dumps(document).encode()


async def _first(
    client: aiohttp.ClientSession, host: AsyncExitStack, body: bytes = LITELLM, fmt: str = "litellm"
) -> tuple[PriceServer, PricingSource, SourceState]:
    server = PriceServer(body)
    source = _source(f"{await _serve(server, host)}/prices.json", fmt)
    state = await fetch_source(client, source, None, now=1000.0)
    assert state.status == "fetched", state.error
    return server, source, state


async def test_first_fetch_then_a_304_keeps_the_models(
    client: aiohttp.ClientSession, host: AsyncExitStack
) -> None:
    server, source, first = await _first(client, host)

    assert first.models["gpt-4o"].price == Price(2.5, 10.0, cache_read=1.25)
    assert (first.etag, first.last_modified) == (server.etag, LAST_MODIFIED)
    assert (first.fetched_at, first.checked_at, first.error) == (1000.0, 1000.0, None)
    assert "If-None-Match" not in server.requests[0]

    second = await fetch_source(client, source, first, now=2000.0)

    assert server.requests[1]["If-None-Match"] == server.etag
    assert server.requests[1]["If-Modified-Since"] == LAST_MODIFIED
    assert server.answers == [200, 304]
    assert second.status == "not_modified"
    assert second.models == first.models
    assert (second.fetched_at, second.checked_at, second.etag) == (1000.0, 2000.0, server.etag)


async def test_a_changed_document_replaces_the_models(
    client: aiohttp.ClientSession, host: AsyncExitStack
) -> None:
    server, source, first = await _first(client, host)
    server.body = _litellm_with(**{"gpt-4o": {"input_cost_per_token": 2e-06}})

    second = await fetch_source(client, source, first, now=2000.0)

    assert server.answers == [200, 200]
    assert second.status == "fetched"
    assert second.models["gpt-4o"].price.input == 2.0
    assert (second.etag, second.fetched_at) == (server.etag, 2000.0)


async def test_models_dev_source(client: aiohttp.ClientSession, host: AsyncExitStack) -> None:
    _, _, state = await _first(client, host, MODELS_DEV, "models_dev")

    assert state.format == "models_dev"
    assert state.models["gpt-4o"].context_window == 128_000


async def test_garbage_is_rejected_and_the_previous_prices_kept(
    client: aiohttp.ClientSession, host: AsyncExitStack
) -> None:
    server, source, first = await _first(client, host)
    server.body = b"<html><body>502 Bad Gateway</body></html>"

    second = await fetch_source(client, source, first, now=2000.0)

    assert second.status == "rejected"
    assert second.error is not None
    assert second.error.startswith("litellm source is not valid JSON")
    assert second.models == first.models
    assert (second.etag, second.fetched_at, second.checked_at) == (first.etag, 1000.0, 2000.0)


async def test_a_document_of_the_wrong_shape_is_rejected(
    client: aiohttp.ClientSession, host: AsyncExitStack
) -> None:
    server, source, first = await _first(client, host)
    server.body = b'{"models": ["gpt-4o"]}'

    second = await fetch_source(client, source, first, now=2000.0)

    assert second.status == "rejected"
    assert second.error == (
        "the LiteLLM price table has no usable priced model (1 malformed entries skipped)"
    )
    assert second.models == first.models


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversized_answer_fails_and_the_previous_prices_are_kept(
    client: aiohttp.ClientSession, host: AsyncExitStack, chunked: bool
) -> None:
    server, source, first = await _first(client, host)
    server.body = _litellm_with(**{"gpt-4o": {"input_cost_per_token": 2e-06}})
    server.chunked = chunked

    second = await fetch_source(client, source, first, now=2000.0, max_bytes=4096)

    assert second.status == "failed"
    assert second.error == "the answer is larger than 4096 bytes"
    assert second.models == first.models
    assert second.etag == first.etag


@pytest.mark.parametrize(("delay", "trickle"), [(2.0, 0.0), (0.0, 2.0)], ids=["headers", "body"])
async def test_a_slow_source_times_out_and_the_previous_prices_are_kept(
    client: aiohttp.ClientSession, host: AsyncExitStack, delay: float, trickle: float
) -> None:
    server, source, first = await _first(client, host)
    server.body = _litellm_with(**{"gpt-4o": {"input_cost_per_token": 2e-06}})
    server.delay, server.trickle = delay, trickle

    started = time.monotonic()
    second = await fetch_source(client, source, first, now=2000.0, timeout=0.3)

    assert time.monotonic() - started < 1.5
    assert second.status == "failed"
    assert second.error == "no complete answer within 0.3s"
    assert second.models == first.models


async def test_an_http_error_fails_and_the_previous_prices_are_kept(
    client: aiohttp.ClientSession, host: AsyncExitStack
) -> None:
    server, source, first = await _first(client, host)
    server.status = 500

    second = await fetch_source(client, source, first, now=2000.0)

    assert (second.status, second.error) == ("failed", "HTTP 500")
    assert second.models == first.models
    assert second.fetched_at == 1000.0

    server.status = 200  # recovers: the old ETag still matches
    third = await fetch_source(client, source, second, now=3000.0)
    assert (third.status, third.error, third.models) == ("not_modified", None, first.models)


async def test_an_unreachable_source_fails_without_raising(client: aiohttp.ClientSession) -> None:
    source = _source("http://127.0.0.1:9/prices.json")  # discard port: nothing listens
    previous = SourceState("http://127.0.0.1:9/prices.json", "litellm", etag='"x"', models={})

    state = await fetch_source(client, source, previous, now=5.0)

    assert state.status == "failed"
    assert state.error is not None
    assert state.error.startswith("request failed: ClientConnectorError")
    assert state.checked_at == 5.0


async def test_a_304_to_an_unconditional_get_is_a_failure(
    client: aiohttp.ClientSession, host: AsyncExitStack
) -> None:
    server = PriceServer(LITELLM, status=304)
    source = _source(f"{await _serve(server, host)}/prices.json")

    state = await fetch_source(client, source, None, now=1.0)

    assert (state.status, state.error) == (
        "failed",
        "answered 304 Not Modified to an unconditional GET",
    )
    assert state.models == {}


async def test_the_guard_rail_rejects_one_model_moved_100x(
    client: aiohttp.ClientSession, host: AsyncExitStack
) -> None:
    server, source, first = await _first(client, host)
    server.body = _litellm_with(
        **{"claude-3-5-sonnet-20241022": {"output_cost_per_token": 1.5e-03}}
    )

    second = await fetch_source(client, source, first, now=2000.0)

    assert second.status == "rejected"
    assert second.error == (
        "claude-3-5-sonnet-20241022: output price moved up 100x (15 -> 1500 USD per 1M tokens), "
        "more than max_change 10"
    )
    assert second.models == first.models
    assert second.etag == first.etag

    # the next attempt asks with the accepted document's ETag, gets the bad one again
    third = await fetch_source(client, source, second, now=3000.0)
    assert server.requests[2]["If-None-Match"] == first.etag
    assert (third.status, third.error) == ("rejected", second.error)

    # a source that allows more accepts it
    lenient = _source(str(source.url), max_change=1000.0)
    fourth = await fetch_source(client, lenient, third, now=4000.0)
    assert fourth.status == "fetched"
    assert fourth.models["claude-3-5-sonnet-20241022"].price.output == 1500.0


async def test_a_previous_state_of_another_format_is_ignored(
    client: aiohttp.ClientSession, host: AsyncExitStack
) -> None:
    server, source, first = await _first(client, host)
    as_models_dev = _source(str(source.url), "models_dev")

    state = await fetch_source(client, as_models_dev, first, now=2000.0)

    assert "If-None-Match" not in server.requests[1]
    assert state.status == "rejected"  # a LiteLLM table is no api.json
    assert state.models == {}
    assert state.format == "models_dev"


# persistence


async def test_states_survive_a_restart_in_private_files(
    client: aiohttp.ClientSession, host: AsyncExitStack, tmp_path: Path
) -> None:
    _, _, litellm = await _first(client, host)
    _, _, models_dev = await _first(client, host, MODELS_DEV, "models_dev")
    failed = replace(models_dev, status="failed", error="HTTP 500", checked_at=2000.0)

    save_source_state(tmp_path, litellm)
    save_source_state(tmp_path, failed)
    loaded = load_source_states(tmp_path)

    assert loaded == {litellm.url: litellm, failed.url: failed}
    path = state_path(tmp_path, litellm.url)
    assert path.parent == tmp_path / "pricing"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        state_path(tmp_path, url).name for url in loaded
    )


def test_load_without_a_pricing_directory_is_empty(tmp_path: Path) -> None:
    assert load_source_states(tmp_path) == {}


def test_damaged_state_files_are_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = SourceState(
        "https://example.com/prices.json",
        "litellm",
        etag='"abc"',
        fetched_at=1.0,
        checked_at=1.0,
        models={"m": RemoteModel(Price(1.0, 2.0, cache_read=0.1), 1000, None)},
        status="fetched",
    )
    save_source_state(tmp_path, good)
    directory = tmp_path / "pricing"
    (directory / "truncated.json").write_text('{"version": 1, "url": ')
    (directory / "old.json").write_text('{"version": 0}')
    wrong_price = json.loads(state_path(tmp_path, good.url).read_text())
    wrong_price["url"] = "https://example.org/other.json"
    wrong_price["models"]["m"]["input"] = -1
    state_path(tmp_path, wrong_price["url"]).write_text(json.dumps(wrong_price))
    moved = {**wrong_price, "url": "https://example.net/moved.json"}
    moved["models"] = {}
    (directory / "moved.json").write_text(json.dumps(moved))

    with caplog.at_level(logging.WARNING, logger="pooldaemon.pricing"):
        loaded = load_source_states(tmp_path)

    assert loaded == {good.url: good}
    warned = " ".join(record.getMessage() for record in caplog.records)
    for name in (
        "truncated.json",
        "old.json",
        "moved.json",
        state_path(tmp_path, wrong_price["url"]).name,
    ):
        assert name in warned


# merged prices


def _state(url: str, fmt: str, **prices: float) -> SourceState:
    models = {key: RemoteModel(Price(price, price)) for key, price in prices.items()}
    return SourceState(url, fmt, models=models, status="fetched")


def test_merged_prices_earlier_sources_win_named_by_format() -> None:
    litellm = _state("https://raw.example.com/litellm.json", "litellm", a=1.0, b=1.0)
    models_dev = _state("https://models.dev/api.json", "models_dev", b=2.0, c=2.0)
    removed = _state("https://old.example.com/x.json", "litellm", d=9.0)

    merged = merged_prices([models_dev, litellm, removed], [litellm.url, models_dev.url])

    assert merged == {
        "a": RemotePrice(Price(1.0, 1.0), "litellm"),
        "b": RemotePrice(Price(1.0, 1.0), "litellm"),
        "c": RemotePrice(Price(2.0, 2.0), "models_dev"),
    }
    swapped = merged_prices([litellm, models_dev], [models_dev.url, litellm.url])
    assert swapped["b"] == RemotePrice(Price(2.0, 2.0), "models_dev")


def test_merged_prices_names_sources_sharing_a_format_by_host() -> None:
    mirror = _state("https://mirror.example.com/p.json", "litellm", a=1.0)
    upstream = _state("https://raw.githubusercontent.com/p.json", "litellm", a=2.0, b=2.0)
    not_yet = SourceState.never("https://models.dev/api.json", "models_dev")

    merged = merged_prices([upstream, mirror, not_yet], [mirror.url, upstream.url, not_yet.url])

    assert merged == {
        "a": RemotePrice(Price(1.0, 1.0), "litellm@mirror.example.com"),
        "b": RemotePrice(Price(2.0, 2.0), "litellm@raw.githubusercontent.com"),
    }
    assert merged_prices([], [mirror.url]) == {}
