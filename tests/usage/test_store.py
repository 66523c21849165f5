"""The store's lifecycle: buffering, flushing, durability, files and errors."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pooldaemon.errors import PoolError, StoreError
from pooldaemon.pool._tokens import Usage
from pooldaemon.usage import UsageStore, _store
from pooldaemon.usage._rows import insert_rows, record_to_row
from pooldaemon.usage._schema import SCHEMA_VERSION, open_database

from .conftest import DAY, DAY0, record, row_count, wait_until


def test_records_round_trip(store: UsageStore) -> None:
    first = record(request_id="a", ts=DAY0 + 1.25, client=None, ttfb_ms=None)
    second = record(request_id="b", ts=DAY0 + 2.5, outcome="rate_limit", latency_ms=12.0)
    store.add(first)
    store.add(second)
    assert store.flush() == 2
    assert store.flush() == 0
    assert store.records(DAY0, DAY0 + DAY) == [second, first]
    assert store.records(DAY0, DAY0 + DAY, limit=1) == [second]
    assert store.records(DAY0 + 2, DAY0 + 3) == [second]


# No lone surrogates (not UTF-8) and no NUL (stored as U+FFFD, tested below).
_text = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
_big = st.integers(min_value=0, max_value=10**15)  # what record_to_row accepts


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(
        st.tuples(
            st.floats(0, 2e10, allow_nan=False, allow_infinity=False),
            st.floats(0, 1e12, allow_nan=False, allow_infinity=False),
            st.floats(allow_nan=False, allow_infinity=False),
            st.none() | st.floats(0, 1e9, allow_nan=False, allow_infinity=False),
            _text,
            st.none() | _text,
            _big,
        ),
        min_size=1,
        max_size=20,
    )
)
def test_every_value_is_stored_exactly(store: UsageStore, values: list[tuple]) -> None:
    """Doubles, text and large counts come back from SQLite exactly as they were added."""
    run = os.urandom(6).hex()  # examples share the store: this one's ids are its own
    added = [
        record(
            request_id=f"{run}-{i}",
            ts=ts,
            latency_ms=latency,
            cost_usd=cost,
            ttfb_ms=ttfb,
            model=model,
            client=client,
            usage=Usage(input=count, output=i),
        )
        for i, (ts, latency, cost, ttfb, model, client, count) in enumerate(values)
    ]
    try:
        for item in added:
            store.add(item)
        store.flush()
        got = {r.request_id: r for r in store.records(0, float("inf"), limit=10_000)}
        for item in added:
            assert got[item.request_id] == item
    finally:
        store.prune(3e10)  # the next example starts empty


@pytest.mark.parametrize("count", [1, 31, 32, 33, 63, 64, 95, 200, 1000])
def test_batches_use_six_statement_sizes_and_keep_their_order(tmp_path: Path, count: int) -> None:
    """Any batch is written with INSERTs of 32, 16, 8, 4, 2 or 1 rows, so the writer
    prepares (and caches) six statements, not one per batch size; ids follow the order
    of the batch."""
    conn = open_database(tmp_path / "usage.sqlite3")
    sizes: list[int] = []
    conn.set_trace_callback(
        lambda sql: sizes.append(sql.count("), (") + 1) if sql.startswith("INSERT") else None
    )
    rows = [record_to_row(record(request_id=f"r{i}")) for i in range(count)]
    insert_rows(conn, rows)
    conn.set_trace_callback(None)
    assert set(sizes) <= {32, 16, 8, 4, 2, 1} and sum(sizes) == count
    assert len(sizes) <= count // 32 + 5
    ids = [r for (r,) in conn.execute("SELECT request_id FROM usage ORDER BY id")]
    assert ids == [f"r{i}" for i in range(count)]
    conn.close()


def test_the_writer_yields_its_core_after_each_statement_of_a_flush(
    store: UsageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No two of a flush's INSERTs (rows, rollup, per-key counts) run back to back:
    each one is followed by a pause, where the writer gives up its core; and the
    rollup written in pieces sums up the same as the raw rows."""
    events: list[str] = []
    monkeypatch.setattr(_store, "_yield_core", lambda: events.append("pause"))

    def statement(sql: str) -> None:
        if sql.lstrip().startswith("INSERT"):
            events.append(sql.split()[2])  # the table

    store._writer.set_trace_callback(statement)
    for i in range(300):
        store.add(record(request_id=f"r{i}", model=f"m{i % 3}"))
    assert store.flush() == 300
    store._writer.set_trace_callback(None)
    # 300 rows: statements of 32 rows (9), 8 and 4; the rollup 128 rows a statement.
    tables = ["usage"] * 11 + ["usage_daily"] * 3 + ["key_usage"]
    assert events == [e for table in tables for e in (table, "pause")]
    by_model = store.summarize(DAY0, DAY0 + DAY, "model")
    assert sorted((s.key, s.requests) for s in by_model) == [("m0", 100), ("m1", 100), ("m2", 100)]


def test_a_nul_in_a_name_is_stored_as_a_replacement_character(store: UsageStore) -> None:
    store.add(record(request_id="nul", model="a\x00b", client="c\x00"))
    store.flush()
    (got,) = store.records(0, float("inf"))
    assert (got.model, got.client) == ("a\ufffdb", "c\ufffd")


@pytest.mark.parametrize(
    "change",
    [
        {"usage": Usage(input=10**16)},
        {"usage": Usage(output=-1)},
        {"ts": float("nan")},
        {"latency_ms": float("inf")},
        {"cost_usd": float("nan")},
        {"ttfb_ms": float("-inf")},
    ],
)
def test_a_number_that_cannot_be_stored_fails_the_caller_not_the_batch(
    store: UsageStore, change: dict[str, float]
) -> None:
    store.add(record(request_id="good"))
    with pytest.raises(ValueError, match=r"not a finite number|out of range"):
        store.add(record(request_id="bad", **change))
    assert store.flush() == 1
    assert [r.request_id for r in store.records(0, float("inf"))] == ["good"]


def test_buffered_records_are_on_disk_after_close(db_path: Path) -> None:
    store = UsageStore(db_path, flush_interval=3600, flush_max=10**9)
    for i in range(25):
        store.add(record(request_id=f"r{i}"))
    assert row_count(db_path) == 0
    store.close()
    assert row_count(db_path) == 25


def test_flushes_when_flush_max_records_wait(db_path: Path) -> None:
    with UsageStore(db_path, flush_interval=3600, flush_max=10) as store:
        for i in range(9):
            store.add(record(request_id=f"r{i}"))
        assert row_count(db_path) == 0
        store.add(record(request_id="r9"))
        wait_until(lambda: row_count(db_path) == 10)


def test_flushes_every_flush_interval(db_path: Path) -> None:
    with UsageStore(db_path, flush_interval=0.05, flush_max=10**9) as store:
        store.add(record(request_id="a"))
        wait_until(lambda: row_count(db_path) == 1)
        store.add(record(request_id="b"))
        wait_until(lambda: row_count(db_path) == 2)


def test_concurrent_adds_lose_nothing(db_path: Path) -> None:
    threads, per_thread = 8, 400
    start = threading.Barrier(threads)

    with UsageStore(db_path, flush_interval=0.01, flush_max=50) as store:

        def worker(n: int) -> None:
            start.wait()
            for i in range(per_thread):
                store.add(record(request_id=f"t{n}-{i}", ts=DAY0 + i))

        pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join()

    with sqlite3.connect(db_path) as conn:
        ids = [row[0] for row in conn.execute("SELECT request_id FROM usage")]
    conn.close()
    assert len(ids) == threads * per_thread
    assert set(ids) == {f"t{n}-{i}" for n in range(threads) for i in range(per_thread)}
    with UsageStore(db_path) as reopened:
        assert reopened.total(DAY0, DAY0 + DAY).requests == threads * per_thread


def test_reads_run_beside_an_open_write_transaction(store: UsageStore, db_path: Path) -> None:
    store.add(record())
    store.flush()
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("DELETE FROM usage")
        assert store.total(DAY0, DAY0 + DAY).requests == 1  # WAL: not blocked
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_file_modes_and_journal_mode_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "usage.sqlite3"
    old = os.umask(0)
    try:
        with UsageStore(path) as store:
            store.add(record())
            store.flush()
            for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                assert stat.S_IMODE(name.stat().st_mode) == 0o600, name
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    conn.close()


def test_existing_directory_keeps_its_mode(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    with UsageStore(tmp_path / "usage.sqlite3"):
        pass
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_close_is_idempotent_and_ends_use(db_path: Path) -> None:
    store = UsageStore(db_path)
    store.add(record())
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.add(record())
    with pytest.raises(StoreError, match="closed"):
        store.total(DAY0, DAY0 + DAY)
    with pytest.raises(StoreError, match="closed"):
        store.prune(DAY0)
    assert row_count(db_path) == 1


def test_writer_thread_is_joined_on_close(db_path: Path) -> None:
    before = {t.name for t in threading.enumerate()}
    with UsageStore(db_path):
        assert any(t.name.startswith("usage-writer") for t in threading.enumerate())
    assert {t.name for t in threading.enumerate()} <= before


def test_parent_that_is_a_file_raises_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    path = blocker / "usage.sqlite3"
    with pytest.raises(StoreError, match=str(path)) as info:
        UsageStore(path)
    assert isinstance(info.value, PoolError)
    assert isinstance(info.value, OSError)
    assert isinstance(info.value.__cause__, OSError)


def test_file_that_is_not_a_database_raises_store_error(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    path.write_bytes(b"this is not SQLite " * 400)
    with pytest.raises(StoreError, match=str(path)) as info:
        UsageStore(path)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_path_that_is_a_directory_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=str(tmp_path)):
        UsageStore(tmp_path)


def test_newer_schema_raises_store_error(db_path: Path) -> None:
    UsageStore(db_path).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("PRAGMA user_version=99")
    conn.close()
    with pytest.raises(StoreError, match="schema version 99"):
        UsageStore(db_path)


def test_reopening_keeps_records(db_path: Path) -> None:
    with UsageStore(db_path) as store:
        store.add(record(request_id="kept"))
    with UsageStore(db_path) as store:
        assert [r.request_id for r in store.records(0, DAY0 + DAY)] == ["kept"]


def test_invalid_settings_are_rejected(db_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_max"):
        UsageStore(db_path, flush_max=0)


def test_key_usage_counts_every_flush_and_survives_pruning(tmp_path: Path) -> None:
    with UsageStore(tmp_path / "usage.sqlite3") as store:
        store.add(record(ts=DAY0 + 10, key_id="k1"))
        store.add(record(ts=DAY0 + 20, key_id="k1"))
        store.add(record(ts=DAY0 + 30, key_id="k2", provider="anthropic"))
        store.add(record(ts=DAY0 + 40, key_id=""))  # a provider without keys
        store.flush()
        store.add(record(ts=DAY0 + 50, key_id="k1"))
        store.flush()
        assert store.key_usage() == {
            ("openai", "k1"): (3, DAY0 + 50),
            ("anthropic", "k2"): (1, DAY0 + 30),
        }
        store.prune(DAY0 + 3 * DAY)
        assert store.key_usage()[("openai", "k1")] == (3, DAY0 + 50)


def test_a_version_1_store_gets_its_key_usage_from_the_records(tmp_path: Path) -> None:
    path = tmp_path / "usage.sqlite3"
    with UsageStore(path) as store:
        store.add(record(ts=DAY0 + 10, key_id="k1"))
        store.add(record(ts=DAY0 + 70, key_id="k1"))
        store.flush()
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE key_usage")
        conn.execute("PRAGMA user_version=1")
    conn.close()
    with UsageStore(path) as store:
        assert store.key_usage() == {("openai", "k1"): (2, DAY0 + 70)}


def test_per_key_counts_read_only_the_new_rows(tmp_path: Path) -> None:
    """Each flush adds its batch to key_usage by rowid range, not by a table scan."""
    from pooldaemon.usage._rollup import _KEY_USAGE

    with UsageStore(tmp_path / "usage.sqlite3") as store:
        store.add(record())
        store.flush()
        select = _KEY_USAGE[_KEY_USAGE.index("SELECT") : _KEY_USAGE.index("ON CONFLICT")]
        with sqlite3.connect(tmp_path / "usage.sqlite3") as conn:
            plan = " ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {select}", (0,)))
        conn.close()
    assert "INTEGER PRIMARY KEY" in plan and "SCAN usage" not in plan
