"""The admin listener: health probes and, under ``/admin/v1/`` (Bearer token), status,
reload, plan, jobs and the views of :mod:`._admin_views`. Read-mostly: nothing here
changes desired state (git does).

Every error answer has one JSON shape, ``{"error": {"type", "message"}}``: the handlers
build theirs, and :func:`_errors` translates aiohttp's own (unknown path, method not
served, body too large) at one boundary. Without a token the admin API only binds to
loopback.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from pooldaemon.errors import ConfigError, SettingsError
from pooldaemon.server._admin_views import RefreshFacts, add_views
from pooldaemon.server._state import ProxyState
from pooldaemon.settings import is_loopback
from pooldaemon.spec._loader import MAX_SPEC_BYTES
from pooldaemon.usage import UsageStore

__all__ = ["ADMIN_STATE", "AdminState", "build_admin_app", "check_admin_exposure"]


class _Outcome(Protocol):
    result: str
    revision: str
    summary: str
    errors: tuple[str, ...]


class _Reconciler(Protocol):
    async def reconcile(self, trigger: str, *, force: bool = False) -> Any: ...

    def status_json(self) -> dict[str, Any]: ...

    def plan_for(self, raw: bytes, name: str = ...) -> Any: ...


class _JobStatus(Protocol):
    last_result: str | None

    def to_json(self) -> dict[str, object]: ...


class _Jobs(Protocol):
    def __iter__(self) -> Iterator[_JobStatus]: ...

    async def trigger(self, kind: Any) -> Sequence[_JobStatus]: ...


@dataclass(slots=True)
class AdminState:
    reconciler: _Reconciler
    token: str | None
    registry: CollectorRegistry | None = None
    ready: bool = False  # set once the listeners are up and a config is applied
    jobs: _Jobs | None = None
    refresher: RefreshFacts | None = None


ADMIN_STATE = web.AppKey("admin_state", AdminState)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def check_admin_exposure(host: str, token: str | None) -> None:
    """An admin API without a token may only listen on loopback."""
    if token:
        return
    if not is_loopback(host):
        raise SettingsError(
            f"admin_listen is {host} but no admin token is set: set POOLDAEMON_ADMIN_TOKEN_FILE "
            "(or admin_token) or listen on 127.0.0.1"
        )


_WWW_AUTHENTICATE = 'Bearer realm="pooldaemon admin"'
_READ_ONLY = "the admin API does not change desired state: edit the YAML in git"
_WRITING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The error type of aiohttp's own HTTP errors; any other status is a plain http_error.
_HTTP_ERRORS = {
    400: "invalid_request",
    401: "authentication_error",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


def _error(
    status: int, kind: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"type": kind, "message": message}}, status=status, headers=headers
    )


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own HTTP errors (404 unknown path, 405 method not served, 413 body too
    large) as JSON errors, so a client of the admin API parses one error shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise  # a redirect, or already an answer of ours
        return _http_error(request, exc)


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    headers = None
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        headers = {"Allow": allowed}
        message = f"{exc.method} is not allowed on {request.path} (allowed: {allowed or 'none'})"
        if exc.method in _WRITING:
            message += f"; {_READ_ONLY}"
    elif isinstance(exc, web.HTTPNotFound):
        message = f"no admin route {request.path}"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        message = f"the request body is larger than the limit of {request.client_max_size} bytes"
    else:
        message = exc.text or exc.reason
    return _error(exc.status, _HTTP_ERRORS.get(exc.status, "http_error"), message, headers)


@web.middleware
async def _auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = request.app[ADMIN_STATE]
    if request.path.startswith("/admin/") and state.token:
        # aiohttp decodes header bytes that are not UTF-8 with surrogateescape: encode
        # them back the same way (a strict encode raises, a 500) and they just differ.
        given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
        expected = f"Bearer {state.token}".encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            return _error(
                401,
                "authentication_error",
                "missing or invalid admin token",
                {"WWW-Authenticate": _WWW_AUTHENTICATE},
            )
    return await handler(request)


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    if request.app[ADMIN_STATE].ready:
        return web.json_response({"status": "ready"})
    return _error(503, "not_ready", "not ready yet")


async def _metrics(request: web.Request) -> web.Response:
    registry = request.app[ADMIN_STATE].registry
    body = generate_latest(registry) if registry is not None else b""
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[ADMIN_STATE].reconciler.status_json())


async def _reload(request: web.Request) -> web.Response:
    outcome = await request.app[ADMIN_STATE].reconciler.reconcile("admin")
    return web.json_response(
        {
            "result": outcome.result,
            "revision": outcome.revision,
            "summary": outcome.summary,
            "errors": list(outcome.errors),
        }
    )


async def _plan(request: web.Request) -> web.Response:
    """Dry run: the plan of the YAML in the body against what is applied (secrets redacted).

    The app's ``client_max_size`` is the spec's own limit, so a body over it gets the
    JSON 413 of :func:`_errors` before anything is parsed."""
    raw = await request.read()
    reconciler = request.app[ADMIN_STATE].reconciler
    try:
        result = await asyncio.to_thread(reconciler.plan_for, raw)
    except ConfigError as exc:
        errors = [str(i) for i in exc.issues]
        return web.json_response(
            {"error": {"type": "invalid_config", "message": errors[0]}, "errors": errors},
            status=422,
        )
    return web.json_response(
        {
            "empty": result.empty,
            "summary": result.summary(),
            "lines": result.lines(),
            "plan": result.to_json(),
        }
    )


REFRESH_KINDS = ("catalog", "pricing")


async def _jobs(request: web.Request) -> web.Response:
    jobs = request.app[ADMIN_STATE].jobs
    if jobs is None:
        return _error(503, "not_ready", "the scheduler is not running")
    return web.json_response({"jobs": [status.to_json() for status in jobs]})


async def _refresh(request: web.Request) -> web.Response:
    """Run the catalog or pricing jobs now and answer with how they went."""
    kind = request.match_info["kind"]
    if kind not in REFRESH_KINDS:
        return _error(
            404, "not_found", f"no refresh {kind!r}: use one of {', '.join(REFRESH_KINDS)}"
        )
    jobs = request.app[ADMIN_STATE].jobs
    if jobs is None:
        return _error(503, "not_ready", "the scheduler is not running")
    done = await jobs.trigger(kind)
    if not done:
        result = "none"
    elif all(status.last_result == "success" for status in done):
        result = "success"
    else:
        result = "failure"
    return web.json_response(
        {"kind": kind, "result": result, "jobs": [status.to_json() for status in done]}
    )


async def _read_only(request: web.Request) -> web.Response:
    """The writing methods of the read-only views, registered on purpose: they say why
    (edit the YAML in git), and ``Allow`` lists what the path really serves."""
    # The path's other methods may sit on another resource of the same path (aiohttp
    # reuses a resource only when the routes are added one after the other).
    resource = request.match_info.route.resource
    canonical = resource.canonical if resource is not None else request.path
    served = {
        route.method
        for other in request.app.router.resources()
        if other.canonical == canonical
        for route in other
        if route.handler is not _read_only
    }
    allowed = ", ".join(sorted(served))
    return _error(
        405,
        "method_not_allowed",
        f"{request.method} is not allowed on {request.path}: {_READ_ONLY}",
        {"Allow": allowed},
    )


def build_admin_app(
    state: AdminState, proxy: ProxyState | None = None, store: UsageStore | None = None
) -> web.Application:
    # aiohttp refuses a body longer than client_max_size: the spec's own limit, one 413.
    app = web.Application(middlewares=[_errors, _auth], client_max_size=MAX_SPEC_BYTES)
    app[ADMIN_STATE] = state
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/admin/v1/status", _status)
    app.router.add_post("/admin/v1/reload", _reload)
    app.router.add_post("/admin/v1/plan", _plan)
    app.router.add_get("/admin/v1/jobs", _jobs)
    app.router.add_post("/admin/v1/refresh/{kind}", _refresh)
    for path in ("/admin/v1/status", "/admin/v1/jobs"):
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            app.router.add_route(method, path, _read_only)
    if proxy is not None:
        add_views(app, proxy, store, state.refresher)
        for path in (
            "/admin/v1/providers",
            "/admin/v1/providers/{id}",
            "/admin/v1/models",
            "/admin/v1/pricing",
        ):
            for method in ("POST", "PUT", "PATCH", "DELETE"):
                app.router.add_route(method, path, _read_only)
    return app
