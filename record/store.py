"""The record store: one interface, a SQLite and a PostgreSQL backend, ``open_record(url)``.

A store is safe to share between threads: each thread gets its own connection (SQLite and
psycopg connections are not meant to be used by two threads at once), made on first use and
made again after ``reset()``, which the writer calls after a failure.
"""

from __future__ import annotations

import contextlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from record.entry import COLUMNS, StoredRecord, format_time
from record.retention import DEFAULT_RETENTION, Duration, parse_duration
from record.url import RecordUrl, parse_record_url
from record.verify import Head, VerifyReport

TABLE = "decision_record"
HEAD_TABLE = "decision_record_head"  # each writer's last committed (seq, hash)
PRUNE_TABLE = "decision_record_prune"  # each writer's last pruned (seq, hash)
# A writer's prune mark moves forward with each prune (``{p}``: the driver's placeholder).
MARK_PRUNE = (
    f"INSERT INTO {PRUNE_TABLE} VALUES ({{p}}, {{p}}, {{p}}, {{p}}, {{p}}) "
    'ON CONFLICT ("writer_id") DO UPDATE SET "through_seq" = excluded."through_seq", '
    '"through_hash" = excluded."through_hash", "cutoff" = excluded."cutoff", '
    '"pruned_at" = excluded."pruned_at"'
)
QUOTED = ", ".join(f'"{name}"' for name in COLUMNS)  # "group" and "time" are SQL words


def prune_chains(conn: Any, p: str, cutoff: str, now: str) -> int:
    """Remove each writer's rows older than ``cutoff`` and move its prune mark, inside the
    caller's transaction (``conn``: a DB-API connection whose ``execute`` returns a cursor;
    ``p``: the driver's placeholder). Returns the number of rows removed."""
    removed = 0
    ends = conn.execute(
        f'SELECT "writer_id", MAX("seq") FROM {TABLE} WHERE "time" < {p} GROUP BY "writer_id"',
        (cutoff,),
    ).fetchall()
    for writer_id, through in ends:
        (through_hash,) = conn.execute(
            f'SELECT "hash" FROM {TABLE} WHERE "writer_id" = {p} AND "seq" = {p}',
            (writer_id, through),
        ).fetchone()
        removed += conn.execute(
            f'DELETE FROM {TABLE} WHERE "writer_id" = {p} AND "seq" <= {p}',
            (writer_id, through),
        ).rowcount
        conn.execute(MARK_PRUNE.format(p=p), (writer_id, through, through_hash, cutoff, now))
    return removed


class RecordStoreError(RuntimeError):
    """The store is not there (``create=False`` and no record at that URL)."""


def store_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a store raises when it is unreachable, locked, full or missing."""
    import sqlite3

    errors: tuple[type[BaseException], ...] = (RecordStoreError, sqlite3.Error, OSError)
    try:
        import psycopg
    except ImportError:  # only the SQLite backend is usable then
        return errors
    return (*errors, psycopg.Error)


class RecordStore(ABC):
    """Append-only decision records with a hash chain per writer."""

    backend: str

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[Any] = []

    # --- connections ------------------------------------------------------------------
    @abstractmethod
    def _connect(self) -> Any: ...

    def _alive(self, conn: Any) -> bool:
        """False for a connection known to be broken (the backend's driver tells)."""
        return True

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None and not self._alive(conn):
            self.reset()  # e.g. the server restarted: the first use failed, this one reconnects
            conn = None
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def connection(self) -> Any:
        """This thread's connection (made on first use): for the policy store and the window
        query, which live in the same database."""
        return self._conn()

    def reset(self) -> None:
        """Drop this thread's connection (after a failure); the next call makes a new one."""
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                if conn in self._connections:
                    self._connections.remove(conn)
            # A broken connection may fail to close; it is gone either way.
            with contextlib.suppress(Exception):
                conn.close()

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------
    @abstractmethod
    def append(self, rows: Sequence[StoredRecord]) -> None:
        """Insert ``rows`` (one writer's, consecutive) and move its head, in one transaction."""

    @abstractmethod
    def head(self, writer_id: str) -> Head | None:
        """The writer's last committed row, or None if it has committed none."""

    @abstractmethod
    def _prune_before(self, cutoff: str, now: str) -> int: ...

    def prune(
        self, older_than: Duration | str = DEFAULT_RETENTION, *, now: datetime | None = None
    ) -> int:
        """Delete records older than ``older_than`` (default 25 months); returns how many.

        Each writer loses a prefix of its chain, up to its last row older than the cutoff;
        the last removed row's sequence number and hash are kept as that writer's prune mark,
        so ``verify`` starts the chain there and reports nothing.
        """
        span = parse_duration(older_than) if isinstance(older_than, str) else older_than
        moment = now or datetime.now(UTC)
        return self._prune_before(format_time(span.before(moment)), format_time(moment))

    # --- reading ----------------------------------------------------------------------
    @abstractmethod
    def decisions_for(self, application_id: str, limit: int | None = None) -> list[StoredRecord]:
        """That application's records, newest first."""

    @abstractmethod
    def _rows_between(self, since: str, until: str) -> Iterator[StoredRecord]: ...

    def rows_between(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> Iterator[StoredRecord]:
        """Records with ``since <= time < until`` (unbounded where None), oldest first."""
        low = format_time(since or datetime(1, 1, 1, tzinfo=UTC))
        high = format_time(until or datetime(9999, 12, 31, tzinfo=UTC))
        return self._rows_between(low, high)

    @abstractmethod
    def count(self) -> int: ...

    @abstractmethod
    def verify(self) -> VerifyReport:
        """Check every chain in one consistent snapshot (see ``record.verify``)."""

    def export(
        self,
        path: Path,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        format: Literal["parquet", "csv"] = "parquet",
    ) -> int:
        """Write records with ``since <= time < until`` to ``path``; returns how many."""
        from record.export import write_records

        return write_records(self.rows_between(since, until), path, format)


def open_record(url: str | RecordUrl, **options: Any) -> RecordStore:
    """The store a record URL names, its tables created if missing.

    ``sqlite:///path/file.sqlite`` (WAL; the directory is created) or ``postgresql://...``.
    ``create=False`` opens an existing record only (``RecordStoreError`` otherwise), so a
    mistyped path or database is reported instead of verified as an empty record.
    """
    parsed = parse_record_url(url) if isinstance(url, str) else url
    if parsed.backend == "sqlite":
        from record.sqlite_store import SqliteStore

        assert parsed.path is not None
        return SqliteStore(parsed.path, **options)
    from record.postgres_store import PostgresStore

    assert parsed.dsn is not None
    return PostgresStore(parsed.dsn, **options)
