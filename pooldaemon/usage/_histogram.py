"""Latency histograms: percentiles without sorting every row.

Each record stores ``bucket(latency_ms)``, the integer ``b`` with
``BASE**(b-1) < latency_ms + 1 <= BASE**b`` (capped at :data:`MAX_BUCKET`,
about 5.8 days). A percentile is read off a histogram of buckets and reported
as the bucket's geometric middle, ``BASE**(b - 0.5) - 1``.

Error bound: the reported value ``r`` and the exact nearest-rank percentile
``x`` satisfy ``|r - x| <= (sqrt(BASE) - 1) * (x + 1)``, i.e. under 2 % of
``x + 1``: under 4 % relative error for latencies of 1 ms or more, and under
0.04 ms absolute below that.

Histograms are stored packed into one integer, :data:`WIDTH` bits per bucket
(little-endian bytes in SQLite), so merging two is one integer addition; a
bucket would need 2**40 requests to overflow into the next.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = [
    "BASE",
    "MAX_BUCKET",
    "WIDTH",
    "bucket",
    "bucket_value",
    "from_blob",
    "merge_packed",
    "pack",
    "percentile",
    "to_blob",
    "unpack",
]

BASE = 1.04
MAX_BUCKET = 511
WIDTH = 40
_LOG_BASE = math.log(BASE)
_BYTES = WIDTH // 8


def bucket(latency_ms: float) -> int:
    """The histogram bucket of a latency (negative or NaN latencies count as 0)."""
    if not latency_ms > 0:
        return 0
    return min(MAX_BUCKET, math.ceil(math.log1p(latency_ms) / _LOG_BASE))


def bucket_value(index: int) -> float:
    """The latency a bucket stands for: its geometric middle (0 for bucket 0)."""
    if index <= 0:
        return 0.0
    return float(BASE ** (index - 0.5) - 1.0)


def percentile(histogram: Mapping[int, int], fraction: float) -> float:
    """The nearest-rank percentile (``fraction`` in (0, 1]) of a bucket histogram."""
    count = sum(histogram.values())
    if count == 0:
        return 0.0
    rank = max(1, math.ceil(fraction * count))
    seen = 0
    index = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            break
    return bucket_value(index)


def pack(histogram: Mapping[int, int]) -> int:
    """A bucket -> count mapping as one integer."""
    return sum(count << (index * WIDTH) for index, count in histogram.items())


def unpack(packed: int) -> dict[int, int]:
    """The bucket -> count mapping of a packed histogram (empty buckets left out)."""
    data = packed.to_bytes(_nbytes(packed), "little")
    histogram: dict[int, int] = {}
    for offset in range(0, len(data), _BYTES):
        count = int.from_bytes(data[offset : offset + _BYTES], "little")
        if count:
            histogram[offset // _BYTES] = count
    return histogram


def to_blob(packed: int) -> bytes:
    """The bytes SQLite stores for a packed histogram: the first bucket, then the counts."""
    first = ((packed & -packed).bit_length() - 1) // WIDTH if packed else 0
    rest = packed >> (first * WIDTH)
    return first.to_bytes(2, "little") + rest.to_bytes(_nbytes(rest), "little")


def from_blob(blob: bytes | None) -> int:
    """A packed histogram from its stored bytes."""
    if not blob:
        return 0
    return int.from_bytes(blob[2:], "little") << (int.from_bytes(blob[:2], "little") * WIDTH)


def merge_packed(left: bytes | None, right: bytes | None) -> bytes:
    """The sum of two stored histograms, stored (an SQL function for upserts)."""
    return to_blob(from_blob(left) + from_blob(right))


def _nbytes(packed: int) -> int:
    # Whole buckets, so unpack() can slice fixed-width counts.
    return -(-packed.bit_length() // WIDTH) * _BYTES
