"""Records to table rows and back.

A flush inserts its whole batch with one statement, :data:`INSERT_SQL`, whose
one parameter is a JSON array of rows (:func:`batch_param` over the rows of
:func:`record_to_row`). With ``executemany`` the writer thread gave the GIL
back and took it again for every row, and under load each of those hand-overs
stalled the event loop: one statement keeps SQLite's work outside the GIL.
JSON carries every value exactly: Python writes the shortest repr of a float
and SQLite parses it back to the same double (a test checks random doubles).
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from pooldaemon.pool._tokens import Usage
from pooldaemon.usage._histogram import bucket
from pooldaemon.usage._records import UsageRecord

__all__ = [
    "INSERT_SQL",
    "SELECT_COLUMNS",
    "Row",
    "batch_param",
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
_VALUES = ", ".join(f"value ->> {i}" for i in range(len(_COLUMNS)))
INSERT_SQL = f"INSERT INTO usage ({', '.join(_COLUMNS)}) SELECT {_VALUES} FROM json_each(?)"
"""Inserts the rows of :func:`batch_param`, in order."""
SELECT_COLUMNS = ", ".join(("id", *_COLUMNS))
"""What :func:`record_from_row` expects, ``id`` first."""

Row = tuple[Any, ...]


def record_to_row(record: UsageRecord) -> bytes:
    """The record as one JSON array of the column values, in order.

    Raises ValueError for a time, latency or cost that is not a finite number
    (JSON has no NaN: it would fail the whole batch at the flush instead).
    """
    for value in (record.ts, record.latency_ms, record.cost_usd, record.ttfb_ms or 0.0):
        if not math.isfinite(value):
            raise ValueError(f"usage record {record.request_id}: {value!r} is not a finite number")
    usage = record.usage
    row = (
        record.ts,
        record.request_id,
        record.provider,
        record.model,
        record.key_id,
        record.client,
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
    return orjson.dumps(row)


def batch_param(rows: list[bytes]) -> str:
    """The parameter of :data:`INSERT_SQL` for rows of :func:`record_to_row`."""
    return (b"[" + b",".join(rows) + b"]").decode()


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
