"""Benchmark the usage store's summaries over many records.

    .venv/bin/python bench/bench_usage.py [--records N] [--runs 5]

Bulk-inserts N synthetic records (6 providers, 12 models, 8 clients, 90 days,
log-normal latencies, 5 % failures) into a temporary store, then times
``summarize`` for each ``group_by`` and ``total`` over the whole range, plus a
two-day summary (raw rows only) and budget ``spend`` queries; each figure is
the median of ``--runs``.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from pooldaemon.pool._tokens import Usage
from pooldaemon.usage import GroupBy, UsageRecord, UsageStore

_DAY_S = 86400.0
_START = 1_750_000_000.0
_DAYS = 90
_MODELS = {
    "openai": ("gpt-4o", "gpt-4o-mini"),
    "anthropic": ("claude-sonnet-4", "claude-haiku-4"),
    "google": ("gemini-2.5-pro", "gemini-2.5-flash"),
    "deepseek": ("deepseek-chat", "deepseek-reasoner"),
    "openrouter": ("llama-3.3-70b", "qwen-2.5-72b"),
    "ollama": ("llama3.2", "qwen2.5-coder"),
}
_CLIENTS = (None, "ide", "ci", "chat", "agent", "batch", "docs", "eval")
_OUTCOMES = ("success",) * 95 + ("rate_limit", "transient", "timeout", "server", "auth")


def synthetic(count: int, seed: int = 7) -> Iterator[UsageRecord]:
    """``count`` records spread evenly over 90 days, in time order."""
    rng = random.Random(seed)
    providers = tuple(_MODELS)
    step = _DAYS * _DAY_S / count
    for i in range(count):
        provider = rng.choice(providers)
        inp = int(rng.lognormvariate(7, 1))
        out = int(rng.lognormvariate(5.5, 1))
        yield UsageRecord(
            ts=_START + i * step,
            request_id=f"req-{i:08d}",
            provider=provider,
            model=rng.choice(_MODELS[provider]),
            key_id=f"{provider}-k{rng.randrange(3)}",
            client=rng.choice(_CLIENTS),
            usage=Usage(input=inp, output=out, cache_read=inp // 3, reasoning=out // 4),
            latency_ms=rng.lognormvariate(7, 0.8),  # median ~1.1 s, long tail
            ttfb_ms=rng.lognormvariate(5.5, 0.7),
            outcome=rng.choice(_OUTCOMES),
            cost_usd=(inp * 2.5 + out * 10.0) / 1_000_000,
            pricing_source="builtin",
        )


def median_seconds(call: Callable[[], object], runs: int) -> float:
    """The median wall time of ``runs`` calls."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "usage.sqlite3"
        # A flush_max above the batch size: the bench flushes each batch itself.
        with UsageStore(path, flush_interval=3600, flush_max=10**9) as store:
            start = time.perf_counter()
            for i, record in enumerate(synthetic(args.records), 1):
                store.add(record)
                if i % 100_000 == 0:
                    store.flush()
            store.flush()
            insert_s = time.perf_counter() - start
            size_mb = os.path.getsize(path) / 1e6

            until = _START + _DAYS * _DAY_S
            month = until - 30 * _DAY_S
            # Not at midnight: the worst raw-only range, just under two whole days.
            day = (_START // _DAY_S + 45) * _DAY_S + 1
            group_bys: tuple[GroupBy, ...] = ("provider", "model", "client", "day")
            queries: list[tuple[str, Callable[[], object]]] = [
                (f"summarize({g})", functools.partial(store.summarize, _START, until, g))
                for g in group_bys
            ]
            queries += [
                ("total", functools.partial(store.total, _START, until)),
                (
                    "summarize(model) 2 days",
                    functools.partial(store.summarize, day, day + 2 * _DAY_S - 2, "model"),
                ),
                ("spend(30 days)", functools.partial(store.spend, month)),
                (
                    "spend(30 days, provider)",
                    functools.partial(store.spend, month, provider="openai"),
                ),
            ]
            rows = [
                (name, median_seconds(call, args.runs), _groups(call())) for name, call in queries
            ]

    print(f"machine: {platform.platform()}, {platform.processor() or platform.machine()}")
    versions = f"python {platform.python_version()}, sqlite {sqlite3.sqlite_version}"
    print(f"cpus: {os.cpu_count()}, {versions}")
    print(f"records: {args.records:,}  insert: {insert_s:.1f} s  file: {size_mb:.0f} MB")
    print(f"range: {_DAYS} days, not starting at midnight; median of {args.runs} runs")
    print(f"{'query':<28}{'groups':>8}{'median ms':>12}")
    for name, seconds, groups in rows:
        print(f"{name:<28}{groups:>8}{seconds * 1000:>12.1f}")
    return 0


def _groups(result: object) -> int:
    return len(result) if isinstance(result, list) else 1


if __name__ == "__main__":
    sys.exit(main())
