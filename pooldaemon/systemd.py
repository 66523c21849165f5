"""sd_notify: tell systemd that the daemon is ready, reloading, stopping, alive.

The protocol (``sd_notify(3)``) is one datagram of newline-separated
``KEY=VALUE`` lines sent to the ``AF_UNIX`` socket named by ``$NOTIFY_SOCKET``:
a file system path, or with a leading ``@`` a name in the abstract namespace.
It is written here directly rather than through libsystemd: it is a few lines,
and the daemon then needs no extra dependency. Without ``$NOTIFY_SOCKET`` (not
started by systemd, or ``Type=simple``) every call is a no-op.

The lifecycle the unit (``Type=notify``) expects::

    notifier = Notifier.from_env()
    ...bind listeners, apply the config...
    notifier.ready(status="serving")
    task = asyncio.create_task(watchdog_task(notifier))
    ...on a reload:  notifier.reloading(); apply; notifier.ready(status=...)
    ...on SIGTERM:   notifier.stopping(); drain; exit

Sending never raises into the daemon: a socket that is gone (systemd
restarted, a stale environment) is logged once at debug level, and again only
after a send has succeeded in between.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

__all__ = ["MAX_MESSAGE_BYTES", "Notifier", "watchdog_period_usec", "watchdog_task"]

_log = logging.getLogger("pooldaemon.systemd")

MAX_MESSAGE_BYTES = 4096
"""The largest datagram sent; systemd reads notifications into a PIPE_BUF (4096) buffer
and ignores a longer one, so STATUS text is cut to fit."""

# A send waits at most this long when systemd's receive queue is full, so a
# stuck manager cannot stall the event loop for longer.
_SEND_TIMEOUT = 1.0


def watchdog_period_usec(usec: str | None, pid: str | None, own_pid: int) -> int | None:
    """The watchdog period systemd asked for, or None when there is none for us.

    ``usec`` and ``pid`` are ``$WATCHDOG_USEC`` and ``$WATCHDOG_PID``: the period
    must be a positive integer, and a ``$WATCHDOG_PID`` that is set must be our
    pid (the variables leak into children, which must not ping for us).
    """
    if not usec:
        return None
    if pid and (not pid.isdigit() or int(pid) != own_pid):
        return None
    if not usec.isdigit() or int(usec) <= 0:
        _log.debug("ignoring WATCHDOG_USEC=%r: not a positive integer", usec)
        return None
    return int(usec)


def _address(socket_path: str) -> bytes | None:
    if socket_path.startswith("@"):
        return b"\0" + os.fsencode(socket_path[1:])
    if socket_path.startswith("/"):
        return os.fsencode(socket_path)
    # Services get a path (/run/systemd/notify); vsock: addresses (systemd >= 253)
    # are for a whole VM reporting to its host, not for a service.
    _log.debug("NOTIFY_SOCKET=%r: not a path or an abstract name, not notifying", socket_path)
    return None


def _status_line(text: str, room: int) -> bytes:
    # A newline would end STATUS= and start a line systemd reads as another key.
    line = ("STATUS=" + " ".join(text.splitlines())).encode("utf-8")
    if len(line) <= room:
        return line
    return line[:room].decode("utf-8", errors="ignore").encode("utf-8")


class Notifier:
    """Sends sd_notify messages to one socket; does nothing when there is none."""

    def __init__(self, socket_path: str | None, *, watchdog_usec: int | None = None) -> None:
        """``socket_path`` as in ``$NOTIFY_SOCKET``; ``watchdog_usec`` is the full period."""
        self._address = _address(socket_path) if socket_path else None
        self._watchdog_usec = watchdog_usec if self._address is not None else None
        self._failing = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """The notifier systemd set up for this process (``$NOTIFY_SOCKET``, ``$WATCHDOG_*``)."""
        env = os.environ if environ is None else environ
        usec = watchdog_period_usec(env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID"), os.getpid())
        return cls(env.get("NOTIFY_SOCKET") or None, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        """Whether there is a socket to notify."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds between watchdog pings: half the period (``sd_watchdog_enabled(3)``)."""
        if self._watchdog_usec is None:
            return None
        return self._watchdog_usec / 2 / 1_000_000

    def ready(self, status: str | None = None) -> None:
        """Startup (or a reload) finished: the daemon serves."""
        self._send(b"READY=1", status)

    def reloading(self) -> None:
        """A reload starts; ``ready()`` ends it. Carries the time systemd's notify-reload wants."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send(b"RELOADING=1\nMONOTONIC_USEC=%d" % usec)

    def stopping(self) -> None:
        """Shutdown starts (requests in flight are draining)."""
        self._send(b"STOPPING=1")

    def status(self, text: str) -> None:
        """A one-line status shown by ``systemctl status``."""
        self._send(b"", text)

    def watchdog(self) -> None:
        """Tell systemd's watchdog that the daemon is alive."""
        self._send(b"WATCHDOG=1")

    def _send(self, message: bytes, status: str | None = None) -> None:
        if self._address is None:
            return
        if status is not None:
            room = MAX_MESSAGE_BYTES - len(message) - (1 if message else 0)
            message = b"\n".join(m for m in (message, _status_line(status, room)) if m)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.settimeout(_SEND_TIMEOUT)
                sock.sendto(message, self._address)
        except OSError as exc:
            if not self._failing:
                _log.debug("sd_notify failed (not logged again until a send succeeds): %s", exc)
            self._failing = True
        else:
            self._failing = False


async def watchdog_task(notifier: Notifier) -> None:
    """Ping the watchdog every half period until cancelled; return at once without a watchdog.

    The pings come from the event loop itself, so a loop blocked for a whole
    period misses them and systemd restarts the daemon.
    """
    interval = notifier.watchdog_interval()
    if interval is None:
        return
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
