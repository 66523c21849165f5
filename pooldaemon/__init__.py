"""pooldaemon: a self-hosted LLM gateway configured from one YAML file kept in git."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
