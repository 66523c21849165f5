from __future__ import annotations

import math

from pooldaemon.usage._rollup import DAY_S, Split, day_of, split


def test_split_whole_days_and_edges() -> None:
    assert split(10 * DAY_S, 13 * DAY_S) == Split(10, 13, ())
    assert split(10.5 * DAY_S, 13.25 * DAY_S) == Split(
        11, 13, ((10.5 * DAY_S, 11 * DAY_S), (13 * DAY_S, 13.25 * DAY_S))
    )


def test_split_short_ranges_are_raw() -> None:
    assert split(10.2 * DAY_S, 10.8 * DAY_S) == Split(None, None, ((10.2 * DAY_S, 10.8 * DAY_S),))
    assert split(10.5 * DAY_S, 11.5 * DAY_S) == Split(None, None, ((10.5 * DAY_S, 11.5 * DAY_S),))
    assert split(5.0, 5.0) == Split(None, None, ())


def test_split_open_end() -> None:
    assert split(10 * DAY_S, math.inf) == Split(10, None, ())
    assert split(10.5 * DAY_S, math.inf) == Split(11, None, ((10.5 * DAY_S, 11 * DAY_S),))


def test_day_of() -> None:
    assert day_of(0.0) == 0
    assert day_of(DAY_S - 0.001) == 0
    assert day_of(DAY_S) == 1


def test_day_of_is_floor_for_every_midnight_until_2500() -> None:
    # So raw rows picked by ts ranges and rollup days picked by day_of never overlap.
    for day in range(1, 200_000):
        midnight = day * DAY_S
        assert day_of(midnight) == day
        assert day_of(math.nextafter(midnight, 0)) == day - 1
