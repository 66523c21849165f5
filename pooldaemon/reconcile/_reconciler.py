"""The reconcile pipeline: read -> sha256 -> validate -> open sealed values -> resolve keys
-> plan -> apply.

Applying builds a new snapshot and swaps one reference; a file that fails at
any step changes nothing that serves. The last applied file is kept in
``state_dir`` (last-known-good) so a restart with a broken file still serves.
Runs one reconcile at a time; parsing and building happen in a worker thread
so a large config never blocks the request path.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pooldaemon.errors import ConfigError, Issue
from pooldaemon.pool import Discovered
from pooldaemon.reconcile._lkg import LAST_KNOWN_GOOD, read_last_known_good, write_last_known_good
from pooldaemon.reconcile._plan import Plan, plan
from pooldaemon.reconcile._status import HistoryEntry, ReconcileStatus
from pooldaemon.secrets import Keyring, unseal_keys
from pooldaemon.server import Applied, ProxyState
from pooldaemon.spec import LoadedSpec, PoolSpec, load_spec_bytes, load_spec_file
from pooldaemon.systemd import Notifier
from pooldaemon.upstream import resolve_keys
from pooldaemon.usage import UsageStore, seed_ledger

__all__ = ["LAST_KNOWN_GOOD", "Outcome", "Reconciler", "build_applied", "initial_spec"]

_log = logging.getLogger("pooldaemon.reconcile")
_EXPLICIT = frozenset({"start", "sighup", "admin"})


@dataclass(frozen=True, slots=True)
class Outcome:
    result: str  # success, failure, unchanged
    revision: str
    summary: str
    errors: tuple[str, ...] = ()


def build_applied(
    loaded: LoadedSpec,
    config_dir: Path,
    discovered: Discovered | None = None,
    keyring: Keyring | None = None,
) -> Applied:
    """The snapshot of a loaded spec (with what refreshes ``discovered``) and its keys
    resolved; warnings and unusable keys are logged (they do not stop an apply).

    Raises ConfigError when a sealed value does not open with ``keyring`` where it
    sits: unlike an unset variable, that is a mistake in the file itself.
    """
    sealed = unseal_keys(loaded, keyring or Keyring())
    snapshot = (discovered or Discovered()).snapshot(loaded.spec, revision=loaded.sha256)
    secrets, problems = resolve_keys(snapshot, config_dir=config_dir, sealed=sealed)
    for warning in loaded.warnings:
        _log.warning("%s", warning)
    for problem in problems:
        _log.warning("key unusable: %s", problem)
    return Applied(snapshot, secrets)


def initial_spec(
    config: Path, state_dir: Path, keyring: Keyring | None = None
) -> tuple[LoadedSpec, tuple[Issue, ...]]:
    """The spec to start with: the file, else the last-known-good copy (with the file's
    errors). A file with a sealed value that ``keyring`` does not open is unusable.
    Raises ConfigError when neither is usable."""
    keys = keyring or Keyring()
    try:
        loaded = load_spec_file(config)
        unseal_keys(loaded, keys)
        return loaded, ()
    except ConfigError as exc:
        kept = read_last_known_good(state_dir)  # encrypted at rest
        if kept is None:
            raise
        try:
            loaded = load_spec_bytes(kept, str(state_dir / LAST_KNOWN_GOOD))
            unseal_keys(loaded, keys)
        except ConfigError as lkg_exc:
            raise ConfigError((*exc.issues, *lkg_exc.issues)) from None
        return loaded, exc.issues


class Reconciler:
    """Keeps the served state in line with the YAML file."""

    def __init__(
        self,
        config: Path,
        state_dir: Path,
        proxy: ProxyState,
        applied: LoadedSpec,
        *,
        store: UsageStore | None = None,
        start_errors: tuple[Issue, ...] = (),
        notifier: Notifier | None = None,
        discovered: Discovered | None = None,
        keyring: Keyring | None = None,
    ) -> None:
        self.config = config
        # Sealing keys are read once per process start (as systemd hands out credentials).
        self.keyring = keyring or Keyring()
        self.discovered = discovered or Discovered()
        self._pending = self.discovered
        # Called with the spec after every successful apply (the scheduler follows it).
        self.on_applied: list[Callable[[PoolSpec, Plan], None]] = []
        # What refreshes know, for a spec about to be applied (default: the current
        # discoveries minus removed providers).
        self.discover: Callable[[PoolSpec], Discovered] | None = None
        # The spec to apply for a loaded file (a trial licence adds its provider).
        self.derive: Callable[[LoadedSpec], LoadedSpec] = lambda loaded: loaded
        # The trial licence's status (set when the daemon runs with trial support).
        self.trial_status: Callable[[], object] = lambda: None
        self.state_dir = state_dir
        self.proxy = proxy
        self.applied = applied
        self.store = store
        self.status = ReconcileStatus()
        self.notifier = notifier or Notifier(None)
        self._lock = asyncio.Lock()
        self._failed_revision = ""
        now = time.time()
        self.status.applied_revision = applied.sha256
        self.status.attempted_revision = applied.sha256
        if start_errors:
            self._degraded(tuple(str(i) for i in start_errors), now, "serving last-known-good")
            self.status.attempted_revision = ""
            self.status.last_successful = False
        else:
            self.status.last_success_time = now
            try:
                raw = Path(applied.file).read_bytes()
            except OSError:
                raw = b""
            if hashlib.sha256(raw).hexdigest() == applied.sha256:
                self._write_lkg(raw)
            self._ready(f"applied revision {applied.sha256[:12]}", now)

    def status_json(self) -> dict[str, object]:
        """Status for the admin API and ``pooldaemon status``."""
        snapshot = self.proxy.applied.snapshot
        runtime = self.proxy.runtime
        providers = [
            {
                "id": p.id,
                "enabled": p.spec.enabled,
                "location": p.location,
                "phase": str(runtime.phase(p.id, self.proxy.clock())),
                "models": len(p.models),
                "held": runtime.held(p.id, self.proxy.wall()),
            }
            for p in snapshot.providers
        ]
        return {
            "config": str(self.config),
            **self.status.to_json(),
            "providers": providers,
            "trial": self.trial_status(),
        }

    def plan_for(self, raw: bytes, name: str = "request body") -> Plan:
        """What applying ``raw`` would change (a dry run). Raises ConfigError, also for a
        sealed value that would not open (the reconcile would refuse the file)."""
        loaded = load_spec_bytes(raw, name)
        unseal_keys(loaded, self.keyring)
        return plan(self.applied.spec, self.derive(loaded).spec)

    async def reconcile(self, trigger: str, *, force: bool = False) -> Outcome:
        async with self._lock:
            return await self._reconcile(trigger, force)

    async def _reconcile(self, trigger: str, force: bool) -> Outcome:
        started, t0 = time.time(), time.perf_counter()
        explicit = trigger in _EXPLICIT or force
        try:
            raw = await asyncio.to_thread(self.config.read_bytes)
        except OSError as exc:
            error = f"{self.config}: cannot read the file: {exc.strerror or exc}"
            return self._fail("", (error,), trigger, started, t0)
        revision = hashlib.sha256(raw).hexdigest()
        if revision == self.applied.sha256 and not force:
            if explicit:
                self._history(revision, "unchanged", trigger, started, t0, "no change")
                _log.info(
                    "reconcile trigger=%s revision=%s result=unchanged", trigger, revision[:12]
                )
            return Outcome("unchanged", revision, "no change")
        if revision == self._failed_revision and not explicit:
            return Outcome("failure", revision, "already reported", self.status.errors)
        self.status.attempted_revision = revision
        self.status.set("Reconciling", True, "Progressing", f"revision {revision[:12]}", started)
        self.notifier.reloading()
        try:
            loaded, applied = await asyncio.to_thread(self._prepare, raw)
        except ConfigError as exc:
            outcome = self._fail(revision, tuple(str(i) for i in exc.issues), trigger, started, t0)
            self.notifier.ready(f"degraded: {outcome.summary}; serving {self.applied.sha256[:12]}")
            return outcome
        change = plan(self.applied.spec, loaded.spec)
        self._apply(loaded, applied, change)
        self._write_lkg(raw)
        summary = change.summary() or "no effective change"
        self._history(revision, "success", trigger, started, t0, summary)
        self.notifier.ready(f"serving revision {revision[:12]}")
        _log.info(
            "reconcile trigger=%s revision=%s result=success duration_ms=%.1f plan=%s",
            trigger,
            revision[:12],
            (time.perf_counter() - t0) * 1000,
            summary,
        )
        return Outcome("success", revision, summary)

    def _prepare(self, raw: bytes) -> tuple[LoadedSpec, Applied]:
        loaded = self.derive(load_spec_bytes(raw, str(self.config)))
        # Kept aside until the apply: a file that fails changes nothing.
        if self.discover is not None:
            self._pending = self.discover(loaded.spec)
        else:
            kept = {p.id for p in loaded.spec.providers}
            gone = {p.id for p in self.applied.spec.providers} - kept
            self._pending = self.discovered.without(gone)
        return loaded, build_applied(loaded, self.config.parent, self._pending, self.keyring)

    async def publish(self, update: Callable[[Discovered], Discovered], what: str) -> None:
        """Serve what a refresh learned: a new snapshot of the applied spec with
        ``update(discovered)``, swapped in like a reconcile (and never racing one)."""
        async with self._lock:
            discovered = update(self.discovered)
            if discovered == self.discovered:
                return
            spec, revision = self.applied.spec, self.applied.sha256
            snapshot = await asyncio.to_thread(discovered.snapshot, spec, revision=revision)
            self.discovered = discovered
            self.proxy.apply(Applied(snapshot, self.proxy.applied.secrets))
            _log.info("published snapshot revision=%s after %s", revision[:12], what)

    def _apply(self, loaded: LoadedSpec, applied: Applied, change: Plan) -> None:
        runtime = self.proxy.runtime
        runtime.forget(change.providers_to_reset())
        self.discovered = self._pending
        self.proxy.apply(applied)  # one reference swap
        if self.store is not None:
            seed_ledger(runtime.ledger, self.store, applied.snapshot, time.time())
        self.applied = loaded
        self._failed_revision = ""
        self.status.applied_revision = loaded.sha256
        self.status.errors = ()
        self._ready(f"applied revision {loaded.sha256[:12]}: {change.summary()}", time.time())
        for hook in self.on_applied:
            try:
                hook(loaded.spec, change)
            except Exception:  # a follower's bug must not undo an apply
                _log.exception("after-apply hook failed")

    def _fail(
        self, revision: str, errors: tuple[str, ...], trigger: str, started: float, t0: float
    ) -> Outcome:
        self._failed_revision = revision
        self._degraded(errors, time.time(), f"still serving revision {self.applied.sha256[:12]}")
        self._history(revision, "failure", trigger, started, t0, errors[0] if errors else "failed")
        for error in errors:
            _log.error("reconcile trigger=%s revision=%s: %s", trigger, revision[:12], error)
        return Outcome("failure", revision, errors[0] if errors else "failed", errors)

    def _ready(self, message: str, now: float) -> None:
        self.status.set("Ready", True, "ReconciliationSucceeded", message, now)
        self.status.set("Degraded", False, "ReconciliationSucceeded", "", now)
        self.status.set("Reconciling", False, "Idle", "", now)

    def _degraded(self, errors: tuple[str, ...], now: float, serving: str) -> None:
        self.status.errors = errors
        first = errors[0] if errors else "reconcile failed"
        self.status.set("Degraded", True, "ValidationFailed", f"{first} ({serving})", now)
        self.status.set("Reconciling", False, "Failed", first, now)
        self.status.set("Ready", True, "ServingPrevious", serving, now)

    def _history(
        self, revision: str, result: str, trigger: str, started: float, t0: float, summary: str
    ) -> None:
        self.status.record(
            HistoryEntry(revision, result, trigger, started, time.perf_counter() - t0, summary)  # type: ignore[arg-type]
        )

    def _write_lkg(self, raw: bytes) -> None:
        """Keep the bytes just applied: a restart with a broken file serves them."""
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            write_last_known_good(self.state_dir, raw)
        except OSError as exc:
            _log.warning("cannot keep the last-known-good copy: %s", exc)
