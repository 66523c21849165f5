from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest

from pooldaemon.pool import Snapshot
from pooldaemon.server import Applied, ProxyState, build_proxy_app
from pooldaemon.spec import PoolSpec
from pooldaemon.upstream import resolve_keys
from pooldaemon.usage import UsageStore
from tests.server.fake_gemini import gemini_app
from tests.server.fake_ollama import ollama_app
from tests.server.fake_responses import responses_app
from tests.server.fakes import Fake, fake_app, serve

FAKE_APPS = {"ollama": ollama_app, "google": gemini_app, "responses": responses_app}

KEYS = {
    "OPENAI_A_KEY": "sk-test-openai-a-1234567890abcdef",
    "OPENAI_B_KEY": "sk-test-b-0987654321",
    "ANTH_KEY": "sk-ant-test-key-abcdefabcdef",
    "ANTH_KEY_2": "sk-ant-second-key-123456",
}
CLIENT_KEY = "pd-client-key-for-tests-0001"
CLIENT_SHA = hashlib.sha256(CLIENT_KEY.encode()).hexdigest()


@dataclass
class Gateway:
    url: str
    state: ProxyState
    store: UsageStore
    fakes: dict[str, Fake]
    stack: AsyncExitStack

    def openai(self, api_key: str = "unused") -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=api_key, max_retries=0)
        self.stack.push_async_callback(client.close)
        return client

    def anthropic(self, api_key: str = "unused") -> anthropic.AsyncAnthropic:
        client = anthropic.AsyncAnthropic(base_url=self.url, api_key=api_key, max_retries=0)
        self.stack.push_async_callback(client.close)
        return client

    async def http(self) -> aiohttp.ClientSession:
        return await self.stack.enter_async_context(aiohttp.ClientSession())


GatewayFactory = Callable[..., Any]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[GatewayFactory]:
    """Start fakes and a proxy in front of them: ``await gateway(providers=[...], **spec)``.

    Each provider dict may name ``fake: NAME``; its base_url then points at that fake.
    """
    async with AsyncExitStack() as stack:

        async def start(**sections: Any) -> Gateway:
            fakes: dict[str, Fake] = {}
            providers = []
            for entry in sections.pop("providers"):
                entry = dict(entry)
                name = entry.pop("fake", None)
                if name is not None:
                    fmt = entry.get("format", "openai")
                    if name not in fakes:
                        fakes[name] = Fake(name)
                        app = FAKE_APPS.get(fmt, fake_app)(fakes[name])
                        fakes[name].url = await stack.enter_async_context(serve(app))
                    suffix = "/v1" if fmt in ("openai", "responses") else ""
                    entry.setdefault("base_url", fakes[name].url + suffix)
                providers.append(entry)
            spec = PoolSpec.model_validate({"version": 1, "providers": providers, **sections})
            snapshot = Snapshot.build(spec)
            secrets, problems = resolve_keys(snapshot, config_dir=tmp_path, env=KEYS)
            assert not problems, problems
            store = UsageStore(tmp_path / "usage.sqlite3", flush_interval=3600)
            stack.callback(store.close)
            state = ProxyState(Applied(snapshot, secrets), store=store, max_request_bytes=64_000)
            url = await stack.enter_async_context(serve(build_proxy_app(state)))
            return Gateway(url, state, store, fakes, stack)

        yield start
