from __future__ import annotations

from typing import Any

from pooldaemon.pool import Runtime, Snapshot
from pooldaemon.spec import PoolSpec


def spec(**sections: Any) -> PoolSpec:
    return PoolSpec.model_validate({"version": 1, **sections})


def provider(pid: str, *models: str, **fields: Any) -> dict[str, Any]:
    """An OpenAI-format provider with one key and static chat models."""
    entry: dict[str, Any] = {
        "id": pid,
        "base_url": f"https://{pid}.example.com/v1",
        "keys": [{"env": f"{pid.upper().replace('-', '_')}_KEY"}],
        "models": [{"id": m} for m in models],
    }
    entry.update(fields)
    return entry


def snapshot(*providers: dict[str, Any], **sections: Any) -> Snapshot:
    return Snapshot.build(spec(providers=list(providers), **sections))


def runtime() -> Runtime:
    return Runtime()
