"""After the faults stop, every cooldown recovers under traffic (what the soak checks at
its end, here in process and deterministic)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import aiohttp

from pooldaemon.pool import Phase
from tests.faults.fault_upstream import Fault, FaultUpstream, fault_app
from tests.server.conftest import Gateway, GatewayFactory
from tests.server.fakes import serve

HI = [{"role": "user", "content": "hi"}]


@asynccontextmanager
async def _pool(
    gateway: GatewayFactory, n: int
) -> AsyncIterator[tuple[Gateway, list[FaultUpstream]]]:
    """Providers p0..p{n-1} (in this file order), round robin, 100 ms cooldowns."""
    async with AsyncExitStack() as stack:
        ups = [FaultUpstream() for _ in range(n)]
        urls = [await stack.enter_async_context(serve(fault_app(u))) for u in ups]
        gw = await gateway(
            routing={"strategy": "round_robin"},
            cooldown={"failure_threshold": 1, "initial": "100ms", "max": "1s",
                      "transient": {"failure_threshold": 1, "initial": "100ms", "max": "1s"}},
            providers=[
                {"id": f"p{i}", "location": "cloud", "base_url": f"{url}/v1",
                 "keys": [{"env": "OPENAI_A_KEY"}], "models": [{"id": "gpt-4o"}]}
                for i, url in enumerate(urls)
            ],
        )  # fmt: skip
        yield gw, ups


async def _served_by(gw: Gateway, count: int) -> Counter[str]:
    served: Counter[str] = Counter()
    async with aiohttp.ClientSession() as http:
        for _ in range(count):
            body = {"model": "gpt-4o", "messages": HI}
            async with http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 200, await resp.text()
                served[resp.headers["x-pooldaemon-provider"]] += 1
    return served


async def test_round_robin_shares_the_requests(gateway: GatewayFactory) -> None:
    async with _pool(gateway, 3) as (gw, _):
        assert await _served_by(gw, 6) == Counter({"p0": 2, "p1": 2, "p2": 2})


async def test_every_cooled_provider_recovers_under_traffic(gateway: GatewayFactory) -> None:
    async with _pool(gateway, 2) as (gw, ups):
        for up in ups:
            up.script.append(Fault.status_503)
        async with aiohttp.ClientSession() as http:
            body = {"model": "gpt-4o", "messages": HI}
            async with http.post(f"{gw.url}/v1/chat/completions", json=body) as resp:
                assert resp.status == 502  # both failed: both cool for 100 ms
        await asyncio.sleep(0.15)  # the cooldowns expire: both are half-open
        await _served_by(gw, 4)  # the faults are over; traffic goes on
        now = gw.state.clock()
        assert [gw.state.runtime.phase(p, now) for p in ("p0", "p1")] == [Phase.closed] * 2
