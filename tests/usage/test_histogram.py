from __future__ import annotations

import math
import random

import pytest

from pooldaemon.usage._histogram import (
    BASE,
    MAX_BUCKET,
    bucket,
    bucket_value,
    from_blob,
    merge_packed,
    pack,
    percentile,
    to_blob,
    unpack,
)


def test_bucket_bounds() -> None:
    assert bucket(0.0) == 0
    assert bucket(-5.0) == 0
    assert bucket(math.nan) == 0
    assert bucket(1e30) == MAX_BUCKET
    for latency in (0.001, 0.5, 1.0, 37.0, 999.9, 12_345.0, 600_000.0):
        b = bucket(latency)
        assert BASE ** (b - 1) < latency + 1 <= BASE**b * (1 + 1e-12)


@pytest.mark.parametrize("latency", [1.0, 3.3, 50.0, 250.0, 1_000.0, 7_777.0, 90_000.0])
def test_bucket_value_within_error_bound(latency: float) -> None:
    rep = bucket_value(bucket(latency))
    assert abs(rep - latency) <= (math.sqrt(BASE) - 1) * (latency + 1) + 1e-9
    assert abs(rep - latency) / latency < 0.05


def test_percentile_is_nearest_rank() -> None:
    hist = {bucket(10.0): 50, bucket(100.0): 45, bucket(1000.0): 5}
    assert percentile(hist, 0.5) == bucket_value(bucket(10.0))
    assert percentile(hist, 0.95) == bucket_value(bucket(100.0))
    assert percentile(hist, 0.96) == bucket_value(bucket(1000.0))
    assert percentile({}, 0.5) == 0.0


def test_packing_round_trips_and_merges() -> None:
    rng = random.Random(3)
    for _ in range(200):
        left = {rng.randrange(MAX_BUCKET + 1): rng.randrange(1, 10**6) for _ in range(8)}
        right = {rng.randrange(MAX_BUCKET + 1): rng.randrange(1, 10**6) for _ in range(8)}
        assert unpack(from_blob(to_blob(pack(left)))) == left
        merged = unpack(from_blob(merge_packed(to_blob(pack(left)), to_blob(pack(right)))))
        assert merged == {k: left.get(k, 0) + right.get(k, 0) for k in left.keys() | right}
    assert unpack(from_blob(to_blob(0))) == {}
    assert from_blob(None) == 0
