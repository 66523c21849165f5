"""monitoring/: the alert rules and their unit tests pass promtool, the dashboard is
importable and queries only what the daemon exposes, and a real scrape of a daemon
that served traffic, cooled a provider and refused a config passes
``promtool check metrics``.

promtool comes with Debian's ``prometheus`` package; ``make test`` installs it when
it is missing (as root with apt-get). Without it the promtool tests skip.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
import pytest_asyncio
from aiohttp import web
from ruamel.yaml import YAML

from tests.server.fakes import Fake, Fault, fake_app, serve
from tests.test_daemon import ADMIN_TOKEN, daemon

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "monitoring"
RULES = sorted((MONITORING / "rules").glob("*.yml"))
RULE_TESTS = sorted((MONITORING / "tests").glob("*.yml"))
DASHBOARD = MONITORING / "grafana" / "pooldaemon.json"
KEY = "sk-monitoring-test-key-0123456789"

# What issue #6 asks of the rules and the dashboard.
ALERTS = {
    "PooldaemonConfigReloadFailing",  # config reload failing for 10 m
    "PooldaemonProviderCoolingDown",  # a provider cooling for over 15 m
    "PooldaemonModelUnavailable",  # every provider of a routable model cooling
    "PooldaemonHighErrorRatio",  # error ratio over 10 % for 10 m
    "PooldaemonSlowTimeToFirstByte",  # p95 time to first byte over a threshold
    "PooldaemonDailyCostHigh",  # daily cost over a configurable threshold
    "PooldaemonJobNotSucceeding",  # a refresh job not succeeding for 3 intervals
}
PANELS = {
    "Requests by provider",
    "Errors by provider",
    "Request latency p50 / p95 / p99",
    "Time to first byte",
    "Overhead p50 / p95 / p99",
    "Cooldowns over time",
    "Failovers",
    "Tokens per provider per day",
    "Cost per provider per day",
    "Reload status",
    "Job freshness",
}
DATASOURCE = "${datasource}"
# Dashboard macros, replaced so promtool can parse the queries.
MACROS = {"$__rate_interval": "5m", "$__interval": "1d", "$instance": ".+"}
METRIC = re.compile(r"(?<![\w:])pooldaemon_[a-z0-9_]+")


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip(
            "promtool is not on PATH: `make test` installs it (Debian package prometheus) "
            "when run as root with apt-get; or `apt-get install prometheus`"
        )
    return found


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def _panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", ())  # a collapsed row keeps its panels inside


def _dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in _panels(dashboard) for t in p.get("targets", ())]


# -- rules ----------------------------------------------------------------------


def test_rules_pass_promtool_check() -> None:
    done = _run("check", "rules", *map(str, RULES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_pass_their_unit_tests() -> None:
    done = _run("test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_silent() -> None:
    alerts = {
        rule["alert"]
        for path in RULES
        for group in _yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert alerts == ALERTS
    fires: set[str] = set()
    silent: set[str] = set()
    for path in RULE_TESTS:
        for case in _yaml(path)["tests"]:
            for check in case.get("alert_rule_test", ()):
                (fires if check.get("exp_alerts") else silent).add(check["alertname"])
    assert fires == ALERTS, ALERTS - fires
    assert silent == ALERTS, ALERTS - silent


# -- dashboard ------------------------------------------------------------------


def test_dashboard_is_importable_with_a_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["schemaVersion"] >= 39
    assert dashboard["uid"] == "pooldaemon"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["instance"]["datasource"]["uid"] == DATASOURCE
    panels = [p for p in _panels(dashboard) if p["type"] != "row"]
    assert {p["title"] for p in panels} >= PANELS
    assert len({p["id"] for p in _panels(dashboard)}) == len(list(_panels(dashboard)))
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE, panel["title"]


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """promtool parses every query, macros replaced, as a recording rule."""
    rules = []
    for i, expr in enumerate(_dashboard_exprs(json.loads(DASHBOARD.read_text()))):
        for macro, value in MACROS.items():
            expr = expr.replace(macro, value)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    path = tmp_path / "dashboard.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = _run("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr


# -- a real scrape --------------------------------------------------------------


def _listing_app(fake: Fake) -> web.Application:
    """The fake upstream, with the model listing the catalog job asks for."""

    async def models(request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "gpt-4o", "object": "model"}]})

    app = fake_app(fake)
    app.router.add_get("/v1/models", models)
    return app


def _config(url_a: str, url_b: str, extra: str = "") -> str:
    providers = "".join(
        f"  - id: {pid}\n    base_url: {url}/v1\n    location: cloud\n    priority: {prio}\n"
        "    keys: [{env: MONITORING_TEST_KEY}]\n    models: [{id: gpt-4o}]\n"
        for pid, url, prio in (("a", url_a, 2), ("b", url_b, 1))
    )
    return f"version: 1\ncooldown: {{failure_threshold: 1}}\nproviders:\n{providers}{extra}"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scrape(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """``GET /metrics`` of a daemon after a proxied request, a provider put in cooldown
    by an upstream failure (with a failover), a request for an unknown model and a
    refused config reload."""
    tmp = tmp_path_factory.mktemp("monitoring")
    fake_a, fake_b = Fake("a"), Fake("b")
    fake_a.faults.append(Fault(status=500))
    async with serve(_listing_app(fake_a)) as url_a, serve(_listing_app(fake_b)) as url_b:
        config = tmp / "pool.yaml"
        config.write_text(_config(url_a, url_b))
        async with daemon(config, tmp / "state", {"MONITORING_TEST_KEY": KEY}) as d:
            async with openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{d.port}/v1", api_key="x", max_retries=0
            ) as client:
                hi = [{"role": "user", "content": "hi"}]
                answer = await client.chat.completions.create(model="gpt-4o", messages=hi)
                assert answer.choices[0].message.content == "Hello from the fake"
                with pytest.raises(openai.NotFoundError):
                    await client.chat.completions.create(model="no-such-model", messages=hi)
            config.write_text(_config(url_a, url_b, "routing: {mode: clod}\n"))
            auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            async with aiohttp.ClientSession(headers=auth) as http:
                async with http.post(f"{d.admin}/admin/v1/reload") as resp:
                    assert (await resp.json())["result"] == "failure"
                async with http.get(f"{d.admin}/metrics") as resp:
                    assert resp.status == 200
                    assert resp.content_type == "text/plain"
                    yield await resp.text()


def _names(scrape: str) -> set[str]:
    """Every series name a query may use: the samples, and the families without any."""
    names = set()
    for line in scrape.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            suffixes = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
            names.update(name + s for s in suffixes.get(kind, ("",)))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_real_scrape_passes_promtool_check_metrics(scrape: str) -> None:
    # the scrape shows what happened: traffic, a failover, a cooldown, a refused reload
    assert 'pooldaemon_requests_total{model="gpt-4o",outcome="success",provider="b"} 1.0' in scrape
    assert 'pooldaemon_failovers_total{provider="a",reason="server"} 1.0' in scrape
    assert 'pooldaemon_provider_cooldown{provider="a"} 1.0' in scrape
    assert "pooldaemon_config_last_reload_successful 0.0" in scrape
    assert 'pooldaemon_config_reloads_total{result="failure"}' in scrape
    done = _run("check", "metrics", stdin=scrape)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


def test_rules_and_dashboard_use_only_exposed_metrics(scrape: str) -> None:
    exposed = _names(scrape)
    used: dict[str, set[str]] = {}
    for path in RULES:
        for group in _yaml(path)["groups"]:
            for rule in group["rules"]:
                used.setdefault(path.name, set()).update(METRIC.findall(rule["expr"]))
    dashboard = json.loads(DASHBOARD.read_text())
    queries = _dashboard_exprs(dashboard)
    queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    used[DASHBOARD.name] = {name for q in queries for name in METRIC.findall(q)}
    missing = {where: sorted(names - exposed) for where, names in used.items() if names - exposed}
    assert not missing, f"not exposed by /metrics: {missing}"
