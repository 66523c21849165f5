from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest

from tests.refresh.fake_catalogs import CatalogFake, catalog_app
from tests.server.fakes import serve

Start = Callable[..., Any]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """``url = await start(fake)``: serve ``fake`` until the test ends."""
    async with AsyncExitStack() as stack:

        async def run(fake: CatalogFake) -> str:
            url: str = await stack.enter_async_context(serve(catalog_app(fake)))
            return url

        yield run
