"""The benchmark's results: samples per round, the goals, the table, the machine."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp

from pooldaemon import __version__
from pooldaemon.server._post import DIRECT

__all__ = ["Memory", "Results", "machine_facts", "render"]

ROOT = Path(__file__).resolve().parent.parent
# The goals of issue #9, on a 2-core machine, against the floor of the same run.
MIN_RPS_RATIO = 0.5
MAX_ADDED_P50_MS = 0.5
MAX_ADDED_P99_MS = 1.0
MAX_CPU_RATIO = 2.0
MAX_ADDED_CHUNK_MS = 0.5
MAX_IDLE_MIB = 60.0
MAX_LOADED_MIB = 80.0
MAX_GROWTH_MIB = 2.0  # "flat" from N to 10N requests
# Below this N, SQLite's page cache (2 MiB a connection) is still filling: growth says
# nothing about leaks, so the row is information only (as in --quick).
MIN_FLAT_REQUESTS = 10_000


@dataclass(frozen=True)
class Memory:
    """pooldaemon's VmRSS (MiB) idle, after ``load_requests``, after ``more_requests``."""

    idle: float
    load_requests: int
    load: float
    more_requests: int
    more: float
    first_rps: float  # the mixed load's requests/s at the start and at the end
    last_rps: float


@dataclass
class Results:
    scenarios: dict[str, str]  # name -> title
    samples: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    memory: Memory | None = None
    end_rss: dict[str, float] = field(default_factory=dict)
    served: int = 0

    def add(self, scenario: str, target: str, metric: str, value: float) -> None:
        """One round's value of ``metric`` for ``target``."""
        self.samples.setdefault((scenario, target, metric), []).append(value)

    def note_errors(self, what: str, target: str, count: int) -> None:
        if count:
            self.errors.append(f"{what}: {target} had {count} failed requests")

    def median(self, scenario: str, target: str, metric: str) -> float:
        return statistics.median(self.samples[scenario, target, metric])

    def paired(
        self, scenario: str, metric: str, fn: Callable[[float, float], float]
    ) -> tuple[float, float]:
        """Median over rounds of ``fn(x, direct)`` for the floor and for pooldaemon:
        each round compares targets measured minutes apart at most."""
        direct = self.samples[scenario, "direct", metric]
        return tuple(  # type: ignore[return-value]
            statistics.median(
                fn(x, d) for x, d in zip(self.samples[scenario, t, metric], direct, strict=True)
            )
            for t in ("floor", "pooldaemon")
        )

    def ratio(self, scenario: str, metric: str) -> float:
        """Median over rounds of pooldaemon / floor."""
        floor = self.samples[scenario, "floor", metric]
        ours = self.samples[scenario, "pooldaemon", metric]
        return statistics.median(o / f for o, f in zip(ours, floor, strict=True))


@dataclass(frozen=True)
class Row:
    metric: str
    direct: str
    floor: str
    ours: str
    measure: str
    goal: str
    holds: bool | None  # None: for information, no goal


def _added(value: float) -> str:
    return f"+{value:.3f}" if value >= 0 else f"{value:.3f}"


def _scenario_rows(results: Results, name: str) -> list[Row]:
    med = results.median
    rps = {t: med(name, t, "rps") for t in ("direct", "floor", "pooldaemon")}
    rps_ratio = results.ratio(name, "rps")
    cpu = {t: med(name, t, "cpu_us") for t in ("direct", "floor", "pooldaemon")}
    cpu_ratio = results.ratio(name, "cpu_us")
    rows = [
        Row("requests/s, 32 connections", f"{rps['direct']:.0f}", f"{rps['floor']:.0f}",
            f"{rps['pooldaemon']:.0f}", f"{rps_ratio:.2f}x floor", f">= {MIN_RPS_RATIO}x floor",
            rps_ratio >= MIN_RPS_RATIO),
        Row("CPU per request (us)", f"{cpu['direct']:.0f}", f"{cpu['floor']:.0f}",
            f"{cpu['pooldaemon']:.0f}", f"{cpu_ratio:.2f}x floor", f"<= {MAX_CPU_RATIO:g}x floor",
            cpu_ratio <= MAX_CPU_RATIO),
    ]  # fmt: skip
    added = [
        ("latency p50, 1 connection (ms)", "p50_ms", MAX_ADDED_P50_MS),
        ("latency p99, 1 connection (ms)", "p99_ms", MAX_ADDED_P99_MS),
        ("stream first chunk p50 (ms)", "chunk_p50_ms", MAX_ADDED_CHUNK_MS),
        ("stream first chunk p99 (ms)", "chunk_p99_ms", None),
    ]
    for label, metric, limit in added:
        floor, ours = results.paired(name, metric, lambda x, d: x - d)
        goal = f"<= +{limit:g} ms" if limit is not None else "(information)"
        rows.append(
            Row(label, f"{med(name, 'direct', metric):.3f}", _added(floor), _added(ours),
                f"{_added(ours)} ms", goal, None if limit is None else ours <= limit)
        )  # fmt: skip
    return rows


def _memory_rows(results: Results) -> list[Row]:
    mem = results.memory
    if mem is None:
        return []
    growth = mem.more - mem.load
    judged = mem.load_requests >= MIN_FLAT_REQUESTS
    end = results.end_rss
    return [
        Row("RSS idle (MiB)", "-", "-", f"{mem.idle:.1f}", f"{mem.idle:.1f} MiB",
            f"<= {MAX_IDLE_MIB:g} MiB", mem.idle <= MAX_IDLE_MIB),
        Row(f"RSS after {mem.load_requests:,} requests", "-", "-", f"{mem.load:.1f}",
            f"{mem.load:.1f} MiB", f"<= {MAX_LOADED_MIB:g} MiB", mem.load <= MAX_LOADED_MIB),
        Row(f"RSS after {mem.more_requests:,} requests", "-", "-", f"{mem.more:.1f}",
            f"{growth:+.1f} MiB", f"flat: <= +{MAX_GROWTH_MIB:g} MiB" if judged
            else f"(information: N < {MIN_FLAT_REQUESTS:,})",
            growth <= MAX_GROWTH_MIB and mem.more <= MAX_LOADED_MIB if judged else None),
        Row("requests/s of this load, first and last", "-", "-",
            f"{mem.first_rps:.0f} / {mem.last_rps:.0f}", "", "(information)", None),
        Row(f"RSS at the end ({results.served:,} requests)", f"{end.get('direct', 0):.1f}",
            f"{end.get('floor', 0):.1f}", f"{end.get('pooldaemon', 0):.1f}", "", "(information)",
            None),
    ]  # fmt: skip


_HEAD = Row("metric", "direct", "floor", "pooldaemon", "pooldaemon vs goal", "goal", None)


def _table(rows: list[Row]) -> list[str]:
    cells = [
        (r.metric, r.direct, r.floor, r.ours, r.measure, r.goal,
         "holds?" if r is _HEAD else {True: "yes", False: "NO", None: "-"}[r.holds])
        for r in rows
    ]  # fmt: skip
    widths = [max(len(c[i]) for c in cells) for i in range(7)]
    lines = []
    for i, c in enumerate(cells):
        left = c[0].ljust(widths[0])
        nums = "  ".join(v.rjust(w) for v, w in zip(c[1:4], widths[1:4], strict=True))
        lines.append(f"{left}  {nums}  {c[4].ljust(widths[4])}  {c[5].ljust(widths[5])}  {c[6]}")
        if i == 0:
            lines.append("-" * len(lines[0]))
    return [line.rstrip() for line in lines]


def render(results: Results, facts: list[str]) -> str:
    """The report: machine facts, one table per path, memory, goals held."""
    out = [*facts, ""]
    held = total = 0
    sections = [
        (f"{name}: {title}", _scenario_rows(results, name))
        for name, title in results.scenarios.items()
    ]
    sections.append(
        ("memory: pooldaemon's VmRSS, all four request kinds in turn", _memory_rows(results))
    )
    for title, rows in sections:
        if not rows:
            continue
        out += [title, *_table([_HEAD, *rows]), ""]
        held += sum(r.holds is True for r in rows)
        total += sum(r.holds is not None for r in rows)
    out.append(
        "direct: the fake upstream itself (latency and first chunk: absolute; floor and "
        "pooldaemon: added over direct, median of the rounds' differences). CPU per request: "
        "the process's user+system time over the requests it served (direct: the fake's)."
    )
    out += [f"goals held: {held} of {total}", *(f"warning: {e}" for e in results.errors)]
    return "\n".join(out) + "\n"


def _run(*argv: str) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT)
    except OSError:
        return "?"
    return (
        (done.stdout or done.stderr).strip().splitlines()[0]
        if (done.stdout or done.stderr)
        else "?"
    )


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _interpreter() -> str:
    """The venv's base interpreter: whose build (distribution or pyenv) the numbers are."""
    return os.path.realpath(getattr(sys, "_base_executable", sys.executable))


def machine_facts(
    load_before: tuple[float, float, float],
    load_after: tuple[float, float, float],
    seconds: float,
    plan: str,
) -> list[str]:
    """Where and how the run happened, as the first lines of the report."""

    def load(avg: tuple[float, float, float]) -> str:
        return " ".join(f"{x:.2f}" for x in avg)

    return [
        f"# pooldaemon load benchmark (make bench), {datetime.now().isoformat(timespec='seconds')}",
        f"machine: {_cpu_model()}, {os.cpu_count()} CPUs (usable {len(os.sched_getaffinity(0))}), "
        f"Linux {platform.release()}",
        f"software: pooldaemon {__version__} ({_run('git', 'describe', '--always', '--dirty')}), "
        f"CPython {platform.python_version()} ({_interpreter()}), aiohttp {aiohttp.__version__} "
        f"(upstream POSTs: {'direct' if DIRECT else 'session.post'}), "
        f"{_run('wrk', '--version').split(' Copyright')[0]}",
        f"load average (1/5/15 min): {load(load_before)} before, {load(load_after)} after; "
        f"run took {seconds:.0f} s",
        f"plan: {plan}",
    ]
