"""Runtime state keyed by stable ids: cooldowns, keys, latency, cursors, spend.

Mutated only from the event loop thread (so no locks); every change is made by
the pure transition functions of ``_cooldown`` and ``_latency`` and reported as
:class:`PoolEvent` values for the shells to log and count.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass
from typing import Protocol

from pooldaemon.pool._budget import SpendLedger
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
    phase,
)
from pooldaemon.pool._latency import LatencyStats, observe
from pooldaemon.pool._snapshot import KeyView, ProviderView
from pooldaemon.pool._tokens import Usage

__all__ = ["PoolEvent", "Quota", "Runtime"]

_AUTH_MIN = 300.0  # a rejected key is re-probed after 5 minutes at the earliest ...
_AUTH_MAX = 86_400.0  # ... and at least once a day


@dataclass(frozen=True, slots=True)
class PoolEvent:
    """A runtime transition: ``kind`` is opened, extended, reopened, held, closed,
    key_disabled, key_enabled, model_excluded or cleared."""

    provider: str
    kind: str
    reason: FailureClass | None = None
    until: float = 0.0
    failures: int = 0
    key_id: str | None = None
    model: str | None = None


class Quota(Protocol):
    """A limit on one provider kept outside the spec (a trial licence's tokens and
    validity): asked before routing, told the tokens of every answer served."""

    def blocked(self, wall: float) -> str | None:
        """Why the provider may not serve now (None: it may)."""
        ...

    def consume(self, usage: Usage, wall: float) -> None:
        """Count the tokens of an answer the provider served."""
        ...


class Runtime:
    """The mutable half of routing; the router only reads it."""

    def __init__(self, policy: CooldownPolicy | None = None) -> None:
        self.policy = policy or CooldownPolicy()
        self.providers: dict[str, CooldownState] = {}
        self.keys: dict[tuple[str, str], CooldownState] = {}
        self.rejected: dict[str, int] = {}  # provider -> keys currently in ``keys``
        self.excluded: dict[tuple[str, str], int] = {}
        self.latency: dict[str, LatencyStats] = {}
        self.rr: dict[str, int] = {}
        self.key_cursor: dict[str, int] = {}
        self.ledger = SpendLedger()
        # Not cleared with a provider's cooldowns (clear/forget): a quota is not a fault.
        self.quotas: dict[str, Quota] = {}

    # -- reads -------------------------------------------------------------
    def state(self, provider: str) -> CooldownState:
        return self.providers.get(provider, CLOSED)

    def phase(self, provider: str, now: float) -> Phase:
        return phase(self.providers.get(provider, CLOSED), now, self.policy)

    def key_usable(self, provider: str, key: KeyView, now: float) -> bool:
        if not key.enabled:
            return False
        state = self.keys.get((provider, key.key_id))
        return state is None or now >= state.until

    def usable_keys(self, provider: ProviderView, now: float) -> tuple[KeyView, ...]:
        return tuple(k for k in provider.keys if self.key_usable(provider.id, k, now))

    def has_usable_key(self, provider: ProviderView, now: float) -> bool:
        """Whether some key may be used (True for a provider that needs none)."""
        if not provider.keys:
            return True
        if provider.id not in self.rejected:  # the common case: no key was ever rejected
            return provider.any_key_enabled
        return any(self.key_usable(provider.id, k, now) for k in provider.keys)

    def is_excluded(self, provider: ProviderView, model: str) -> bool:
        if not self.excluded:
            return False
        generation = self.excluded.get((provider.id, model))
        return generation is not None and generation == provider.catalog_generation

    def stats(self, provider: str) -> LatencyStats:
        return self.latency.get(provider, LatencyStats())

    def held(self, provider: str, wall: float) -> str | None:
        """Why a :class:`Quota` holds ``provider`` out of routing (None: it does not)."""
        quota = self.quotas.get(provider)
        return None if quota is None else quota.blocked(wall)

    # -- writes ------------------------------------------------------------
    def pick_key(
        self,
        provider: ProviderView,
        now: float,
        *,
        allowed: Container[str] | None = None,
        exclude: Container[str] = (),
    ) -> KeyView | None:
        """The next usable key, in turn; only ids in ``allowed`` (e.g. keys whose value
        could be read) and not in ``exclude`` (already tried). None when there is none."""
        usable = [
            k
            for k in self.usable_keys(provider, now)
            if (allowed is None or k.key_id in allowed) and k.key_id not in exclude
        ]
        if not usable:
            return None
        cursor = self.key_cursor.get(provider.id, 0)
        self.key_cursor[provider.id] = cursor + 1
        return usable[cursor % len(usable)]

    def consume(self, provider: str, usage: Usage, wall: float) -> None:
        """Tell the provider's :class:`Quota`, if it has one, what an answer used."""
        quota = self.quotas.get(provider)
        if quota is not None:
            quota.consume(usage, wall)

    def advance(self, name: str) -> None:
        """Move the round-robin cursor of a requested name (after routing it)."""
        self.rr[name] = self.rr.get(name, 0) + 1

    def begin_probe(self, provider: str, now: float) -> None:
        state = self.providers.get(provider)
        if state is not None and state.until:
            self.providers[provider] = begin_probe(state, now)

    def record_success(
        self,
        provider: str,
        now: float,
        *,
        key_id: str | None = None,
        latency: float | None = None,
        ttfb: float | None = None,
    ) -> list[PoolEvent]:
        events: list[PoolEvent] = []
        self.latency[provider] = observe(self.stats(provider), latency, ttfb)
        if key_id is not None and self.keys.pop((provider, key_id), None) is not None:
            self._count_rejected(provider, -1)
            events.append(PoolEvent(provider, "key_enabled", key_id=key_id))
        state = self.providers.get(provider)
        if state is not None:
            new, event = after_success(state, self.policy, now)
            self._store(provider, new)
            if event is not None:
                events.append(PoolEvent(provider, event.kind))
        return events

    def record_failure(
        self,
        provider: ProviderView,
        failure: Failure,
        now: float,
        *,
        key_id: str | None = None,
        model: str | None = None,
    ) -> list[PoolEvent]:
        pid = provider.id
        if failure.kind in (FailureClass.client, FailureClass.model_not_found):
            events = self._answered(pid, now)  # the provider is up: a probe succeeded
            if failure.kind is FailureClass.model_not_found and model is not None:
                self.excluded[(pid, model)] = provider.catalog_generation
                events.append(PoolEvent(pid, "model_excluded", failure.kind, model=model))
            return events
        if failure.kind is FailureClass.auth and key_id is not None and provider.keys:
            return self._auth_failure(provider, key_id, failure, now)
        new, event = after_failure(self.state(pid), failure, self.policy, now)
        self._store(pid, new)
        if event is None:
            return []
        return [PoolEvent(pid, event.kind, event.reason, event.until, event.failures)]

    def _auth_failure(
        self, provider: ProviderView, key_id: str, failure: Failure, now: float
    ) -> list[PoolEvent]:
        """A rejected key is set aside (re-probed slowly); the provider cools only
        when it has no usable key left."""
        pid = provider.id
        old = self.keys.get((pid, key_id), CLOSED)
        if old is CLOSED:
            self._count_rejected(pid, +1)
        count = old.failures + 1
        wait = min(
            _AUTH_MAX, max(_AUTH_MIN, self.policy.max) * self.policy.multiplier ** (count - 1)
        )
        until = now + wait
        self.keys[(pid, key_id)] = CooldownState(
            failures=count, until=until, last_failure=now, last_error=failure.message[:500],
            reason=FailureClass.auth,
        )  # fmt: skip
        events = [PoolEvent(pid, "key_disabled", FailureClass.auth, until, count, key_id=key_id)]
        if not self.usable_keys(provider, now):
            earliest = min(
                (self.keys.get((pid, k.key_id), CLOSED).until for k in provider.keys if k.enabled),
                default=until,
            )
            state = self.state(pid)
            self.providers[pid] = CooldownState(
                failures=state.failures, transient_failures=state.transient_failures,
                until=max(state.until, earliest), last_failure=now,
                last_error="every key was rejected (401/403)", reason=FailureClass.auth,
            )  # fmt: skip
            events.append(PoolEvent(pid, "opened", FailureClass.auth, earliest, count))
        return events

    def clear(self, provider: str) -> bool:
        """Manual clear: cooldown, rejected keys and excluded models of a provider."""
        found = self.providers.pop(provider, None) is not None
        for key in [k for k in self.keys if k[0] == provider]:
            del self.keys[key]
            found = True
        self.rejected.pop(provider, None)
        for key in [k for k in self.excluded if k[0] == provider]:
            del self.excluded[key]
            found = True
        return found

    def forget(self, providers: Iterable[str]) -> None:
        """Drop all state of providers that were removed or whose endpoint/keys changed."""
        for pid in providers:
            self.clear(pid)
            self.latency.pop(pid, None)
            self.key_cursor.pop(pid, None)
            self.ledger.forget("provider", pid)

    def _answered(self, provider: str, now: float) -> list[PoolEvent]:
        """An answer that blames the request, not the provider, still proves it is up."""
        state = self.providers.get(provider)
        if state is None or not state.until or now < state.until:
            return []
        new, event = after_success(state, self.policy, now)
        self._store(provider, new)
        return [PoolEvent(provider, event.kind)] if event is not None else []

    def _count_rejected(self, provider: str, delta: int) -> None:
        count = self.rejected.get(provider, 0) + delta
        if count > 0:
            self.rejected[provider] = count
        else:
            self.rejected.pop(provider, None)

    def _store(self, provider: str, state: CooldownState) -> None:
        if state == CLOSED:
            self.providers.pop(provider, None)
        else:
            self.providers[provider] = state
