"""The whole desired state: ``PoolSpec`` and its top-level sections."""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import timedelta
from typing import Annotated, Literal, Self

from pydantic import Field, StrictBool, StrictStr, model_validator

from pooldaemon.spec._base import FieldProblems, Loc, SpecModel
from pooldaemon.spec._provider import BudgetSpec, PriceSpec, ProviderSpec
from pooldaemon.spec._types import Glob, HttpUrl, Name, PositiveDuration, ProviderId

__all__ = [
    "CatalogSpec",
    "ClientSpec",
    "CooldownSpec",
    "PoolSpec",
    "PriceEntry",
    "PricingSource",
    "PricingSpec",
    "RoutingSpec",
    "TransientCooldownSpec",
    "TrialSpec",
    "UsageSpec",
]


class RoutingSpec(SpecModel):
    """How a request picks its providers."""

    mode: Literal["auto", "cloud", "local"] = "auto"
    """auto: every provider; cloud / local: only providers at that location."""
    strategy: Literal["priority", "cost", "latency", "round_robin"] = "priority"
    """Order of candidates: highest priority, cheapest, fastest, or in turn."""
    max_attempts: Annotated[int, Field(ge=1, le=20, strict=True)] = 3
    """Providers tried for one request before giving up."""
    when_all_cooling: Literal["fail", "earliest"] = "fail"
    """fail: answer 503 with Retry-After; earliest: probe the provider that recovers first."""
    sticky: StrictBool = True
    """Keep a conversation (e.g. tool-call rounds) on the provider that served it."""


def _check_initial_within_max(initial: timedelta, maximum: timedelta) -> None:
    if initial > maximum:
        raise FieldProblems([(("initial",), "initial is longer than max")])


class TransientCooldownSpec(SpecModel):
    """Overrides for transient upstream errors (502/503): shorter, more forgiving."""

    failure_threshold: Annotated[int, Field(ge=1, le=1000, strict=True)] = 5
    initial: PositiveDuration = timedelta(seconds=5)
    max: PositiveDuration = timedelta(minutes=1)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_initial_within_max(self.initial, self.max)
        return self


class CooldownSpec(SpecModel):
    """When a failing provider is taken out of rotation, and for how long."""

    failure_threshold: Annotated[int, Field(ge=1, le=1000, strict=True)] = 3
    """Consecutive failures before a cooldown starts."""
    initial: PositiveDuration = timedelta(seconds=30)
    """First cooldown."""
    max: PositiveDuration = timedelta(minutes=10)
    """Longest cooldown."""
    multiplier: Annotated[float, Field(ge=1, le=100, strict=True)] = 2.0
    """Each further cooldown is this many times longer, up to max."""
    reset_after: PositiveDuration = timedelta(minutes=5)
    """Failure count is forgotten after this long without a failure."""
    transient: TransientCooldownSpec = TransientCooldownSpec()
    """Separate counting for 502/503."""

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_initial_within_max(self.initial, self.max)
        return self


class PriceEntry(PriceSpec):
    """A price override for the models matching ``match`` (optionally at one provider)."""

    match: Glob
    """Model id or glob."""
    provider: ProviderId | None = None
    """Only at this provider (unset: everywhere)."""


class PricingSource(SpecModel):
    """A remote pricing table fetched on a schedule (with ETag)."""

    url: HttpUrl
    format: Literal["litellm", "models_dev"]
    refresh: PositiveDuration = timedelta(hours=12)
    max_change: Annotated[float, Field(gt=1, le=1_000_000, strict=True, allow_inf_nan=False)] = 10.0
    """Reject a fetch in which any known price moves by more than this factor (up or down):
    a broken source must not reprice everything."""


class PricingSpec(SpecModel):
    """What tokens cost.

    Lookup order: provider-specific entry, model entry, remote sources, built-in table, default.
    """

    default: PriceSpec = PriceSpec()
    """Price of models found nowhere else."""
    models: tuple[PriceEntry, ...] = ()
    sources: tuple[PricingSource, ...] = ()


class CatalogSpec(SpecModel):
    """Model discovery from each provider's model list."""

    refresh: PositiveDuration = timedelta(hours=1)
    probe: StrictBool = False
    """Send a max_tokens=1 request per model to find those not really served."""


class UsageSpec(SpecModel):
    """Usage records kept in SQLite."""

    retention: PositiveDuration = timedelta(days=90)


class ClientSpec(SpecModel):
    """A client allowed to use the gateway; its key is stored only as a SHA-256 hash."""

    name: Name
    key_sha256: StrictStr
    """Hex SHA-256 of the client's key."""
    allow_models: tuple[Glob, ...] = ()
    """Models (or aliases) this client may use; empty allows all."""
    budget: BudgetSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise_hash(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("key_sha256"), str):
            digest = data["key_sha256"]
            if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise FieldProblems(
                    [(("key_sha256",), "key_sha256 must be 64 hex digits (a SHA-256 of the key)")]
                )
            return {**data, "key_sha256": digest.lower()}
        return data


class TrialSpec(SpecModel):
    """A signed trial licence (base64url(claims) '.' base64url(signature))."""

    licence: StrictStr = Field(repr=False)

    @model_validator(mode="after")
    def _shape(self) -> Self:
        problem = _licence_problem(self.licence)
        if problem:
            raise FieldProblems([(("licence",), problem)])
        return self


def _licence_problem(text: str) -> str | None:
    parts = text.strip().split(".")
    if len(parts) != 2 or not all(parts):
        return "licence must be two base64url parts joined by '.'"
    try:
        claims = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
        base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
    except (binascii.Error, ValueError):
        return "licence is not valid base64url-encoded JSON claims"
    if not isinstance(claims, dict):
        return "licence claims must be a JSON object"
    return None


AliasTarget = Annotated[StrictStr, Field(min_length=1, max_length=300, pattern=r"^\S+$")]


class PoolSpec(SpecModel):
    """The whole desired state of a pooldaemon: one YAML file kept in git."""

    version: Literal[1]
    """Version of this file's format."""
    routing: RoutingSpec = RoutingSpec()
    cooldown: CooldownSpec = CooldownSpec()
    pricing: PricingSpec = PricingSpec()
    catalog: CatalogSpec = CatalogSpec()
    usage: UsageSpec = UsageSpec()
    providers: tuple[ProviderSpec, ...] = ()
    aliases: dict[Name, Annotated[tuple[AliasTarget, ...], Field(min_length=1)]] = Field(
        default_factory=dict
    )
    """Names clients may ask for, each an ordered list of provider/model or model ids."""
    clients: tuple[ClientSpec, ...] = ()
    """When set, only these clients may use the proxy."""
    trial: TrialSpec | None = None

    @model_validator(mode="after")
    def _cross_check(self) -> Self:
        problems = _duplicate_problems(self) + _reference_problems(self)
        if problems:
            raise FieldProblems(problems)
        return self

    def provider(self, provider_id: str) -> ProviderSpec | None:
        """The provider with this id, if any."""
        return next((p for p in self.providers if p.id == provider_id), None)


def _duplicate_problems(spec: PoolSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    first: dict[str, int] = {}
    for i, provider in enumerate(spec.providers):
        if provider.id in first:
            problems.append(
                (
                    ("providers", i, "id"),
                    f"duplicate provider id {provider.id!r} "
                    f"(first used by entry {first[provider.id] + 1})",
                )
            )
        first.setdefault(provider.id, i)
    names: dict[str, int] = {}
    hashes: dict[str, int] = {}
    for i, client in enumerate(spec.clients):
        if client.name in names:
            problems.append((("clients", i, "name"), f"duplicate client name {client.name!r}"))
        if client.key_sha256 in hashes:
            problems.append((("clients", i, "key_sha256"), "two clients share the same key hash"))
        names.setdefault(client.name, i)
        hashes.setdefault(client.key_sha256, i)
    return problems


def _reference_problems(spec: PoolSpec) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    ids = {p.id for p in spec.providers}
    known = ", ".join(sorted(ids)) or "none"
    for name, targets in spec.aliases.items():
        if name in ids:
            problems.append(
                (("aliases", name, "[key]"), f"alias {name!r} has the name of a provider")
            )
        for j, target in enumerate(targets):
            head, sep, _ = target.partition("/")
            if sep and head not in ids:
                problems.append(
                    (
                        ("aliases", name, j),
                        f"alias {name!r} points at unknown provider {head!r} (providers: {known}); "
                        "a model id containing '/' must be written provider/model-id",
                    )
                )
            elif not sep and target in spec.aliases:
                problems.append(
                    (
                        ("aliases", name, j),
                        f"alias {name!r} points at alias {target!r}; "
                        "aliases do not chain, list the models",
                    )
                )
    for i, entry in enumerate(spec.pricing.models):
        if entry.provider is not None and entry.provider not in ids:
            problems.append(
                (
                    ("pricing", "models", i, "provider"),
                    f"pricing entry for unknown provider {entry.provider!r} (providers: {known})",
                )
            )
    return problems
