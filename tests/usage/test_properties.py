"""Property: whatever the records and the range, summaries add up to the records."""

from __future__ import annotations

import math
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pooldaemon.pool._tokens import Usage
from pooldaemon.usage import UsageRecord, UsageStore

from .conftest import DAY, DAY0

_counts = st.integers(min_value=0, max_value=10**7)
_records = st.builds(
    UsageRecord,
    ts=st.one_of(
        st.integers(0, 3).map(lambda d: DAY0 + d * DAY),  # midnights, the edge cases
        st.floats(DAY0 - DAY / 2, DAY0 + 3.5 * DAY, allow_nan=False),
    ),
    request_id=st.just("r"),
    provider=st.sampled_from(["a", "b", "c"]),
    model=st.sampled_from(["m1", "m2"]),
    key_id=st.just("k"),
    client=st.sampled_from([None, "x", "y"]),
    usage=st.builds(Usage, _counts, _counts, _counts, _counts, _counts),
    latency_ms=st.floats(0, 1e6, allow_nan=False),
    ttfb_ms=st.none(),
    outcome=st.sampled_from(["success", "rate_limit", "timeout"]),
    cost_usd=st.floats(0, 100, allow_nan=False),
    pricing_source=st.just("builtin"),
)
_instants = st.one_of(
    st.integers(-1, 4).map(lambda d: DAY0 + d * DAY),
    st.floats(DAY0 - DAY, DAY0 + 4 * DAY, allow_nan=False),
)


def _key(item: UsageRecord, group_by: str) -> str:
    if group_by == "day":
        return datetime.fromtimestamp(item.ts, tz=UTC).date().isoformat()
    value = getattr(item, group_by)
    return "" if value is None else str(value)


def _expected(items: list[UsageRecord]) -> tuple[int, int, int, int, int, int, int]:
    return (
        len(items),
        sum(i.outcome == "success" for i in items),
        sum(i.usage.input for i in items),
        sum(i.usage.output for i in items),
        sum(i.usage.cache_read for i in items),
        sum(i.usage.cache_write for i in items),
        sum(i.usage.reasoning for i in items),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_records, max_size=25), since=_instants, until=_instants)
def test_summaries_add_up_to_the_records(
    records: list[UsageRecord], since: float, until: float
) -> None:
    inside = [r for r in records if since <= r.ts < until]
    with tempfile.TemporaryDirectory() as tmp, UsageStore(Path(tmp) / "u.sqlite3") as store:
        for item in records:
            store.add(item)
        store.flush()

        total = store.total(since, until)
        assert (
            total.requests,
            total.successes,
            total.input_tokens,
            total.output_tokens,
            total.cache_read_tokens,
            total.cache_write_tokens,
            total.reasoning_tokens,
        ) == _expected(inside)
        assert total.failures == total.requests - total.successes
        assert math.isclose(total.cost_usd, math.fsum(r.cost_usd for r in inside), abs_tol=1e-9)
        if inside:
            assert (total.first_ts, total.last_ts) == (
                min(r.ts for r in inside),
                max(r.ts for r in inside),
            )

        for group_by in ("provider", "model", "client", "day"):
            groups: dict[str, list[UsageRecord]] = defaultdict(list)
            for item in inside:
                groups[_key(item, group_by)].append(item)
            got = store.summarize(since, until, group_by)
            assert {s.key for s in got} == set(groups)
            for summary in got:
                assert (
                    summary.requests,
                    summary.successes,
                    summary.input_tokens,
                    summary.output_tokens,
                    summary.cache_read_tokens,
                    summary.cache_write_tokens,
                    summary.reasoning_tokens,
                ) == _expected(groups[summary.key])

        later = [r for r in records if r.ts >= since]
        spend = store.spend(since)
        assert spend.tokens == sum(r.usage.total for r in later)
        assert math.isclose(spend.usd, math.fsum(r.cost_usd for r in later), abs_tol=1e-9)
