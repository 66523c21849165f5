"""Records to table rows and back."""

from __future__ import annotations

from typing import Any

from pooldaemon.pool._tokens import Usage
from pooldaemon.usage._histogram import bucket
from pooldaemon.usage._records import UsageRecord

__all__ = ["INSERT_SQL", "SELECT_COLUMNS", "Row", "record_from_row", "record_to_row"]

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
INSERT_SQL = f"INSERT INTO usage ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
SELECT_COLUMNS = ", ".join(("id", *_COLUMNS))
"""What :func:`record_from_row` expects, ``id`` first."""

Row = tuple[Any, ...]


def record_to_row(record: UsageRecord) -> Row:
    """The values for :data:`INSERT_SQL`, in order."""
    usage = record.usage
    return (
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
