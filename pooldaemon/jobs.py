"""APScheduler jobs: catalog refresh, pricing refresh, usage retention.

Which jobs exist and how often they run is a pure function of the spec
(:func:`job_plan`); :class:`Jobs` is the shell that keeps an
``AsyncIOScheduler`` in line with that plan on every reconcile (stable ids,
``replace_existing``), runs each job at most once at a time, and keeps what
happened (last result, last error, last success) for ``/admin/v1/jobs`` and
the metrics. A manual trigger (``POST /admin/v1/refresh/{kind}``) runs the
same code and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from pooldaemon.redaction import redact
from pooldaemon.spec import PoolSpec

__all__ = ["JobDef", "JobRunner", "JobStatus", "Jobs", "job_plan", "pricing_job_ids"]

_log = logging.getLogger("pooldaemon.jobs")
JobKind = Literal["catalog", "pricing", "retention"]
KINDS: tuple[JobKind, ...] = ("catalog", "pricing", "retention")
RETENTION_INTERVAL = 24 * 3600.0
STARTUP_DELAY = 2.0  # the first refresh waits for the listeners, not for the interval
_MAX_JITTER = 300.0


@dataclass(frozen=True, slots=True)
class JobDef:
    """One job as the spec asks for it: a stable id, what it does, how often.

    ``target`` says what the run covers: the url of a pricing source, else "".
    """

    id: str
    kind: JobKind
    interval: float
    target: str = ""

    @property
    def jitter(self) -> float:
        """Up to 5 % of the interval (at most 5 min), so many daemons do not fetch
        in step."""
        return min(self.interval * 0.05, _MAX_JITTER)

    @property
    def misfire_grace(self) -> int:
        """A run missed (suspend, busy loop) still happens if at most half an interval
        late; coalescing folds several missed runs into one."""
        return max(60, int(self.interval / 2))


def pricing_job_ids(urls: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The job id of each pricing source url: ``pricing`` for a single source,
    ``pricing-1``, ``pricing-2``... in the spec's order otherwise (stable while the
    list keeps its order; no url in ids or metric labels)."""
    if len(urls) == 1:
        return {urls[0]: "pricing"}
    return {url: f"pricing-{i}" for i, url in enumerate(urls, 1)}


def job_plan(spec: PoolSpec) -> tuple[JobDef, ...]:
    """The jobs ``spec`` asks for. Pure: the same spec gives the same jobs."""
    jobs = [JobDef("catalog", "catalog", spec.catalog.refresh.total_seconds())]
    sources = spec.pricing.sources
    ids = pricing_job_ids(tuple(s.url for s in sources))
    jobs.extend(JobDef(ids[s.url], "pricing", s.refresh.total_seconds(), s.url) for s in sources)
    jobs.append(JobDef("retention", "retention", RETENTION_INTERVAL))
    return tuple(jobs)


def first_run(
    now: float, last_success: float | None, interval: float, delay: float = STARTUP_DELAY
) -> float:
    """When a job should first run after start: when its last success is due again,
    but never earlier than ``delay`` from now."""
    due = now if last_success is None else last_success + interval
    return max(due, now + delay)


@dataclass(slots=True)
class JobStatus:
    """What happened to one job; mutated only by :class:`Jobs`."""

    definition: JobDef
    running: bool = False
    last_started: float | None = None
    last_finished: float | None = None
    last_duration: float | None = None
    last_result: str | None = None  # success | failure
    last_error: str | None = None
    last_summary: str | None = None
    last_success: float | None = None
    last_trigger: str | None = None  # schedule | manual
    next_run: float | None = None
    results: dict[str, int] = field(default_factory=dict)  # result -> runs

    @property
    def job_id(self) -> str:
        return self.definition.id

    @property
    def interval(self) -> float:
        return self.definition.interval

    @property
    def runs(self) -> int:
        return sum(self.results.values())

    def count(self, result: str) -> None:
        self.results[result] = self.results.get(result, 0) + 1

    def to_json(self) -> dict[str, object]:
        """The job for ``/admin/v1/jobs``; times are unix seconds (null: not yet)."""
        d = self.definition
        return {
            "id": d.id,
            "kind": d.kind,
            "interval_seconds": d.interval,
            "target": d.target or None,
            "running": self.running,
            "runs": self.runs,
            "next_run": self.next_run,
            "last_started": self.last_started,
            "last_duration_seconds": self.last_duration,
            "last_result": self.last_result,
            "last_error": self.last_error,
            "last_summary": self.last_summary,
            "last_trigger": self.last_trigger,
            "last_success": self.last_success,
        }


JobRunner = Callable[[JobDef], Awaitable[str]]
"""Runs one job; returns a one-line summary, raises (any Exception) when it failed."""


class Jobs:
    """The scheduler shell. Use as an async context manager around the serving loop."""

    def __init__(
        self,
        runner: JobRunner,
        *,
        last_success: Mapping[str, float] | None = None,
        secrets: Callable[[], Iterable[str]] = tuple,
        wall: Callable[[], float] = time.time,
        startup_delay: float = STARTUP_DELAY,
    ) -> None:
        self._runner = runner
        self._delay = startup_delay
        self._secrets = secrets  # errors are redacted with the keys applied at the time
        self._wall = wall
        self._remembered = dict(last_success or {})
        self._status: dict[str, JobStatus] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._scheduler: AsyncIOScheduler | None = None

    async def __aenter__(self) -> Jobs:
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._scheduler.start()
        for status in self._status.values():
            self._schedule(status.definition)
        return self

    async def __aexit__(self, *exc: object) -> None:
        scheduler, self._scheduler = self._scheduler, None
        if scheduler is not None and scheduler.running:
            scheduler.shutdown(wait=False)
        for task in list(self._running):
            task.cancel()
        for task in list(self._running):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def __iter__(self) -> Iterator[JobStatus]:
        return iter(list(self._status.values()))

    def status(self, job_id: str) -> JobStatus | None:
        return self._status.get(job_id)

    def sync(self, spec: PoolSpec) -> None:
        """Make the scheduled jobs those of ``spec``: add, replace, remove by id.
        A job whose definition did not change keeps its schedule and history."""
        wanted = {d.id: d for d in job_plan(spec)}
        for job_id in [j for j in self._status if j not in wanted]:
            del self._status[job_id]
            if self._scheduler is not None and self._scheduler.get_job(job_id):
                self._scheduler.remove_job(job_id)
        for job_id, definition in wanted.items():
            status = self._status.get(job_id)
            if status is not None and status.definition == definition:
                continue
            if status is None:
                status = JobStatus(definition, last_success=self._remembered.get(job_id))
                self._status[job_id] = status
            else:
                status.definition = definition
            self._locks.setdefault(job_id, asyncio.Lock())
            if self._scheduler is not None:
                self._schedule(definition)

    def _schedule(self, definition: JobDef) -> None:
        assert self._scheduler is not None
        status = self._status[definition.id]
        start = first_run(self._wall(), status.last_success, definition.interval, self._delay)
        job = self._scheduler.add_job(
            self._scheduled,
            trigger=IntervalTrigger(
                seconds=definition.interval, jitter=definition.jitter, timezone=UTC
            ),
            args=(definition.id,),
            id=definition.id,
            name=definition.id,
            replace_existing=True,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=definition.misfire_grace,
            next_run_time=datetime.fromtimestamp(start, UTC),
        )
        status.next_run = _timestamp(job.next_run_time)

    async def _scheduled(self, job_id: str) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            await self.run(job_id, "schedule")
        finally:
            self._running.discard(task)

    def run_soon(self, kind: JobKind) -> None:
        """Bring the next run of every job of ``kind`` forward to now (after a reconcile
        added providers or sources, say)."""
        if self._scheduler is None:
            return
        now = datetime.fromtimestamp(self._wall() + 0.1, UTC)
        for status in self._status.values():
            if status.definition.kind == kind and self._scheduler.get_job(status.definition.id):
                job = self._scheduler.modify_job(status.definition.id, next_run_time=now)
                status.next_run = _timestamp(job.next_run_time)

    async def trigger(self, kind: JobKind) -> list[JobStatus]:
        """Run every job of ``kind`` now and wait for them (``/admin/v1/refresh``)."""
        ids = [s.definition.id for s in self._status.values() if s.definition.kind == kind]
        await asyncio.gather(*(self.run(job_id, "manual") for job_id in ids))
        return [self._status[i] for i in ids if i in self._status]

    async def run(self, job_id: str, trigger: str) -> JobStatus | None:
        """Run one job now (one run at a time per job: a second caller waits)."""
        status = self._status.get(job_id)
        if status is None:
            return None
        async with self._locks[job_id]:
            definition = status.definition
            status.running, status.last_trigger = True, trigger
            status.last_started = started = self._wall()
            t0 = time.perf_counter()
            try:
                summary = await self._runner(definition)
            except asyncio.CancelledError:
                status.running = False
                raise
            except Exception as exc:  # a job's failure must never stop the daemon
                status.last_result, status.last_error = (
                    "failure",
                    redact(str(exc) or repr(exc), self._secrets()),
                )
                status.last_summary = None
                _log.warning(
                    "job=%s trigger=%s result=failure duration_ms=%.0f error=%s",
                    job_id,
                    trigger,
                    (time.perf_counter() - t0) * 1000,
                    status.last_error,
                )
            else:
                status.last_result, status.last_error = "success", None
                status.last_summary, status.last_success = summary, started
                _log.info(
                    "job=%s trigger=%s result=success duration_ms=%.0f %s",
                    job_id,
                    trigger,
                    (time.perf_counter() - t0) * 1000,
                    summary,
                )
            status.running = False
            status.count(status.last_result)
            status.last_finished = self._wall()
            status.last_duration = time.perf_counter() - t0
            self._refresh_next_run(status)
            return status

    def _refresh_next_run(self, status: JobStatus) -> None:
        if self._scheduler is None:
            return
        job = self._scheduler.get_job(status.definition.id)
        status.next_run = _timestamp(job.next_run_time) if job is not None else None


def _timestamp(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()
