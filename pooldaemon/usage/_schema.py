"""The SQLite file: opening it with private modes, pragmas and schema migrations.

Tables: ``usage``, one row per request (what :class:`UsageRecord` holds, plus
its latency bucket), and ``usage_daily``, the rollup described in
:mod:`pooldaemon.usage._rollup`.

The schema version lives in ``PRAGMA user_version``; ``_MIGRATIONS[n]`` takes
a file from version ``n`` to ``n + 1``, inside one ``BEGIN IMMEDIATE`` so two
processes opening a new file at once do not both create it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from pooldaemon.errors import StoreError

__all__ = ["SCHEMA_VERSION", "connect", "open_database", "transaction"]

_V1 = """
CREATE TABLE usage (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    request_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    key_id TEXT NOT NULL,
    client TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    requests INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    latency_bucket INTEGER NOT NULL,
    ttfb_ms REAL,
    outcome TEXT NOT NULL,
    cost_usd REAL NOT NULL,
    pricing_source TEXT NOT NULL
);
CREATE INDEX usage_ts ON usage (ts);
CREATE INDEX usage_provider_ts ON usage (provider, ts);
CREATE INDEX usage_model_ts ON usage (model, ts);
CREATE INDEX usage_client_ts ON usage (client, ts);
CREATE TABLE usage_daily (
    id INTEGER PRIMARY KEY,
    day INTEGER NOT NULL,
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    client TEXT NOT NULL,
    requests INTEGER NOT NULL,
    successes INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    cache_write_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd REAL NOT NULL,
    first_ts REAL NOT NULL,
    last_ts REAL NOT NULL,
    histogram BLOB NOT NULL,
    UNIQUE (day, provider, model, client)
);
"""

# Per-key use survives retention pruning: the admin API shows it for each key.
_V2 = """
CREATE TABLE key_usage (
    provider TEXT NOT NULL,
    key_id TEXT NOT NULL,
    requests INTEGER NOT NULL,
    last_ts REAL NOT NULL,
    PRIMARY KEY (provider, key_id)
);
INSERT INTO key_usage (provider, key_id, requests, last_ts)
    SELECT provider, key_id, COUNT(*), MAX(ts) FROM usage WHERE key_id != ''
    GROUP BY provider, key_id
"""

_MIGRATIONS: tuple[str, ...] = (_V1, _V2)
SCHEMA_VERSION = len(_MIGRATIONS)
_BUSY_TIMEOUT_S = 10.0
_FILE_MODE = 0o600
_DIR_MODE = 0o700


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), usable from any thread."""
    conn = sqlite3.connect(
        path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute("PRAGMA synchronous=NORMAL")
        if read_only:
            conn.execute("PRAGMA query_only=1")
    except BaseException:
        conn.close()
        raise
    return conn


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # also when COMMIT itself failed
            conn.rollback()
        raise


def open_database(path: Path) -> sqlite3.Connection:
    """Create or open the store at ``path`` and bring its schema up to date.

    The file (and SQLite's ``-wal``/``-shm`` beside it, which take its mode)
    is 0600; directories created on the way are 0700, whatever the umask.
    Raises :class:`StoreError` naming the path.
    """
    try:
        _make_private_dirs(path.parent)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, _FILE_MODE)
        try:
            os.fchmod(fd, _FILE_MODE)
        finally:
            os.close(fd)
        conn = connect(path)
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open the usage store {path}: {_reason(exc)}") from exc
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise StoreError(f"cannot open the usage store {path}: journal_mode is {mode}, not wal")
        _migrate(conn, path)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{path}{suffix}", _FILE_MODE)
    except BaseException as exc:
        conn.close()
        if isinstance(exc, OSError | sqlite3.Error) and not isinstance(exc, StoreError):
            raise StoreError(f"cannot open the usage store {path}: {_reason(exc)}") from exc
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    with transaction(conn):
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the usage store {path} has schema version {version}; "
                f"this pooldaemon knows up to {SCHEMA_VERSION}"
            )
        for script in _MIGRATIONS[version:]:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
        # PRAGMA takes no parameters; the value is our own int.
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def _make_private_dirs(directory: Path) -> None:
    missing: list[Path] = []
    for candidate in (directory, *directory.parents):
        if candidate.exists():
            break
        missing.append(candidate)
    for created in reversed(missing):
        with contextlib.suppress(FileExistsError):
            created.mkdir(mode=_DIR_MODE)
            os.chmod(created, _DIR_MODE)  # mkdir's mode is masked by the umask


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
