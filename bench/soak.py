"""The soak test (issue #9): the real daemon under mixed traffic, faults and reloads.

    make soak                                   # 3 minutes
    SOAK_SECONDS=60 .venv/bin/python -m bench.soak
    .venv/bin/python -m bench.soak --seconds 600 --fault-rate 0.2 --clients 16

Runs ``pooldaemon run`` as a subprocess in front of three providers, each a
fault-injecting OpenAI-format upstream (``tests/faults/fault_upstream.py``, in
this process) that answers a random share of requests with a fault: 5xx, 429
with Retry-After, connection resets, stalls before the headers and mid-body,
truncated and endless answers, slow answers. Clients speak the OpenAI and the
Anthropic API, plain and streamed, and check every answer. Every few seconds
the config file is rewritten: two valid variants in turn, and now and then an
invalid one, which must be refused while the last good config keeps serving.
Faults stop for the last part of the run (30 s, or half of a short run) so
that every cooldown can expire and recover.

At the end it checks, and exits non-zero when a check fails: the daemon is
alive and exits cleanly on SIGTERM; every answer was well-formed (a success, an
error in the client API's own shape, or a stream ended by the API's error
event; never a silent end, a hang or a dropped connection); the usage store
holds one record per answer served; ``/admin/v1/cooldowns`` is empty; no
unexpected exception in the daemon's log; resident memory is flat (the last
sample within 10 % or 10 MiB of the sample after warm-up); the invalid configs
were refused and the last valid one is applied.

The faults the tests in tests/faults mark as known bugs (garbage in a
pass-through stream, JSON of the wrong shape) are left out unless
``--all-faults`` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: the fault upstream lives in tests/
    sys.path.insert(0, str(ROOT))

from bench._procs import OPTIMIZED_ENV  # noqa: E402
from tests.faults.fault_upstream import Fault, FaultUpstream, fault_app  # noqa: E402
from tests.server.fakes import serve  # noqa: E402

ADMIN_TOKEN = "soak-admin-token-0123456789abcdef"
TEXT = "Hello from the fake"
HI = [{"role": "user", "content": "hi"}]
KNOWN_BUGS = {Fault.malformed, Fault.malformed_mid, Fault.wrong_shape, Fault.wrong_shape_mid}
MiB = 1024 * 1024

# -- the config variants ----------------------------------------------------------------

_COMMON = """\
version: 1
routing: {{mode: auto, strategy: round_robin}}
cooldown:
  failure_threshold: 2
  initial: 2s
  max: 8s
  reset_after: 20s
  transient: {{failure_threshold: 3, initial: 1s, max: 5s}}
providers:
{providers}
aliases:
  fast: [gpt-4o]
{extra}"""
_PROVIDER = """\
  - id: up{n}
    base_url: {url}/v1
    location: cloud
    weight: {weight}
    first_byte_timeout: 1s
    timeout: 3s
    models: [{{id: gpt-4o}}, {{id: gpt-4o-mini}}]
"""


def _config(urls: list[str], variant: int) -> str:
    """Variant 0 and 1 differ in weights and aliases; 2 is invalid (an unknown key)."""
    weights = [1, 1, 1] if variant == 0 else [3, 1, 2]
    providers = "".join(
        _PROVIDER.format(n=n, url=url, weight=w)
        for n, (url, w) in enumerate(zip(urls, weights, strict=True))
    )
    extra = "  small: [gpt-4o-mini]\n" if variant == 1 else ""
    if variant == 2:
        extra += "colldown: {initial: 1s}\n"  # a typo: strict specs refuse unknown keys
    return _COMMON.format(providers=providers.rstrip("\n"), extra=extra)


# -- what the clients saw -------------------------------------------------------------------


@dataclass
class Tally:
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: dict[str, str] = field(default_factory=dict)  # outcome -> one example

    def add(self, outcome: str, kind: str, detail: str = "") -> None:
        self.outcomes[outcome] += 1
        self.kinds[kind] += 1
        if outcome in ("malformed", "transport") and outcome not in self.examples:
            self.examples[outcome] = f"{kind}: {detail}"[:300]


def _sse(raw: bytes) -> list[tuple[str, str]]:
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        name, data = "", []
        for line in block.split(b"\n"):
            if line.startswith(b"event:"):
                name = line[6:].strip().decode()
            elif line.startswith(b"data:"):
                data.append(line[5:].strip().decode())
        if name or data:
            events.append((name, "\n".join(data)))
    return events


def _judge_stream(api: str, raw: bytes) -> str:
    """success, broken (ended by the API's error event) or malformed."""
    events = _sse(raw)
    if not events:
        return "malformed"
    if api == "openai":
        datas = [d for _, d in events]
        if datas[-1] == "[DONE]":
            chunks = [json.loads(d) for d in datas[:-1]]
            text = "".join(
                c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")
            )
            ok = text == TEXT and not any("error" in c for c in chunks)
            return "success" if ok else "malformed"
        last = json.loads(datas[-1])
        broken = isinstance(last.get("error"), dict) and "[DONE]" not in datas
        return "broken" if broken else "malformed"
    names = [n for n, _ in events]
    payloads = [json.loads(d) for _, d in events]
    if any(p.get("type") != n for n, p in zip(names, payloads, strict=True)):
        return "malformed"
    if names[-1] == "message_stop":
        text = "".join(
            p["delta"].get("text", "") for p in payloads if p["type"] == "content_block_delta"
        )
        return "success" if text == TEXT and "error" not in names else "malformed"
    if names[-1] == "error" and payloads[-1]["error"]["message"] and "message_stop" not in names:
        return "broken"
    return "malformed"


def _judge_plain(api: str, status: int, raw: bytes) -> str:
    body = json.loads(raw)
    if status == 200:
        if api == "openai":
            ok = body["choices"][0]["message"]["content"] == TEXT
        else:
            ok = body["content"][0]["text"] == TEXT
        return "success" if ok else "malformed"
    if api == "anthropic" and body.get("type") != "error":
        return "malformed"
    error = body["error"]
    ok = isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
    return "error" if ok else "malformed"


async def _request(
    http: aiohttp.ClientSession, base: str, api: str, stream: bool, model: str, tally: Tally
) -> int | None:
    """One request, judged and counted; its status (None: no answer)."""
    kind = f"{api}-{'stream' if stream else 'plain'}"
    body: dict[str, Any]
    if api == "openai":
        url, body = f"{base}/v1/chat/completions", {"model": model, "messages": HI}
    else:
        url = f"{base}/v1/messages"
        body = {"model": model, "max_tokens": 16, "messages": HI}
    body["stream"] = stream
    try:
        async with http.post(url, json=body) as resp:
            raw = await resp.read()
            status, content_type = resp.status, resp.content_type
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.add("transport", kind, repr(exc))
        return None
    tally.statuses[status] += 1
    try:
        if status == 200 and stream:
            outcome = _judge_stream(api, raw)
            if content_type != "text/event-stream":
                outcome = "malformed"
        else:
            outcome = _judge_plain(api, status, raw)
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        outcome = "malformed"
    tally.add(outcome, kind, f"{status} {raw[:400]!r}")
    return status


async def _client(base: str, tally: Tally, until: float, rng: random.Random) -> None:
    timeout = aiohttp.ClientTimeout(total=30)  # the daemon's own limits are 1 s and 3 s
    async with aiohttp.ClientSession(timeout=timeout) as http:
        while time.monotonic() < until:
            api = rng.choice(("openai", "anthropic"))
            model = rng.choice(("gpt-4o", "gpt-4o", "fast"))
            status = await _request(http, base, api, rng.random() < 0.5, model, tally)
            # Back off after a "cooling" or rate-limit answer, as SDKs do before a retry.
            backoff = status in (429, 503)
            await asyncio.sleep(rng.uniform(0.2, 0.4) if backoff else rng.uniform(0, 0.04))


# -- the daemon -------------------------------------------------------------------------


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    proc: asyncio.subprocess.Process
    port: int
    admin_port: int
    log: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def admin(self, path: str) -> Any:
        """GET on the admin listener: JSON, or the text of /metrics."""
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{self.admin_port}{path}", headers=headers) as resp,
        ):
            resp.raise_for_status()
            return await resp.text() if path == "/metrics" else await resp.json()

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")


@asynccontextmanager
async def _daemon(config: Path, state: Path, log: Path) -> AsyncIterator[Daemon]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POOLDAEMON_")}
    env |= {
        "POOLDAEMON_ADMIN_TOKEN": ADMIN_TOKEN,
        "POOLDAEMON_MAX_RESPONSE_BYTES": str(MiB),  # endless answers end here
        "POOLDAEMON_LOG_LEVEL": "warning",  # not one line per request
        **OPTIMIZED_ENV,  # as the systemd unit runs it
    }
    port, admin_port = _port(), _port()
    with log.open("wb") as sink:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pooldaemon", "run", "--config", str(config),
            "--state-dir", str(state), "--listen", f"127.0.0.1:{port}",
            "--admin-listen", f"127.0.0.1:{admin_port}",
            stdout=asyncio.subprocess.DEVNULL, stderr=sink, env=env,
        )  # fmt: skip
    running = Daemon(proc, port, admin_port, log)
    try:
        for _ in range(300):
            with contextlib.suppress(aiohttp.ClientError):
                await running.admin("/readyz")
                break
            if proc.returncode is not None:
                tail = (await asyncio.to_thread(log.read_text))[-2000:]
                raise RuntimeError(f"the daemon exited:\n{tail}")
            await asyncio.sleep(0.05)
        yield running
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 60)


# -- the run ----------------------------------------------------------------------------


@dataclass
class Reloads:
    written: collections.Counter[str] = field(default_factory=collections.Counter)
    refused_while_serving: int = 0  # invalid file in place, previous revision still applied
    last_valid_sha: str = ""


async def _reloader(
    running: Daemon, config: Path, urls: list[str], every: float, until: float, r: Reloads
) -> None:
    n = 0
    while time.monotonic() + every < until:
        await asyncio.sleep(every)
        n += 1
        variant = 2 if n % 5 == 0 else n % 2
        text = _config(urls, variant)
        tmp = config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(config)  # as a git checkout or a config-management tool would
        sha = hashlib.sha256(text.encode()).hexdigest()
        r.written["invalid" if variant == 2 else "valid"] += 1
        if variant != 2:
            r.last_valid_sha = sha
            continue
        await asyncio.sleep(min(1.5, every / 2))  # the watch reacts in well under a second
        status = await running.admin("/admin/v1/status")
        applied, attempted = status["applied_revision"], status["attempted_revision"]
        if attempted == sha and applied == r.last_valid_sha:
            r.refused_while_serving += 1


def _reload_counts(metrics: str) -> dict[str, float]:
    counts = {}
    for line in metrics.splitlines():
        if line.startswith("pooldaemon_config_reloads_total{"):
            result = line.split('result="', 1)[1].split('"', 1)[0]
            counts[result] = float(line.rsplit(" ", 1)[1])
    return counts


def _records(state: Path) -> collections.Counter[str]:
    with sqlite3.connect(state / "usage.sqlite3") as db:
        rows = db.execute("SELECT outcome, COUNT(*) FROM usage GROUP BY outcome").fetchall()
    return collections.Counter({str(o): int(c) for o, c in rows})


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


async def soak(args: argparse.Namespace) -> list[Check]:
    rng = random.Random(args.seed)
    quiet = min(30.0, args.seconds / 2)
    faults = [f for f in Fault if f is not Fault.ok and (args.all_faults or f not in KNOWN_BUGS)]
    faulty = True

    def choose() -> Fault:
        return rng.choice(faults) if faulty and rng.random() < args.fault_rate else Fault.ok

    checks: list[Check] = []
    with tempfile.TemporaryDirectory(prefix="pooldaemon-soak-") as tmp:
        state, config, log = Path(tmp) / "state", Path(tmp) / "pool.yaml", Path(tmp) / "log"
        async with AsyncExitStack() as stack:
            upstreams = [FaultUpstream(choose=choose, retry_after=2) for _ in range(3)]
            urls = [await stack.enter_async_context(serve(fault_app(u))) for u in upstreams]
            config.write_text(_config(urls, 0))
            reloads = Reloads(last_valid_sha=hashlib.sha256(config.read_bytes()).hexdigest())
            running = await stack.enter_async_context(_daemon(config, state, log))
            started = time.monotonic()
            end, faults_end = started + args.seconds, started + args.seconds - quiet
            tally = Tally()
            tasks = [
                asyncio.create_task(_client(running.base, tally, end, random.Random(rng.random())))
                for _ in range(args.clients)
            ]
            tasks.append(
                asyncio.create_task(
                    _reloader(running, config, urls, args.reload_every, end - 2, reloads)
                )
            )
            samples: list[tuple[float, int]] = []
            while time.monotonic() < end:
                samples.append((time.monotonic() - started, running.rss()))
                if faulty and time.monotonic() >= faults_end:
                    faulty = False
                print(
                    f"\r{time.monotonic() - started:6.0f}s  {sum(tally.outcomes.values()):7d} "
                    f"requests  rss {samples[-1][1] / MiB:6.1f} MiB  "
                    f"{'faults' if faulty else 'quiet '}",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
                await asyncio.sleep(min(5.0, max(0.0, end - time.monotonic())))
            print(file=sys.stderr)
            await asyncio.gather(*tasks)

            alive = running.proc.returncode is None
            cooldowns = (await running.admin("/admin/v1/cooldowns"))["cooldowns"]
            status = await running.admin("/admin/v1/status")
            reload_counts = _reload_counts(await running.admin("/metrics"))
            samples.append((time.monotonic() - started, running.rss()))
            running.proc.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(running.proc.wait(), 60)

        records = _records(state)
        log_text = log.read_text(errors="replace")

    served = tally.outcomes["success"] + tally.outcomes["broken"]
    bad = tally.outcomes["malformed"] + tally.outcomes["transport"]
    warm_at = max(10.0, args.seconds / 4)
    warm = next((rss for t, rss in samples if t >= warm_at), samples[-1][1])
    last = samples[-1][1]
    flat = last - warm <= max(10 * MiB, warm // 10)
    unexpected = log_text.count("failed unexpectedly") + log_text.count("Traceback")
    checks += [
        Check("daemon alive at the end", alive, f"pid {running.proc.pid}"),
        Check("clean exit on SIGTERM", code == 0, f"exit code {code}"),
        Check(
            "every answer well-formed",
            bad == 0,
            f"{tally.outcomes['malformed']} malformed, {tally.outcomes['transport']} transport "
            f"errors {tally.examples or ''}",
        ),
        Check(
            "usage records == answers served",
            records["success"] == tally.outcomes["success"]
            and records["broken_stream"] == tally.outcomes["broken"]
            and sum(records.values()) == served,
            f"{sum(records.values())} records ({dict(records)}) for {served} answers "
            f"({tally.outcomes['success']} success + {tally.outcomes['broken']} broken streams)",
        ),
        Check(
            "every cooldown recovered",
            not cooldowns,
            "/admin/v1/cooldowns empty" if not cooldowns else json.dumps(cooldowns)[:300],
        ),
        Check("no unexpected exception in the log", unexpected == 0, f"{unexpected} found"),
        Check(
            "RSS flat",
            flat,
            f"{warm / MiB:.1f} MiB at {warm_at:.0f}s -> {last / MiB:.1f} MiB at the end "
            f"({(last - warm) / MiB:+.1f} MiB, {100 * (last - warm) / warm:+.1f} %)",
        ),
        Check(
            "invalid configs refused, last valid applied",
            reloads.refused_while_serving == reloads.written["invalid"]
            and status["applied_revision"] == reloads.last_valid_sha,
            f"{reloads.written['valid']} valid + {reloads.written['invalid']} invalid writes; "
            f"refused while serving {reloads.refused_while_serving}/"
            f"{reloads.written['invalid']}; reloads {reload_counts}",
        ),
    ]
    _print_summary(args, quiet, tally, upstreams, samples, checks)
    return checks


def _print_summary(
    args: argparse.Namespace,
    quiet: float,
    tally: Tally,
    upstreams: list[FaultUpstream],
    samples: list[tuple[float, int]],
    checks: list[Check],
) -> None:
    total = sum(tally.outcomes.values())
    injected: collections.Counter[Fault] = collections.Counter()
    for u in upstreams:
        injected.update(u.served)
    print(
        f"pooldaemon soak: {args.seconds:.0f} s (faults at {args.fault_rate:.0%} for "
        f"{args.seconds - quiet:.0f} s, then {quiet:.0f} s quiet), {args.clients} clients, "
        "3 providers, config rewritten every "
        f"{args.reload_every:.0f} s"
    )
    print(f"  requests       {total:7d}  ({total / args.seconds:.0f}/s)")
    for kind in sorted(tally.kinds):
        print(f"    {kind:<18}{tally.kinds[kind]:7d}")
    print(f"  success        {tally.outcomes['success']:7d}")
    print(f"  broken stream  {tally.outcomes['broken']:7d}  (ended by the API's error event)")
    errors = ", ".join(f"{s}: {n}" for s, n in sorted(tally.statuses.items()) if s != 200)
    print(f"  error answer   {tally.outcomes['error']:7d}  (API-shaped; {errors or 'none'})")
    print(f"  malformed      {tally.outcomes['malformed']:7d}")
    print(f"  transport      {tally.outcomes['transport']:7d}")
    print(f"  upstream attempts {sum(injected.values())}; faults injected:")
    print("    " + ", ".join(f"{f}: {n}" for f, n in injected.most_common() if f is not Fault.ok))
    rss = "  ".join(f"{t:.0f}s:{v / MiB:.1f}" for t, v in samples)
    print(f"  RSS (MiB)      {rss}")
    print("checks:")
    for check in checks:
        print(f"  [{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    default = float(os.environ.get("SOAK_SECONDS", "180"))
    parser.add_argument("--seconds", type=float, default=default, help="run time (SOAK_SECONDS)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--fault-rate", type=float, default=0.05, help="share of faulty answers")
    parser.add_argument("--reload-every", type=float, default=3.0, help="seconds between writes")
    parser.add_argument("--seed", type=int, default=None, help="random seed (repeatable runs)")
    parser.add_argument("--all-faults", action="store_true", help="also the known-bug faults")
    args = parser.parse_args()
    checks = asyncio.run(soak(args))
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
