"""Prices and costs: what one request cost, computed from normalized token usage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pooldaemon.pool._tokens import Usage

__all__ = ["Price", "PriceQuote", "PriceSource", "RemotePrice", "cost_usd"]

PriceSource = Literal[
    "provider_exact",  # a pricing.models entry (or a static model price) for this provider
    "model_exact",  # a pricing.models entry for this exact model id, any provider
    "glob",  # the most specific pricing.models glob
    "remote",  # a remote pricing source (litellm, models.dev)
    "builtin",  # the table in pooldaemon/data/
    "heuristic",  # a family match: any claude-*sonnet* priced as Sonnet
    "local",  # a local provider's model with no explicit price: free
    "default",  # pricing.default
]


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens; ``per_request`` in USD. Unset cache prices mean the input price."""

    input: float = 0.0
    output: float = 0.0
    cache_read: float | None = None
    cache_write: float | None = None
    per_request: float = 0.0

    @property
    def is_free(self) -> bool:
        return not (
            self.input or self.output or self.cache_read or self.cache_write or self.per_request
        )


@dataclass(frozen=True, slots=True)
class PriceQuote:
    """A resolved price and where it came from (``matched``: the entry, glob or family)."""

    price: Price
    source: PriceSource
    matched: str = ""
    via: str = ""  # for ``remote``: the name of the pricing source

    @property
    def label(self) -> str:
        """What usage records keep: the source, and which remote source (``remote:litellm``)."""
        return f"{self.source}:{self.via}" if self.via else self.source


@dataclass(frozen=True, slots=True)
class RemotePrice:
    """A price fetched from a remote pricing source, and that source's name."""

    price: Price
    source: str


def cost_usd(usage: Usage, price: Price) -> float:
    """Cost of one request. ``usage`` is normalized: its fields never overlap.

    Reasoning tokens are part of ``usage.output`` and priced as output; they are
    not added again.
    """
    cache_read = price.input if price.cache_read is None else price.cache_read
    cache_write = price.input if price.cache_write is None else price.cache_write
    per_token = (
        usage.input * price.input
        + usage.output * price.output
        + usage.cache_read * cache_read
        + usage.cache_write * cache_write
    )
    return per_token / 1_000_000 + price.per_request * usage.requests
