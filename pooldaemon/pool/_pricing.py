"""Which price applies to a model at a provider, and where it came from.

Lookup order (first hit wins):

1. ``provider_exact``: the provider's static model ``price:``, or a
   ``pricing.models`` entry for this provider whose ``match`` is the exact id;
2. ``model_exact``: a ``pricing.models`` entry for the exact id, any provider;
3. ``glob``: the most specific matching glob (most literal characters; a
   provider-specific entry before a general one; then file order);
4. ``local``: a model at a local provider with no explicit price is free;
5. ``remote``: remote pricing sources (litellm, models.dev);
6. ``builtin``: the built-in table (``pooldaemon/data/models.json``),
   matching also date-suffixed and provider-prefixed ids;
7. ``heuristic``: the model's family (any ``claude-*sonnet*`` as Sonnet);
8. ``default``: ``pricing.default``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pooldaemon.pool._builtin import BuiltinTable
from pooldaemon.pool._families import family_price
from pooldaemon.pool._price import Price, PriceQuote, RemotePrice
from pooldaemon.spec import PoolSpec, PriceSpec, ProviderSpec

if TYPE_CHECKING:
    from pooldaemon.pool._snapshot import ModelInfo

__all__ = ["Pricer", "price_of"]

_GLOB_CHARS = re.compile(r"[*?\[]")
_MAX_REMEMBERED = 100_000


def price_of(spec: PriceSpec) -> Price:
    return Price(spec.input, spec.output, spec.cache_read, spec.cache_write, spec.per_request)


class Pricer:
    """Resolves prices for one applied spec; immutable after construction."""

    __slots__ = ("_builtin", "_default", "_exact", "_globs", "_remote", "_tails")

    def __init__(
        self,
        spec: PoolSpec,
        builtin: BuiltinTable,
        remote: Mapping[str, RemotePrice] | None = None,
    ) -> None:
        self._builtin = builtin
        self._remote = dict(remote or {})
        self._default = price_of(spec.pricing.default)
        # (provider or None, model) -> (price, matched); first entry in the file wins.
        self._exact: dict[tuple[str | None, str], tuple[Price, str]] = {}
        globs: list[tuple[int, int, int, re.Pattern[str], str | None, Price, str]] = []
        for order, entry in enumerate(spec.pricing.models):
            price = price_of(entry)
            if _GLOB_CHARS.search(entry.match):
                literal = len(_GLOB_CHARS.sub("", entry.match))
                rank = (-literal, 0 if entry.provider else 1, order)
                pattern = re.compile(fnmatch.translate(entry.match))
                globs.append((*rank, pattern, entry.provider, price, entry.match))
            else:
                self._exact.setdefault((entry.provider, entry.match), (price, entry.match))
        globs.sort(key=lambda g: g[:3])
        self._globs = tuple(g[3:] for g in globs)
        # The end of the chain depends on the model id alone: remember it per id.
        self._tails: dict[str, PriceQuote] = {}

    def quote(
        self, provider: ProviderSpec | None, model: str, info: ModelInfo | None = None
    ) -> PriceQuote:
        """The price of ``model`` at ``provider`` (None: no particular provider)."""
        pid = provider.id if provider else None
        if info is not None and info.price is not None:
            return PriceQuote(info.price, "provider_exact", f"{pid}/{model}")
        if pid is not None:
            hit = self._exact.get((pid, model))
            if hit:
                return PriceQuote(hit[0], "provider_exact", f"{pid}/{hit[1]}")
        hit = self._exact.get((None, model))
        if hit:
            return PriceQuote(hit[0], "model_exact", hit[1])
        for pattern, only, price, text in self._globs:
            if (only is None or only == pid) and pattern.match(model):
                return PriceQuote(price, "glob", f"{only}/{text}" if only else text)
        if provider is not None and provider.location == "local":
            return PriceQuote(Price(), "local", provider.id)
        tail = self._tails.get(model)
        if tail is None:
            tail = self._tail(model)
            if len(self._tails) < _MAX_REMEMBERED:  # requests may bring any id: stay bounded
                self._tails[model] = tail
        return tail

    def _tail(self, model: str) -> PriceQuote:
        remote = self._remote.get(model) or self._remote.get(model.rpartition("/")[2])
        if remote is not None:
            return PriceQuote(remote.price, "remote", model, remote.source)
        known = self._builtin.lookup(model)
        if known is not None:
            return PriceQuote(known.price, "builtin", known.id)
        family = family_price(model)
        if family is not None:
            return PriceQuote(family[0], "heuristic", family[1])
        return PriceQuote(self._default, "default", "default")
