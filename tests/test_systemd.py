"""sd_notify against a real notify socket; the unit file against systemd-analyze and the kernel."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import queue
import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pooldaemon.systemd import MAX_MESSAGE_BYTES, Notifier, watchdog_period_usec, watchdog_task

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "pooldaemon.service"
BINARY = "/usr/local/bin/pooldaemon"


class FakeSystemd:
    """The manager's end of ``$NOTIFY_SOCKET``: records each datagram and when it came.

    A thread receives, so arrival times stay true while the test's event loop is busy.
    """

    def __init__(self, address: str) -> None:
        self.notify_socket = address
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + address[1:] if address.startswith("@") else address)
        self._sock.settimeout(0.02)
        self._arrived: queue.Queue[tuple[float, bytes]] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65536)  # more than we ever send: a long one would show
            except TimeoutError:
                continue
            self._arrived.put((time.monotonic(), data))

    def next(self, timeout: float = 2.0) -> bytes:
        return self._arrived.get(timeout=timeout)[1]

    def drain(self) -> list[tuple[float, bytes]]:
        got = []
        with contextlib.suppress(queue.Empty):
            while True:
                got.append(self._arrived.get(timeout=0.1))
        return got

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite itself may run under systemd (a CI runner's unit).
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["path", "abstract"])
def systemd(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeSystemd]:
    if request.param == "path":
        address = str(tmp_path / "notify")
    else:
        address = f"@pooldaemon-test-{uuid.uuid4().hex}"
    fake = FakeSystemd(address)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    yield fake
    fake.close()


def _ping_gaps(arrived: list[tuple[float, bytes]]) -> list[float]:
    """Seconds between successive pings, checking that pings are all that came."""
    assert {data for _, data in arrived} <= {b"WATCHDOG=1"}, arrived
    return [b - a for (a, _), (b, _) in itertools.pairwise(arrived)]


def _block_event_loop(seconds: float) -> None:
    time.sleep(seconds)  # on purpose: a handler stuck in blocking code


async def _run_for(task: asyncio.Task[None], seconds: float) -> None:
    await asyncio.sleep(seconds)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


# --- messages ---


def test_ready(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_env()
    assert notifier.enabled
    notifier.ready()
    assert systemd.next() == b"READY=1"
    notifier.ready(status="serving 3 providers")
    assert systemd.next() == b"READY=1\nSTATUS=serving 3 providers"


def test_reloading_carries_the_monotonic_clock(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_env()
    before = time.monotonic_ns() // 1000
    notifier.reloading()
    after = time.monotonic_ns() // 1000
    match = re.fullmatch(rb"RELOADING=1\nMONOTONIC_USEC=(\d+)", systemd.next())
    assert match is not None
    assert before <= int(match[1]) <= after


def test_stopping_status_watchdog(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_env()
    notifier.stopping()
    notifier.status("draining 2 requests")
    notifier.watchdog()
    assert [systemd.next() for _ in range(3)] == [
        b"STOPPING=1",
        b"STATUS=draining 2 requests",
        b"WATCHDOG=1",
    ]


def test_explicit_socket_path(tmp_path: Path) -> None:
    fake = FakeSystemd(str(tmp_path / "explicit"))
    try:
        Notifier(str(tmp_path / "explicit")).ready()
        assert fake.next() == b"READY=1"
    finally:
        fake.close()


def test_status_stays_one_line_and_bounded(systemd: FakeSystemd) -> None:
    notifier = Notifier.from_env()
    notifier.status("config invalid\nWATCHDOG=1")  # a newline must not smuggle in a key
    assert systemd.next() == b"STATUS=config invalid WATCHDOG=1"

    notifier.ready(status="é" * 5000)
    message = systemd.next()
    assert len(message) <= MAX_MESSAGE_BYTES
    assert message.startswith("READY=1\nSTATUS=éé".encode())
    message.decode("utf-8")  # cut on a character boundary


# --- no socket, or one that is gone ---


async def test_without_notify_socket_nothing_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_socket(*args: object) -> None:
        raise AssertionError("a socket was opened without NOTIFY_SOCKET")

    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    notifier = Notifier.from_env()
    assert not notifier.enabled
    with monkeypatch.context() as patch:
        patch.setattr(socket, "socket", no_socket)
        notifier.ready(status="x")
        notifier.reloading()
        notifier.status("x")
        notifier.watchdog()
        notifier.stopping()
    assert notifier.watchdog_interval() is None
    await asyncio.wait_for(watchdog_task(notifier), timeout=0.5)


def test_relative_notify_socket_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "notify")
    assert not Notifier.from_env().enabled


def test_gone_socket_never_raises_and_logs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pooldaemon.systemd")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))
    notifier = Notifier.from_env()
    notifier.ready()
    notifier.watchdog()
    notifier.stopping()
    records = [r for r in caplog.records if r.name == "pooldaemon.systemd"]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG
    assert "sd_notify failed" in records[0].getMessage()


# --- watchdog ---


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("200000", None, 200000),
        ("200000", "4242", 200000),
        ("200000", "4243", None),  # another process's watchdog
        ("200000", "x", None),
        ("0", None, None),
        ("-5", None, None),
        ("abc", None, None),
        ("", None, None),
        (None, "4242", None),
    ],
)
def test_watchdog_period_usec(usec: str | None, pid: str | None, expected: int | None) -> None:
    assert watchdog_period_usec(usec, pid, own_pid=4242) == expected


async def test_watchdog_task_pings_every_half_period(
    systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    notifier = Notifier.from_env()
    assert notifier.watchdog_interval() == pytest.approx(0.1)

    await _run_for(asyncio.create_task(watchdog_task(notifier)), 0.55)
    gaps = _ping_gaps(systemd.drain())
    assert 3 <= len(gaps) <= 7, gaps  # pings at 0, 0.1, ... 0.5 s
    assert 0.07 <= statistics.median(gaps) <= 0.2, gaps


async def test_blocked_event_loop_stops_the_pings(
    systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    task = asyncio.create_task(watchdog_task(Notifier.from_env()))
    await asyncio.sleep(0.25)
    _block_event_loop(0.6)
    await _run_for(task, 0.25)
    gaps = _ping_gaps(systemd.drain())
    # systemd sees silence for longer than the 0.2 s period and would restart us.
    assert max(gaps) >= 0.55, gaps


async def test_watchdog_pid_of_another_process_disables_it(
    systemd: FakeSystemd, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getppid()))
    notifier = Notifier.from_env()
    assert notifier.watchdog_interval() is None
    await asyncio.wait_for(watchdog_task(notifier), timeout=0.5)
    notifier.ready()  # the socket itself is still ours
    assert [data for _, data in systemd.drain()] == [b"READY=1"]


# --- the unit file ---


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


_HARDENING_ON = [
    "NoNewPrivileges",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "PrivateDevices",
    "PrivateTmp",
    "PrivateMounts",
    "PrivateUsers",
    "ProtectHome",
    "RestrictNamespaces",
    "RestrictRealtime",
    "RestrictSUIDSGID",
    "LockPersonality",
    "MemoryDenyWriteExecute",
    "RemoveIPC",
]


def test_unit_runs_the_daemon_hardened() -> None:
    unit = _unit_settings()
    expected = {
        "Type": ["notify"],
        "ExecStart": [f"{BINARY} run --config /etc/pooldaemon/pool.yaml"],
        "ExecReload": [f"{BINARY} reload"],
        "WatchdogSec": ["30s"],
        "Restart": ["on-failure"],
        "KillSignal": ["SIGTERM"],
        "TimeoutStopSec": ["45s"],
        "DynamicUser": ["yes"],
        "StateDirectory": ["pooldaemon"],
        "ConfigurationDirectory": ["pooldaemon"],
        "LoadCredential": [
            "admin-token:/etc/pooldaemon/admin.token",
            "pool.key:/etc/pooldaemon/pool.key",
        ],
        "CapabilityBoundingSet": [""],
        "AmbientCapabilities": [""],
        "RestrictAddressFamilies": ["AF_UNIX AF_INET AF_INET6"],
        "SystemCallFilter": ["@system-service", "~@privileged @resources"],
        "SystemCallArchitectures": ["native"],
        "ProtectSystem": ["strict"],
        "ProtectProc": ["invisible"],
        "ProcSubset": ["pid"],
        "UMask": ["0077"],
        "DevicePolicy": ["closed"],
    }
    for key, values in expected.items():
        assert unit.get(key) == values, key
    for key in _HARDENING_ON:
        assert unit.get(key) == ["yes"], key
    environment = unit["Environment"]
    assert "POOLDAEMON_ADMIN_TOKEN_FILE=%d/admin-token" in environment
    assert "POOLDAEMON_STATE_DIR=%S/pooldaemon" in environment
    # As bench/run.py and `make run` start it (tests/test_run.py serves with it).
    assert "PYTHONOPTIMIZE=2" in environment
    assert "PYTHONNODEBUGRANGES=1" in environment
    # Upstreams live anywhere the YAML says: no IP allow list.
    assert "IPAddressDeny" not in unit


ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    ANALYZE is None,
    reason="systemd-analyze is not installed; `make test` installs it when run as root "
    "with apt-get (Debian package systemd)",
)


def _analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    env = {**os.environ, "SYSTEMD_COLORS": "0", "SYSTEMD_PAGER": "", "SYSTEMD_LOG_COLOR": "0"}
    return subprocess.run(
        [ANALYZE, *args], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def _verify_complaints(unit: Path) -> list[str]:
    result = _analyze("verify", "--man=no", str(unit))
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if not os.access(BINARY, os.X_OK):
        # Where the launcher is not installed (CI, a dev box), the one thing verify
        # may say is exactly that; any other line is a real problem in the unit.
        missing = f"{unit.name}: Command {BINARY} is not executable: No such file or directory"
        lines = [line for line in lines if line != missing]
    elif result.returncode != 0:
        lines.append(f"exit status {result.returncode}")
    return lines


@needs_analyze
def test_systemd_analyze_verify_is_clean() -> None:
    assert _verify_complaints(UNIT) == []


@needs_analyze
def test_systemd_analyze_verify_reports_problems(tmp_path: Path) -> None:
    # The check above is live: a broken copy of the unit is caught.
    broken = tmp_path / "pooldaemon.service"
    broken.write_text(UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    assert any("bogus" in line for line in _verify_complaints(broken))


@needs_analyze
def test_systemd_analyze_security_exposure_at_most_2() -> None:
    result = _analyze("security", "--offline=true", str(UNIT))
    output = result.stdout + result.stderr
    match = re.search(r"Overall exposure level for pooldaemon\.service: (\d+(?:\.\d+)?)", output)
    assert match is not None, output
    exposed = [line for line in output.splitlines() if line.startswith("✗")]
    assert float(match[1]) <= 2.0, "\n".join(exposed)


# --- MemoryDenyWriteExecute=yes ---

_UNDER_MDWE = """
import ctypes, mmap, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
try:
    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
except PermissionError:
    pass
else:
    sys.exit("a writable executable mapping was allowed: MDWE is not in force")

import asyncio, sqlite3
import aiohttp, nacl.public, pydantic, watchfiles
from aiohttp import web
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from ruamel.yaml import YAML
import pooldaemon.pool, pooldaemon.server, pooldaemon.spec, pooldaemon.upstream, pooldaemon.usage

key = nacl.public.PrivateKey.generate()
box = nacl.public.SealedBox(key.public_key)
assert nacl.public.SealedBox(key).decrypt(box.encrypt(b"sk-1")) == b"sk-1"
aead = ChaCha20Poly1305(ChaCha20Poly1305.generate_key())
assert aead.decrypt(b"n" * 12, aead.encrypt(b"n" * 12, b"x", None), None) == b"x"
assert YAML(typ="rt").load("a: [1, 2]")["a"] == [1, 2]
pydantic.TypeAdapter(list[int]).validate_python([1, 2])
sqlite3.connect(":memory:").execute("select 1").fetchone()

async def hello(request):
    return web.json_response({"ok": True})

async def main():
    app = web.Application()
    app.router.add_get("/", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/") as response:
            assert await response.json() == {"ok": True}
    await runner.cleanup()

asyncio.run(main())
print("ok")
"""


def test_daemon_runs_without_writable_executable_memory() -> None:
    """The unit's MemoryDenyWriteExecute=yes, as the kernel enforces it (PR_SET_MDWE)."""
    result = subprocess.run(
        [sys.executable, "-c", _UNDER_MDWE],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=50,
        check=False,
    )
    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux < 6.3)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
