from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pooldaemon.pool._tokens import Usage
from pooldaemon.usage import UsageRecord, UsageStore

DAY = 86400.0
DAY0 = 20_000 * DAY  # 2024-10-04T00:00:00Z, a UTC midnight


def record(**changes: Any) -> UsageRecord:
    """A plausible record; keyword arguments replace fields."""
    fields: dict[str, Any] = {
        "ts": DAY0 + 3600.0,
        "request_id": "req-1",
        "provider": "openai",
        "model": "gpt-4o",
        "key_id": "openai#1",
        "client": "ide",
        "usage": Usage(input=100, output=20, cache_read=50, cache_write=5, reasoning=4),
        "latency_ms": 850.0,
        "ttfb_ms": 120.0,
        "outcome": "success",
        "cost_usd": 0.001,
        "pricing_source": "builtin",
    }
    fields.update(changes)
    return UsageRecord(**fields)


def wait_until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(0.01)


def row_count(path: Path) -> int:
    """Rows on disk, read with a plain sqlite3 connection (not the store's)."""
    with sqlite3.connect(path) as conn:
        count: int = conn.execute("SELECT COUNT(*) FROM usage").fetchone()[0]
    conn.close()
    return count


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "usage.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[UsageStore]:
    """A store that only writes on flush() or close() (the tests decide when)."""
    with UsageStore(db_path, flush_interval=3600, flush_max=10**9) as opened:
        yield opened
