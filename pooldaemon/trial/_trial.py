"""The trial of a running daemon: the licence of the applied spec, its provider, its
metering, and its usage state in ``state_dir``.

How it takes part:

- :meth:`Trial.derive` runs in the reconcile pipeline before the snapshot is
  built: a licence that verifies (signed by a trusted key, claims complete)
  adds its provider to the spec (:func:`~._provider.with_trial`), even when it
  is expired or used up (the provider is then held, so status and routing say
  why). A licence that does not verify adds nothing: the rest of the config
  applies as usual, and status and log say what is wrong with the licence.
  It logs nothing itself, since dry-run plans call it too.
- :meth:`Trial.bind` hooks it to the reconciler; after every apply
  (:meth:`Trial.follow`) the licence's :class:`~pooldaemon.pool.Quota` is set in
  ``runtime.quotas`` under the provider id: the router asks it before each
  request (held unless the status is ``active``), the proxy tells it the tokens
  of every answer the provider served (``Usage.total``: input of every kind plus
  output). A request let through just before the limit may end past it, as in
  the original package; the next one is refused.
- Persistence is write-behind: the request path only updates memory; while
  ``async with trial:`` runs, the state is written when it changed, once per
  ``flush_interval`` (1 s), and a last time on exit. A clean stop loses
  nothing, a crash at most the last second of counts. A tampered state file is
  never overwritten: it stays as evidence until an operator removes it.
- Status changes (active, exhausted, expired, ...) are logged once each, with
  the message status and routing show.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING

from pooldaemon._atrest import StateKey, load_state_key
from pooldaemon.errors import LicenceError, SettingsError
from pooldaemon.pool import Runtime, Usage
from pooldaemon.settings import Settings
from pooldaemon.spec import LoadedSpec, PoolSpec
from pooldaemon.trial._keys import load_trusted_keys
from pooldaemon.trial._licence import Licence, verify
from pooldaemon.trial._provider import with_trial
from pooldaemon.trial._state import HMAC_USE, TRIAL_STATE, TrialUsage, load_state, save_state
from pooldaemon.trial._status import TrialPhase, TrialStatus, trial_status

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from pooldaemon.reconcile._reconciler import Reconciler

__all__ = ["FLUSH_INTERVAL", "Trial"]

_log = logging.getLogger("pooldaemon.trial")
FLUSH_INTERVAL = 1.0


class Trial:
    """The trial licence of one daemon and its usage state. See the module docstring."""

    def __init__(
        self,
        state_dir: Path,
        state_key: StateKey,
        trusted: Mapping[str, Ed25519PublicKey],
        *,
        clock: Callable[[], float] = time.time,
        flush_interval: float = FLUSH_INTERVAL,
    ) -> None:
        self.path = state_dir / TRIAL_STATE
        self.trusted = MappingProxyType(dict(trusted))
        self._hmac_key = state_key.derive(HMAC_USE)
        self._clock = clock
        self._interval = flush_interval
        self._tampered: str | None = None
        try:
            self._usage = load_state(self.path, self._hmac_key)
        except OSError as exc:  # StateFileError too: fail closed
            self._usage = TrialUsage()
            self._tampered = str(exc)
        self._dirty = False
        self._write_failed = False
        self._write_lock = threading.Lock()
        self._configured = False
        self._licence: Licence | None = None
        self._error: LicenceError | None = None
        self._runtime: Runtime | None = None
        self._provider: str | None = None
        self._reported: tuple[str, str] | None = None
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def open(cls, settings: Settings, state_dir: Path) -> Trial:
        """The trial of a daemon with these settings: trusted keys from
        ``trial_public_keys``, the state key of ``state_dir``.

        Raises :class:`SettingsError` when a public key file is unusable, and
        OSError (:class:`StateFileError`) when the state key is.
        """
        try:
            trusted = load_trusted_keys(settings.trial_public_keys)
        except LicenceError as exc:
            raise SettingsError(f"trial_public_keys: {exc}") from None
        return cls(state_dir, load_state_key(state_dir), trusted)

    # -- the reconcile pipeline ---------------------------------------------
    def check(self, spec: PoolSpec) -> tuple[Licence | None, LicenceError | None, PoolSpec]:
        """The spec's licence verified (or why not), and the spec with its provider."""
        if spec.trial is None:
            return None, None, spec
        try:
            licence = verify(spec.trial.licence, self.trusted)
            return licence, None, with_trial(spec, licence)
        except LicenceError as exc:
            return None, exc, spec

    def derive(self, loaded: LoadedSpec) -> LoadedSpec:
        """``loaded`` with the trial provider added when its licence verifies."""
        spec = self.check(loaded.spec)[2]
        return loaded if spec is loaded.spec else dataclasses.replace(loaded, spec=spec)

    def bind(self, reconciler: Reconciler) -> None:
        """Take part in ``reconciler``'s pipeline, status and runtime (see the module doc)."""
        reconciler.derive = self.derive
        reconciler.on_applied.append(self.follow)
        reconciler.trial_status = self.status_json
        self._runtime = reconciler.proxy.runtime
        self.follow(reconciler.applied.spec)

    def follow(self, spec: PoolSpec, change: object = None) -> None:
        """After an apply: meter the applied spec's licence (and stop metering an old one)."""
        licence, error, _ = self.check(spec)
        self._configured = spec.trial is not None
        self._licence, self._error = licence, error
        runtime = self._runtime
        if runtime is not None:
            if self._provider is not None:
                runtime.quotas.pop(self._provider, None)
            self._provider = licence.provider if licence is not None else None
            if licence is not None:
                runtime.quotas[licence.provider] = _Meter(self, licence)
        status = self.status()
        if licence is not None and status is not None and status.active:
            self._usage = self._usage.seen(licence, self._clock())
            self._dirty = True
        self._report()

    # -- status ---------------------------------------------------------------
    def status(self, now: float | None = None) -> TrialStatus | None:
        """The trial's status; None when the applied spec has no trial licence."""
        if not self._configured:
            return None
        now = self._clock() if now is None else now
        return trial_status(self._licence, self._error, self._usage, self._tampered, now)

    def status_json(self) -> dict[str, object] | None:
        status = self.status()
        return None if status is None else status.to_json()

    def _report(self) -> None:
        """Log the status once each time its phase changes."""
        status = self.status()
        if status is None:
            if self._reported is not None:
                _log.info("trial licence removed from the config")
            self._reported = None
            return
        key = (str(status.phase), status.licence.id if status.licence else status.message)
        if key == self._reported:
            return
        self._reported = key
        level = logging.INFO if status.active else logging.WARNING
        if status.phase is TrialPhase.tampered:
            level = logging.ERROR
        provider = status.licence.provider if status.licence else "-"
        _log.log(level, "trial phase=%s provider=%s: %s", status.phase, provider, status.message)

    # -- metering -------------------------------------------------------------
    def _blocked(self, licence: Licence, wall: float) -> str | None:
        status = trial_status(licence, None, self._usage, self._tampered, wall)
        return None if status.active else status.message

    def _consume(self, licence: Licence, tokens: int, wall: float) -> None:
        if self._tampered is not None or tokens <= 0:
            return
        self._usage = self._usage.add(licence, tokens, wall)
        self._dirty = True
        if self._usage.used(licence.id) >= licence.token_limit:
            self._report()

    # -- persistence ------------------------------------------------------------
    def flush(self) -> None:
        """Write the usage state if it changed (thread-safe; never over a tampered file)."""
        with self._write_lock:
            if not self._dirty or self._tampered is not None:
                return
            self._dirty = False  # before reading the state: a later change marks it again
            usage = self._usage
            try:
                save_state(self.path, usage, self._hmac_key)
            except OSError as exc:
                self._dirty = True
                if not self._write_failed:
                    _log.error("cannot write the trial usage state %s: %s", self.path, exc)
                self._write_failed = True
                return
            self._write_failed = False

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            self._report()  # e.g. the licence expired meanwhile
            if self._dirty:
                await asyncio.to_thread(self.flush)

    async def __aenter__(self) -> Trial:
        self._task = asyncio.create_task(self._flusher())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await asyncio.to_thread(self.flush)


class _Meter:
    """The :class:`~pooldaemon.pool.Quota` of one licence, in ``runtime.quotas``."""

    __slots__ = ("_licence", "_trial")

    def __init__(self, trial: Trial, licence: Licence) -> None:
        self._trial = trial
        self._licence = licence

    def blocked(self, wall: float) -> str | None:
        return self._trial._blocked(self._licence, wall)

    def consume(self, usage: Usage, wall: float) -> None:
        self._trial._consume(self._licence, usage.total, wall)
