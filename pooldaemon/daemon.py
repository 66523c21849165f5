"""``pooldaemon run``: the daemon's lifecycle.

Start: settings -> sealing keys -> the YAML (else the last-known-good copy,
reported Degraded; with neither, exit with the errors) -> usage store -> snapshot -> bind ->
triggers (file watch, SIGHUP, a periodic checksum poll). Stop (SIGTERM or
SIGINT): stop accepting, let requests in flight (streams too) finish within
the grace period, flush usage, close.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from pooldaemon._files import private_dir
from pooldaemon.jobs import Jobs
from pooldaemon.reconcile._plan import Plan
from pooldaemon.reconcile._reconciler import Reconciler, build_applied, initial_spec
from pooldaemon.reconcile._watch import poll_config, watch_config
from pooldaemon.refresh._refresher import Refresher
from pooldaemon.secrets import keyring_from_settings
from pooldaemon.server import ProxyState, build_proxy_app, check_open_proxy
from pooldaemon.server._admin import AdminState, build_admin_app, check_admin_exposure
from pooldaemon.server._metrics import build_registry
from pooldaemon.settings import Settings, split_host_port
from pooldaemon.spec import PoolSpec
from pooldaemon.systemd import Notifier, watchdog_task
from pooldaemon.trial import Trial
from pooldaemon.usage import UsageStore, seed_ledger

__all__ = ["SHUTDOWN_GRACE", "run_daemon"]

_log = logging.getLogger("pooldaemon")
SHUTDOWN_GRACE = 30.0
# Young-generation collections every 20,000 allocations instead of 700: a request
# allocates a few thousand objects, nearly all freed by reference counting, so the
# default ran the collector several times per request (measured by make bench:
# about 10 % of the daemon's CPU). Older generations keep their usual ratios.
GC_THRESHOLDS = (20_000, 20, 10)


async def run_daemon(settings: Settings) -> None:
    """Serve until a stop signal. Raises ConfigError (no usable config), SettingsError,
    SealingKeyError (a key file is unusable), StoreError or OSError when it cannot start."""
    notifier = Notifier.from_env()
    # Pings until the very end, the drain included (systemd would kill a silent daemon).
    watchdog = asyncio.create_task(watchdog_task(notifier))
    try:
        await _run(settings, notifier)
    finally:
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    _log.info("stopped")


async def _run(settings: Settings, notifier: Notifier) -> None:
    state_dir = private_dir(settings.state_dir)
    keyring = keyring_from_settings(settings)
    for warning in keyring.warnings:
        _log.warning("%s", warning)
    if keyring.keys:
        _log.info("%s", keyring.describe())
    loaded, start_errors = initial_spec(settings.config, state_dir, keyring)
    for issue in start_errors:
        _log.error("config invalid, serving the last-known-good copy: %s", issue)
    trial = Trial.open(settings, state_dir)
    loaded = trial.derive(loaded)  # a verified trial licence adds its provider
    host, port = split_host_port(settings.listen)
    check_open_proxy(loaded.spec, host)
    admin_host, admin_port = split_host_port(settings.admin_listen)
    admin_token = settings.admin_token_value()
    check_admin_exposure(admin_host, admin_token)
    store = UsageStore(state_dir / "usage.sqlite3")
    try:
        refresher = Refresher(state_dir, store=store)
        discovered = refresher.discovered(loaded.spec)  # kept catalogs route without network
        applied = build_applied(loaded, settings.config.parent, discovered, keyring)
        snapshot = applied.snapshot
        state = ProxyState(
            applied,
            store=store,
            max_request_bytes=settings.max_request_bytes,
            max_response_bytes=settings.max_response_bytes,
        )
        seed_ledger(state.runtime.ledger, store, snapshot, state.wall())
        reconciler = Reconciler(
            settings.config,
            state_dir,
            state,
            loaded,
            store=store,
            start_errors=start_errors,
            notifier=notifier,
            discovered=discovered,
            keyring=keyring,
        )
        reconciler.discover = refresher.discovered
        trial.bind(reconciler)
        refresher.reconciler = reconciler
        jobs = Jobs(
            refresher,
            last_success=refresher.last_success(loaded.spec),
            secrets=lambda: state.applied.secrets.values(),
        )
        jobs.sync(loaded.spec)
        reconciler.on_applied.append(functools.partial(_follow_spec, jobs))
        runner = web.AppRunner(
            build_proxy_app(state),
            handler_cancellation=True,
            access_log=None,
            shutdown_timeout=SHUTDOWN_GRACE,
        )
        registry = build_registry(reconciler.status, state, jobs)
        admin = AdminState(reconciler, admin_token, registry, jobs=jobs, refresher=refresher)
        admin_runner = web.AppRunner(build_admin_app(admin, state, store), access_log=None)
        await runner.setup()
        await admin_runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            await web.TCPSite(admin_runner, admin_host, admin_port).start()
            admin.ready = True

            def announce() -> None:
                # Only once the signal handlers are in place: a SIGHUP sent on
                # READY must reload, not kill (its default action).
                settle_gc()
                _log.info("admin API on http://%s:%d", admin_host, admin_port)
                _log.info(
                    "serving proxy on http://%s:%d config=%s sha256=%s providers=%d",
                    host,
                    port,
                    loaded.file,
                    loaded.sha256[:12],
                    len(snapshot.providers),
                )
                status = "degraded: serving last-known-good" if start_errors else "serving"
                notifier.ready(f"{status} revision {loaded.sha256[:12]} on {host}:{port}")

            async with jobs, trial:
                await _serve_until_stopped(settings, reconciler, announce)
            notifier.stopping()
            _log.info("stopping: finishing requests in flight (up to %.0fs)", SHUTDOWN_GRACE)
        finally:
            admin.ready = False
            await runner.cleanup()  # drains requests in flight
            await admin_runner.cleanup()
    finally:
        await asyncio.to_thread(trial.flush)  # after the drain: the last answers count
        await asyncio.to_thread(store.close)


def settle_gc() -> None:
    """Once started: what start-up built (modules, schemas, the first snapshot) lives
    as long as the process, so it leaves the collector's view (``gc.freeze``), and
    collections run less often (:data:`GC_THRESHOLDS`). Full collections then walk
    only what was allocated since, not every object of every imported library."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _follow_spec(jobs: Jobs, spec: PoolSpec, change: Plan) -> None:
    """After an apply: the jobs of the new spec; new or changed providers and pricing
    sources are refreshed now rather than at the next interval."""
    jobs.sync(spec)
    if change.providers_added or change.providers_changed:
        jobs.run_soon("catalog")
    if any(name.startswith("sources") for name in change.pricing_changed):
        jobs.run_soon("pricing")


async def _serve_until_stopped(
    settings: Settings, reconciler: Reconciler, announce: Callable[[], None]
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    async def trigger(name: str) -> None:
        await reconciler.reconcile(name)

    pending: set[asyncio.Task[None]] = set()

    def on_sighup() -> None:
        task = loop.create_task(trigger("sighup"))
        pending.add(task)  # keep a reference until it is done
        task.add_done_callback(pending.discard)

    tasks = [
        asyncio.create_task(
            watch_config(settings.config, trigger, force_polling=settings.watch_force_polling)
        ),
        asyncio.create_task(poll_config(trigger, settings.config_poll_interval)),
    ]
    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        announce()
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
