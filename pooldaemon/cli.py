"""The ``pooldaemon`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pooldaemon import __version__
from pooldaemon.daemon import run_daemon
from pooldaemon.errors import ConfigError, SealingKeyError, SettingsError, StoreError
from pooldaemon.logs import configure_logging
from pooldaemon.reconcile import plan
from pooldaemon.secrets import (
    SECRET_COMMANDS,
    add_secret_commands,
    run_secret_command,
    verify_sealed,
)
from pooldaemon.settings import load_settings, split_host_port
from pooldaemon.spec import LoadedSpec, load_spec_file
from pooldaemon.spec._schema import pool_json_schema_text
from pooldaemon.trial._cli import LICENCE_COMMAND, add_licence_command, run_licence_command

__all__ = ["main"]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_CHANGES = 1  # plan: the file would change the pool
EXIT_ERROR = 2  # plan: the file could not be loaded


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pooldaemon",
        description="Self-hosted LLM gateway configured from one YAML file kept in git.",
    )
    parser.add_argument("--version", action="version", version=f"pooldaemon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="serve the proxy on a config file until SIGTERM")
    run.add_argument("--config", type=Path, help="YAML desired state (env POOLDAEMON_CONFIG)")
    run.add_argument("--state-dir", type=Path, help="state directory (env POOLDAEMON_STATE_DIR)")
    run.add_argument("--listen", help="proxy HOST:PORT (env POOLDAEMON_LISTEN)")
    run.add_argument("--admin-listen", help="admin HOST:PORT (env POOLDAEMON_ADMIN_LISTEN)")
    run.add_argument("--log-level", help="debug|info|warning|error (env POOLDAEMON_LOG_LEVEL)")
    run.add_argument("--log-format", help="text|json (env POOLDAEMON_LOG_FORMAT)")

    validate = sub.add_parser(
        "validate", help="check config files; one line per problem, exit 1 if any is invalid"
    )
    validate.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    validate.add_argument("-q", "--quiet", action="store_true", help="print only problems")

    planner = sub.add_parser(
        "plan", help="show what applying a config file changes; exit 0 none, 1 changes, 2 error"
    )
    planner.add_argument("path", type=Path, metavar="PATH")
    planner.add_argument("--json", action="store_true", help="print the plan as JSON")
    planner.add_argument(
        "--against", metavar="ADMIN_URL", help="plan against the running daemon (its admin URL)"
    )

    for name, text in (
        ("status", "show the running daemon's revision, conditions and providers"),
        ("reload", "ask the daemon to re-read its config; waits, non-zero on failure"),
    ):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("--admin", help="admin base URL (default: from admin_listen)")

    schema = sub.add_parser("schema", help="print the JSON Schema of the config file")
    schema.add_argument("--output", "-o", type=Path, help="write to FILE instead of stdout")
    add_secret_commands(sub)
    add_licence_command(sub)
    return parser


def _print_warnings(loaded: LoadedSpec) -> None:
    for warning in loaded.warnings:
        print(warning, file=sys.stderr)


def _sealed_problems(loaded: LoadedSpec) -> tuple[int, bool]:
    """Check the sealed values without a private key (shape, field, context); print the
    problems. Returns (how many sealed values, whether any is bad)."""
    checks = verify_sealed(loaded)
    bad = [c.issue for c in checks if c.issue is not None]
    for issue in bad:
        print(issue, file=sys.stderr)
    return len(checks), bool(bad)


def _validate(paths: Sequence[Path], quiet: bool) -> int:
    status = EXIT_OK
    for path in paths:
        try:
            loaded = load_spec_file(path)
        except ConfigError as exc:
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            status = EXIT_INVALID
            continue
        _print_warnings(loaded)
        sealed, bad = _sealed_problems(loaded)
        if bad:
            status = EXIT_INVALID
            continue
        if not quiet:
            spec = loaded.spec
            print(
                f"{path}: valid ({len(spec.providers)} providers, {len(spec.aliases)} aliases, "
                f"{len(spec.clients)} clients, sha256 {loaded.sha256[:12]})"
            )
            if sealed:
                print(
                    f"{path}: {sealed} sealed value(s): envelope and place checked, not "
                    "decrypted (no private key here; `pooldaemon secrets check` opens them)"
                )
    return status


def _plan(path: Path, as_json: bool, against: str | None) -> int:
    if against is not None:
        return _plan_against(path, as_json, against)
    try:
        loaded = load_spec_file(path)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_ERROR
    _print_warnings(loaded)
    if _sealed_problems(loaded)[1]:
        return EXIT_ERROR
    result = plan(None, loaded.spec)  # against an empty pool
    if as_json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print("\n".join(result.lines()))
    return EXIT_OK if result.empty else EXIT_CHANGES


def _plan_against(path: Path, as_json: bool, admin: str) -> int:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        print(f"{path}: cannot read the file: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        body = _admin_request(admin, "/admin/v1/plan", "POST", raw)
    except _AdminError as exc:
        for line in exc.lines:
            print(line.replace("request body", str(path)), file=sys.stderr)
        return EXIT_ERROR
    print(json.dumps(body["plan"], indent=2) if as_json else "\n".join(body["lines"]))
    return EXIT_OK if body["empty"] else EXIT_CHANGES


def _schema(output: Path | None) -> int:
    if sys.flags.optimize >= 2:
        # The descriptions are the models' docstrings, which -OO drops: the output
        # would differ from the checked-in schema without saying why.
        print(
            "pooldaemon schema: Python runs with -OO (PYTHONOPTIMIZE=2), which drops the "
            "docstrings the schema's descriptions come from; run it without",
            file=sys.stderr,
        )
        return EXIT_USAGE
    text = pool_json_schema_text()
    if output is None:
        sys.stdout.write(text)
        return EXIT_OK
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    print(f"wrote {output}", file=sys.stderr)
    return EXIT_OK


class _AdminError(Exception):
    """The admin API could not answer; ``lines`` say why."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0] if lines else "admin API error")
        self.lines = lines


def _admin_url(admin: str | None) -> str:
    if admin is not None:
        return admin.rstrip("/")
    host, port = split_host_port(load_settings().admin_listen)
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


def _admin_request(admin: str, path: str, method: str, data: bytes | None = None) -> Any:
    request = urllib.request.Request(admin + path, data=data, method=method)
    token = load_settings().admin_token_value()
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = {}
        if isinstance(body, dict) and body.get("errors"):
            raise _AdminError(*body["errors"]) from None
        raise _AdminError(f"pooldaemon: {admin} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _AdminError(f"pooldaemon: cannot reach the daemon at {admin}: {exc}") from None


def _admin_command(command: str, admin: str | None) -> int:
    """``status`` / ``reload`` against the admin API: 0 ok, 1 degraded/failed, 2 unreachable."""
    url = _admin_url(admin)
    try:
        if command == "reload":
            body = _admin_request(url, "/admin/v1/reload", "POST")
        else:
            body = _admin_request(url, "/admin/v1/status", "GET")
    except _AdminError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return EXIT_USAGE
    if command == "reload":
        print(f"reload: {body['result']} revision {body['revision'][:12]}: {body['summary']}")
        for error in body.get("errors", []):
            print(error, file=sys.stderr)
        return EXIT_INVALID if body["result"] == "failure" else EXIT_OK
    conditions = {c["type"]: c for c in body.get("conditions", [])}
    print(
        f"config {body.get('config')}  applied {body['applied_revision'][:12]}"
        f"  attempted {body['attempted_revision'][:12]}"
    )
    for c in conditions.values():
        print(f"  {c['type']:<12} {c['status']!s:<5} {c['reason']}: {c['message']}")
    for p in body.get("providers", []):
        print(f"  provider {p['id']:<20} {p['phase']:<10} {p['location']:<6} models={p['models']}")
    for error in body.get("errors", []):
        print(error, file=sys.stderr)
    return EXIT_INVALID if conditions.get("Degraded", {}).get("status", False) else EXIT_OK


def _run(args: argparse.Namespace) -> int:
    settings = load_settings(
        config=args.config,
        state_dir=args.state_dir,
        listen=args.listen,
        admin_listen=args.admin_listen,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    configure_logging(settings.log_level, settings.log_format)
    try:
        asyncio.run(run_daemon(settings))
    except ConfigError as exc:  # neither the file nor a last-known-good copy is usable
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_INVALID
    except (StoreError, OSError, SealingKeyError) as exc:
        print(f"pooldaemon: cannot start: {exc}", file=sys.stderr)
        return EXIT_INVALID
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pooldaemon`` console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _validate(args.paths, args.quiet)
        if args.command == "plan":
            return _plan(args.path, args.json, args.against)
        if args.command == "schema":
            return _schema(args.output)
        if args.command in SECRET_COMMANDS:
            return run_secret_command(args)
        if args.command == LICENCE_COMMAND:
            return run_licence_command(args)
        if args.command in ("status", "reload"):
            return _admin_command(args.command, args.admin)
        return _run(args)
    except SettingsError as exc:
        print(f"pooldaemon: invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
