"""The benchmark's processes: start them on free ports, wait until they serve,
read their CPU time and resident memory from ``/proc``, stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "OPTIMIZED_ENV",
    "Proc",
    "cpu_seconds",
    "free_port",
    "python_module",
    "rss_mib",
    "start",
    "wait_http",
    "wait_port",
]

_TICK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parent.parent
# How systemd/pooldaemon.service runs the daemon: python -OO, no column tables.
# The bench and the soak set it themselves, so it holds when they run without make.
OPTIMIZED_ENV = {"PYTHONOPTIMIZE": "2", "PYTHONNODEBUGRANGES": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


def rss_mib(pid: int) -> float:
    """Resident memory (VmRSS) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


@dataclass
class Proc:
    """One server process of the benchmark, with where it listens."""

    name: str
    popen: subprocess.Popen[bytes]
    base: str  # http://127.0.0.1:PORT
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def check(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def start(
    name: str, argv: list[str], port: int, log_dir: Path, env: dict[str, str] | None = None
) -> Proc:
    """Start ``argv`` (a Python module or the pooldaemon command) with its output to a log."""
    log = log_dir / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env or dict(os.environ),
        )  # fmt: skip
    return Proc(name, popen, f"http://127.0.0.1:{port}", log)


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_http(proc: Proc, url: str, within: float = 30.0) -> None:
    """Until ``GET url`` answers 200 (the daemon's ``/readyz``, the fake's models)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        proc.check()
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not answer {url} within {within:.0f} s")


def wait_port(proc: Proc, port: int, within: float = 30.0) -> None:
    """Until the process accepts TCP connections on ``port``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        proc.check()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{proc.name} did not listen on port {port} within {within:.0f} s")
