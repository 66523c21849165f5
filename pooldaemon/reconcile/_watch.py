"""Triggers for a reconcile: file changes (watchfiles) and a periodic checksum poll.

The config's parent directory is watched, not the file: editors save by
renaming a new file over the old one, ``git pull`` does the same, and a
Kubernetes-style ConfigMap swaps a ``..data`` symlink beside the file. Changes
are filtered to the file, its symlink target and ``..``-entries; spurious
triggers are harmless, since a reconcile of unchanged content does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import watchfiles

__all__ = ["poll_config", "watch_config"]

_log = logging.getLogger("pooldaemon.reconcile")
Trigger = Callable[[str], Awaitable[object]]


def _relevant(config: Path) -> Callable[[watchfiles.Change, str], bool]:
    name = config.name

    def accept(change: watchfiles.Change, path: str) -> bool:
        entry = os.path.basename(path)
        if entry == name or entry.startswith(".."):
            return True
        try:
            return os.path.realpath(path) == os.path.realpath(config)
        except OSError:
            return False

    return accept


def _parent(config: Path) -> Path:
    return Path(os.path.abspath(config)).parent  # not resolved: a symlinked file's own dir


async def watch_config(
    config: Path, trigger: Trigger, *, debounce_ms: int = 200, force_polling: bool = False
) -> None:
    """Call ``trigger("watch")`` after each burst of changes to ``config``; runs until
    cancelled."""
    directory = _parent(config)
    while True:
        try:
            async for _ in watchfiles.awatch(
                directory,
                watch_filter=_relevant(config),
                debounce=debounce_ms,
                step=50,
                recursive=False,
                force_polling=force_polling,
                poll_delay_ms=200,
            ):
                await trigger("watch")
        except (OSError, RuntimeError) as exc:  # the directory went away, inotify limits ...
            _log.warning("watching %s failed (%s); retrying in 5s", directory, exc)
            await asyncio.sleep(5)


async def poll_config(trigger: Trigger, interval: float, *, first: float = 1.0) -> None:
    """The safety net: re-read the file every ``interval`` seconds (unchanged: no-op).

    The first check comes soon after start: it catches a change made between
    reading the file at start and the file watch taking over.
    """
    await asyncio.sleep(min(first, interval))
    while True:
        await trigger("poll")
        await asyncio.sleep(interval)
