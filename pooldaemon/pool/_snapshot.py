"""The immutable snapshot routing reads: providers, keys, models and the name index.

Built once per applied config (and per catalog refresh), then swapped in by
reference; nothing in it changes afterwards, so the request path needs no lock.
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from pooldaemon.pool._builtin import BuiltinTable, load_builtin_table
from pooldaemon.pool._families import supports_chat_model_id as _supports_chat
from pooldaemon.pool._price import Price, PriceQuote, RemotePrice
from pooldaemon.pool._pricing import Pricer
from pooldaemon.spec import KeySpec, ModelSpec, PoolSpec, ProviderSpec

__all__ = ["Endpoint", "KeyView", "ModelInfo", "ProviderView", "Snapshot", "Target"]

_GLOB_CHARS = re.compile(r"[*?\[]")
# Pure and called for every model of every provider at each build.
supports_chat_model_id = functools.lru_cache(maxsize=1 << 16)(_supports_chat)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What is known of one model at one provider."""

    id: str
    name: str | None = None
    context_window: int | None = None
    max_output: int | None = None
    capabilities: frozenset[str] | None = None  # None: unknown, assumed capable
    price: Price | None = None
    chat: bool = True

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> ModelInfo:
        if spec.capabilities is None:  # unset: a chat model, unless the id says otherwise
            caps = frozenset({"chat", "streaming"})
            chat = supports_chat_model_id(spec.id)
        else:  # declared capabilities are trusted
            caps = frozenset(str(c) for c in spec.capabilities)
            chat = "chat" in caps
        price = None
        if spec.price is not None:
            p = spec.price
            price = Price(p.input, p.output, p.cache_read, p.cache_write, p.per_request)
        return cls(
            id=spec.id,
            name=spec.name,
            context_window=spec.context_window,
            max_output=spec.max_output,
            capabilities=caps,
            price=price,
            chat=chat,
        )

    def supports(self, required: frozenset[str]) -> bool:
        return self.capabilities is None or required <= self.capabilities


@dataclass(frozen=True, slots=True)
class KeyView:
    """One configured key: a stable id for runtime state, never the secret."""

    key_id: str
    index: int
    label: str | None
    source: str
    enabled: bool
    spec: KeySpec = field(repr=False)


@dataclass(frozen=True, slots=True)
class ProviderView:
    """A provider as routing sees it, with its models already filtered by the allowlist."""

    id: str
    index: int
    spec: ProviderSpec
    keys: tuple[KeyView, ...]
    models: Mapping[str, ModelInfo]
    allow: re.Pattern[str] | None
    catalog_generation: int = 0

    location: str = "cloud"
    any_key_enabled: bool = False
    catalog_known: bool = False  # static models: or a discovered catalog

    @property
    def wildcard(self) -> bool:
        """No model list is known yet: any model id the allowlist allows may be sent here."""
        return not self.catalog_known

    def allows(self, model: str) -> bool:
        return self.allow is None or self.allow.match(model) is not None


@dataclass(frozen=True, slots=True)
class Target:
    """One way to serve a requested name: this provider, this upstream model id."""

    provider: ProviderView
    model: str
    info: ModelInfo | None
    quote: PriceQuote


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What refreshes learned about how to reach a provider: the format detected for
    ``format: auto`` and the base URL that answered (one of ``alternate_base_urls``)."""

    format: str | None = None
    base_url: str | None = None


def effective_spec(spec: ProviderSpec, endpoint: Endpoint | None) -> ProviderSpec:
    """``spec`` with the detected format and the working base URL filled in.

    Only what the spec allows is taken: for ``format: auto`` the detected format
    and the base URL detection settled on (endpoint paths removed); otherwise a
    base URL only when it is one of the alternates (a stale memory of a URL since
    removed from git is ignored).
    """
    if endpoint is None:
        return spec
    fmt, base = spec.format, spec.base_url
    if spec.format == "auto" and endpoint.format:
        fmt = endpoint.format  # type: ignore[assignment]
    if endpoint.base_url and (
        spec.format == "auto" or endpoint.base_url in spec.alternate_base_urls
    ):
        base = endpoint.base_url
    if fmt == spec.format and base == spec.base_url:
        return spec
    return spec.model_copy(update={"format": fmt, "base_url": base})


def key_id(provider: str, key: KeySpec) -> str:
    """Stable across reloads while the key's source stays the same; reveals nothing."""
    ident = key.source if key.value is None else f"value:{key.value}"
    digest = hashlib.sha256(f"{provider}\0{ident}".encode()).hexdigest()
    return f"k{digest[:10]}"


def _allow_pattern(globs: Sequence[str]) -> re.Pattern[str] | None:
    if not globs:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(g)})" for g in globs))


def _provider_models(
    spec: ProviderSpec, allow: re.Pattern[str] | None, discovered: Iterable[ModelInfo]
) -> dict[str, ModelInfo]:
    models: dict[str, ModelInfo] = {}
    for info in discovered:
        models[info.id] = info
    for model in spec.models:  # the spec's declaration wins over discovery
        models[model.id] = ModelInfo.from_spec(model)
    for pattern in spec.allow_models:  # exact allowlist names are known models too
        if not _GLOB_CHARS.search(pattern) and pattern not in models:
            models[pattern] = ModelInfo(pattern, chat=supports_chat_model_id(pattern))
    if allow is not None:
        models = {k: v for k, v in models.items() if allow.match(k)}
    return models


class Snapshot:
    """Everything routing needs, immutable. Build with :meth:`build`."""

    __slots__ = (
        "_pricer",
        "aliases",
        "by_id",
        "index",
        "names",
        "providers",
        "revision",
        "spec",
        "wildcards",
    )

    def __init__(
        self,
        spec: PoolSpec,
        providers: tuple[ProviderView, ...],
        index: Mapping[str, tuple[Target, ...]],
        pricer: Pricer,
        revision: str,
    ) -> None:
        self.spec = spec
        self.providers = providers
        self.by_id: Mapping[str, ProviderView] = MappingProxyType({p.id: p for p in providers})
        self.index = index
        self.aliases: Mapping[str, tuple[str, ...]] = MappingProxyType(dict(spec.aliases))
        self.wildcards = tuple(p for p in providers if p.wildcard)
        self.names = tuple(sorted({*index, *spec.aliases}))
        self.revision = revision
        self._pricer = pricer

    @classmethod
    def build(
        cls,
        spec: PoolSpec,
        catalogs: Mapping[str, Sequence[ModelInfo]] | None = None,
        *,
        revision: str = "",
        builtin: BuiltinTable | None = None,
        remote_prices: Mapping[str, RemotePrice] | None = None,
        generations: Mapping[str, int] | None = None,
        endpoints: Mapping[str, Endpoint] | None = None,
    ) -> Snapshot:
        """A snapshot of ``spec`` with discovered ``catalogs`` (provider id -> models),
        remote prices, and the ``endpoints`` refreshes detected."""
        catalogs = catalogs or {}
        generations = generations or {}
        endpoints = endpoints or {}
        pricer = Pricer(spec, builtin or load_builtin_table(), remote_prices or {})
        providers = []
        for i, declared in enumerate(spec.providers):
            p = effective_spec(declared, endpoints.get(declared.id))
            allow = _allow_pattern(p.allow_models)
            keys = tuple(
                KeyView(key_id(p.id, k), j, k.label, k.source, k.enabled, k)
                for j, k in enumerate(p.keys)
            )
            models = _provider_models(p, allow, catalogs.get(p.id, ()))
            view = ProviderView(
                p.id,
                i,
                p,
                keys,
                MappingProxyType(models),
                allow,
                generations.get(p.id, 0),
                location=p.location or "cloud",
                any_key_enabled=any(k.enabled for k in keys),
                catalog_known=bool(p.models) or p.id in catalogs,
            )
            providers.append(view)
        index: dict[str, list[Target]] = {}
        for view in providers:
            for model_id, info in view.models.items():
                if not info.chat:
                    continue  # embeddings, tts, images ... never take chat requests
                target = Target(view, model_id, info, pricer.quote(view.spec, model_id, info))
                index.setdefault(model_id, []).append(target)
                index[f"{view.id}/{model_id}"] = [target]
        frozen = MappingProxyType({name: tuple(ts) for name, ts in index.items()})
        return cls(spec, tuple(providers), frozen, pricer, revision)

    def resolve(self, name: str) -> tuple[Target, ...]:
        """Every target for a requested name: an alias, ``provider/model``, or a model id.

        Providers whose model list is not known yet (wildcards) take any model id
        their allowlist accepts.
        """
        alias = self.aliases.get(name)
        if alias is not None:
            seen: set[tuple[str, str]] = set()
            out: list[Target] = []
            for item in alias:
                for target in self._resolve_one(item):
                    key = (target.provider.id, target.model)
                    if key not in seen:
                        seen.add(key)
                        out.append(target)
            return tuple(out)
        return self._resolve_one(name)

    def _resolve_one(self, name: str) -> tuple[Target, ...]:
        found = self.index.get(name)
        if found is not None and not self.wildcards:
            return found
        head, sep, rest = name.partition("/")
        provider = self.by_id.get(head) if sep else None
        if provider is not None:
            if found is not None:
                return found
            if provider.wildcard and provider.allows(rest) and supports_chat_model_id(rest):
                # Not listed, but the model list is unknown: the allowlist decides.
                return (self._wildcard_target(provider, rest),)
            return ()
        found = found or ()
        listed = {t.provider.id for t in found}
        extra = tuple(
            self._wildcard_target(p, name)
            for p in self.wildcards
            if p.id not in listed and p.allows(name) and supports_chat_model_id(name)
        )
        return found + extra

    def _wildcard_target(self, provider: ProviderView, model: str) -> Target:
        return Target(provider, model, None, self._pricer.quote(provider.spec, model, None))

    def quote(self, provider_id: str | None, model: str) -> PriceQuote:
        """The price of ``model`` at a provider (None: at no provider in particular),
        and which source gave it."""
        provider = self.by_id.get(provider_id) if provider_id is not None else None
        info = provider.models.get(model) if provider else None
        if provider is None:
            return self._pricer.quote(None, model, None)
        return self._pricer.quote(provider.spec, model, info)
