"""The load benchmark (issue #9): pooldaemon against a pass-through floor.

    make bench                        # or: .venv/bin/python -m bench.run
    .venv/bin/python -m bench.run --quick                     # under a minute
    .venv/bin/python -m bench.run --memory-requests 100000    # memory at 100k and 1M

Starts, each in its own process and all on 127.0.0.1: a fast fake upstream
(``bench/fake_upstream.py``), the floor proxy (``bench/floor_proxy.py``) and
pooldaemon itself (``pooldaemon run`` on a temporary pool YAML with one
OpenAI-format provider, the fake). Both proxies run with ``PYTHONOPTIMIZE=2``
and ``PYTHONNODEBUGRANGES=1``, as ``systemd/pooldaemon.service`` runs the
daemon (``make bench`` compiles their bytecode for it first). For the
pass-through path (OpenAI in, OpenAI upstream) and a translated path (Anthropic
in, OpenAI upstream) it measures, in rounds and with the three targets (direct
upstream, floor, pooldaemon) taking turns, so a neighbour's load falls on all of
them alike:

- requests/s at 32 connections (wrk, 2 threads), and the CPU time (user +
  system, from ``/proc/PID/stat``) each target's process spent per request;
- p50/p99 latency at 1 connection (wrk), as added over the direct upstream;
- a stream's time to its first chunk over one connection, added over direct.

Before the rounds it reads pooldaemon's resident memory idle, after
``--memory-requests`` requests of every kind (plain and streamed, both paths)
and after ten times more. It prints a table with the goals and writes it, with
the machine's facts, to ``bench/results/``.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from bench._load import Call, anthropic_call, first_chunks, openai_call, run_wrk, write_requests
from bench._procs import (
    OPTIMIZED_ENV,
    ROOT,
    Proc,
    cpu_seconds,
    free_port,
    python_module,
    rss_mib,
    start,
    wait_http,
    wait_port,
)
from bench._report import Memory, Results, machine_facts, render

TARGETS = ("direct", "floor", "pooldaemon")
POOL_YAML = """\
version: 1
providers:
  - id: fake
    format: openai
    format_mode: pinned   # no format probing: the catalog job lists {base}/models only
    location: local
    base_url: {base}/v1
    models: [{{id: gpt-4o-mini}}]
"""


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    plain: Call
    stream: Call
    plain_marker: bytes  # in every right answer, whoever sends it
    stream_marker: bytes


SCENARIOS = (
    Scenario("passthrough", "OpenAI in, OpenAI upstream", openai_call(False), openai_call(True),
             b'"chat.completion"', b"data: [DONE]"),
    Scenario("translated", "Anthropic in, OpenAI upstream", anthropic_call(False),
             anthropic_call(True), b'"stop_reason"', b"event: message_stop"),
)  # fmt: skip


@dataclass(frozen=True)
class Plan:
    rounds: int
    load_seconds: int  # each wrk run at 32 connections
    latency_seconds: int  # each wrk run at 1 connection
    chunks: int  # streamed requests per first-chunk sample
    memory_requests: int  # RSS after this many requests, then after 10x as many

    def describe(self) -> str:
        return (
            f"{self.rounds} round(s); per target and path: wrk {self.load_seconds} s at 32 "
            f"connections, {self.latency_seconds} s at 1 connection, {self.chunks} streams"
        )


DEFAULT = Plan(rounds=3, load_seconds=3, latency_seconds=2, chunks=300, memory_requests=10_000)
QUICK = Plan(rounds=1, load_seconds=2, latency_seconds=1, chunks=100, memory_requests=2_000)


class Bench:
    """The three servers and the measurements taken against them."""

    def __init__(self, tmp: Path, plan: Plan) -> None:
        self.tmp, self.plan = tmp, plan
        self.procs: dict[str, Proc] = {}
        self.results = Results(scenarios={s.name: s.title for s in SCENARIOS})
        self.served = 0  # requests pooldaemon answered so far

    def start(self) -> None:
        fake_port, floor_port, port, admin_port = (free_port() for _ in range(4))
        fake = start("fake", python_module("bench.fake_upstream", "--port", str(fake_port)),
                     fake_port, self.tmp)  # fmt: skip
        self.procs["direct"] = fake
        wait_http(fake, fake.base + "/v1/models")
        floor_argv = python_module(
            "bench.floor_proxy", "--port", str(floor_port), "--upstream", fake.base
        )
        # Both proxies run as the systemd unit runs pooldaemon: python -OO, no column tables.
        optimized = {**os.environ, **OPTIMIZED_ENV}
        self.procs["floor"] = floor = start("floor", floor_argv, floor_port, self.tmp, optimized)
        config = self.tmp / "pool.yaml"
        config.write_text(POOL_YAML.format(base=fake.base))
        env = {k: v for k, v in optimized.items() if not k.startswith("POOLDAEMON_")}
        env["POOLDAEMON_LOG_LEVEL"] = "warning"  # one log line per request would dominate
        argv = [
            *_pooldaemon(), "run", "--config", str(config), "--state-dir", str(self.tmp / "state"),
            "--listen", f"127.0.0.1:{port}", "--admin-listen", f"127.0.0.1:{admin_port}",
        ]  # fmt: skip
        self.procs["pooldaemon"] = daemon = start("pooldaemon", argv, port, self.tmp, env)
        wait_port(floor, floor_port)
        wait_http(daemon, f"http://127.0.0.1:{admin_port}/readyz")
        self.check()
        time.sleep(3)  # the startup jobs (catalog refresh after 2 s) run before "idle"

    def check(self) -> None:
        """Every target answers every request kind in the client's own format."""
        for scenario in SCENARIOS:
            for call, marker in ((scenario.plain, scenario.plain_marker),
                                 (scenario.stream, scenario.stream_marker)):  # fmt: skip
                for target in TARGETS:
                    request = urllib.request.Request(
                        self.url(target, call), call.body, call.headers
                    )
                    with urllib.request.urlopen(request, timeout=10) as resp:
                        body = resp.read()
                    if marker not in body:
                        raise RuntimeError(
                            f"{target} {scenario.name}: no {marker!r} in the answer: {body[:300]!r}"
                        )
        self.served += 4  # the two kinds of both paths, to pooldaemon

    def stop(self) -> None:
        for proc in reversed(self.procs.values()):
            proc.stop()

    def url(self, target: str, call: Call) -> str:
        return self.procs[target].base + call.path

    def requests_file(self, name: str, calls: list[Call]) -> Path:
        return write_requests(calls, self.tmp / f"{name}.lua")

    # -- memory ----------------------------------------------------------------

    def memory(self) -> None:
        pid = self.procs["pooldaemon"].pid
        idle = rss_mib(pid)
        every = [c for s in SCENARIOS for c in (s.plain, s.stream)]
        mixed = self.requests_file("mixed", every)
        url = self.url("pooldaemon", every[0])
        marks = []
        rate = 0.0
        rates: list[float] = []  # requests/s of the chunks that ran their whole time
        for goal in (self.plan.memory_requests, 10 * self.plan.memory_requests):
            while self.served < goal:
                # wrk's threads stop after their share of answers, wrk itself only after
                # -d: chunks of at most 20 s, the last one as long as the rest should take.
                left = goal - self.served
                seconds = min(20, math.ceil(left / rate) + 1) if rate else 1
                run = run_wrk(url, mixed, connections=32, threads=2, seconds=seconds,
                              stop_after=left)  # fmt: skip
                self.results.note_errors("memory load", "pooldaemon", run.errors)
                self.served += run.requests
                if run.requests < left:  # it ran its whole time: a true rate
                    rate = run.rps
                    rates.append(rate)
                    print(f"bench: {self.served:,} requests, {rate:.0f}/s", flush=True)
            time.sleep(1)  # the usage store writes behind (within 20 ms); let it settle
            marks.append((self.served, rss_mib(pid)))
        first, last = (rates[0], rates[-1]) if rates else (0.0, 0.0)
        self.results.memory = Memory(idle, *marks[0], *marks[1], first, last)

    # -- rounds ----------------------------------------------------------------

    def warm_up(self) -> None:
        for scenario in SCENARIOS:
            plain = self.requests_file(f"{scenario.name}-plain", [scenario.plain])
            for target in TARGETS:
                run = run_wrk(self.url(target, scenario.plain), plain, connections=32, threads=2,
                              seconds=1)  # fmt: skip
                self._count(target, run.requests)

    def round(self, index: int) -> None:
        order = TARGETS[index % 3 :] + TARGETS[: index % 3]
        plan, results = self.plan, self.results
        for scenario in SCENARIOS:
            plain = self.requests_file(f"{scenario.name}-plain", [scenario.plain])
            for target in order:
                pid = self.procs[target].pid
                cpu = cpu_seconds(pid)
                run = run_wrk(self.url(target, scenario.plain), plain, connections=32, threads=2,
                              seconds=plan.load_seconds)  # fmt: skip
                cpu = cpu_seconds(pid) - cpu
                results.add(scenario.name, target, "rps", run.rps)
                results.add(scenario.name, target, "cpu_us", cpu / max(run.requests, 1) * 1e6)
                results.note_errors(f"{scenario.name} 32 connections", target, run.errors)
                self._count(target, run.requests)
            for target in order:
                run = run_wrk(self.url(target, scenario.plain), plain, connections=1, threads=1,
                              seconds=plan.latency_seconds)  # fmt: skip
                results.add(scenario.name, target, "p50_ms", run.p50_ms)
                results.add(scenario.name, target, "p99_ms", run.p99_ms)
                results.note_errors(f"{scenario.name} 1 connection", target, run.errors)
                self._count(target, run.requests)
            for target in order:
                times = sorted(first_chunks(self.procs[target].base, scenario.stream, plan.chunks))
                results.add(scenario.name, target, "chunk_p50_ms", statistics.median(times))
                results.add(scenario.name, target, "chunk_p99_ms", _p99(times))
                self._count(target, plan.chunks + 5)

    def _count(self, target: str, requests: int) -> None:
        if target == "pooldaemon":
            self.served += requests

    def finish(self) -> None:
        self.results.end_rss = {t: rss_mib(p.pid) for t, p in self.procs.items()}
        self.results.served = self.served


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.99) - 1)]


def _pooldaemon() -> list[str]:
    """The command that starts the daemon: $BENCH_POOLDAEMON (e.g. an installed build,
    or a launcher that tries another event loop), else this venv's console script."""
    if command := os.environ.get("BENCH_POOLDAEMON"):
        return shlex.split(command)
    script = Path(sys.executable).parent / "pooldaemon"
    return [str(script)] if script.exists() else [sys.executable, "-m", "pooldaemon"]


def _parse() -> tuple[Plan, Path | None]:
    parser = argparse.ArgumentParser(
        description="pooldaemon load benchmark",
        epilog="BENCH_QUICK=1 is the same as --quick; BENCH_POOLDAEMON=COMMAND benchmarks "
        "another pooldaemon command (default: this venv's).",
    )
    parser.add_argument("--quick", action="store_true", help="one short round (under a minute)")
    parser.add_argument("--rounds", type=int, help="rounds of measurements (default 3)")
    parser.add_argument("--memory-requests", type=int, help="RSS after N and 10N requests")
    parser.add_argument("--output", type=Path, help="results file (default bench/results/...)")
    parser.add_argument("--no-save", action="store_true", help="print the table only")
    args = parser.parse_args()
    plan = QUICK if args.quick or os.environ.get("BENCH_QUICK") not in (None, "", "0") else DEFAULT
    if args.rounds:
        plan = Plan(args.rounds, *_fields(plan)[1:])
    if args.memory_requests:
        plan = Plan(*_fields(plan)[:4], args.memory_requests)
    output = args.output
    if output is None and not args.no_save:
        output = _default_output(ROOT / "bench" / "results", plan == QUICK)
    return plan, output


def _default_output(folder: Path, quick: bool) -> Path:
    """``DATE-bench[-quick].txt``; a later run the same day gets ``-2``, ``-3`` ... so an
    earlier run's file (maybe quoted somewhere) is never overwritten."""
    stem = f"{date.today().isoformat()}-bench{'-quick' if quick else ''}"
    path, n = folder / f"{stem}.txt", 1
    while path.exists():
        n += 1
        path = folder / f"{stem}-{n}.txt"
    return path


def _fields(plan: Plan) -> tuple[int, int, int, int, int]:
    return (plan.rounds, plan.load_seconds, plan.latency_seconds, plan.chunks,
            plan.memory_requests)  # fmt: skip


def main() -> int:
    plan, output = _parse()
    if shutil.which("wrk") is None:
        print("bench: wrk is missing (Debian: apt-get install wrk; `make bench` does it)",
              file=sys.stderr)  # fmt: skip
        return 2
    load_before = os.getloadavg()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pooldaemon-bench-") as tmp:
        bench = Bench(Path(tmp), plan)
        try:
            print("bench: starting the fake upstream, the floor proxy and pooldaemon", flush=True)
            bench.start()
            print(f"bench: memory under {10 * plan.memory_requests:,} requests", flush=True)
            bench.memory()
            bench.warm_up()
            for index in range(plan.rounds):
                print(f"bench: round {index + 1} of {plan.rounds}", flush=True)
                bench.round(index)
            bench.finish()
        finally:
            bench.stop()
    facts = machine_facts(load_before, os.getloadavg(), time.monotonic() - started, plan.describe())
    table = render(bench.results, facts)
    print(table)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(table)
        print(f"bench: written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
