"""aiohttp applications: the proxy (and later the admin API and metrics)."""

from __future__ import annotations

from pooldaemon.server._app import build_proxy_app, check_open_proxy
from pooldaemon.server._state import PROXY_STATE, Applied, ProxyState

__all__ = ["PROXY_STATE", "Applied", "ProxyState", "build_proxy_app", "check_open_proxy"]
