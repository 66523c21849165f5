"""The load: request bodies, wrk runs, and a client timing a stream's first chunk."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Call", "WrkResult", "anthropic_call", "first_chunks", "openai_call", "run_wrk"]

LUA = Path(__file__).resolve().parent / "wrk" / "post.lua"
MODEL = "gpt-4o-mini"
_SYSTEM = "You are a terse assistant."
_USER = "Say hello in five words."


@dataclass(frozen=True)
class Call:
    """One request as sent: path, headers and body bytes."""

    path: str
    headers: dict[str, str]
    body: bytes


def openai_call(stream: bool) -> Call:
    """Chat Completions; a stream asks for usage, as SDK users who count tokens do."""
    body: dict[str, object] = {
        "model": MODEL,
        "messages": [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": _USER}],
        "max_tokens": 32,
    }
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return Call(
        "/v1/chat/completions", {"Content-Type": "application/json"}, json.dumps(body).encode()
    )


def anthropic_call(stream: bool) -> Call:
    body: dict[str, object] = {
        "model": MODEL,
        "max_tokens": 32,
        "system": _SYSTEM,
        "messages": [{"role": "user", "content": _USER}],
    }
    if stream:
        body["stream"] = True
    headers = {"Content-Type": "application/json", "anthropic-version": "2023-06-01"}
    return Call("/v1/messages", headers, json.dumps(body).encode())


def write_requests(calls: list[Call], path: Path) -> Path:
    """The Lua file bench/wrk/post.lua reads: a list of {path, headers, body}."""

    def long_string(text: str) -> str:
        level = "=" * next(n for n in range(1, 10) if f"]{'=' * n}]" not in text)
        return f"[{level}[{text}]{level}]"

    entries = []
    for call in calls:
        headers = ", ".join(f'["{k}"] = "{v}"' for k, v in call.headers.items())
        entries.append(
            f'  {{path = "{call.path}", headers = {{{headers}}}, '
            f"body = {long_string(call.body.decode())}}},"
        )
    path.write_text("return {\n" + "\n".join(entries) + "\n}\n")
    return path


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # socket errors and non-2xx answers
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


_SUMMARY = re.compile(r"^BENCH (\{.*\})$", re.MULTILINE)


def run_wrk(
    url: str,
    requests_file: Path,
    *,
    connections: int,
    threads: int,
    seconds: int,
    stop_after: int | None = None,
) -> WrkResult:
    """One wrk run against ``url`` with the requests of ``requests_file``, for
    ``seconds`` or until about ``stop_after`` answers (whichever comes first)."""
    argv = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s",
        "-s", str(LUA), url,
    ]  # fmt: skip
    env = {**os.environ, "BENCH_REQUESTS": str(requests_file)}
    if stop_after is not None:
        env["BENCH_STOP_AFTER"] = str(max(1, -(-stop_after // threads)))
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    found = _SUMMARY.search(done.stdout)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    data = json.loads(found.group(1))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=data["socket_errors"] + data["status_errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


def _request_bytes(host: str, call: Call) -> bytes:
    head = [f"POST {call.path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(call.body)}"]
    head += [f"{k}: {v}" for k, v in call.headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + call.body


def _read_stream(sock: socket.socket, started: float) -> float:
    """Read one chunked answer to its end; seconds from ``started`` to its first chunk."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += _recv(sock)
    head, _, buf = buf.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    if status != b"200" or b"chunked" not in head.lower():
        raise RuntimeError(f"not a 200 chunked stream: {head.decode(errors='replace')}")
    while b"\r\n" not in buf:
        buf += _recv(sock)
    size = int(buf.split(b"\r\n", 1)[0].split(b";")[0], 16)
    while len(buf) < size + len(b"%x\r\n" % size):
        buf += _recv(sock)
    first = time.perf_counter() - started
    while not buf.endswith(b"\r\n0\r\n\r\n"):  # SSE data never holds a bare CRLF
        buf = buf[-16:] + _recv(sock)
    return first


def _recv(sock: socket.socket) -> bytes:
    data = sock.recv(65536)
    if not data:
        raise RuntimeError("the server closed the connection")
    return data


def first_chunks(base: str, call: Call, count: int) -> list[float]:
    """Milliseconds to the first body chunk of ``count`` sequential streamed requests,
    over one kept-alive connection (as wrk -c1). A blocking socket and a bare
    HTTP/1.1 exchange keep the client's own cost far below what is measured."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    request = _request_bytes(f"{host}:{port}", call)
    times = []
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(count + 5):  # five to warm up
            started = time.perf_counter()
            sock.sendall(request)
            first = _read_stream(sock, started)
            if i >= 5:
                times.append(first * 1000)
    return times
