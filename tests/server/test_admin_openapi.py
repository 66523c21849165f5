"""``schemas/admin-openapi.yaml`` against the admin app: the document is well formed
OpenAPI 3.1, it lists exactly the app's routes, and a running admin app answers every
documented route (and error) as its schema says, headers included."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import re
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from multidict import CIMultiDictProxy

import pooldaemon
from pooldaemon.jobs import Jobs
from pooldaemon.pool import Failure, FailureClass, Snapshot
from pooldaemon.reconcile._reconciler import Reconciler
from pooldaemon.refresh import StoredCatalog, StoredEndpoint
from pooldaemon.refresh._price_fetch import SourceState
from pooldaemon.refresh._refresher import Refresher
from pooldaemon.server import Applied, ProxyState
from pooldaemon.server._admin import AdminState, build_admin_app
from pooldaemon.server._metrics import build_registry
from pooldaemon.spec import PoolSpec, load_spec_file
from pooldaemon.spec._loader import MAX_SPEC_BYTES
from pooldaemon.usage import UsageStore
from tests.server.conftest import CLIENT_KEY, CLIENT_SHA, Gateway, GatewayFactory
from tests.server.fakes import serve
from tests.server.openapi import (
    HTTP_METHODS,
    deref,
    load_document,
    operations,
    validate_response,
    validate_schema,
)

TOKEN = "admin-openapi-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LITELLM_SAMPLE = Path(__file__).parents[1] / "refresh" / "fixtures" / "litellm_sample.json"

# -- 1. the document ---------------------------------------------------------------------

_TOP = {"openapi", "info", "jsonSchemaDialect", "servers", "paths", "webhooks", "components",
        "security", "tags", "externalDocs"}  # fmt: skip
_PATH_ITEM = {"$ref", "summary", "description", "servers", "parameters", *HTTP_METHODS}
_OPERATION = {"tags", "summary", "description", "externalDocs", "operationId", "parameters",
              "requestBody", "responses", "callbacks", "deprecated", "security",
              "servers"}  # fmt: skip
_COMPONENTS = {"schemas", "responses", "parameters", "examples", "requestBodies", "headers",
               "securitySchemes", "links", "callbacks", "pathItems"}  # fmt: skip
_RESPONSE = {"description", "headers", "content", "links"}
_HEADER = {"description", "required", "deprecated", "schema", "example", "examples", "style",
           "explode", "content"}  # fmt: skip
_PARAMETER = {"name", "in", "description", "required", "deprecated", "allowEmptyValue", "style",
              "explode", "allowReserved", "schema", "example", "examples", "content"}  # fmt: skip
_MEDIA = {"schema", "example", "examples", "encoding"}
_STATUS = re.compile(r"^([1-5](\d\d|XX)|default)$")
_MEDIA_TYPE = re.compile(r"^[a-z]+/[a-z0-9.+*-]+$")


def _fields(node: dict[str, Any], allowed: set[str], where: str) -> list[str]:
    extra = sorted(k for k in node if k not in allowed and not str(k).startswith("x-"))
    return [f"{where}: unknown field(s) {extra}"] if extra else []


def _walk(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{where}/{i}")


def _schema_problems(schema: Any, where: str) -> list[str]:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [f"{where}: not a JSON Schema 2020-12: {exc.message}"]
    return []


def _object_problems(doc: dict[str, Any]) -> list[str]:
    """Objects in schemas are closed (the admin API always sends every key, null for none)."""
    problems = []
    for where, node in _walk(doc["components"]["schemas"], "#/components/schemas"):
        if node.get("type") != "object":
            continue
        props = set(node.get("properties", {}))
        if node.get("additionalProperties") is not False:
            problems.append(f"{where}: an object schema without additionalProperties: false")
        if set(node.get("required", [])) != props:
            problems.append(f"{where}: required {node.get('required')} is not every property")
    return problems


def _parameter_problems(doc: dict[str, Any], path: str, params: list[Any], where: str) -> list[str]:
    problems = []
    seen: set[tuple[str, str]] = set()
    for raw in params:
        param, _ = deref(doc, raw)
        problems += _fields(param, _PARAMETER, f"{where} parameter")
        key = (param.get("name"), param.get("in"))
        if key in seen:
            problems.append(f"{where}: parameter {key} twice")
        seen.add(key)
        if param.get("in") not in ("query", "header", "path", "cookie"):
            problems.append(f"{where}: parameter {key}: bad 'in'")
        if param.get("in") == "path" and param.get("required") is not True:
            problems.append(f"{where}: path parameter {key} must be required")
        if "schema" not in param:
            problems.append(f"{where}: parameter {key} has no schema")
    declared = {name for name, kind in seen if kind == "path"}
    in_template = set(re.findall(r"\{([^}]+)\}", path))
    if declared != in_template:
        problems.append(f"{where}: path parameters {declared} but the template has {in_template}")
    return problems


def _content_problems(content: Any, where: str) -> list[str]:
    problems = []
    for media, obj in content.items():
        if not _MEDIA_TYPE.match(media):
            problems.append(f"{where}: {media!r} is not a media type")
        problems += _fields(obj, _MEDIA, f"{where} {media}")
        if "schema" not in obj:
            problems.append(f"{where} {media}: no schema")
        else:
            problems += _schema_problems(obj["schema"], f"{where} {media}")
    return problems


def _header_problems(doc: dict[str, Any], headers: dict[str, Any], where: str) -> list[str]:
    problems = []
    for name, raw in headers.items():
        header, _ = deref(doc, raw)
        problems += _fields(header, _HEADER, f"{where} header {name}")
        if name.lower() == "content-type":
            problems.append(f"{where}: a Content-Type header is ignored by OpenAPI")
        if "schema" not in header:
            problems.append(f"{where} header {name}: no schema")
        else:
            problems += _schema_problems(header["schema"], f"{where} header {name}")
    return problems


def _operation_problems(
    doc: dict[str, Any], method: str, path: str, op: dict[str, Any], item: dict[str, Any]
) -> list[str]:
    where = f"{method} {path}"
    problems = _fields(op, _OPERATION, where)
    params = [*item.get("parameters", []), *op.get("parameters", [])]
    problems += _parameter_problems(doc, path, params, where)
    tags = {t["name"] for t in doc.get("tags", [])}
    problems += [f"{where}: undeclared tag {t!r}" for t in op.get("tags", []) if t not in tags]
    schemes = doc["components"].get("securitySchemes", {})
    for requirement in op.get("security", doc.get("security", [])):
        problems += [f"{where}: unknown security {s!r}" for s in requirement if s not in schemes]
    if "requestBody" in op:
        body, _ = deref(doc, op["requestBody"])
        problems += _content_problems(body.get("content", {}), f"{where} requestBody")
    responses = op.get("responses") or {}
    if not responses:
        problems.append(f"{where}: no responses")
    for status, raw in responses.items():
        if not isinstance(status, str) or not _STATUS.match(status):
            problems.append(f"{where}: response key {status!r} is not a status code string")
        response, _ = deref(doc, raw)
        problems += _fields(response, _RESPONSE, f"{where} {status}")
        if not isinstance(response.get("description"), str):
            problems.append(f"{where} {status}: a response needs a description")
        problems += _header_problems(doc, response.get("headers", {}), f"{where} {status}")
        problems += _content_problems(response.get("content", {}), f"{where} {status}")
    return problems


def test_document_is_well_formed_openapi_3_1() -> None:
    doc = load_document()
    problems = _fields(doc, _TOP, "(top)")
    assert re.fullmatch(r"3\.1\.\d+", str(doc.get("openapi"))), doc.get("openapi")
    assert doc["jsonSchemaDialect"] == "https://spec.openapis.org/oas/3.1/dialect/base"
    assert isinstance(doc["info"]["title"], str)
    assert doc["info"]["version"] == pooldaemon.__version__
    problems += _fields(doc["components"], _COMPONENTS, "components")
    for name, scheme in doc["components"]["securitySchemes"].items():
        if scheme.get("type") not in ("apiKey", "http", "mutualTLS", "oauth2", "openIdConnect"):
            problems.append(f"securityScheme {name}: bad type")
    operation_ids: list[str] = []
    for path, raw in doc["paths"].items():
        if not path.startswith("/"):
            problems.append(f"path {path!r} does not start with /")
        item, _ = deref(doc, raw)
        problems += _fields(item, _PATH_ITEM, path)
        for method in HTTP_METHODS:
            if method in item:
                op = item[method]
                problems += _operation_problems(doc, method.upper(), path, op, item)
                operation_ids += [op["operationId"]] if "operationId" in op else []
    duplicates = {i for i in operation_ids if operation_ids.count(i) > 1}
    problems += [f"operationId {i!r} is not unique" for i in sorted(duplicates)]
    for name, schema in doc["components"]["schemas"].items():
        problems += _schema_problems(schema, f"#/components/schemas/{name}")
    problems += _object_problems(doc)
    assert not problems, "\n".join(problems)


def test_every_reference_resolves_and_every_component_is_used() -> None:
    doc = load_document()
    refs = {node["$ref"] for _, node in _walk(doc) if isinstance(node.get("$ref"), str)}
    broken = []
    for ref in sorted(refs):
        try:
            deref(doc, {"$ref": ref})
        except KeyError as exc:
            broken.append(str(exc))
    assert not broken, broken
    used = {"/".join(r.split("/")[:4]) for r in refs}
    for kind in ("schemas", "responses", "parameters"):
        unused = {f"#/components/{kind}/{name}" for name in doc["components"].get(kind, {})} - used
        assert not unused, f"components never referenced: {sorted(unused)}"


# -- 2. the document lists exactly the app's routes -----------------------------------------


def test_every_app_route_is_documented_and_every_documented_route_exists(tmp_path: Path) -> None:
    config = tmp_path / "pool.yaml"
    config.write_text("version: 1\n")
    snapshot = Snapshot.build(PoolSpec(version=1))
    proxy = ProxyState(Applied(snapshot, {}))
    store = UsageStore(tmp_path / "usage.sqlite3")
    try:
        reconciler = Reconciler(config, tmp_path / "state", proxy, load_spec_file(config))
        app = build_admin_app(AdminState(reconciler, TOKEN), proxy, store)
        routes = {
            (route.method, route.resource.canonical)
            for route in app.router.routes()
            if route.method != "HEAD" and route.resource is not None
        }
    finally:
        store.close()
    documented = {(method, path) for method, path, _ in operations(load_document())}
    undocumented = routes - documented
    assert not undocumented, f"routes of the admin app missing from the document: {undocumented}"
    assert not documented - routes, f"documented but not in the app: {documented - routes}"


# -- 3. a running admin app answers as documented -------------------------------------------

SECRETS = {
    "key-cooling.txt": "sk-test-cooling-0123456789abcdef",
    "key-fine-1.txt": "sk-test-fine-one-0123456789abcd",
    "key-fine-2.txt": "sk-test-fine-two-0123456789abcd",
}
PROVIDERS: list[dict[str, Any]] = [
    {"id": "cooling", "fake": "a", "location": "cloud", "name": "Cooling Co",
     "keys": [{"file": "key-cooling.txt", "label": "primary"}], "models": [{"id": "m"}]},
    {"id": "home", "fake": "b", "location": "local", "models": [{"id": "m"}]},
    {"id": "fine", "fake": "c", "location": "cloud", "priority": 10,
     "keys": [{"file": "key-fine-1.txt"}, {"file": "key-fine-2.txt", "label": "spare"}],
     "budget": {"usd_per_day": 100.0}, "models": [{"id": "m"}]},
    {"id": "open", "fake": "d", "location": "cloud", "allow_models": ["w-*"]},
    {"id": "off", "fake": "a", "location": "cloud", "enabled": False, "models": [{"id": "m"}]},
]  # fmt: skip
SECTIONS: dict[str, Any] = {
    "aliases": {"fast": ["fine/m", "home/m"]},
    "clients": [
        {"name": "laptop", "key_sha256": CLIENT_SHA},
        {"name": "capped", "key_sha256": hashlib.sha256(b"capped").hexdigest(),
         "budget": {"usd_per_day": 1.0}},
    ],
    "pricing": {"models": [{"match": "m", "input": 1, "output": 2, "cache_read": 0.5}]},
}  # fmt: skip


@dataclass
class AdminEnv:
    gw: Gateway
    urls: dict[str, str]  # "main": token, registry, store, ready, jobs; "bare": none of those
    config: Path
    spec: dict[str, Any]  # the applied spec, as written to ``config``

    def yaml(self, change: Callable[[dict[str, Any]], None] | None = None) -> bytes:
        spec = json.loads(json.dumps(self.spec))
        if change is not None:
            change(spec)
        return json.dumps(spec, indent=1).encode()  # JSON is YAML


def _provider(spec: dict[str, Any], pid: str) -> dict[str, Any]:
    return next(p for p in spec["providers"] if p["id"] == pid)


def _pricing_source_app() -> web.Application:
    """A remote pricing source: the LiteLLM sample, with an ETag."""
    sample = LITELLM_SAMPLE.read_bytes()

    async def prices(request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return web.Response(status=304, headers={"ETag": '"v1"'})
        return web.Response(body=sample, content_type="application/json", headers={"ETag": '"v1"'})

    app = web.Application()
    app.router.add_get("/litellm.json", prices)
    return app


@pytest.fixture
async def admin(gateway: GatewayFactory, tmp_path: Path) -> AsyncIterator[AdminEnv]:
    """A proxy with traffic, a cooling provider and a rejected key, behind two admin apps:
    "main" with everything the daemon has (scheduler included), "bare" with nothing."""
    for name, secret in SECRETS.items():
        (tmp_path / name).write_text(secret)
    async with AsyncExitStack() as stack:
        prices = await stack.enter_async_context(serve(_pricing_source_app()))
        source = {"url": f"{prices}/litellm.json", "format": "litellm"}
        sections = {**SECTIONS, "pricing": {**SECTIONS["pricing"], "sources": [source]}}
        gw = await gateway(providers=PROVIDERS, **sections)
        yield await _admin_env(gw, tmp_path)


async def _admin_env(gw: Gateway, tmp_path: Path) -> AdminEnv:
    state = gw.state
    spec = state.applied.snapshot.spec.model_dump(mode="json", exclude_unset=True)
    config = tmp_path / "pool.yaml"
    config.write_text(json.dumps(spec, indent=1))
    loaded = load_spec_file(config)
    reconciler = Reconciler(config, tmp_path / "state", state, loaded)
    refresher = _refresher(tmp_path / "refresh", gw)
    reconciler.discover = refresher.discovered
    refresher.reconciler = reconciler
    jobs = Jobs(refresher, startup_delay=3600)  # they run only when asked
    jobs.sync(loaded.spec)
    await gw.stack.enter_async_context(jobs)
    registry = build_registry(reconciler.status, state, jobs)
    main = build_admin_app(
        AdminState(reconciler, TOKEN, registry, ready=True, jobs=jobs, refresher=refresher),
        state,
        gw.store,
    )
    bare = build_admin_app(AdminState(reconciler, TOKEN), state, None)
    urls = {
        "main": await gw.stack.enter_async_context(serve(main)),
        "bare": await gw.stack.enter_async_context(serve(bare)),
    }
    client = gw.openai(CLIENT_KEY)
    for model in ("fine/m", "fast", "m"):
        await client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "hi"}]
        )
    gw.store.flush()
    snapshot, now = state.applied.snapshot, state.clock()
    for i in range(3):
        state.runtime.record_failure(
            snapshot.by_id["cooling"], Failure(FailureClass.server, "boom"), now + i * 0.01
        )
    fine = snapshot.by_id["fine"]
    state.runtime.record_failure(
        fine, Failure(FailureClass.auth, "bad key"), now, key_id=fine.keys[0].key_id
    )
    state.runtime.ledger.add("client", "capped", 5.0, 10, state.wall())
    return AdminEnv(gw, urls, config, spec)


def _refresher(state_dir: Path, gw: Gateway) -> Refresher:
    """A refresher that knows one catalog, one detected endpoint and one fetched source."""
    refresher = Refresher(state_dir, store=gw.store)
    now = gw.state.wall()
    url = gw.fakes["d"].url + "/v1"
    refresher.catalogs["open"] = StoredCatalog((), now, url, frozenset({"w-gone"}), "timed out")
    refresher.endpoints["open"] = StoredEndpoint(url, "openai", url, now, "detected")
    source = gw.state.applied.snapshot.spec.pricing.sources[0].url
    refresher.sources[source] = SourceState(
        source, "litellm", fetched_at=now - 60, checked_at=now, status="not_modified"
    )
    return refresher


@dataclass(frozen=True)
class Case:
    """One request to a documented route and the status it must get."""

    method: str
    path: str  # the documented template
    status: int
    values: dict[str, str] = field(default_factory=dict)  # path parameters
    query: dict[str, str] = field(default_factory=dict)
    body: bytes | Callable[[AdminEnv], bytes] | None = None
    app: str = "main"
    headers: dict[str, str] | None = None  # None: the admin token where the route needs it

    @property
    def key(self) -> tuple[str, str, str]:
        return self.method, self.path, str(self.status)


# Path and query values for the default call of each documented operation.
PATH_VALUES = {"id": "fine", "provider": "cooling"}
QUERY_VALUES = {"model": "m"}


def _plan_body(env: AdminEnv) -> bytes:
    def change(spec: dict[str, Any]) -> None:
        fine = _provider(spec, "fine")
        fine["priority"] = 20
        fine["keys"] = [fine["keys"][1], {"env": "NEW_KEY", "label": "new"}]
        spec["providers"] = [p for p in spec["providers"] if p["id"] != "off"]
        spec["providers"].append({"id": "extra", "base_url": "http://127.0.0.1:9/v1"})
        spec["aliases"] = {"quick": ["home/m"]}
        spec["routing"] = {"strategy": "cost"}

    return env.yaml(change)


BODIES: dict[tuple[str, str], Callable[[AdminEnv], bytes]] = {
    ("POST", "/admin/v1/plan"): _plan_body,
}
# What the default call must show, so that a schema check is not vacuous.
SHOWS: dict[tuple[str, str], Callable[[Any], object]] = {
    ("GET", "/admin/v1/cooldowns"): lambda b: b["cooldowns"],
    ("GET", "/admin/v1/usage"): lambda b: b["groups"],
    ("GET", "/admin/v1/providers"): lambda b: (
        [k["rejected_until"] and k["last_used"] for p in b["providers"] for k in p["keys"]]
        and [p["catalog"] for p in b["providers"] if p["catalog"]]
    ),
    ("GET", "/admin/v1/pricing"): lambda b: b["sources"][0]["status"] == "not_modified",
    ("GET", "/admin/v1/route"): lambda b: b["candidates"] and b["skipped"],
    ("GET", "/admin/v1/status"): lambda b: b["providers"],
    ("GET", "/admin/v1/jobs"): lambda b: (
        {j["kind"] for j in b["jobs"]} == {"catalog", "pricing", "retention"}
    ),
    ("POST", "/admin/v1/refresh/{kind}"): lambda b: b["jobs"][0]["last_trigger"] == "manual",
    ("POST", "/admin/v1/plan"): lambda b: not b["empty"] and b["plan"]["providers"]["changed"],
    ("GET", "/metrics"): lambda b: "pooldaemon_requests_total" in b,
}


def _protected(doc: dict[str, Any], op: dict[str, Any]) -> bool:
    security = op.get("security", doc.get("security", []))
    return bool(security) and all(security)


def _value(doc: dict[str, Any], param: dict[str, Any], given: dict[str, str]) -> str:
    """A valid value for a parameter: given here, else its example, else its first enum."""
    schema, _ = deref(doc, param["schema"])
    for value in (given.get(param["name"]), param.get("example"), *schema.get("enum", [])[:1]):
        if value is not None:
            return str(value)
    raise AssertionError(f"no value for parameter {param['name']!r}: add one to the test")


def _default_cases(doc: dict[str, Any]) -> list[Case]:
    """One call per documented operation, with valid inputs: its first 2xx (or, for the
    read-only methods, its 405)."""
    cases = []
    for method, path, op in operations(doc):
        statuses = sorted(s for s in op["responses"] if s != "401")
        status = next((s for s in statuses if s.startswith("2")), statuses[0])
        item, _ = deref(doc, doc["paths"][path])
        values, query = {}, {}
        for raw in [*item.get("parameters", []), *op.get("parameters", [])]:
            param, _ = deref(doc, raw)
            if param["in"] == "path":
                values[param["name"]] = _value(doc, param, PATH_VALUES)
            elif param["in"] == "query" and param.get("required"):
                query[param["name"]] = _value(doc, param, QUERY_VALUES)
        body = BODIES.get((method, path))
        cases.append(Case(method, path, int(status), values, query, body))
    return cases


def _same_yaml(env: AdminEnv) -> bytes:
    return env.yaml()


CASES: list[Case] = [
    Case("GET", "/readyz", 503, app="bare"),
    Case("GET", "/metrics", 200, app="bare"),  # no registry: empty
    Case("GET", "/admin/v1/usage", 404, app="bare"),
    Case("GET", "/admin/v1/providers", 200, app="bare"),  # no key usage, no refresher
    Case("GET", "/admin/v1/pricing", 200, app="bare"),  # the spec's own sources
    Case("GET", "/admin/v1/route", 400),
    Case("GET", "/admin/v1/route", 400, query={"model": ""}),
    Case("GET", "/admin/v1/route", 400, query={"model": "m", "mode": "moon"}),
    Case("GET", "/admin/v1/route", 400, query={"model": "m", "strategy": "fastest"}),
    Case("GET", "/admin/v1/route", 404, query={"model": "mm"}),
    Case("GET", "/admin/v1/route", 404, query={"model": "no-such-model"}),
    Case("GET", "/admin/v1/route", 429, query={"model": "m", "client": "capped"}),
    *(
        Case("GET", "/admin/v1/route", 200, query=q)
        for q in (
            {"model": "m", "mode": "local", "strategy": "cost"},
            {"model": "fast", "mode": "cloud", "strategy": "latency"},
            {"model": "m", "strategy": "round_robin", "client": "laptop"},
            {"model": "w-1", "mode": "", "strategy": ""},
            {"model": "cooling/m"},
        )
    ),
    *(Case("GET", "/admin/v1/providers/{id}", 200, {"id": p["id"]}) for p in PROVIDERS),
    Case("GET", "/admin/v1/providers/{id}", 404, {"id": "nope"}),
    Case("DELETE", "/admin/v1/cooldowns/{provider}", 200, {"provider": "home"}),
    Case("DELETE", "/admin/v1/cooldowns/{provider}", 404, {"provider": "nope"}),
    *(
        Case("GET", "/admin/v1/usage", 200, query={"group_by": g})
        for g in ("model", "client", "day")
    ),
    Case("GET", "/admin/v1/usage", 200, query={"since": "0", "until": "1"}),
    Case("GET", "/admin/v1/usage", 200, query={"since": "5", "until": "5"}),
    Case("GET", "/admin/v1/usage", 200, query={"since": "1e9"}),
    Case("GET", "/admin/v1/usage", 400, query={"since": "yesterday"}),
    Case("GET", "/admin/v1/usage", 400, query={"group_by": "week"}),
    *(
        Case("GET", "/admin/v1/usage", 400, query={name: value})
        for name in ("since", "until")
        for value in ("nan", "inf", "-Infinity", "1e400")
    ),
    Case("GET", "/admin/v1/usage", 400, query={"since": "2", "until": "1"}),
    Case("GET", "/admin/v1/usage", 400, query={"since": "9e99"}),  # after now
    Case("GET", "/admin/v1/pricing", 200, query={"model": "m", "provider": "fine"}),
    Case("GET", "/admin/v1/pricing", 200, query={"model": "unpriced-model-x"}),
    Case("GET", "/admin/v1/pricing", 200, query={"model": "m", "provider": "home"}),
    Case("GET", "/admin/v1/pricing", 404, query={"model": "m", "provider": "nope"}),
    Case("GET", "/admin/v1/pricing", 400, query={"provider": "fine"}),
    Case("GET", "/admin/v1/pricing", 400, query={"provider": "fine"}, app="bare"),
    Case("GET", "/admin/v1/jobs", 503, app="bare"),
    Case("POST", "/admin/v1/refresh/{kind}", 503, {"kind": "catalog"}, app="bare"),
    Case("POST", "/admin/v1/refresh/{kind}", 503, {"kind": "pricing"}, app="bare"),
    Case("POST", "/admin/v1/refresh/{kind}", 404, {"kind": "retention"}),
    Case("POST", "/admin/v1/refresh/{kind}", 404, {"kind": "everything"}, app="bare"),
    Case("POST", "/admin/v1/plan", 200, body=_same_yaml),
    Case("POST", "/admin/v1/plan", 422, body=b"version: 2\n"),
    Case("POST", "/admin/v1/plan", 422, body=b""),
    Case("POST", "/admin/v1/plan", 422, body=b"\xff\xfe not utf-8"),
    Case("POST", "/admin/v1/plan", 422, body=b"#" * MAX_SPEC_BYTES),  # the limit: parsed
    Case("POST", "/admin/v1/plan", 413, body=b"#" * (MAX_SPEC_BYTES + 1)),
    Case("POST", "/admin/v1/plan", 413, body=b"#" * (2 * MAX_SPEC_BYTES)),
]


async def _call(
    env: AdminEnv, case: Case, doc: dict[str, Any]
) -> tuple[int, CIMultiDictProxy[str], Any]:
    url = env.urls[case.app] + re.sub(r"\{(\w+)\}", lambda m: case.values[m[1]], case.path)
    op = doc["paths"][case.path][case.method.lower()]
    headers = case.headers
    if headers is None:
        headers = AUTH if _protected(doc, op) else {}
    raw = case.body(env) if callable(case.body) else case.body
    body = None if raw is None else io.BytesIO(raw)  # raw bytes over 1 MiB make aiohttp warn
    async with (
        aiohttp.ClientSession() as http,
        http.request(case.method, url, params=case.query, data=body, headers=headers) as resp,
    ):
        media = _media(resp.headers)
        payload = await resp.json() if media == "application/json" else await resp.text()
        return resp.status, resp.headers, payload


def _media(headers: CIMultiDictProxy[str]) -> str:
    return headers.get("Content-Type", "").split(";")[0].strip().lower()


async def _check(env: AdminEnv, case: Case, doc: dict[str, Any]) -> Any:
    status, headers, body = await _call(env, case, doc)
    where = f"{case.method} {case.path} {case.values or ''}{case.query or ''} on {case.app}"
    assert status == case.status, f"{where}: {status}, not {case.status}: {str(body)[:300]}"
    content_type = headers.get("Content-Type", "")
    validate_response(
        doc, case.method, case.path, status, body, content_type=content_type, headers=headers
    )
    return body


async def test_every_documented_operation_answers_per_its_schema(admin: AdminEnv) -> None:
    doc = load_document()
    for case in _default_cases(doc):
        body = await _check(admin, case, doc)
        shows = SHOWS.get((case.method, case.path))
        if shows is not None:
            assert shows(body), f"{case.method} {case.path}: nothing to check in {body}"


async def test_variants_and_errors_answer_per_their_schemas(admin: AdminEnv) -> None:
    doc = load_document()
    for case in CASES:
        await _check(admin, case, doc)


async def test_protected_routes_answer_401_without_the_admin_token(admin: AdminEnv) -> None:
    doc = load_document()
    wrong: tuple[dict[str, str], ...] = (
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"x-api-key": TOKEN},
    )
    for case in _default_cases(doc):
        op = doc["paths"][case.path][case.method.lower()]
        if not _protected(doc, op):
            continue
        assert "401" in op["responses"], f"{case.method} {case.path}: 401 not documented"
        for headers in wrong:
            await _check(
                admin, Case(case.method, case.path, 401, case.values, headers=headers), doc
            )


async def test_reload_outcomes_and_status_answer_per_their_schemas(admin: AdminEnv) -> None:
    doc = load_document()
    reload, status = Case("POST", "/admin/v1/reload", 200), Case("GET", "/admin/v1/status", 200)
    body = await _check(admin, reload, doc)
    assert body["result"] == "unchanged"
    admin.config.write_text("version: 1\nproviders: [{id: Bad}]\n")
    body = await _check(admin, reload, doc)
    assert body["result"] == "failure" and body["errors"]
    body = await _check(admin, status, doc)
    assert body["errors"] and any(
        c["type"] == "Degraded" and c["status"] for c in body["conditions"]
    )

    def bump(spec: dict[str, Any]) -> None:
        _provider(spec, "fine")["priority"] = 20

    admin.config.write_bytes(admin.yaml(bump))
    body = await _check(admin, reload, doc)
    assert body["result"] == "success", body
    admin.config.unlink()
    body = await _check(admin, reload, doc)
    assert (body["result"], body["revision"]) == ("failure", "")
    body = await _check(admin, status, doc)
    assert [h["result"] for h in body["history"]] == ["failure", "success", "failure", "unchanged"]
    body = await _check(admin, Case("GET", "/admin/v1/providers/{id}", 200, {"id": "fine"}), doc)
    assert body["priority"] == 20


def test_every_documented_response_is_exercised() -> None:
    """Each documented (route, status) is asked for by one of the cases above."""
    doc = load_document()
    documented = {
        (method, path, status) for method, path, op in operations(doc) for status in op["responses"]
    }
    asked = {c.key for c in [*_default_cases(doc), *CASES]}
    asked |= {(m, p, "401") for m, p, op in operations(doc) if _protected(doc, op)}
    assert not documented - asked, f"documented but never asked for: {sorted(documented - asked)}"


# -- 4. what aiohttp itself answers, and the details of errors -------------------------------


async def _request(
    url: str, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDictProxy[str], Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.request(method, url + path, headers=AUTH if headers is None else headers) as resp,
    ):
        return resp.status, resp.headers, await resp.json()


def _error_of(doc: dict[str, Any], body: Any, kind: str) -> str:
    validate_schema(doc, "Error", body)
    assert body["error"]["type"] == kind, body
    message: str = body["error"]["message"]
    return message


# (method, path, Allow, writing): methods a route does not serve, registered or not.
NOT_SERVED = [
    ("PUT", "/admin/v1/reload", "POST", True),
    ("DELETE", "/admin/v1/cooldowns", "GET", True),
    ("POST", "/admin/v1/route", "GET", True),
    ("GET", "/admin/v1/plan", "POST", False),
    ("GET", "/admin/v1/refresh/catalog", "POST", False),
    ("GET", "/admin/v1/cooldowns/home", "DELETE", False),
    ("PATCH", "/healthz", "GET, HEAD", True),
    # registered on purpose (_read_only): the Allow header comes from the router
    ("POST", "/admin/v1/status", "GET, HEAD", True),
    ("PUT", "/admin/v1/jobs", "GET, HEAD", True),
    ("DELETE", "/admin/v1/providers/fine", "GET", True),
    ("PATCH", "/admin/v1/pricing", "GET", True),
]


async def test_methods_not_served_answer_json_405_with_allow(admin: AdminEnv) -> None:
    doc = load_document()
    for method, path, allow, writing in NOT_SERVED:
        status, headers, body = await _request(admin.urls["main"], method, path)
        assert (status, headers.get("Allow")) == (405, allow), (method, path, status, body)
        message = _error_of(doc, body, "method_not_allowed")
        assert ("does not change desired state" in message) is writing, (method, path, message)


async def test_unknown_paths_answer_json_404_after_the_token_check(admin: AdminEnv) -> None:
    doc = load_document()
    for app in ("main", "bare"):
        url = admin.urls[app]
        status, _, body = await _request(url, "GET", "/admin/v1/nope")
        assert status == 404 and "/admin/v1/nope" in _error_of(doc, body, "not_found")
        status, _, body = await _request(url, "GET", "/nope", headers={})
        assert status == 404 and _error_of(doc, body, "not_found")
        status, headers, body = await _request(url, "GET", "/admin/v1/nope", headers={})
        assert status == 401 and _error_of(doc, body, "authentication_error")
        assert headers["WWW-Authenticate"] == 'Bearer realm="pooldaemon admin"'


async def test_plan_over_the_limit_names_it(admin: AdminEnv) -> None:
    doc = load_document()
    case = Case("POST", "/admin/v1/plan", 413, body=b"a: 1\n" * (MAX_SPEC_BYTES // 5 + 1))
    body = await _check(admin, case, doc)
    assert str(MAX_SPEC_BYTES) in _error_of(doc, body, "too_large")


async def _raw_get(url: str, path: str, authorization: bytes) -> tuple[int, bytes]:
    """A request with an Authorization header of any bytes (clients insist on text)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
            b"Authorization: " + authorization + b"\r\nConnection: close\r\n\r\n"
        )
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def test_an_authorization_header_that_is_not_utf8_is_401(admin: AdminEnv) -> None:
    for value in (b"Bearer \xff\xfe", b"Bearer " + TOKEN.encode() + b"\xe9", b"\xc3\x28"):
        status, body = await _raw_get(admin.urls["main"], "/admin/v1/status", value)
        assert status == 401, (value, body[:200])
        assert json.loads(body)["error"]["type"] == "authentication_error"
    status, _ = await _raw_get(
        admin.urls["main"], "/admin/v1/status", AUTH["Authorization"].encode()
    )
    assert status == 200


async def test_a_pricing_refresh_gives_remote_quotes_with_their_source(admin: AdminEnv) -> None:
    doc = load_document()
    refresh = Case("POST", "/admin/v1/refresh/{kind}", 200, {"kind": "pricing"})
    quote = Case("GET", "/admin/v1/pricing", 200, query={"model": "gpt-4o"})
    body = await _check(admin, quote, doc)
    assert body["source"] != "remote" and body["via"] is None
    assert body["label"] == body["source"]
    body = await _check(admin, refresh, doc)
    assert body["result"] == "success", body
    (job,) = body["jobs"]
    assert job["id"] == "pricing" and job["target"] == admin.spec["pricing"]["sources"][0]["url"]
    assert isinstance(job["last_success"], float) and isinstance(job["next_run"], float)
    body = await _check(admin, quote, doc)
    assert (body["source"], body["via"], body["label"]) == ("remote", "litellm", "remote:litellm")
    body = await _check(admin, Case("GET", "/admin/v1/pricing", 200), doc)
    (source,) = body["sources"]
    assert (source["status"], source["refresh"], source["error"]) == ("fetched", "12h", None)
    assert source["models"] > 10 and source["fetched_at"] >= source["checked_at"] - 1
    body = await _check(admin, refresh, doc)
    body = await _check(admin, Case("GET", "/admin/v1/pricing", 200), doc)
    assert body["sources"][0]["status"] == "not_modified"
    jobs = await _check(admin, Case("GET", "/admin/v1/jobs", 200), doc)
    pricing = next(j for j in jobs["jobs"] if j["kind"] == "pricing")
    assert (pricing["runs"], pricing["last_trigger"]) == (2, "manual")
