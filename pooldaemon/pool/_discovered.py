"""What the refresh jobs learned, laid over the spec at every snapshot build."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TypeVar

from pooldaemon.pool._builtin import BuiltinTable
from pooldaemon.pool._price import RemotePrice
from pooldaemon.pool._snapshot import Endpoint, ModelInfo, Snapshot
from pooldaemon.spec import PoolSpec

__all__ = ["Discovered"]

V = TypeVar("V")


def _frozen(mapping: Mapping[str, V]) -> Mapping[str, V]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class Discovered:
    """Model catalogs per provider (with a generation bumped at each successful fetch,
    which lifts runtime exclusions of models), detected endpoints, remote prices.

    Immutable: the refresher builds a new one from what it keeps and publishes it;
    the reconciler builds every snapshot from the applied spec and the current
    ``Discovered``.
    """

    catalogs: Mapping[str, tuple[ModelInfo, ...]] = field(default_factory=dict)
    generations: Mapping[str, int] = field(default_factory=dict)
    endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    remote_prices: Mapping[str, RemotePrice] = field(default_factory=dict)

    def snapshot(
        self, spec: PoolSpec, *, revision: str = "", builtin: BuiltinTable | None = None
    ) -> Snapshot:
        return Snapshot.build(
            spec,
            self.catalogs,
            revision=revision,
            builtin=builtin,
            remote_prices=self.remote_prices,
            generations=self.generations,
            endpoints=self.endpoints,
        )

    def without(self, providers: set[str]) -> Discovered:
        """Forget what was learned about providers no longer in the spec."""
        if not providers & (set(self.catalogs) | set(self.endpoints)):
            return self
        return replace(
            self,
            catalogs=_frozen({k: v for k, v in self.catalogs.items() if k not in providers}),
            endpoints=_frozen({k: v for k, v in self.endpoints.items() if k not in providers}),
        )
