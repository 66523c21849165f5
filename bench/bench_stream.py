"""Micro-benchmark of a stream's relay: CPU per upstream event, in the daemon's loop.

    .venv/bin/python bench/bench_stream.py [--events 500] [--chunk 400]

A Chat Completions token stream (``--events`` content deltas, the usage chunk
and ``[DONE]``) arrives in ``--chunk``-byte reads, as from a socket. Each read
goes through what ``server/_attempt.py`` does with it: the SSE splitter, then
the stream watch, for the pass-through path (OpenAI in, OpenAI upstream: the
events are relayed as they came) and the translated one (Anthropic in, OpenAI
upstream: decoded to the IR and encoded as Anthropic events). Reported: the
best of ``--rounds`` rounds, in microseconds per upstream event.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import time
from collections.abc import Callable

from pooldaemon.server._attempt import relay_read
from pooldaemon.upstream._base import StreamWatch
from pooldaemon.upstream._sse import SseSplitter
from pooldaemon.upstream._translate import TranslatingWatch
from pooldaemon.upstream.anthropic import ANTHROPIC
from pooldaemon.upstream.openai import OPENAI

HI = {"role": "user", "content": "hi"}


def token_stream(events: int) -> bytes:
    def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
        body = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return b"data: " + json.dumps(body).encode() + b"\n\n"

    parts = [chunk({"role": "assistant", "content": ""})]
    parts += [chunk({"content": f" token{i}"}) for i in range(events)]
    parts.append(chunk({}, "stop"))
    usage = {"prompt_tokens": 12, "completion_tokens": events, "total_tokens": 12 + events}
    parts.append(b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def relay(reads: list[bytes], translated: bool) -> int:
    """The relay loop of ``_attempt.py`` (its ``relay_read``) over ``reads``; the bytes
    the client gets."""
    watch: StreamWatch
    if translated:
        body = {"model": "m", "max_tokens": 16, "stream": True, "messages": [HI]}
        req = ANTHROPIC.decode_request(body)  # as the proxy builds it
        watch = TranslatingWatch(OPENAI.stream_decoder(), ANTHROPIC.stream_encoder("m", req))
    else:
        watch = OPENAI.watch(False)
    splitter = SseSplitter()
    sent = 0
    for read in reads:
        sent += len(relay_read(read, splitter, watch))
    if not watch.done:
        raise AssertionError("the stream did not end normally")
    return sent


def best(fn: Callable[[], object], rounds: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=500, help="content deltas per stream")
    parser.add_argument("--chunk", type=int, default=400, help="bytes per upstream read")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    stream = token_stream(args.events)
    reads = [stream[i : i + args.chunk] for i in range(0, len(stream), args.chunk)]
    upstream_events = stream.count(b"\n\n")
    print(
        f"machine: {platform.machine()} {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs"
    )
    print(f"stream: {upstream_events} upstream events, {len(stream)} bytes in {len(reads)} reads")
    for name, translated in (("pass-through (OpenAI in and up)", False), ("translated", True)):
        seconds = best(functools.partial(relay, reads, translated), args.rounds)
        print(f"{name:32s} {seconds * 1e6 / upstream_events:6.2f} us per upstream event")


if __name__ == "__main__":
    main()
