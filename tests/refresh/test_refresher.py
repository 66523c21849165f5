"""The refresh jobs end to end in process: a real reconciler, proxy state, scheduler
and admin app, with fake catalogs and a fake pricing source on local HTTP servers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pooldaemon.jobs import Jobs
from pooldaemon.reconcile._reconciler import Reconciler, build_applied
from pooldaemon.refresh._refresher import Refresher, RefreshFailed
from pooldaemon.server import ProxyState
from pooldaemon.server._admin import AdminState, build_admin_app
from pooldaemon.server._metrics import build_registry
from pooldaemon.server._proxy import upstream_format
from pooldaemon.spec import load_spec_file
from tests.refresh.fake_catalogs import (
    KEY,
    CatalogFake,
    anthropic_models,
    catalog_app,
    openai_models,
)
from tests.server.fakes import serve

TOKEN = "refresher-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIXTURES = Path(__file__).parent / "fixtures"


@dataclass
class Pool:
    config: Path
    state_dir: Path
    proxy: ProxyState
    reconciler: Reconciler
    refresher: Refresher
    jobs: Jobs
    admin: str

    def view(self, provider: str) -> Any:
        return self.proxy.applied.snapshot.by_id[provider]

    async def get(self, path: str, **params: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{self.admin}{path}", params=params, headers=AUTH) as resp,
        ):
            return resp.status, await resp.json()

    async def post(self, path: str) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{self.admin}{path}", headers=AUTH) as resp,
        ):
            return resp.status, await resp.json()

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http, http.get(f"{self.admin}/metrics") as resp:
            return await resp.text()


Start = Callable[..., Any]


@pytest.fixture
async def pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[[str], Any]]:
    monkeypatch.setenv("CATALOG_KEY", KEY)
    async with AsyncExitStack() as stack:

        async def start(yaml: str, state_dir: Path | None = None) -> Pool:
            config = tmp_path / "pool.yaml"
            config.write_text(yaml)
            state = state_dir or tmp_path / "state"
            loaded = load_spec_file(config)
            refresher = Refresher(state)
            discovered = refresher.discovered(loaded.spec)
            proxy = ProxyState(build_applied(loaded, tmp_path, discovered))
            reconciler = Reconciler(config, state, proxy, loaded, discovered=discovered)
            reconciler.discover = refresher.discovered
            refresher.reconciler = reconciler
            jobs = Jobs(refresher, startup_delay=3600)
            jobs.sync(loaded.spec)
            await stack.enter_async_context(jobs)
            registry = build_registry(reconciler.status, proxy, jobs)
            app = build_admin_app(
                AdminState(reconciler, TOKEN, registry, jobs=jobs, refresher=refresher), proxy
            )
            url = await stack.enter_async_context(serve(app))
            return Pool(config, state, proxy, reconciler, refresher, jobs, url)

        yield start


@pytest.fixture
async def serving() -> AsyncIterator[Callable[[web.Application], Any]]:
    async with AsyncExitStack() as stack:

        async def run(app: web.Application) -> str:
            url: str = await stack.enter_async_context(serve(app))
            return url

        yield run


def _relay(url: str, *, extra: str = "") -> str:
    return f"""version: 1
providers:
  - id: relay
    base_url: {url}/v1
    location: cloud
    keys: [{{env: CATALOG_KEY}}]
    allow_models: ["gpt-4o*", "my-*", "text-embedding-*"]
{extra}"""


async def test_catalog_refresh_publishes_filtered_enriched_models_and_survives_failure(
    pool: Start, serving: Start
) -> None:
    fake = CatalogFake(
        "openai",
        openai_models("gpt-4o", "my-custom", "text-embedding-3-small", "o3-mini"),
        page_size=2,
    )
    url = await serving(catalog_app(fake))
    p = await pool(_relay(url))
    assert p.view("relay").wildcard  # nothing known before the first refresh
    summary = await p.refresher.refresh_catalogs()
    assert summary == "1/1 providers, 2 models"
    view = p.view("relay")
    assert not view.wildcard
    assert sorted(view.models) == ["gpt-4o", "my-custom"]  # allowlist and chat filter
    assert view.models["gpt-4o"].context_window == 128_000  # from the built-in table
    assert "gpt-4o" in p.proxy.applied.snapshot.index
    assert view.catalog_generation == 1
    # A failing refresh keeps the previous catalog and names the provider.
    fake.statuses = [500]
    with pytest.raises(RefreshFailed, match="relay") as failed:
        await p.refresher.refresh_catalogs()
    assert KEY not in str(failed.value)
    assert sorted(p.view("relay").models) == ["gpt-4o", "my-custom"]
    status, body = await p.get("/admin/v1/providers/relay")
    assert status == 200
    assert body["catalog"]["models"] == 2 and "500" in body["catalog"]["error"]
    assert KEY not in json.dumps(body)


async def test_a_provider_without_discovery_is_not_listed_and_keeps_its_declared_models(
    pool: Start, serving: Start
) -> None:
    listed = CatalogFake("openai", openai_models("gpt-4o", "my-custom"))
    bare = CatalogFake("openai", openai_models("gpt-4o"))
    listed_url, bare_url = await serving(catalog_app(listed)), await serving(catalog_app(bare))

    def yaml(discover: str) -> str:
        return _relay(listed_url) + (
            f"  - id: bare\n    base_url: {bare_url}/v1\n    location: cloud\n"
            f"    keys: [{{env: CATALOG_KEY}}]\n    discover: {discover}\n"
            "    models: [{id: my-relay-model}]\n"
        )

    p = await pool(yaml("true"))
    await p.refresher.refresh_catalogs()  # listed while discovery is on
    assert sorted(p.view("bare").models) == ["gpt-4o", "my-relay-model"]
    # The relay drops its model list: listing it now would fail every refresh.
    bare.statuses = [404] * 10
    p.config.write_text(yaml("false"))
    assert (await p.reconciler.reconcile("admin")).result == "success"
    assert sorted(p.view("bare").models) == ["my-relay-model"]  # the kept list is not used
    asked = len(bare.requests)
    status, done = await p.post("/admin/v1/refresh/catalog")
    assert status == 200 and done["result"] == "success"
    summary = done["jobs"][0]["last_summary"]
    assert summary == "1/1 providers, 2 models, 1 not listed (discover: false)"
    assert len(bare.requests) == asked  # never asked for its list again
    view = p.view("bare")
    assert sorted(view.models) == ["my-relay-model"] and not view.wildcard
    assert "my-relay-model" in p.proxy.applied.snapshot.index
    assert sorted(p.view("relay").models) == ["gpt-4o", "my-custom"]
    _, body = await p.get("/admin/v1/providers/bare")
    assert body["discover"] is False and body["catalog"] is None
    assert p.refresher.last_success(p.reconciler.applied.spec)["catalog"] > 0
    assert "bare" not in json.loads((p.state_dir / "catalogs.json").read_text())["providers"]


async def test_a_restart_with_the_upstream_down_still_routes(
    pool: Start, serving: Start, tmp_path: Path
) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o", "my-custom"))
    url = await serving(catalog_app(fake))
    first = await pool(_relay(url))
    await first.refresher.refresh_catalogs()
    catalogs = first.state_dir / "catalogs.json"
    assert catalogs.stat().st_mode & 0o777 == 0o600
    # Same state_dir, the upstream now gone: the kept catalog routes at once.
    dead = _relay("http://127.0.0.1:9")
    text = json.loads(catalogs.read_text())
    assert "relay" in json.dumps(text)
    # The kept catalog belongs to the base URL it came from: same URL, upstream down.
    fake.statuses = [503] * 10
    second = await pool(_relay(url), state_dir=first.state_dir)
    assert sorted(second.view("relay").models) == ["gpt-4o", "my-custom"]
    with pytest.raises(RefreshFailed):
        await second.refresher.refresh_catalogs()
    assert sorted(second.view("relay").models) == ["gpt-4o", "my-custom"]
    # A catalog learned at another base URL is not trusted for a new one.
    third = await pool(dead, state_dir=first.state_dir)
    assert third.view("relay").wildcard


async def test_format_detection_for_auto_is_used_by_the_proxy_and_remembered(
    pool: Start, serving: Start
) -> None:
    fake = CatalogFake("anthropic", anthropic_models("claude-sonnet-4-5", "claude-haiku-4-5"))
    url = await serving(catalog_app(fake))
    yaml = f"""version: 1
providers:
  - id: mystery
    format: auto
    base_url: {url}
    location: cloud
    keys: [{{env: CATALOG_KEY}}]
"""
    p = await pool(yaml)
    await p.refresher.refresh_catalogs()
    view = p.view("mystery")
    fmt = upstream_format(view)
    assert view.spec.format == "anthropic" and fmt is not None and fmt.name == "anthropic"
    assert sorted(view.models) == ["claude-haiku-4-5", "claude-sonnet-4-5"]
    _, body = await p.get("/admin/v1/providers/mystery")
    assert body["catalog"]["detected_format"] == "anthropic"
    assert body["catalog"]["format_source"] == "detected"
    probes = len(fake.requests)
    # Remembered: the next refresh lists at once, without probing formats again.
    await p.refresher.refresh_catalogs()
    assert fake.requests[probes:] == [("GET", "/v1/models?limit=1000")]
    again = await pool(yaml, state_dir=p.state_dir)
    assert again.view("mystery").spec.format == "anthropic"


async def test_alternate_base_url_after_a_401_is_remembered(pool: Start, serving: Start) -> None:
    primary = CatalogFake("openai", openai_models("gpt-4o"), key="some-other-key-entirely")
    alternate = CatalogFake("openai", openai_models("gpt-4o", "my-alt"))
    primary_url = await serving(catalog_app(primary))
    alternate_url = await serving(catalog_app(alternate))
    extra = f"    alternate_base_urls: [{alternate_url}/v1]\n"
    p = await pool(_relay(primary_url, extra=extra))
    await p.refresher.refresh_catalogs()
    view = p.view("relay")
    assert view.spec.base_url == f"{alternate_url}/v1"  # the proxy now sends there
    assert sorted(view.models) == ["gpt-4o", "my-alt"]
    again = await pool(_relay(primary_url, extra=extra), state_dir=p.state_dir)
    assert again.view("relay").spec.base_url == f"{alternate_url}/v1"


async def test_probing_marks_a_model_unavailable(pool: Start, serving: Start) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o", "my-ghost"))
    fake.chat["my-ghost"] = (
        404,
        {"error": {"message": "The model `my-ghost` does not exist", "code": "model_not_found"}},
    )
    url = await serving(catalog_app(fake))
    p = await pool(_relay(url) + "catalog: {probe: true}\n")
    await p.refresher.refresh_catalogs()
    assert sorted(p.view("relay").models) == ["gpt-4o"]
    assert sorted(fake.probed) == ["gpt-4o", "my-ghost"]
    _, body = await p.get("/admin/v1/providers/relay")
    assert body["catalog"]["unavailable"] == ["my-ghost"]
    await p.refresher.refresh_catalogs()
    assert sorted(fake.probed) == ["gpt-4o", "my-ghost"]  # known models are not re-probed


def _pricing_app(seen: list[dict[str, str]], doc: dict[str, Any]) -> web.Application:
    async def prices(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        raw = json.dumps(doc).encode()
        etag = '"' + hashlib.sha256(raw).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=raw, content_type="application/json", headers={"ETag": etag})

    app = web.Application()
    app.router.add_get("/prices.json", prices)
    return app


async def test_pricing_precedence_through_the_admin_api(pool: Start, serving: Start) -> None:
    doc = json.loads((FIXTURES / "litellm_sample.json").read_text())
    seen: list[dict[str, str]] = []
    url = await serving(_pricing_app(seen, doc))
    yaml = f"""version: 1
pricing:
  models: [{{match: gpt-4o-mini, input: 9, output: 99}}]
  sources: [{{url: "{url}/prices.json", format: litellm}}]
providers:
  - id: relay
    base_url: http://127.0.0.1:9/v1
    location: cloud
"""
    p = await pool(yaml)
    _, before = await p.get("/admin/v1/pricing", model="gpt-4o", provider="relay")
    assert before["source"] == "builtin"
    done = await p.post("/admin/v1/refresh/pricing")
    assert done[0] == 200 and done[1]["result"] == "success"
    _, remote = await p.get("/admin/v1/pricing", model="gpt-4o", provider="relay")
    assert remote["source"] == "remote" and remote["price"]["input"] == pytest.approx(2.5)
    _, override = await p.get("/admin/v1/pricing", model="gpt-4o-mini", provider="relay")
    assert override["source"] == "model_exact" and override["price"]["input"] == 9
    _, builtin = await p.get("/admin/v1/pricing", model="claude-sonnet-4-5", provider="relay")
    assert builtin["source"] == "builtin"  # not in the sample: the built-in table
    _, listing = await p.get("/admin/v1/pricing")
    (source,) = listing["sources"]
    assert source["status"] == "fetched" and source["models"] > 10
    assert source["fetched_at"] is not None and source["error"] is None
    await p.post("/admin/v1/refresh/pricing")
    assert "If-None-Match" in seen[-1]
    _, listing = await p.get("/admin/v1/pricing")
    assert listing["sources"][0]["status"] == "not_modified"
    # The records of requests priced by it say which source priced them.
    assert p.proxy.applied.snapshot.quote("relay", "gpt-4o").label == "remote:litellm"


async def test_jobs_and_metrics_reflect_success_failure_and_manual_trigger(
    pool: Start, serving: Start
) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"))
    url = await serving(catalog_app(fake))
    p = await pool(_relay(url))
    status, body = await p.get("/admin/v1/jobs")
    assert status == 200
    jobs = {j["id"]: j for j in body["jobs"]}
    assert sorted(jobs) == ["catalog", "retention"]
    assert jobs["catalog"]["last_result"] is None and jobs["catalog"]["next_run"] is not None
    status, done = await p.post("/admin/v1/refresh/catalog")
    assert status == 200 and done["result"] == "success"
    (job,) = done["jobs"]
    assert job["last_trigger"] == "manual" and job["last_summary"] == "1/1 providers, 1 models"
    fake.statuses = [502]
    status, done = await p.post("/admin/v1/refresh/catalog")
    assert status == 200 and done["result"] == "failure"
    assert "relay" in done["jobs"][0]["last_error"]
    _, body = await p.get("/admin/v1/jobs")
    catalog = next(j for j in body["jobs"] if j["id"] == "catalog")
    assert catalog["last_result"] == "failure" and catalog["last_success"] is not None
    text = await p.metrics()
    assert 'pooldaemon_job_runs_total{job="catalog",result="success"} 1.0' in text
    assert 'pooldaemon_job_runs_total{job="catalog",result="failure"} 1.0' in text
    assert 'pooldaemon_job_last_success_timestamp_seconds{job="catalog"}' in text
    assert 'pooldaemon_job_interval_seconds{job="catalog"} 3600.0' in text
    status, err = await p.post("/admin/v1/refresh/everything")
    assert status == 404 and "catalog, pricing" in err["error"]["message"]
    status, none = await p.post("/admin/v1/refresh/pricing")
    assert (status, none["result"], none["jobs"]) == (200, "none", [])


async def test_a_reconcile_rebuilds_jobs_and_keeps_discoveries(pool: Start, serving: Start) -> None:
    fake = CatalogFake("openai", openai_models("gpt-4o"))
    url = await serving(catalog_app(fake))
    p = await pool(_relay(url))
    await p.refresher.refresh_catalogs()
    p.reconciler.on_applied.append(lambda spec, plan: p.jobs.sync(spec))
    p.config.write_text(_relay(url) + "catalog: {refresh: 10m}\naliases: {fast: [gpt-4o]}\n")
    outcome = await p.reconciler.reconcile("admin")
    assert outcome.result == "success"
    assert sorted(p.view("relay").models) == ["gpt-4o"]  # the catalog outlives the apply
    catalog = p.jobs.status("catalog")
    assert catalog is not None and catalog.definition.interval == 600.0


async def test_retention_prunes_old_usage(tmp_path: Path, pool: Start) -> None:
    from pooldaemon.pool import Usage
    from pooldaemon.usage import UsageRecord, UsageStore

    p = await pool("version: 1\nusage: {retention: 1d}\n")
    with UsageStore(tmp_path / "usage.sqlite3") as store:
        p.refresher.store = store
        for ts in (1_000.0, p.refresher._wall() - 10):
            store.add(
                UsageRecord(
                    ts,
                    "r",
                    "x",
                    "m",
                    "",
                    None,
                    Usage(input=1),
                    1.0,
                    None,
                    "success",
                    0.0,
                    "default",
                )
            )
        store.flush()
        assert await p.refresher.prune_usage() == "pruned 1 usage records"
