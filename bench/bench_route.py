"""Micro-benchmark of the pool core: snapshot build and ``route()``.

    .venv/bin/python bench/bench_route.py [--providers 200] [--models 100]

200 providers x 100 models each (20,000 provider-model pairs). Model ids are
shared the way real pools share them: each id is served by a handful of
providers (``--overlap``). Reported: snapshot build time, and the median and
p99 of ``route()`` per call for a plain model id, an alias, a cooling-heavy
pool and the worst case of a model served by every provider.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

from pooldaemon.pool import Failure, FailureClass, RouteRequest, Runtime, Snapshot, route
from pooldaemon.spec import PoolSpec


def build_spec(n_providers: int, n_models: int, overlap: int) -> PoolSpec:
    distinct = max(1, n_providers * n_models // overlap)
    providers: list[dict[str, Any]] = []
    for p in range(n_providers):
        models = [
            {"id": f"model-{(p * n_models // overlap + m) % distinct}"} for m in range(n_models)
        ]
        models.append({"id": "everywhere"})
        providers.append(
            {
                "id": f"p{p}",
                "base_url": f"https://p{p}.example.com/v1",
                "priority": p % 7,
                "keys": [{"env": f"KEY_{p}"}, {"env": f"KEY_{p}_B"}],
                "models": models,
            }
        )
    return PoolSpec.model_validate(
        {"version": 1, "providers": providers, "aliases": {"fast": ["model-1", "p3/model-75"]}}
    )


def timeit(fn: Any, rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--providers", type=int, default=200)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--overlap", type=int, default=4, help="providers serving each model id")
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()

    spec = build_spec(args.providers, args.models, args.overlap)
    builds = []
    for _ in range(5):
        t0 = time.perf_counter()
        snap = Snapshot.build(spec)
        builds.append(time.perf_counter() - t0)
    rt = Runtime()
    now, wall = 1000.0, time.time()
    served = len(snap.resolve("model-1"))
    print(
        f"machine: {platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(
        f"pool: {args.providers} providers x {args.models} models "
        f"({sum(len(p.models) for p in snap.providers)} pairs), "
        f"'model-1' served by {served} providers"
    )
    print(f"snapshot build: median {statistics.median(builds) * 1000:.0f} ms over 5 builds")
    qualified = f"p3/{next(iter(snap.by_id['p3'].models))}"
    cases = {
        "model id": RouteRequest(model="model-1"),
        "provider/model": RouteRequest(model=qualified),
        "alias": RouteRequest(model="fast"),
        "strategy cost": RouteRequest(model="model-1", strategy="cost"),
    }
    for name, request in cases.items():
        med, p99 = timeit(lambda r=request: route(r, snap, rt, now, wall), args.rounds)
        print(f"route() {name:<16} median {med:6.1f} us   p99 {p99:6.1f} us")
    for view in list(snap.providers)[::2]:
        for i in range(3):
            rt.record_failure(view, Failure(FailureClass.server), now - 1 + i * 0.01)
    med, p99 = timeit(lambda: route(cases["model id"], snap, rt, now, wall), args.rounds)
    print(f"route() {'half cooling':<16} median {med:6.1f} us   p99 {p99:6.1f} us")
    worst = RouteRequest(model="everywhere")
    med, p99 = timeit(lambda: route(worst, snap, rt, now, wall), max(args.rounds // 10, 100))
    print(f"route() {'all 200 serve it':<16} median {med:6.1f} us   p99 {p99:6.1f} us")


if __name__ == "__main__":
    main()
