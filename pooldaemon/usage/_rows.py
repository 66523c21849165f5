"""Records to table rows and back.

A flush inserts its batch with multi-row ``INSERT ... VALUES (...), (...)``
statements of up to :data:`_CHUNK` rows (:func:`insert_rows`): Python binds
the values in C and SQLite steps each statement once, outside the GIL. The
alternatives cost more CPU: ``executemany`` takes the GIL back for every row,
and ``INSERT ... SELECT FROM json_each(?)`` (used before) parsed each row's
JSON again for each column, 9.6 us a row against 3.1 here. The writer's CPU
is what matters: on two cores any work beside the request path shows in the
p99 latency (``bench/results``).
"""

from __future__ import annotations

import functools
import itertools
import math
import sqlite3
from collections.abc import Callable
from typing import Any

from pooldaemon.pool._tokens import Usage
from pooldaemon.usage._histogram import bucket
from pooldaemon.usage._records import UsageRecord

__all__ = [
    "SELECT_COLUMNS",
    "Row",
    "insert_rows",
    "record_from_row",
    "record_to_row",
]

_COLUMNS = (
    "ts",
    "request_id",
    "provider",
    "model",
    "key_id",
    "client",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "requests",
    "latency_ms",
    "latency_bucket",
    "ttfb_ms",
    "outcome",
    "cost_usd",
    "pricing_source",
)
SELECT_COLUMNS = ", ".join(("id", *_COLUMNS))
"""What :func:`record_from_row` expects, ``id`` first."""

Row = tuple[Any, ...]
# Far above any real answer (upstream counts are clamped at 10**12), far below what
# would overflow the daily sums (2**63): one bad record must not fail a whole batch.
_MAX_COUNT = 10**15


def record_to_row(record: UsageRecord) -> Row:
    """The column values of the record, in order.

    Raises ValueError for a time, latency or cost that is not a finite number
    (SQLite stores NaN as NULL, which the NOT NULL columns refuse) and for a
    token count below 0 or above 10**15: either would fail the whole batch at
    the flush instead.
    """
    for value in (record.ts, record.latency_ms, record.cost_usd, record.ttfb_ms or 0.0):
        if not math.isfinite(value):
            raise ValueError(f"usage record {record.request_id}: {value!r} is not a finite number")
    usage = record.usage
    for count in (usage.input, usage.output, usage.cache_read, usage.cache_write, usage.reasoning):
        if not 0 <= count <= _MAX_COUNT:
            raise ValueError(f"usage record {record.request_id}: token count {count} out of range")
    row = (
        record.ts,
        _text(record.request_id),
        _text(record.provider),
        _text(record.model),
        _text(record.key_id),
        None if record.client is None else _text(record.client),
        usage.input,
        usage.output,
        usage.cache_read,
        usage.cache_write,
        usage.reasoning,
        usage.requests,
        record.latency_ms,
        bucket(record.latency_ms),
        record.ttfb_ms,
        record.outcome,
        record.cost_usd,
        record.pricing_source,
    )
    return row


def _text(value: str) -> str:
    """SQLite's C string functions (JSON, printf, the CLI) end a text at NUL: store
    U+FFFD in its place (a model id from an upstream's listing is the only way one
    could get here)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


# Statements of 32, 16, 8, 4, 2 and 1 rows only: a batch is cut into full chunks of
# 32 and its remainder into powers of two (at most five more statements). Each size
# is prepared once and kept in the connection's statement cache, and a prepared
# multi-row INSERT is large (tens of KiB for 32 rows): six sizes stay a small,
# fixed amount of memory, reached in the first flushes. With every size from 1 to
# 50 (as before) the writer's memory grew as new sizes came: about 2 MiB between
# 10k and 100k requests with 0.25 s batches (bench/results, session 5).
_CHUNK = 32  # binds 576 values, far below SQLite's limit of 32,766


@functools.cache
def _insert_sql(rows: int) -> str:
    one = "(" + ", ".join("?" * len(_COLUMNS)) + ")"
    return f"INSERT INTO usage ({', '.join(_COLUMNS)}) VALUES {', '.join([one] * rows)}"


def insert_rows(
    conn: sqlite3.Connection, rows: list[Row], pause: Callable[[], object] = lambda: None
) -> int | None:
    """Insert rows of :func:`record_to_row`, in order (ids ascending); ``pause()``
    runs after each statement (the store's writer gives up its core there). Returns
    the id of the last row inserted (None for no rows)."""
    start, left = 0, len(rows)
    size = _CHUNK
    last_id: int | None = None
    while left:
        while size > left:
            size //= 2
        part = rows[start : start + size]
        cursor = conn.execute(_insert_sql(size), list(itertools.chain.from_iterable(part)))
        last_id = cursor.lastrowid  # of a multi-row INSERT: its last row
        pause()
        start += size
        left -= size
    return last_id


def record_from_row(row: Row) -> UsageRecord:
    """A record from a row selected with :data:`SELECT_COLUMNS` (the ``id`` is dropped)."""
    (
        _id,
        ts,
        request_id,
        provider,
        model,
        key_id,
        client,
        input_tokens,
        output_tokens,
        cache_read,
        cache_write,
        reasoning,
        requests,
        latency_ms,
        _bucket,
        ttfb_ms,
        outcome,
        cost_usd,
        pricing_source,
    ) = row
    return UsageRecord(
        ts=float(ts),
        request_id=request_id,
        provider=provider,
        model=model,
        key_id=key_id,
        client=client,
        usage=Usage(input_tokens, output_tokens, cache_read, cache_write, reasoning, requests),
        latency_ms=float(latency_ms),
        ttfb_ms=None if ttfb_ms is None else float(ttfb_ms),
        outcome=outcome,
        cost_usd=float(cost_usd),
        pricing_source=pricing_source,
    )
