"""The daily rollup: per (UTC day, provider, model, client) totals and a latency histogram.

Summaries over long ranges read whole days from ``usage_daily`` (one row per
day and combination, however many requests) and only the partial days at the
ends from the raw ``usage`` rows, so a 90-day summary over a million records
reads a few thousand rows instead of a million. The rollup is kept in the same
transaction as the raw rows it sums: added to on every flush, rebuilt from the
raw rows for the days that ``prune`` or ``recalculate_costs`` touch.

A record's day is ``CAST(ts / 86400 AS INTEGER)`` everywhere (:func:`day_of`
here: the same IEEE division, truncated). From 1970 to 2500 it equals
``floor(ts / 86400)`` even one ulp before midnight (tested), so raw pieces cut
at midnight and rollup days never overlap nor leave a gap.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pooldaemon.usage._histogram import merge_packed, pack, to_blob

__all__ = [
    "DAY_S",
    "DAY_SQL",
    "Split",
    "day_of",
    "rebuild_days",
    "register",
    "roll_up_after",
    "split",
]

DAY_S = 86400
DAY_SQL = f"CAST(ts / {DAY_S} AS INTEGER)"

_SUMS = (
    "requests",
    "successes",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
)
# Two levels: SQLite counts each latency bucket of a group (inner query), then one
# call to Python per group packs them (``usage_histogram``). A Python aggregate
# stepped once per row would take the GIL for every row of a flush, and each time
# stall the event loop that serves requests.
_ROLL_UP = f"""
INSERT INTO usage_daily (day, provider, model, client, {", ".join(_SUMS)},
                         first_ts, last_ts, histogram)
SELECT day, provider, model, client, {", ".join(f"SUM({c})" for c in _SUMS[:-1])},
       TOTAL(cost_usd), MIN(first_ts), MAX(last_ts),
       usage_histogram(json_group_object(bucket, requests))
FROM (
    SELECT {DAY_SQL} AS day, provider, model, COALESCE(client, '') AS client,
           latency_bucket AS bucket, COUNT(*) AS requests,
           SUM(outcome = 'success') AS successes, SUM(input_tokens) AS input_tokens,
           SUM(output_tokens) AS output_tokens, SUM(cache_read_tokens) AS cache_read_tokens,
           SUM(cache_write_tokens) AS cache_write_tokens,
           SUM(reasoning_tokens) AS reasoning_tokens, TOTAL(cost_usd) AS cost_usd,
           MIN(ts) AS first_ts, MAX(ts) AS last_ts
    FROM usage WHERE {{where}} GROUP BY 1, 2, 3, 4, 5
)
GROUP BY 1, 2, 3, 4
ON CONFLICT (day, provider, model, client) DO UPDATE SET
    {", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)},
    first_ts = MIN(first_ts, excluded.first_ts),
    last_ts = MAX(last_ts, excluded.last_ts),
    histogram = usage_histogram_merge(histogram, excluded.histogram)
"""


def day_of(ts: float) -> int:
    """The UTC day number of a timestamp, as SQL's :data:`DAY_SQL` computes it."""
    return int(ts / DAY_S)


def _histogram_of(counts: str) -> bytes:
    """``usage_histogram(json_group_object(bucket, count))``: the packed histogram."""
    return to_blob(pack({int(index): int(n) for index, n in json.loads(counts).items()}))


def register(conn: sqlite3.Connection) -> None:
    """Define the SQL functions the rollup statements use, on a writing connection."""
    conn.create_function("usage_histogram", 1, _histogram_of, deterministic=True)
    conn.create_function("usage_histogram_merge", 2, merge_packed, deterministic=True)


# NOT INDEXED: left to itself SQLite walks usage_provider_ts (to group without a
# sort), which reads the whole table at every flush; the rowid range is what is small.
_KEY_USAGE = """
INSERT INTO key_usage (provider, key_id, requests, last_ts)
    SELECT provider, key_id, COUNT(*), MAX(ts) FROM usage NOT INDEXED
    WHERE id > ? AND key_id != ''
    GROUP BY provider, key_id
ON CONFLICT (provider, key_id) DO UPDATE SET
    requests = requests + excluded.requests,
    last_ts = MAX(last_ts, excluded.last_ts)
"""


_ROLL_UP_STEP = 128
_ROLL_UP_RANGE = _ROLL_UP.format(where="id > ? AND id <= ?")


def roll_up_after(
    conn: sqlite3.Connection,
    last_id: int,
    end: int,
    pause: Callable[[], object] = lambda: None,
) -> None:
    """Add the raw rows with ``last_id < id <= end`` (the ones just inserted) to the
    rollup and to the per-key counts; ``pause()`` runs after each statement.

    The rollup goes :data:`_ROLL_UP_STEP` rows a statement: one statement over a
    whole batch of 1,000 took ~1.3 ms, the longest stretch of a flush without a
    pause."""
    for start in range(last_id, end, _ROLL_UP_STEP):
        conn.execute(_ROLL_UP_RANGE, (start, min(start + _ROLL_UP_STEP, end)))
        pause()
    conn.execute(_KEY_USAGE, (last_id,))
    pause()


def rebuild_days(conn: sqlite3.Connection, days: Iterable[int]) -> None:
    """Recompute the rollup of ``days`` from the raw rows (inside the caller's transaction)."""
    # The ts range lets the index narrow the scan; the day test is the exact one.
    where = f"ts >= ? AND ts < ? AND {DAY_SQL} = ?"
    for day in sorted(set(days)):
        conn.execute("DELETE FROM usage_daily WHERE day = ?", (day,))
        conn.execute(_ROLL_UP.format(where=where), ((day - 1) * DAY_S, (day + 2) * DAY_S, day))


@dataclass(frozen=True, slots=True)
class Split:
    """A time range as whole days (from the rollup) and raw ``[start, end)`` pieces."""

    first_day: int | None
    end_day: int | None
    raw: tuple[tuple[float, float], ...]


def split(since: float, until: float) -> Split:
    """Split ``since <= ts < until`` (``until`` may be ``inf``) into whole days and the rest."""
    if until <= since:
        return Split(None, None, ())
    first = math.ceil(since / DAY_S)
    if math.isinf(until):
        return Split(first, None, _nonempty((since, first * DAY_S)))
    end = math.floor(until / DAY_S)
    if first >= end:
        return Split(None, None, ((since, until),))
    return Split(first, end, _nonempty((since, first * DAY_S), (end * DAY_S, until)))


def _nonempty(*pieces: tuple[float, float]) -> tuple[tuple[float, float], ...]:
    return tuple(p for p in pieces if p[0] < p[1])
