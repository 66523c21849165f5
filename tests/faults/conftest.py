from __future__ import annotations

from tests.server.conftest import gateway

__all__ = ["gateway"]  # the in-process proxy in front of fakes, shared with tests/server
