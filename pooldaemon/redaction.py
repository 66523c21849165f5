"""How secrets are shown: only as the original package's display hash, never in full.

Pure (no I/O, no server imports), so the plan, the admin API and the proxy's
error paths share one form.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["display_hash", "redact"]


def display_hash(secret: str) -> str:
    """The original package's ``HashAPIKey``: first 8 + '...' + last 4 characters
    (short secrets show less, so that nothing short is revealed whole)."""
    if len(secret) <= 16:
        return "..." + secret[-2:] if len(secret) > 4 else "..."
    return f"{secret[:8]}...{secret[-4:]}"


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every known secret replaced by its display hash."""
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, display_hash(secret))
    return text
