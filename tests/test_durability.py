"""Usage records survive the daemon's end: the real process under concurrent load.

SIGTERM drains the requests in flight and writes every record: the store holds
exactly the requests whose answer reached a client. SIGKILL loses at most what
the write-behind store had not flushed yet: every answer completed more than a
flush interval (plus slack) before the kill is in the store.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from pooldaemon.usage._store import FLUSH_INTERVAL
from tests.faults.fault_upstream import Fault, FaultUpstream, fault_app
from tests.server.fakes import serve
from tests.test_daemon import Daemon, daemon

WORKERS = 12
LOAD_SECONDS = 1.5
FLUSH_BOUND = FLUSH_INTERVAL + 0.25  # a record is written FLUSH_INTERVAL after it came
HI = [{"role": "user", "content": "hi"}]


@dataclass
class Load:
    """What the clients saw: request id -> when its complete answer arrived."""

    completed: dict[str, float] = field(default_factory=dict)
    sent: set[str] = field(default_factory=set)
    failed: int = 0


async def _one(http: aiohttp.ClientSession, url: str, rid: str, stream: bool) -> bool:
    body = {"model": "gpt-4o", "messages": HI, "stream": stream}
    async with http.post(url, json=body, headers={"x-request-id": rid}) as resp:
        raw = await resp.read()
    if resp.status != 200:
        return False
    if stream:  # a complete stream, its end marker included
        return raw.endswith(b"data: [DONE]\n\n")
    return bool(json.loads(raw)["choices"])


async def _worker(running: Daemon, load: Load, n: int, stop: asyncio.Event) -> None:
    url = f"http://127.0.0.1:{running.port}/v1/chat/completions"
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        i = 0
        while not stop.is_set():
            rid = f"w{n}-{i}"
            i += 1
            load.sent.add(rid)
            try:
                ok = await _one(http, url, rid, stream=i % 2 == 0)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                ok = False
            if ok:
                load.completed[rid] = time.monotonic()
            else:
                load.failed += 1
                await asyncio.sleep(0.05)  # the daemon is going away: do not spin


@asynccontextmanager
async def _loaded_daemon(tmp_path: Path) -> AsyncIterator[tuple[Daemon, Load, asyncio.Event]]:
    """The daemon in front of a slow healthy upstream, with clients hammering it."""
    async with AsyncExitStack() as stack:
        upstream = FaultUpstream(choose=lambda: Fault.slow, slow_delay=0.15)
        url = await stack.enter_async_context(serve(fault_app(upstream)))
        config = tmp_path / "pool.yaml"
        config.write_text(
            "version: 1\nproviders:\n"
            f"  - {{id: up, base_url: '{url}/v1', location: cloud, models: [{{id: gpt-4o}}]}}\n"
        )
        running = await stack.enter_async_context(daemon(config, tmp_path / "state"))
        load, stop = Load(), asyncio.Event()
        workers = [asyncio.create_task(_worker(running, load, n, stop)) for n in range(WORKERS)]
        try:
            yield running, load, stop
        finally:
            stop.set()
            await asyncio.gather(*workers)


def _records(state: Path) -> dict[str, str]:
    with sqlite3.connect(state / "usage.sqlite3") as db:
        rows = db.execute("SELECT request_id, outcome FROM usage").fetchall()
    records = {str(rid): str(outcome) for rid, outcome in rows}
    assert len(records) == len(rows), "a request recorded twice"
    return records


async def test_sigterm_under_load_loses_no_usage_record(tmp_path: Path) -> None:
    async with _loaded_daemon(tmp_path) as (running, load, stop):
        await asyncio.sleep(LOAD_SECONDS)
        in_flight = len(load.sent) - len(load.completed) - load.failed
        running.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(running.proc.wait(), 15) == 0, "\n".join(running.log)
        stop.set()
    assert in_flight > 0 and len(load.completed) > 50, (in_flight, len(load.completed))
    records = _records(tmp_path / "state")
    # Exactly the answers clients received, the ones in flight at the signal included.
    assert set(records) == set(load.completed), (
        sorted(set(records) ^ set(load.completed))[:10],
        len(records),
        len(load.completed),
    )
    assert set(records.values()) == {"success"}


async def test_sigkill_loses_at_most_the_last_flush_interval(tmp_path: Path) -> None:
    async with _loaded_daemon(tmp_path) as (running, load, stop):
        await asyncio.sleep(LOAD_SECONDS + 0.25)
        running.proc.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        await asyncio.wait_for(running.proc.wait(), 5)
        stop.set()
    records = _records(tmp_path / "state")
    assert set(records) <= load.sent  # nothing recorded that was never asked for
    lost = {rid: at for rid, at in load.completed.items() if rid not in records}
    old = {rid: round(killed - at, 3) for rid, at in lost.items() if at < killed - FLUSH_BOUND}
    assert not old, f"completed more than {FLUSH_BOUND}s before the kill, yet lost: {old}"
    assert len(records) > 50, len(records)
