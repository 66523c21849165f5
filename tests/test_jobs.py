from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

import pytest

from pooldaemon.jobs import (
    STARTUP_DELAY,
    JobDef,
    Jobs,
    first_run,
    job_plan,
    pricing_job_ids,
)
from pooldaemon.spec import PoolSpec, load_spec_bytes


def _spec(text: str = "") -> PoolSpec:
    return load_spec_bytes(f"version: 1\n{text}".encode(), "test.yaml").spec


SOURCES = """
pricing:
  sources:
    - {url: "https://a.example/prices.json", format: litellm, refresh: 6h}
    - {url: "https://b.example/api.json", format: models_dev}
catalog: {refresh: 30m}
"""


def test_plan_has_stable_ids_and_intervals_from_the_spec() -> None:
    plan = job_plan(_spec(SOURCES))
    assert [(j.id, j.kind, j.interval, j.target) for j in plan] == [
        ("catalog", "catalog", 1800.0, ""),
        ("pricing-1", "pricing", 6 * 3600.0, "https://a.example/prices.json"),
        ("pricing-2", "pricing", 12 * 3600.0, "https://b.example/api.json"),
        ("retention", "retention", 24 * 3600.0, ""),
    ]
    assert job_plan(_spec(SOURCES)) == plan  # pure


def test_a_single_pricing_source_is_simply_pricing() -> None:
    assert pricing_job_ids(("https://x.example/p.json",)) == {"https://x.example/p.json": "pricing"}
    assert [j.id for j in job_plan(_spec())] == ["catalog", "retention"]


def test_jitter_and_misfire_grace_scale_with_the_interval() -> None:
    hourly = JobDef("catalog", "catalog", 3600.0)
    assert hourly.jitter == 180.0
    assert hourly.misfire_grace == 1800
    assert JobDef("x", "catalog", 30 * 86400.0).jitter == 300.0  # capped
    assert JobDef("x", "catalog", 10.0).misfire_grace == 60


def test_first_run_waits_for_the_last_success_to_be_due() -> None:
    now = 1_000_000.0
    assert first_run(now, None, 3600) == now + STARTUP_DELAY
    assert first_run(now, now - 600, 3600) == now + 3000  # fresh data: no fetch at start
    assert first_run(now, now - 7200, 3600) == now + STARTUP_DELAY  # overdue: soon
    assert first_run(now, None, 3600, delay=0.5) == now + 0.5


async def test_scheduled_runs_are_counted_and_failures_kept() -> None:
    runs: list[str] = []

    async def runner(job: JobDef) -> str:
        runs.append(job.id)
        if job.kind == "pricing":
            raise RuntimeError("source https://a.example answered 500")
        return f"ran {job.id}"

    jobs = Jobs(runner, startup_delay=0.05)
    jobs.sync(_spec(SOURCES))
    async with jobs:
        for _ in range(100):
            if {"catalog", "pricing-1", "retention"} <= set(runs):
                break
            await asyncio.sleep(0.02)
    catalog, pricing = jobs.status("catalog"), jobs.status("pricing-1")
    assert catalog is not None and pricing is not None
    assert (catalog.last_result, catalog.last_summary, catalog.last_trigger) == (
        "success",
        "ran catalog",
        "schedule",
    )
    assert catalog.last_success is not None and catalog.results == {"success": 1}
    assert pricing.last_result == "failure"
    assert pricing.last_error == "source https://a.example answered 500"
    assert pricing.last_success is None
    body = pricing.to_json()
    assert body["last_error"] == pricing.last_error
    # times are unix seconds, as everywhere in the admin API
    assert isinstance(body["next_run"], float) and body["next_run"] == pricing.next_run
    assert isinstance(body["last_started"], float) and body["last_success"] is None
    assert catalog.to_json()["last_success"] == catalog.last_success


async def test_manual_trigger_runs_every_job_of_a_kind_and_waits() -> None:
    gate = asyncio.Event()
    seen: list[str] = []

    async def runner(job: JobDef) -> str:
        seen.append(job.id)
        await gate.wait()
        return "ok"

    jobs = Jobs(runner, startup_delay=3600)
    jobs.sync(_spec(SOURCES))
    async with jobs:
        task = asyncio.create_task(jobs.trigger("pricing"))
        await asyncio.sleep(0.05)
        assert sorted(seen) == ["pricing-1", "pricing-2"]
        assert all(s.running for s in jobs if s.definition.kind == "pricing")
        gate.set()
        done = await task
    assert [(s.definition.id, s.last_result, s.last_trigger) for s in done] == [
        ("pricing-1", "success", "manual"),
        ("pricing-2", "success", "manual"),
    ]


async def test_one_run_at_a_time_per_job() -> None:
    active = peak = 0

    async def runner(job: JobDef) -> str:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.02)
        active -= 1
        return "ok"

    jobs = Jobs(runner, startup_delay=3600)
    jobs.sync(_spec())
    async with jobs:
        await asyncio.gather(*(jobs.run("catalog", "manual") for _ in range(4)))
    status = jobs.status("catalog")
    assert peak == 1 and status is not None and status.runs == 4


async def test_sync_replaces_changed_jobs_and_removes_dropped_ones() -> None:
    async def runner(job: JobDef) -> str:
        return "ok"

    jobs = Jobs(runner, startup_delay=3600)
    jobs.sync(_spec(SOURCES))
    async with jobs:
        await jobs.run("catalog", "manual")
        jobs.sync(_spec(SOURCES))  # unchanged: history kept
        catalog = jobs.status("catalog")
        assert catalog is not None and catalog.runs == 1
        jobs.sync(_spec("catalog: {refresh: 5m}\n"))
        assert sorted(s.definition.id for s in jobs) == ["catalog", "retention"]
        catalog = jobs.status("catalog")
        assert catalog is not None and catalog.definition.interval == 300.0
        assert catalog.runs == 1  # same id: its history stays
        assert catalog.next_run is not None


async def test_remembered_success_delays_the_first_run() -> None:
    async def runner(job: JobDef) -> str:
        return "ok"

    jobs = Jobs(runner, last_success={"catalog": 1_000.0}, wall=lambda: 1_600.0, startup_delay=1)
    jobs.sync(_spec())
    async with jobs:
        catalog = jobs.status("catalog")
        assert catalog is not None and catalog.next_run == pytest.approx(1_000.0 + 3600)


async def test_run_soon_brings_a_kind_forward() -> None:
    ran = asyncio.Event()

    async def runner(job: JobDef) -> str:
        if job.kind == "catalog":
            ran.set()
        return "ok"

    jobs = Jobs(runner, startup_delay=3600)
    jobs.sync(_spec())
    async with jobs:
        jobs.run_soon("catalog")
        await asyncio.wait_for(ran.wait(), 5)


async def test_each_run_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def runner(job: JobDef) -> str:
        raise ValueError("bad sk-secret-value-1234567890 in answer")

    jobs = Jobs(runner, secrets=lambda: ["sk-secret-value-1234567890"], startup_delay=3600)
    jobs.sync(_spec())
    with caplog.at_level(logging.INFO, logger="pooldaemon.jobs"):
        async with jobs:
            await jobs.run("retention", "manual")
    assert "job=retention trigger=manual result=failure" in caplog.text
    assert "sk-secret-value-1234567890" not in caplog.text
    status = jobs.status("retention")
    assert status is not None and "sk-secret-value-1234567890" not in str(status.last_error)


def test_durations_in_the_plan_come_from_timedelta() -> None:
    spec = _spec("catalog: {refresh: 1h30m}\n")
    assert spec.catalog.refresh == timedelta(minutes=90)
    assert job_plan(spec)[0].interval == 5400.0
