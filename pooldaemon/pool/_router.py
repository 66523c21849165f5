"""``route(request, snapshot, runtime, now, wall) -> RouteDecision``: who gets a request.

Pure: it reads the snapshot and the runtime and changes neither. Every
provider that could serve the requested name is either a candidate (ordered
by the strategy) or left out with a :class:`SkipReason`.
"""

from __future__ import annotations

import difflib
import fnmatch
from enum import StrEnum
from typing import Literal

from pooldaemon._values import value_type
from pooldaemon.errors import BudgetExceededError, UnknownModelError
from pooldaemon.pool._budget import budget_problem
from pooldaemon.pool._cooldown import Phase
from pooldaemon.pool._latency import LatencyStats
from pooldaemon.pool._price import cost_usd
from pooldaemon.pool._runtime import Runtime
from pooldaemon.pool._snapshot import Snapshot, Target
from pooldaemon.pool._tokens import Usage
from pooldaemon.spec import ClientSpec

__all__ = ["Candidate", "RouteDecision", "RouteRequest", "SkipReason", "Skipped", "route"]

Mode = Literal["auto", "cloud", "local"]
Strategy = Literal["priority", "cost", "latency", "round_robin"]

# Without an estimate, cost compares prices for a typical chat turn.
_DEFAULT_ESTIMATE = Usage(input=1000, output=300)
_NO_STATS = LatencyStats()


class SkipReason(StrEnum):
    disabled = "disabled"
    location = "location"  # wrong location for the routing mode
    excluded = "excluded"  # excluded by the caller (already tried)
    model_unavailable = "model_unavailable"  # answered "model not found" this catalog
    capability = "capability"  # lacks a required capability
    client_not_allowed = "client_not_allowed"
    no_key = "no_key"  # every key disabled or rejected
    over_budget = "over_budget"
    cooling = "cooling"
    quota = "quota"  # held by a quota outside the spec (trial licence expired, exhausted)


@value_type
class RouteRequest:
    """What routing needs to know of one request."""

    model: str
    capabilities: frozenset[str] = frozenset()
    client: str | None = None
    mode: Mode | None = None
    strategy: Strategy | None = None
    preferred_provider: str | None = None  # sticky: e.g. the provider of earlier tool rounds
    exclude: frozenset[str] = frozenset()
    input_tokens: int = 0  # estimates, for the cost strategy
    output_tokens: int = 0
    stream: bool = False


@value_type
class Candidate:
    provider: str
    model: str  # the upstream model id to send
    score: float
    half_open: bool = False  # this attempt is the probe of a cooling provider
    target: Target | None = None


@value_type
class Skipped:
    provider: str
    model: str
    reason: SkipReason
    detail: str = ""


@value_type
class RouteDecision:
    model: str
    mode: Mode
    strategy: Strategy
    candidates: tuple[Candidate, ...]
    skipped: tuple[Skipped, ...]
    max_attempts: int
    retry_after: float | None = None  # all cooling under when_all_cooling: fail

    @property
    def attempts(self) -> tuple[Candidate, ...]:
        """The candidates to try, at most ``max_attempts``."""
        return self.candidates[: self.max_attempts]


def _client(snapshot: Snapshot, name: str | None) -> ClientSpec | None:
    if name is None:
        return None
    return next((c for c in snapshot.spec.clients if c.name == name), None)


def _client_allows(client: ClientSpec | None, requested: str, target: Target) -> bool:
    if client is None or not client.allow_models:
        return True
    names = (requested, target.model, f"{target.provider.id}/{target.model}")
    return any(fnmatch.fnmatchcase(n, g) for g in client.allow_models for n in names)


def _suggestions(snapshot: Snapshot, model: str) -> tuple[str, ...]:
    names = snapshot.names
    close = difflib.get_close_matches(model, names, n=5, cutoff=0.5)
    lowered = model.lower()
    contains = [n for n in names if lowered in n.lower() and n not in close]
    return tuple([*close, *contains][:5])


def route(
    request: RouteRequest, snapshot: Snapshot, runtime: Runtime, now: float, wall: float
) -> RouteDecision:
    """Decide the ordered candidates for ``request``.

    ``now`` is monotonic time (cooldowns), ``wall`` unix time (budgets).
    Raises :class:`UnknownModelError` when nothing serves the name, and
    :class:`BudgetExceededError` when the client is over its budget.
    """
    routing = snapshot.spec.routing
    mode: Mode = request.mode or routing.mode
    strategy: Strategy = request.strategy or routing.strategy
    targets = snapshot.resolve(request.model)
    if not targets:
        raise UnknownModelError(request.model, _suggestions(snapshot, request.model))
    client = _client(snapshot, request.client)
    if client is not None and client.budget is not None:
        spent = runtime.ledger.totals("client", client.name, wall)
        problem = budget_problem(client.budget, spent, free=False)
        if problem:
            raise BudgetExceededError(f"client {client.name!r} is over budget: {problem}")

    eligible: list[tuple[Target, bool]] = []
    cooling: list[tuple[float, Target]] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for target in targets:
        provider = target.provider
        if provider.id in seen:
            continue  # an alias may list a provider twice: its first model wins
        seen.add(provider.id)
        reason, detail = _leave_out(request, mode, client, target, runtime, now, wall)
        if reason is None:
            if provider.id not in runtime.providers:  # healthy: the common case
                eligible.append((target, False))
                continue
            state = runtime.phase(provider.id, now)
            if state is Phase.open or state is Phase.probing:
                until = runtime.state(provider.id).until
                cooling.append((until, target))
                detail = f"for {max(until - now, 0):.1f}s" if state is Phase.open else "probe out"
                reason = SkipReason.cooling
            else:
                eligible.append((target, state is Phase.half_open))
                continue
        skipped.append(Skipped(provider.id, target.model, reason, detail))

    retry_after = None
    if not eligible and cooling:
        until, first = min(cooling, key=lambda c: c[0])
        if routing.when_all_cooling == "earliest":
            eligible.append((first, True))
            skipped = [s for s in skipped if s.provider != first.provider.id]
        else:
            retry_after = max(until - now, 0.0)

    candidates = _order(strategy, eligible, request, runtime)
    if request.preferred_provider is not None:
        candidates.sort(key=lambda c: c.provider != request.preferred_provider)
    return RouteDecision(
        model=request.model,
        mode=mode,
        strategy=strategy,
        candidates=tuple(candidates),
        skipped=tuple(skipped),
        max_attempts=routing.max_attempts,
        retry_after=retry_after,
    )


def _leave_out(
    request: RouteRequest,
    mode: Mode,
    client: ClientSpec | None,
    target: Target,
    runtime: Runtime,
    now: float,
    wall: float,
) -> tuple[SkipReason | None, str]:
    provider = target.provider
    spec = provider.spec
    if not spec.enabled:
        return SkipReason.disabled, ""
    held = runtime.held(provider.id, wall) if runtime.quotas else None
    if held is not None:
        return SkipReason.quota, held
    if mode != "auto" and provider.location != mode:
        return SkipReason.location, f"{provider.location} provider, mode {mode}"
    if provider.id in request.exclude:
        return SkipReason.excluded, ""
    if runtime.is_excluded(provider, target.model):
        return SkipReason.model_unavailable, f"{target.model!r} was not found there"
    if target.info is not None and not target.info.supports(request.capabilities):
        missing = sorted(request.capabilities - (target.info.capabilities or frozenset()))
        return SkipReason.capability, f"lacks {', '.join(missing)}"
    if not _client_allows(client, request.model, target):
        return SkipReason.client_not_allowed, ""
    if not runtime.has_usable_key(provider, now):
        return SkipReason.no_key, "every key is disabled or was rejected"
    if spec.budget is not None:
        spent = runtime.ledger.totals("provider", provider.id, wall)
        problem = budget_problem(spec.budget, spent, free=target.quote.price.is_free)
        if problem:
            return SkipReason.over_budget, problem
    return None, ""


def _order(
    strategy: Strategy,
    eligible: list[tuple[Target, bool]],
    request: RouteRequest,
    runtime: Runtime,
) -> list[Candidate]:
    if strategy == "round_robin":
        ranked = _round_robin(eligible, runtime.rr.get(request.model, 0))
        return [Candidate(t.provider.id, t.model, score, h, t) for score, t, h in ranked]
    estimate = _DEFAULT_ESTIMATE
    if request.input_tokens or request.output_tokens:
        estimate = Usage(input=request.input_tokens, output=request.output_tokens)
    keyed: list[tuple[tuple[float, float, int], float, Target, bool]] = []
    for target, half_open in eligible:
        provider = target.provider
        priority = float(provider.spec.priority)
        stats = runtime.latency.get(provider.id, _NO_STATS)
        if strategy == "cost":
            score = cost_usd(estimate, target.quote.price)
            key = (score, -priority, provider.index)
        elif strategy == "latency":
            observed = stats.ttfb if request.stream and stats.ttfb is not None else stats.latency
            score = observed if observed is not None else 0.0  # unmeasured first: measure it
            key = (score, -priority, provider.index)
        else:  # priority; ties go to the fastest observed, unmeasured last
            score = priority
            latency = stats.latency if stats.latency is not None else float("inf")
            key = (-priority, latency, provider.index)
        keyed.append((key, score, target, half_open))
    keyed.sort(key=lambda k: k[0])
    return [Candidate(t.provider.id, t.model, score, h, t) for _, score, t, h in keyed]


def _round_robin(
    eligible: list[tuple[Target, bool]], cursor: int
) -> list[tuple[float, Target, bool]]:
    """Rotate the providers (in file order) so each leads in proportion to its weight."""
    ordered = sorted(eligible, key=lambda e: e[0].provider.index)
    total = sum(t.provider.spec.weight for t, _ in ordered)
    if not total:
        return []
    slot = cursor % total
    start = 0
    for i, (t, _) in enumerate(ordered):
        slot -= t.provider.spec.weight
        if slot < 0:
            start = i
            break
    rotated = ordered[start:] + ordered[:start]
    return [(float(i), t, h) for i, (t, h) in enumerate(rotated)]
