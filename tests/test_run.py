"""``pooldaemon run`` as a real process: serves, survives SIGTERM mid-request, keeps usage."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import openai
import pytest

from tests.server.fakes import Fake, Fault, fake_app, serve

KEY = "sk-run-test-key-0123456789"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _start(
    config: Path, state: Path, port: int, optimize: str | None = None
) -> asyncio.subprocess.Process:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("POOLDAEMON_", "PYTHONOPT", "PYTHONNODEBUG"))
    }
    env["RUN_TEST_KEY"] = KEY
    if optimize is not None:
        env["PYTHONOPTIMIZE"] = optimize
        env["PYTHONNODEBUGRANGES"] = "1"
    return await asyncio.create_subprocess_exec(
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
        f"127.0.0.1:{_port()}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def _wait_listening(port: int, proc: asyncio.subprocess.Process) -> None:
    for _ in range(300):
        if proc.returncode is not None:
            raise AssertionError((await proc.communicate())[1].decode())
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise AssertionError("the daemon did not start listening")


# "2": as the systemd unit, `make run` and `make bench` run it (python -OO: no
# docstrings, no asserts; no column tables either).
@pytest.mark.parametrize("optimize", [None, "2"], ids=["plain", "optimized"])
async def test_daemon_serves_and_stops_gracefully(tmp_path: Path, optimize: str | None) -> None:
    fake = Fake("up")
    fake.faults.append(Fault(stall=1.0))  # the first request is still running at SIGTERM
    async with serve(fake_app(fake)) as upstream:
        config = tmp_path / "pool.yaml"
        config.write_text(
            "version: 1\nproviders:\n"
            f"  - id: up\n    base_url: {upstream}/v1\n    location: cloud\n"
            "    keys: [{env: RUN_TEST_KEY}]\n    models: [{id: gpt-4o}]\n"
        )
        port = _port()
        proc = await _start(config, tmp_path / "state", port, optimize)
        await _wait_listening(port, proc)
        async with openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
        ) as client:
            pending = asyncio.create_task(
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
                )
            )
            for _ in range(500):  # until the request reached the upstream
                if fake.requests:
                    break
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGTERM)
            answer = await asyncio.wait_for(pending, 10)
        assert answer.choices[0].message.content == "Hello from the fake"
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()
    log = stderr.decode()
    assert "serving proxy on http://127.0.0.1" in log and "stopped" in log
    assert KEY not in log
    db = tmp_path / "state" / "usage.sqlite3"
    assert (tmp_path / "state").stat().st_mode & 0o777 == 0o700
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT provider, model FROM usage").fetchall()
    conn.close()
    assert rows == [("up", "gpt-4o")]


async def test_open_proxy_refuses_a_public_address(tmp_path: Path) -> None:
    config = tmp_path / "pool.yaml"
    config.write_text("version: 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLDAEMON_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pooldaemon",
        "run",
        "--config",
        str(config),
        "--state-dir",
        str(tmp_path / "st"),
        "--listen",
        "0.0.0.0:8790",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert "lists no clients" in stderr.decode()


async def test_sigterm_lets_a_stream_finish_and_keeps_its_usage(tmp_path: Path) -> None:
    fake = Fake("up")
    fake.faults.append(Fault(event_delay=0.3))  # about 2 s of streaming
    async with serve(fake_app(fake)) as upstream:
        config = tmp_path / "pool.yaml"
        config.write_text(
            "version: 1\nproviders:\n"
            f"  - id: up\n    base_url: {upstream}/v1\n    location: cloud\n"
            "    keys: [{env: RUN_TEST_KEY}]\n    models: [{id: gpt-4o}]\n"
        )
        port = _port()
        proc = await _start(config, tmp_path / "state", port)
        await _wait_listening(port, proc)
        async with openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
        ) as client:
            stream = await client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = ""
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    if not text:
                        proc.send_signal(signal.SIGTERM)  # mid-stream
                    text += chunk.choices[0].delta.content
        assert text == "Hello from the fake"
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, stderr.decode()
    with sqlite3.connect(tmp_path / "state" / "usage.sqlite3") as conn:
        rows = conn.execute("SELECT outcome, output_tokens FROM usage").fetchall()
    conn.close()
    assert rows == [("success", 7)]
