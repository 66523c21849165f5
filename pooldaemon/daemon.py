"""``pooldaemon run``: serve the proxy on one applied config until SIGTERM/SIGINT.

Start: snapshot, keys, usage store, bind. Stop: stop accepting, let requests in
flight (streams too) finish within the grace period, flush usage, close.
Watching the YAML, reloads and the admin API come with the daemon work.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from pooldaemon.pool import Snapshot
from pooldaemon.server._app import build_proxy_app, check_open_proxy
from pooldaemon.server._state import Applied, ProxyState
from pooldaemon.settings import Settings, split_host_port
from pooldaemon.spec import LoadedSpec
from pooldaemon.upstream import resolve_keys
from pooldaemon.usage import UsageStore, seed_ledger

__all__ = ["SHUTDOWN_GRACE", "serve_proxy"]

_log = logging.getLogger("pooldaemon")
SHUTDOWN_GRACE = 30.0


def _state_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


async def serve_proxy(settings: Settings, loaded: LoadedSpec) -> None:
    """Serve until a stop signal; raises SettingsError / StoreError / OSError on start."""
    host, port = split_host_port(settings.listen)
    check_open_proxy(loaded.spec, host)
    snapshot = Snapshot.build(loaded.spec, revision=loaded.sha256)
    secrets, problems = resolve_keys(snapshot, config_dir=Path(loaded.file).parent)
    for problem in problems:
        _log.warning("key unusable: %s", problem)
    store = UsageStore(_state_dir(settings.state_dir) / "usage.sqlite3")
    try:
        state = ProxyState(
            Applied(snapshot, secrets),
            store=store,
            max_request_bytes=settings.max_request_bytes,
            max_response_bytes=settings.max_response_bytes,
        )
        seed_ledger(state.runtime.ledger, store, snapshot, state.wall())
        runner = web.AppRunner(
            build_proxy_app(state),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=SHUTDOWN_GRACE,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            _log.info(
                "serving proxy on http://%s:%d config=%s sha256=%s providers=%d",
                host, port, loaded.file, loaded.sha256[:12], len(snapshot.providers),
            )  # fmt: skip
            await _wait_for_stop()
            _log.info("stopping: finishing requests in flight (up to %.0fs)", SHUTDOWN_GRACE)
        finally:
            await runner.cleanup()
    finally:
        await asyncio.to_thread(store.close)
    _log.info("stopped")


async def _wait_for_stop() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
