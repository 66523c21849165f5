"""The runtime domain, pure and synchronous: snapshot, router, cooldowns, pricing, budgets."""

from __future__ import annotations

from pooldaemon.pool._budget import SpendLedger, SpendTotals, budget_problem
from pooldaemon.pool._cooldown import (
    CooldownEvent,
    CooldownPolicy,
    CooldownState,
    Failure,
    FailureClass,
    Phase,
    after_failure,
    after_success,
    classify,
    phase,
)
from pooldaemon.pool._discovered import Discovered
from pooldaemon.pool._latency import LatencyStats, observe
from pooldaemon.pool._price import Price, PriceQuote, RemotePrice, cost_usd
from pooldaemon.pool._pricing import Pricer
from pooldaemon.pool._router import (
    Candidate,
    RouteDecision,
    RouteRequest,
    Skipped,
    SkipReason,
    route,
)
from pooldaemon.pool._runtime import PoolEvent, Quota, Runtime
from pooldaemon.pool._snapshot import (
    Endpoint,
    KeyView,
    ModelInfo,
    ProviderView,
    Snapshot,
    Target,
)
from pooldaemon.pool._tokens import (
    Usage,
    usage_from_anthropic,
    usage_from_gemini,
    usage_from_ollama,
    usage_from_openai,
    usage_from_responses,
)

__all__ = [
    "Candidate",
    "CooldownEvent",
    "CooldownPolicy",
    "CooldownState",
    "Discovered",
    "Endpoint",
    "Failure",
    "FailureClass",
    "KeyView",
    "LatencyStats",
    "ModelInfo",
    "Phase",
    "PoolEvent",
    "Price",
    "PriceQuote",
    "Pricer",
    "ProviderView",
    "Quota",
    "RemotePrice",
    "RouteDecision",
    "RouteRequest",
    "Runtime",
    "SkipReason",
    "Skipped",
    "Snapshot",
    "SpendLedger",
    "SpendTotals",
    "Target",
    "Usage",
    "after_failure",
    "after_success",
    "budget_problem",
    "classify",
    "cost_usd",
    "observe",
    "phase",
    "route",
    "usage_from_anthropic",
    "usage_from_gemini",
    "usage_from_ollama",
    "usage_from_openai",
    "usage_from_responses",
]
