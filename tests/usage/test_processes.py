"""Two processes, one file: what one writes, the other reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pooldaemon.usage import UsageStore

from .conftest import DAY, DAY0, record, row_count

_WRITER = """
import sys
from pathlib import Path
from pooldaemon.pool._tokens import Usage
from pooldaemon.usage import UsageRecord, UsageStore

path, count, day0 = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
with UsageStore(path, flush_max=7) as store:
    for i in range(count):
        store.add(UsageRecord(
            ts=day0 + 60.0 * i, request_id=f"child-{i}", provider="child", model="m",
            key_id="child#1", client=None, usage=Usage(input=10, output=i),
            latency_ms=100.0, ttfb_ms=None, outcome="success", cost_usd=0.5,
            pricing_source="default",
        ))
"""

_READER = """
import dataclasses, json, sys
from pathlib import Path
from pooldaemon.usage import UsageStore

path, since, until = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
with UsageStore(path) as store:
    print(json.dumps({
        "total": dataclasses.asdict(store.total(since, until)),
        "providers": [s.key for s in store.summarize(since, until, "provider")],
        "ids": sorted(r.request_id for r in store.records(since, until)),
    }))
"""


def _python(code: str, *args: object) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_child_process_writes_what_this_one_reads(db_path: Path) -> None:
    _python(_WRITER, db_path, 50, DAY0)
    with UsageStore(db_path) as store:
        total = store.total(DAY0, DAY0 + DAY)
        assert (total.requests, total.input_tokens, total.output_tokens) == (50, 500, 1225)
        assert total.cost_usd == 25.0
        assert len(store.records(DAY0, DAY0 + DAY, limit=100)) == 50


def test_this_process_writes_what_a_child_reads(db_path: Path) -> None:
    with UsageStore(db_path) as store:
        for i in range(5):
            store.add(record(request_id=f"parent-{i}", ts=DAY0 + i))
        store.flush()
        # The store stays open (and writable) while the other process reads.
        seen = json.loads(_python(_READER, db_path, DAY0 - DAY, DAY0 + 2 * DAY))
    assert seen["total"]["requests"] == 5
    assert seen["total"]["key"] == "total"
    assert seen["providers"] == ["openai"]
    assert seen["ids"] == [f"parent-{i}" for i in range(5)]


def test_both_processes_write_to_one_file(db_path: Path) -> None:
    with UsageStore(db_path) as store:
        store.add(record(request_id="parent", ts=DAY0 + 30))
        store.flush()
        _python(_WRITER, db_path, 20, DAY0)
        store.add(record(request_id="parent-2", ts=DAY0 + 90))
        store.flush()
        providers = {s.key: s.requests for s in store.summarize(DAY0, DAY0 + DAY, "provider")}
        assert providers == {"child": 20, "openai": 2}
        # The daily rollup (whole day) and the raw rows (part of it) agree.
        assert store.total(DAY0, DAY0 + DAY).requests == 22
        assert store.total(DAY0 - 1, DAY0 + DAY - 1).requests == 22


_FORGETFUL = """
import sys
from pathlib import Path
from pooldaemon.pool._tokens import Usage
from pooldaemon.usage import UsageRecord, UsageStore

store = UsageStore(Path(sys.argv[1]), flush_interval=3600)
store.add(UsageRecord(
    ts=float(sys.argv[2]), request_id="orphan", provider="p", model="m", key_id="k",
    client=None, usage=Usage(), latency_ms=1.0, ttfb_ms=None, outcome="success",
    cost_usd=0.0, pricing_source="default",
))
# no close(): the process must still exit, and the record still be written
"""


def test_a_store_never_closed_lets_the_process_exit(db_path: Path) -> None:
    _python(_FORGETFUL, db_path, DAY0)
    assert row_count(db_path) == 1
