"""Things that are valid but probably not what the user wants."""

from __future__ import annotations

from collections.abc import Mapping

from pooldaemon.spec._base import Loc
from pooldaemon.spec._pool import PoolSpec

__all__ = ["spec_warnings"]


def spec_warnings(spec: PoolSpec, env: Mapping[str, str]) -> list[tuple[Loc, str]]:
    """Warnings as (location, message); a file with warnings still applies."""
    found: list[tuple[Loc, str]] = []
    for i, provider in enumerate(spec.providers):
        for j, key in enumerate(provider.keys):
            if key.value is not None and not key.is_sealed:
                found.append(
                    (
                        ("providers", i, "keys", j, "value"),
                        "plain-text secret in the config file; seal it (ENC[...]) "
                        "or use env:, file: or credential:",
                    )
                )
            if key.env is not None and key.enabled and key.env not in env:
                found.append(
                    (
                        ("providers", i, "keys", j, "env"),
                        f"environment variable {key.env!r} is not set",
                    )
                )
        if provider.location == "cloud" and provider.enabled:
            if not any(k.enabled for k in provider.keys):
                found.append(
                    (
                        ("providers", i, "keys"),
                        "cloud provider without an enabled key: requests carry no credential",
                    )
                )
            if not provider.tls_verify:
                found.append(
                    (("providers", i, "tls_verify"), "TLS verification is off for a cloud provider")
                )
    mode = spec.routing.mode
    if mode != "auto" and not any(p.enabled and p.location == mode for p in spec.providers):
        found.append(
            (("routing", "mode"), f"mode: {mode} but no enabled provider has location: {mode}")
        )
    return found
