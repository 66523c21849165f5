"""The desired state: pydantic models of the YAML, its loader and its JSON Schema."""

from __future__ import annotations

from pooldaemon.spec._loader import LoadedSpec, load_spec_bytes, load_spec_file
from pooldaemon.spec._pool import (
    CatalogSpec,
    ClientSpec,
    CooldownSpec,
    PoolSpec,
    PriceEntry,
    PricingSource,
    PricingSpec,
    RoutingSpec,
    TransientCooldownSpec,
    TrialSpec,
    UsageSpec,
)
from pooldaemon.spec._provider import (
    BudgetSpec,
    Capability,
    KeySpec,
    ModelParamsSpec,
    ModelSpec,
    PriceSpec,
    ProviderSpec,
    RateLimitSpec,
)
from pooldaemon.spec._schema import pool_json_schema
from pooldaemon.spec._types import format_duration, parse_duration

__all__ = [
    "BudgetSpec",
    "Capability",
    "CatalogSpec",
    "ClientSpec",
    "CooldownSpec",
    "KeySpec",
    "LoadedSpec",
    "ModelParamsSpec",
    "ModelSpec",
    "PoolSpec",
    "PriceEntry",
    "PriceSpec",
    "PricingSource",
    "PricingSpec",
    "ProviderSpec",
    "RateLimitSpec",
    "RoutingSpec",
    "TransientCooldownSpec",
    "TrialSpec",
    "UsageSpec",
    "format_duration",
    "load_spec_bytes",
    "load_spec_file",
    "parse_duration",
    "pool_json_schema",
]
