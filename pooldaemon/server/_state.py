"""Shared state of the proxy application, under typed ``web.AppKey``s."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp
from aiohttp import web

from pooldaemon.pool import CooldownPolicy, Runtime, Snapshot
from pooldaemon.usage import UsageStore

if TYPE_CHECKING:
    from pooldaemon.server._metrics import ProxyMetrics

__all__ = ["PROXY_STATE", "Applied", "ProxyState"]


@dataclass(frozen=True, slots=True)
class Applied:
    """What serves requests: a snapshot and the key values resolved for it."""

    snapshot: Snapshot
    secrets: Mapping[str, str] = field(repr=False)


class ProxyState:
    """Everything a proxy request reads; ``applied`` is swapped by reference on reload."""

    def __init__(
        self,
        applied: Applied,
        runtime: Runtime | None = None,
        *,
        store: UsageStore | None = None,
        max_request_bytes: int = 32 * 1024 * 1024,
        max_response_bytes: int = 64 * 1024 * 1024,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.applied = applied
        self.runtime = runtime or Runtime()
        self.runtime.policy = CooldownPolicy.from_spec(applied.snapshot.spec.cooldown)
        self.store = store
        self.max_request_bytes = max_request_bytes
        self.max_response_bytes = max_response_bytes
        self.clock = clock
        self.wall = wall
        self.session: aiohttp.ClientSession | None = None
        self.metrics: ProxyMetrics | None = None  # set by whoever owns the registry

    def apply(self, applied: Applied) -> None:
        """Serve a new snapshot from the next request on (requests in flight keep theirs)."""
        self.runtime.policy = CooldownPolicy.from_spec(applied.snapshot.spec.cooldown)
        self.applied = applied


PROXY_STATE = web.AppKey("proxy_state", ProxyState)
