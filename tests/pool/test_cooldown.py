from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pooldaemon.pool._cooldown import (
    CLOSED,
    CooldownPolicy,
    CooldownState,
    Failure,
    FailureClass,
    Phase,
    after_failure,
    after_success,
    begin_probe,
    classify,
    phase,
)
from pooldaemon.spec import CooldownSpec

POLICY = CooldownPolicy()  # threshold 3, 30s .. 10m x2, reset 5m; transient 5, 5s .. 1m
SERVER = Failure(FailureClass.server, "500 boom")
TRANSIENT = Failure(FailureClass.transient, "503")


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, "", FailureClass.auth),
        (403, "", FailureClass.auth),
        (429, "", FailureClass.rate_limit),
        (502, "", FailureClass.transient),
        (503, "", FailureClass.transient),
        (504, "", FailureClass.transient),
        (529, '{"type":"error","error":{"type":"overloaded_error"}}', FailureClass.transient),
        (500, "", FailureClass.server),
        (501, "", FailureClass.server),
        (301, "", FailureClass.server),  # redirects are not followed: a wrong base_url
        (308, "", FailureClass.server),
        (300, "", FailureClass.server),
        (399, "", FailureClass.server),
        (400, "", FailureClass.client),
        (None, "", FailureClass.transient),
        (400, '{"error":{"message":"max_tokens is too large"}}', FailureClass.client),
        (422, "", FailureClass.client),
        (408, "", FailureClass.timeout),
        (404, "", FailureClass.model_not_found),
        (
            404,
            '{"error":{"message":"The model `gpt-9` does not exist or you do not have access '
            'to it.","type":"invalid_request_error","code":"model_not_found"}}',
            FailureClass.model_not_found,
        ),
        (
            400,
            '{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}',
            FailureClass.client,
        ),
        (400, '{"error":{"message":"model \'llama9\' not found, try pulling it first"}}',
         FailureClass.model_not_found),
        (400, '{"error": {"code": 400, "message": "Unknown model: gemini-9"}}',
         FailureClass.model_not_found),
    ],
)  # fmt: skip
def test_classify(status: int | None, body: str, expected: FailureClass) -> None:
    assert classify(status, body) is expected


def test_classify_timeout_wins() -> None:
    assert classify(None, timed_out=True) is FailureClass.timeout


def test_policy_from_spec() -> None:
    policy = CooldownPolicy.from_spec(CooldownSpec())
    assert policy == POLICY


@pytest.mark.parametrize(
    ("count", "seconds"), [(1, 0), (2, 0), (3, 30), (4, 60), (5, 120), (8, 600), (50, 600)]
)
def test_step_formula(count: int, seconds: float) -> None:
    assert POLICY.step(count, transient=False) == seconds


@pytest.mark.parametrize(("count", "seconds"), [(4, 0), (5, 5), (6, 10), (9, 60), (99, 60)])
def test_transient_step_formula(count: int, seconds: float) -> None:
    assert POLICY.step(count, transient=True) == seconds


def _fail(state: CooldownState, failure: Failure, now: float) -> CooldownState:
    return after_failure(state, failure, POLICY, now)[0]


def test_threshold_then_open_then_half_open_then_closed() -> None:
    state = CLOSED
    for t in (0.0, 1.0):
        state, event = after_failure(state, SERVER, POLICY, t)
        assert event is None and phase(state, t, POLICY) is Phase.closed
    state, event = after_failure(state, SERVER, POLICY, 2.0)
    assert event is not None and event.kind == "opened" and event.until == 32.0
    assert phase(state, 31.9, POLICY) is Phase.open
    assert phase(state, 32.0, POLICY) is Phase.half_open
    probing = begin_probe(state, 33.0)
    assert phase(probing, 40.0, POLICY) is Phase.probing
    assert phase(probing, 33.0 + POLICY.probe_lease, POLICY) is Phase.half_open  # lost probe
    closed, event = after_success(probing, POLICY, 35.0)
    assert closed == CLOSED and event is not None and event.kind == "closed"


def test_failed_probe_reopens_one_step_longer() -> None:
    state = CLOSED
    for t in (0.0, 1.0, 2.0):
        state = _fail(state, SERVER, t)
    assert state.until == 32.0
    state, event = after_failure(begin_probe(state, 40.0), SERVER, POLICY, 41.0)
    assert event is not None and event.kind == "reopened"
    assert state.until == 41.0 + 60.0 and state.failures == 4


def test_transient_has_its_own_counter_and_policy() -> None:
    state = CLOSED
    for t in range(4):
        state = _fail(state, TRANSIENT, float(t))
    assert state.until == 0.0 and state.transient_failures == 4 and state.failures == 0
    state = _fail(state, Failure(FailureClass.timeout), 4.0)
    assert state.until == 4.0 + 5.0


def test_rate_limit_honours_retry_after_capped_by_max() -> None:
    state, event = after_failure(
        CLOSED, Failure(FailureClass.rate_limit, retry_after=17), POLICY, 0
    )
    assert state.until == 17.0 and event is not None and event.reason is FailureClass.rate_limit
    state = _fail(CLOSED, Failure(FailureClass.rate_limit, retry_after=86_400), 0)
    assert state.until == POLICY.max
    state = _fail(CLOSED, Failure(FailureClass.rate_limit), 0)  # no header: the policy
    assert state.until == 0.0 and state.failures == 1


@pytest.mark.parametrize("kind", [FailureClass.client, FailureClass.model_not_found])
def test_request_or_model_faults_do_not_cool_the_provider(kind: FailureClass) -> None:
    state = CLOSED
    for t in range(10):
        state, event = after_failure(state, Failure(kind), POLICY, float(t))
        assert event is None
    assert state == CLOSED


def test_quiet_reset_after_forgets_the_count() -> None:
    state = _fail(_fail(CLOSED, SERVER, 0.0), SERVER, 1.0)
    state, _ = after_success(state, POLICY, 1.0 + POLICY.reset_after)
    assert state == CLOSED
    state = _fail(_fail(CLOSED, SERVER, 0.0), SERVER, 1.0)
    state = _fail(state, SERVER, 1.0 + POLICY.reset_after)  # quiet time passed: count restarts
    assert state.failures == 1 and state.until == 0.0


def test_success_during_cooldown_keeps_cooling() -> None:
    state = CLOSED
    for t in (0.0, 1.0, 2.0):
        state = _fail(state, SERVER, t)
    assert after_success(state, POLICY, 10.0)[0] == state


failures = st.lists(
    st.tuples(
        st.sampled_from(list(FailureClass)),
        st.floats(min_value=0, max_value=120, allow_nan=False),  # time step
        st.one_of(st.none(), st.floats(min_value=0, max_value=10_000)),  # retry-after
    ),
    max_size=60,
)


@given(failures)
def test_deadline_never_decreases_and_never_exceeds_max(steps: list) -> None:  # type: ignore[type-arg]
    state = CLOSED
    now = 0.0
    for kind, dt, retry_after in steps:
        now += dt
        before = state.until
        state = _fail(state, Failure(kind, retry_after=retry_after), now)
        assert state.until == 0.0 or state.until >= before
        assert state.until <= now + POLICY.max
        assert state.failures >= 0 and state.transient_failures >= 0


def test_early_probe_success_closes_the_cooldown() -> None:
    state = CLOSED
    for t in (0.0, 1.0, 2.0):
        state = _fail(state, SERVER, t)
    probing = begin_probe(state, 5.0)  # when_all_cooling: earliest probes before the deadline
    closed, event = after_success(probing, POLICY, 6.0)
    assert closed == CLOSED and event is not None and event.kind == "closed"
