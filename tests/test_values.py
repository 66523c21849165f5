"""The request path's value types: slotted, hashable by their fields, frozen to mypy."""

from __future__ import annotations

import dataclasses

import pytest

from pooldaemon._values import value_type
from pooldaemon.pool import Usage
from pooldaemon.pool._latency import LatencyStats
from pooldaemon.pool._router import Candidate, RouteDecision, RouteRequest, Skipped
from pooldaemon.server._attempt import Failed, Served, Upstream
from pooldaemon.usage import UsageRecord

VALUE_TYPES = [
    LatencyStats,
    Usage,
    UsageRecord,
    RouteRequest,
    Candidate,
    Skipped,
    RouteDecision,
    Upstream,
    Served,
    Failed,
]


def test_the_type_checker_is_told_they_are_frozen() -> None:
    # What mypy reads (PEP 681): an assignment to a field of such a type is an error.
    # (Python 3.11 keeps frozen_default, added to the PEP later, among the kwargs.)
    meta = value_type.__dataclass_transform__  # type: ignore[attr-defined]
    assert meta.get("frozen_default", meta.get("kwargs", {}).get("frozen_default")) is True


@pytest.mark.parametrize("cls", VALUE_TYPES, ids=lambda c: c.__name__)
def test_slotted_dataclasses_hashed_by_their_fields(cls: type) -> None:
    assert dataclasses.is_dataclass(cls)
    assert "__slots__" in cls.__dict__
    assert cls.__hash__ is not None  # usable in sets and as keys, as when frozen


def test_equal_values_hash_equal() -> None:
    a, b = Usage(input=3, output=5), Usage(input=3, output=5)
    assert a == b and hash(a) == hash(b)
    assert {Candidate("p", "m", 1.0), Candidate("p", "m", 1.0)} == {Candidate("p", "m", 1.0)}
    assert Usage(input=3) != Usage(input=4)
    with pytest.raises(AttributeError):
        a.extra = 1  # type: ignore[attr-defined]  # slotted: no new attributes
