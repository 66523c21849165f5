"""Cooldowns: pure transitions of a provider's (or key's) health after each outcome.

States: *closed* (healthy), *open* (cooling until a deadline), *half-open*
(deadline passed: one request may probe; success closes, failure re-opens a
step longer). The deadline after the n-th counted failure is
``initial * multiplier ** (n - threshold)``, capped at ``max``; a new failure
never shortens a deadline already set. ``reset_after`` without a failure
forgets the count. Transient errors (502/503/504, connection errors,
timeouts) have their own counter and their own, shorter policy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from enum import StrEnum

from pooldaemon.spec import CooldownSpec

__all__ = [
    "CLOSED",
    "CooldownEvent",
    "CooldownPolicy",
    "CooldownState",
    "Failure",
    "FailureClass",
    "Phase",
    "after_failure",
    "after_success",
    "begin_probe",
    "classify",
    "phase",
]


class FailureClass(StrEnum):
    """Why an attempt failed; decides the cooldown and whether to fail over."""

    auth = "auth"  # 401/403: the key is bad
    rate_limit = "rate_limit"  # 429
    transient = "transient"  # 502/503/504, connection refused/reset
    timeout = "timeout"  # connect / first byte / total timeout (transient policy)
    server = "server"  # other 5xx
    client = "client"  # 400 and other 4xx: the request is at fault, no cooldown
    model_not_found = "model_not_found"  # 404 or a "model not found" body

    @property
    def fails_over(self) -> bool:
        """Another provider may succeed where this one failed."""
        return self is not FailureClass.client

    @property
    def is_transient(self) -> bool:
        return self in (FailureClass.transient, FailureClass.timeout)


_MODEL_NOT_FOUND = re.compile(
    r"model[^.]{0,80}(not (be )?found|does not exist|not exist|not available|not supported|"
    r"unknown|invalid|not configured|no such)|unknown model|no such model|model_not_found|"
    r"no endpoints found",
    re.IGNORECASE,
)


def classify(status: int | None, body: str = "", *, timed_out: bool = False) -> FailureClass:
    """The class of a failed attempt from its HTTP status (None: no response) and body text."""
    if timed_out:
        return FailureClass.timeout
    if status is None:
        return FailureClass.transient
    if status in (401, 403):
        return FailureClass.auth
    if status == 429:
        return FailureClass.rate_limit
    if status in (502, 503, 504, 529):  # 529: Anthropic "overloaded"
        return FailureClass.transient
    if status >= 500 or 300 <= status < 400:  # a redirect is not followed: a wrong base_url
        return FailureClass.server
    if status in (400, 404, 422) and _MODEL_NOT_FOUND.search(body[:2000]):
        return FailureClass.model_not_found
    if status == 404:
        return FailureClass.model_not_found
    if status == 408:
        return FailureClass.timeout
    return FailureClass.client


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed attempt, as the shell saw it."""

    kind: FailureClass
    message: str = ""
    retry_after: float | None = None  # seconds, from a 429's Retry-After


@dataclass(frozen=True, slots=True)
class CooldownPolicy:
    """Numbers of a ``CooldownSpec``, in seconds."""

    failure_threshold: int = 3
    initial: float = 30.0
    max: float = 600.0
    multiplier: float = 2.0
    reset_after: float = 300.0
    transient_threshold: int = 5
    transient_initial: float = 5.0
    transient_max: float = 60.0

    @classmethod
    def from_spec(cls, spec: CooldownSpec) -> CooldownPolicy:
        return cls(
            failure_threshold=spec.failure_threshold,
            initial=spec.initial.total_seconds(),
            max=spec.max.total_seconds(),
            multiplier=spec.multiplier,
            reset_after=spec.reset_after.total_seconds(),
            transient_threshold=spec.transient.failure_threshold,
            transient_initial=spec.transient.initial.total_seconds(),
            transient_max=spec.transient.max.total_seconds(),
        )

    def step(self, count: int, *, transient: bool) -> float:
        """Cooldown after the ``count``-th consecutive failure (0 below the threshold)."""
        threshold = self.transient_threshold if transient else self.failure_threshold
        if count < threshold:
            return 0.0
        initial = self.transient_initial if transient else self.initial
        cap = self.transient_max if transient else self.max
        exponent = min(count - threshold, 64)  # beyond this the cap applies anyway
        return float(min(cap, initial * self.multiplier**exponent))

    @property
    def probe_lease(self) -> float:
        """How long a half-open probe may stay unanswered before another is allowed."""
        return max(30.0, self.initial)


@dataclass(frozen=True, slots=True)
class CooldownState:
    """Health of one provider (or key). Times are monotonic seconds."""

    failures: int = 0
    transient_failures: int = 0
    until: float = 0.0
    last_failure: float = 0.0
    last_error: str = ""
    reason: FailureClass | None = None
    probe_started: float | None = None


CLOSED = CooldownState()
"""A healthy provider: no failures counted, no deadline."""


class Phase(StrEnum):
    closed = "closed"
    open = "open"
    half_open = "half_open"
    probing = "probing"


def phase(state: CooldownState, now: float, policy: CooldownPolicy) -> Phase:
    """closed, open (cooling), half_open (may probe) or probing (a probe is out)."""
    if state.until == 0.0:
        return Phase.closed
    if now < state.until:
        return Phase.open
    if state.probe_started is not None and now - state.probe_started < policy.probe_lease:
        return Phase.probing
    return Phase.half_open


@dataclass(frozen=True, slots=True)
class CooldownEvent:
    """A transition the shells log and count (``kind``: opened, extended, closed, ...)."""

    kind: str
    reason: FailureClass | None
    until: float
    failures: int


def _decayed(state: CooldownState, now: float, policy: CooldownPolicy) -> CooldownState:
    """Counts are forgotten after ``reset_after`` without a failure (unless cooling)."""
    quiet = state.last_failure and now - state.last_failure >= policy.reset_after
    if quiet and state.until == 0.0 and (state.failures or state.transient_failures):
        return CLOSED
    return state


def after_failure(
    state: CooldownState, failure: Failure, policy: CooldownPolicy, now: float
) -> tuple[CooldownState, CooldownEvent | None]:
    """The state after a failed attempt, and the transition it caused (if any)."""
    if failure.kind is FailureClass.client or failure.kind is FailureClass.model_not_found:
        return state, None  # the request or the model is at fault, not the provider
    state = _decayed(state, now, policy)
    failures, transient = state.failures, state.transient_failures
    if failure.kind.is_transient:
        transient += 1
        duration = policy.step(transient, transient=True)
    else:
        failures += 1
        duration = policy.step(failures, transient=False)
    if failure.kind is FailureClass.rate_limit and failure.retry_after is not None:
        duration = min(max(failure.retry_after, 0.0), policy.max)
    was_cooling = state.until != 0.0
    until = max(state.until, now + duration) if duration > 0 else state.until
    new = CooldownState(
        failures=failures,
        transient_failures=transient,
        until=until,
        last_failure=now,
        last_error=failure.message[:500],
        reason=failure.kind if until else state.reason,
        probe_started=None,
    )
    if until == 0.0:
        return new, None
    kind = "opened" if not was_cooling else ("extended" if until > state.until else "held")
    if was_cooling and state.until <= now:
        kind = "reopened"  # a half-open probe failed
    return new, CooldownEvent(kind, failure.kind, until, failures + transient)


def after_success(
    state: CooldownState, policy: CooldownPolicy, now: float
) -> tuple[CooldownState, CooldownEvent | None]:
    """A success closes a cooldown whose deadline passed, or whose probe was sent early
    (``when_all_cooling: earliest``); counts decay after ``reset_after``."""
    if state.until and (now >= state.until or state.probe_started is not None):
        return CLOSED, CooldownEvent("closed", None, 0.0, 0)
    if state.until:
        return state, None  # a slow request from before the cooldown; keep cooling
    return _decayed(state, now, policy), None


def begin_probe(state: CooldownState, now: float) -> CooldownState:
    """Mark the half-open probe as sent so concurrent requests do not also probe."""
    return replace(state, probe_started=now)


def clear(_: CooldownState) -> CooldownState:
    """Manual clear (the original ``ClearCooldown`` / ``ClearError``)."""
    return CLOSED
