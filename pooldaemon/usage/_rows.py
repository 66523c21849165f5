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
# Far above any real answer (upstream counts are clamped at 10**12), far below what
# would overflow the daily sums (2**63): one bad record must not fail a whole batch.
_MAX_COUNT = 10**15


def record_to_row(record: UsageRecord) -> bytes:
    """The record as one JSON array of the column values, in order.

    Raises ValueError for a time, latency or cost that is not a finite number
    (JSON has no NaN) and for a token count below 0 or above 10**15: either
    would fail the whole batch at the flush instead.
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
    return orjson.dumps(row)


def _text(value: str) -> str:
    """SQLite's JSON functions end a string at NUL: store U+FFFD in its place (a model
    id from an upstream's listing is the only way one could get here)."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


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
