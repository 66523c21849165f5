"""The usage store: a SQLite file fed by a write-behind thread.

``add`` only appends to a buffer under a lock; a writer thread inserts the
buffer in one transaction ``flush_interval`` seconds after the first record
came, or as soon as ``flush_max`` records wait; the same transaction adds them
to the daily rollup (:mod:`pooldaemon.usage._rollup`). Each flush costs a
fixed ~0.5 ms of CPU (transaction, rollup, commit, the pages of four indexes
written to the WAL) plus ~5 us a record, beside the request path.

On two cores that work shows in the request path's p99 latency. As we read the
measurements, a request whose event loop wakes on the core the writer holds
waits until the kernel preempts the writer, which can take a scheduler slice
(~1 ms). So the writer gives its core up (``sched_yield``) after each
statement of a flush, and the rollup goes in pieces: no statement runs longer
than ~0.35 ms (batches of 450 and 1,000 records). After a load at 32
connections, ``make bench``'s p99 at one connection was +0.96 to +1.40 ms over
the direct upstream without the yields (three runs, both paths) and +0.70 to
+0.98 with them (five runs; see ``bench/results/2026-11-22-profile.txt``,
session 9). The writer keeps its normal priority: at ``SCHED_IDLE`` the p99
was lower still (+0.63 to +0.78), but a busy machine can then starve the
writer for seconds, while it holds the file's write lock, and an unprivileged
thread cannot raise its priority again.

Batches of up to 0.25 s and 1,000 records: fewer flushes, fewer of those
collisions (20 ms batches measured p99 1.35 ms against 0.99 ms, session 5). A
SIGKILL loses at most the last :data:`FLUSH_INTERVAL`, a clean stop nothing.
(Longer batches once grew the resident memory: one prepared statement per
batch size; see :func:`pooldaemon.usage._rows.insert_rows`.)

While nothing comes, the writer sleeps. Reads go through their own
connection, one read transaction per call: in WAL mode they run beside the
writer (and beside other processes) and see every committed record, not the
ones still buffered. Write only through this class: the rollup must follow
every change of the raw rows.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn, Self

from pooldaemon.errors import StoreError
from pooldaemon.usage._records import GroupBy, Spend, UsageRecord, UsageSummary
from pooldaemon.usage._rollup import day_of, rebuild_days, register, roll_up_after
from pooldaemon.usage._rows import (
    SELECT_COLUMNS,
    Row,
    insert_rows,
    record_from_row,
    record_to_row,
)
from pooldaemon.usage._schema import connect, open_database, transaction
from pooldaemon.usage._summary import (
    Folder,
    Query,
    raw_where,
    spend_from_rows,
    spend_queries,
    summary_queries,
)

__all__ = ["FLUSH_INTERVAL", "FLUSH_MAX", "UsageStore"]

_log = logging.getLogger("pooldaemon.usage")
_GROUPS = frozenset(("provider", "model", "client", "day"))
_POLL_S = 1.0  # how often a waiting writer checks that the main thread still runs
_RETRY_S = 1.0  # after a failed write (disk full, file locked ...), wait at least this long
FLUSH_INTERVAL = 0.25  # seconds from a batch's first record to its write
FLUSH_MAX = 1000  # records that start a write at once
# Between the statements of a flush the writer lets a waiting thread have its core
# (the module docstring says why). Where the OS has no sched_yield: nothing.
_yield_core: Callable[[], object] = getattr(os, "sched_yield", lambda: None)


class UsageStore:
    """Per-request usage records in a SQLite file, written behind the request path.

    Thread-safe. Close it (or use it as a context manager) to write what is
    still buffered and stop the writer thread. Errors of SQLite and of the
    file system surface as :class:`~pooldaemon.errors.StoreError`, naming the file.
    """

    def __init__(
        self, path: Path, *, flush_interval: float = FLUSH_INTERVAL, flush_max: int = FLUSH_MAX
    ) -> None:
        if flush_interval <= 0 or flush_max < 1:
            raise ValueError("flush_interval must be > 0 and flush_max >= 1")
        self.path = Path(path)
        self._flush_interval = flush_interval
        self._flush_max = flush_max
        # Records are kept (oldest dropped first) up to this many while writes fail.
        self._max_buffered = max(100 * flush_max, 100_000)
        self._writer = open_database(self.path)
        try:
            register(self._writer)
            self._reader = connect(self.path, read_only=True)
        except sqlite3.Error as exc:
            self._writer.close()
            raise StoreError(f"cannot open the usage store {self.path}: {exc}") from exc
        self._buffer: list[Row] = []
        self._wake = threading.Condition(threading.Lock())
        self._write_lock = threading.Lock()  # one user of the writer connection at a time
        self._read_lock = threading.Lock()
        self._closing = False
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name=f"usage-writer:{self.path.name}", daemon=False
        )
        self._thread.start()

    # -- writing ---------------------------------------------------------------

    def add(self, record: UsageRecord) -> None:
        """Queue one record for writing; never waits on the disk."""
        row = record_to_row(record)  # here, so a malformed record fails its caller
        with self._wake:
            if self._closing:
                raise StoreError(f"the usage store {self.path} is closed")
            self._buffer.append(row)
            waiting = len(self._buffer)
            if waiting == 1 or waiting >= self._flush_max:
                self._wake.notify()  # the first starts the interval, the last ends it

    def flush(self) -> int:
        """Write every buffered record now, in one transaction; return how many."""
        with self._write_lock:
            return self._flush_locked()

    def _flush_locked(self) -> int:
        self._check_open()
        with self._wake:
            batch, self._buffer = self._buffer, []
        if not batch:
            return 0
        try:
            with transaction(self._writer) as conn:
                last_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM usage").fetchone()[0]
                end = insert_rows(conn, batch, _yield_core)
                assert end is not None, "the batch is not empty"
                roll_up_after(conn, last_id, end, _yield_core)
        except sqlite3.Error as exc:
            self._requeue(batch)
            self._fail("write usage records to", exc)
        return len(batch)

    def _requeue(self, batch: list[Row]) -> None:
        with self._wake:
            self._buffer[:0] = batch
            excess = len(self._buffer) - self._max_buffered
            if excess > 0:
                del self._buffer[:excess]
                _log.error("event=usage_records_dropped path=%s count=%d", self.path, excess)

    def _run(self) -> None:
        failed = False
        while True:
            with self._wake:
                while not self._stopping() and not self._buffer:
                    self._wake.wait(_POLL_S)  # idle: no wake-ups but the liveness check
                wait = max(self._flush_interval, _RETRY_S) if failed else self._flush_interval
                deadline = time.monotonic() + wait
                # After a failure, wait the whole time even if the buffer is full.
                while not self._stopping() and (failed or len(self._buffer) < self._flush_max):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._wake.wait(min(remaining, _POLL_S))
                closing = self._stopping()
            try:
                self.flush()
                failed = False
            except StoreError as exc:
                failed = True
                _log.warning("event=usage_flush_failed path=%s error=%r", self.path, str(exc))
            except Exception:  # a bug: keep the writer alive, the records are requeued
                failed = True
                _log.exception("event=usage_flush_failed path=%s", self.path)
            if closing:
                return

    def _stopping(self) -> bool:
        # A store never closed must not keep the interpreter from exiting: once
        # the main thread is done, write what is left and end.
        return self._closing or not threading.main_thread().is_alive()

    # -- lifecycle -------------------------------------------------------------

    def close(self) -> None:
        """Write what is buffered, stop the writer thread, close the file. Idempotent."""
        with self._wake:
            if self._closing:
                already = True
            else:
                already = False
                self._closing = True
                self._wake.notify()
        if already:
            self._thread.join()
            return
        self._thread.join()
        try:
            self.flush()  # raises what the writer's last attempt could only log
        finally:
            with self._write_lock, self._read_lock:
                self._writer.close()
                self._reader.close()
                self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ---------------------------------------------------------------

    def summarize(
        self,
        since: float,
        until: float,
        group_by: GroupBy,
        *,
        provider: str | None = None,
        client: str | None = None,
    ) -> list[UsageSummary]:
        """One summary per provider, model, client or UTC day, for ``since <= ts < until``.

        Sorted by cost, highest first, then by key. A ``client`` of ``""``
        selects requests made without a client name. Only written (flushed)
        records count.
        """
        if group_by not in _GROUPS:
            raise ValueError(f"group_by must be one of {sorted(_GROUPS)}, not {group_by!r}")
        folder = Folder(group_by)
        for query, rows in self._read_all(
            summary_queries(group_by, since, until, provider, client)
        ):
            folder.add(query, rows)
        return folder.summaries()

    def total(
        self,
        since: float,
        until: float,
        *,
        provider: str | None = None,
        client: str | None = None,
    ) -> UsageSummary:
        """All records with ``since <= ts < until`` as one summary, keyed ``"total"``."""
        folder = Folder(None)
        for query, rows in self._read_all(summary_queries(None, since, until, provider, client)):
            folder.add(query, rows)
        return folder.total()

    def spend(
        self, since: float, *, provider: str | None = None, client: str | None = None
    ) -> Spend:
        """Cost and billed tokens of the records from ``since`` on, for budgets."""
        results = self._read_all(spend_queries(since, provider, client))
        return spend_from_rows(row for _, rows in results for row in rows)

    def key_usage(self) -> dict[tuple[str, str], tuple[int, float]]:
        """(provider, key_id) -> (requests, unix time of the last one), all time."""
        sql = "SELECT provider, key_id, requests, last_ts FROM key_usage"
        [(_, rows)] = self._read_all([Query(sql, ())])
        return {(row[0], row[1]): (int(row[2]), float(row[3])) for row in rows}

    def records(self, since: float, until: float, limit: int = 1000) -> list[UsageRecord]:
        """The newest ``limit`` records with ``since <= ts < until``, newest first."""
        cond = raw_where(since, until)
        sql = f"SELECT {SELECT_COLUMNS} FROM usage WHERE {cond.sql} ORDER BY ts DESC, id DESC"
        [(_, rows)] = self._read_all([Query(f"{sql} LIMIT ?", (*cond.params, limit))])
        return [record_from_row(row) for row in rows]

    def _read_all(self, queries: list[Query]) -> list[tuple[Query, list[tuple[Any, ...]]]]:
        """Run read queries in one read transaction, so they see one state of the file."""
        with self._read_lock:
            if self._closed:
                raise StoreError(f"the usage store {self.path} is closed")
            try:
                self._reader.execute("BEGIN")
                try:
                    return [(q, self._reader.execute(q.sql, q.params).fetchall()) for q in queries]
                finally:
                    self._reader.execute("COMMIT")
            except sqlite3.Error as exc:
                self._fail("read", exc)

    # -- maintenance -----------------------------------------------------------

    def prune(self, before: float) -> int:
        """Delete the records older than ``before`` (retention); return how many."""
        with self._write_lock:
            self._flush_locked()
            try:
                with transaction(self._writer) as conn:
                    deleted: int = conn.execute(
                        "DELETE FROM usage WHERE ts < ?", (before,)
                    ).rowcount
                    # Whole days before the cut go; the day it falls in is recounted.
                    conn.execute("DELETE FROM usage_daily WHERE day < ?", (day_of(before),))
                    rebuild_days(conn, [day_of(before)])
                return deleted
            except sqlite3.Error as exc:
                self._fail("prune", exc)

    def recalculate_costs(
        self,
        since: float,
        until: float,
        price: Callable[[UsageRecord], tuple[float, str]],
    ) -> int:
        """Re-price the records with ``since <= ts < until`` after a pricing change.

        ``price(record)`` returns ``(cost_usd, pricing_source)``. Every change is
        written in one transaction (none if ``price`` raises). Returns how many
        records' cost changed.
        """
        with self._write_lock:
            self._flush_locked()
            cond = raw_where(since, until)
            try:
                with transaction(self._writer) as conn:
                    rows = conn.execute(
                        f"SELECT {SELECT_COLUMNS} FROM usage WHERE {cond.sql}", cond.params
                    ).fetchall()
                    updates: list[tuple[float, str, int]] = []
                    days: set[int] = set()
                    changed = 0
                    for row in rows:
                        record = record_from_row(row)
                        cost, source = price(record)
                        if cost != record.cost_usd or source != record.pricing_source:
                            updates.append((cost, source, row[0]))
                        if cost != record.cost_usd:
                            changed += 1
                            days.add(day_of(record.ts))
                    conn.executemany(
                        "UPDATE usage SET cost_usd = ?, pricing_source = ? WHERE id = ?",
                        updates,
                    )
                    rebuild_days(conn, days)
            except sqlite3.Error as exc:
                self._fail("re-price", exc)
            return changed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"the usage store {self.path} is closed")

    def _fail(self, action: str, exc: sqlite3.Error) -> NoReturn:
        raise StoreError(f"cannot {action} the usage store {self.path}: {exc}") from exc
