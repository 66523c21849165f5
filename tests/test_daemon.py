"""The daemon as a real process: the YAML is watched, validated and applied atomically."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
BASE = """version: 1
providers:
  - id: up
    base_url: http://127.0.0.1:9/v1
    location: cloud
    models: [{id: gpt-4o}]
aliases:
"""


def _config(*aliases: str) -> str:
    return BASE + "".join(f"  {name}: [gpt-4o]\n" for name in aliases)


def _write_in_place(path: Path, text: str) -> None:
    with open(path, "r+") as fh:  # the same inode, truncated and rewritten
        fh.truncate(0)
        fh.write(text)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    port: int
    admin_port: int
    log: list[str] = field(default_factory=list)

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    async def models(self) -> set[str]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.port}/v1/models") as resp,
        ):
            return {m["id"] for m in (await resp.json())["data"]}

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http, http.get(f"{self.admin}/metrics") as resp:
            return await resp.text()

    async def wait_for(self, name: str, present: bool = True, within: float = 5.0) -> float:
        """Seconds until ``name`` is (or is no longer) routable."""
        start = time.perf_counter()
        while time.perf_counter() - start < within:
            if (name in await self.models()) == present:
                return time.perf_counter() - start
            await asyncio.sleep(0.02)
        raise AssertionError(
            f"{name} {'never appeared' if present else 'stayed'}; log:\n" + "\n".join(self.log)
        )

    async def wait_log(self, fragment: str, within: float = 5.0) -> str:
        start = time.perf_counter()
        while time.perf_counter() - start < within:
            for line in self.log:
                if fragment in line:
                    return line
            await asyncio.sleep(0.02)
        raise AssertionError(f"no log line with {fragment!r}:\n" + "\n".join(self.log))


@asynccontextmanager
async def daemon(
    config: Path, state: Path, extra_env: dict[str, str] | None = None
) -> AsyncIterator[Daemon]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLDAEMON_")}
    env.update(extra_env or {})
    env["POOLDAEMON_CONFIG_POLL_INTERVAL"] = "600"  # the file watch must do it alone
    env.setdefault("POOLDAEMON_ADMIN_TOKEN", ADMIN_TOKEN)
    port, admin_port = _port(), _port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pooldaemon",
        "run",
        "--config",
        str(config),
        "--state-dir",
        str(state),
        "--listen",
        f"127.0.0.1:{port}",
        "--admin-listen",
        f"127.0.0.1:{admin_port}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    running = Daemon(proc, port, admin_port)

    async def read_log() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            running.log.append(line.decode(errors="replace").rstrip())

    reader = asyncio.create_task(read_log())
    try:
        await running.wait_log("serving proxy on", within=15)
        yield running
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
        await reader


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    return config_dir / "pool.yaml", tmp_path / "state"


async def test_edit_in_place_rename_and_symlink_swap(paths: tuple[Path, Path]) -> None:
    config, state = paths
    config.write_text(_config("one"))
    async with daemon(config, state) as d:
        assert "one" in await d.models()
        _write_in_place(config, _config("one", "two"))
        in_place = await d.wait_for("two")
        tmp = config.with_name(".pool.yaml.swp")  # an editor's rename-save
        tmp.write_text(_config("three"))
        os.replace(tmp, config)
        renamed = await d.wait_for("three")
        await d.wait_for("one", present=False)
    print(f"reconcile latency: in place {in_place * 1000:.0f} ms, rename {renamed * 1000:.0f} ms")
    assert in_place < 2 and renamed < 2


async def test_kubernetes_style_symlink_swap(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    (etc / "..v1").mkdir(parents=True)
    (etc / "..v1" / "pool.yaml").write_text(_config("first"))
    (etc / "..data").symlink_to("..v1")
    config = etc / "pool.yaml"
    config.symlink_to("..data/pool.yaml")
    async with daemon(config, tmp_path / "state") as d:
        assert "first" in await d.models()
        (etc / "..v2").mkdir()
        (etc / "..v2" / "pool.yaml").write_text(_config("second"))
        (etc / "..data_tmp").symlink_to("..v2")
        os.replace(etc / "..data_tmp", etc / "..data")  # the atomic swap
        swapped = await d.wait_for("second")
    print(f"reconcile latency: symlink swap {swapped * 1000:.0f} ms")
    assert swapped < 2


async def test_broken_file_keeps_serving_then_recovers(paths: tuple[Path, Path]) -> None:
    config, state = paths
    config.write_text(_config("good"))
    async with daemon(config, state) as d:
        config.write_text(_config("good") + "routing: {mode: clod}\n")
        line = await d.wait_log("routing.mode")
        assert f"{config}:9:17: routing.mode: invalid value 'clod'" in line
        assert "good" in await d.models()  # the old state still serves
        metrics = await d.metrics()
        assert "pooldaemon_config_last_reload_successful 0.0" in metrics
        assert 'pooldaemon_config_reloads_total{result="failure"} 1.0' in metrics
        config.write_text(_config("fixed"))
        await d.wait_for("fixed")
        await d.wait_for("good", present=False)
        metrics = await d.metrics()
        assert "pooldaemon_config_last_reload_successful 1.0" in metrics
        assert 'pooldaemon_config_reloads_total{result="success"} 1.0' in metrics


async def test_sighup_rereads(paths: tuple[Path, Path]) -> None:
    config, state = paths
    config.write_text(_config("a"))
    async with daemon(config, state) as d:
        d.proc.send_signal(signal.SIGHUP)
        await d.wait_log("trigger=sighup")
        assert "result=unchanged" in await d.wait_log("trigger=sighup")


async def test_restart_with_a_broken_file_serves_last_known_good(
    paths: tuple[Path, Path],
) -> None:
    config, state = paths
    config.write_text(_config("kept"))
    async with daemon(config, state) as d:
        assert "kept" in await d.models()
    assert (state / "last-known-good.yaml").stat().st_mode & 0o777 == 0o600
    config.write_text("version: 1\nproviders: [{id: Bad}]\n")
    async with daemon(config, state) as d:
        assert "kept" in await d.models()
        await d.wait_log("serving the last-known-good copy")
        assert "pooldaemon_config_last_reload_successful 0.0" in await d.metrics()


async def test_no_config_and_no_last_known_good_exits(paths: tuple[Path, Path]) -> None:
    config, state = paths
    config.write_text("version: 1\nrouting: [x]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLDAEMON_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pooldaemon",
        "run",
        "--config",
        str(config),
        "--state-dir",
        str(state),
        "--listen",
        f"127.0.0.1:{_port()}",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert f"{config}:2:10: routing:" in err.decode()


async def test_systemd_notify_messages(paths: tuple[Path, Path], tmp_path: Path) -> None:
    config, state = paths
    config.write_text(_config("a"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify.sock"))
    sock.setblocking(False)
    received: list[str] = []

    async def collect() -> None:
        loop = asyncio.get_running_loop()
        while True:
            received.append((await loop.sock_recv(sock, 4096)).decode())

    collector = asyncio.create_task(collect())
    env = {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "400000"}
    try:
        async with daemon(config, state, env) as d:
            config.write_text(_config("b"))
            await d.wait_for("b")
            await asyncio.sleep(0.5)  # at least two watchdog pings (every 0.2 s)
        await asyncio.sleep(0.1)
    finally:
        collector.cancel()
        sock.close()
    ready = [m for m in received if m.startswith("READY=1")]
    reloading = [m for m in received if m.startswith("RELOADING=1")]
    assert len(ready) >= 2  # at start, and after the reload
    assert reloading and "MONOTONIC_USEC=" in reloading[0]
    assert received.index(reloading[0]) < received.index(ready[-1])
    assert sum(m == "WATCHDOG=1" for m in received) >= 2
    assert any(m.startswith("STOPPING=1") for m in received)


async def _cli(*args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLDAEMON_")}
    env["POOLDAEMON_ADMIN_TOKEN"] = ADMIN_TOKEN
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pooldaemon",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_admin_status_and_reload(paths: tuple[Path, Path]) -> None:
    config, state = paths
    config.write_text(_config("a"))
    async with daemon(config, state) as d:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{d.admin}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{d.admin}/readyz") as resp:
                assert resp.status == 200
            async with http.get(f"{d.admin}/admin/v1/status") as resp:
                assert resp.status == 401
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with http.get(f"{d.admin}/admin/v1/status", headers=auth) as resp:
                status = await resp.json()
            async with http.delete(f"{d.admin}/admin/v1/status", headers=auth) as resp:
                assert resp.status == 405
        ready = {c["type"]: c for c in status["conditions"]}["Ready"]
        assert ready["status"] is True and status["providers"][0]["id"] == "up"
        code, out, _ = await _cli("reload", "--admin", d.admin)
        assert code == 0 and "reload: unchanged" in out
        code, out, _ = await _cli("status", "--admin", d.admin)
        assert code == 0 and "Ready" in out and "provider up" in out
        config.write_text(_config("a") + "routing: {strategy: fastest}\n")
        code, _, err = await _cli("reload", "--admin", d.admin)
        assert code == 1 and f"{config}:9:" in err
        code, out, err = await _cli("status", "--admin", d.admin)
        assert code == 1 and "Degraded" in out and "routing.strategy" in err
    code, _, err = await _cli("status", "--admin", d.admin)
    assert code == 2 and "cannot reach" in err


async def test_plan_against_the_running_daemon(paths: tuple[Path, Path], tmp_path: Path) -> None:
    config, state = paths
    config.write_text(_config("a"))
    candidate = tmp_path / "candidate.yaml"
    async with daemon(config, state) as d:
        candidate.write_text(_config("a"))
        code, out, _ = await _cli("plan", str(candidate), "--against", d.admin)
        assert code == 0
        candidate.write_text(_config("a", "b"))
        code, out, _ = await _cli("plan", str(candidate), "--against", d.admin)
        assert code == 1 and "b" in out
        candidate.write_text("version: 1\nrouting: {mode: clod}\n")
        code, _, err = await _cli("plan", str(candidate), "--against", d.admin)
        assert code == 2 and f"{candidate}:2:17: routing.mode" in err
        assert "a" in await d.models()  # a plan changes nothing
