"""The embedded backend: one SQLite file in WAL mode, with the standard library's ``sqlite3``.

WAL lets readers (``GET /decisions``, ``fairgate record export``) run while a writer commits;
``synchronous=FULL`` makes every commit durable before it returns (NORMAL would lose the last
commits on power loss, and a decision must never be answered before its record is safe).
Several processes may append to one file: SQLite serialises their transactions, and each
waits up to ``busy_timeout`` seconds for another's to end before failing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from record.entry import StoredRecord
from record.policy_schema import SQLITE as POLICY_SCHEMA
from record.store import (
    HEAD_TABLE,
    PRUNE_TABLE,
    QUOTED,
    TABLE,
    RecordStore,
    RecordStoreError,
    prune_chains,
)
from record.verify import Head, PruneMark, VerifyReport, verify_chains

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    "writer_id" TEXT NOT NULL,
    "seq" INTEGER NOT NULL,
    "time" TEXT NOT NULL,
    "application_id" TEXT NOT NULL,
    "request" TEXT NOT NULL,
    "score" REAL NOT NULL,
    "group" TEXT NOT NULL,
    "rule" TEXT NOT NULL,
    "draw" REAL,
    "approval_probability" REAL NOT NULL,
    "decision" TEXT NOT NULL,
    "reasons" TEXT NOT NULL,
    "model_version" TEXT NOT NULL,
    "policy_version" TEXT NOT NULL,
    "probe" INTEGER NOT NULL,
    "prev_hash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    PRIMARY KEY ("writer_id", "seq")
) STRICT;
-- The id alone, not (id, time): application ids arrive in random order, so every commit
-- rewrites the leaf pages it touches; a narrower index has fewer (a quarter less time per
-- row at 120k rows). An application's few rows are sorted by time after the lookup.
CREATE INDEX IF NOT EXISTS {TABLE}_application ON {TABLE} ("application_id");
-- Time first (export, prune and audit windows), then every column a recalibration reads:
-- it scans this index alone, not the rows with their requests (a fifth of the bytes).
CREATE INDEX IF NOT EXISTS {TABLE}_window ON {TABLE} (
    "time", "model_version", "policy_version", "probe", "group", "score", "decision", "draw"
);
DROP INDEX IF EXISTS {TABLE}_time;
CREATE TABLE IF NOT EXISTS {HEAD_TABLE} (
    "writer_id" TEXT PRIMARY KEY, "last_seq" INTEGER NOT NULL, "last_hash" TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS {PRUNE_TABLE} (
    "writer_id" TEXT PRIMARY KEY, "through_seq" INTEGER NOT NULL,
    "through_hash" TEXT NOT NULL, "cutoff" TEXT NOT NULL, "pruned_at" TEXT NOT NULL
) STRICT;
-- Append-only: an edit is refused here; verify() finds one made around this trigger.
CREATE TRIGGER IF NOT EXISTS {TABLE}_append_only BEFORE UPDATE ON {TABLE}
BEGIN SELECT RAISE(ABORT, 'decision records are append-only'); END;
"""
INSERT = f"INSERT INTO {TABLE} ({QUOTED}) VALUES ({', '.join('?' * 17)})"
MOVE_HEAD = (
    f'INSERT INTO {HEAD_TABLE} VALUES (?, ?, ?) ON CONFLICT ("writer_id") DO UPDATE SET '
    '"last_seq" = excluded."last_seq", "last_hash" = excluded."last_hash"'
)
SELECT = f"SELECT {QUOTED} FROM {TABLE}"


def _row(cursor: sqlite3.Cursor, row: tuple[Any, ...]) -> StoredRecord:
    # SQLite has no boolean: the probe flag is stored as 0/1 and hashed as a boolean.
    return StoredRecord(*row[:14], bool(row[14]), row[15], row[16])


class SqliteStore(RecordStore):
    backend = "sqlite"

    def __init__(self, path: Path, *, busy_timeout: float = 2.0, create: bool = True) -> None:
        super().__init__()
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        if not create:
            if not self.path.is_file():
                where = self.path.resolve()
                raise RecordStoreError(f"no decision record at {where} (no such file)")
            if (
                self._conn()
                .execute("SELECT 1 FROM sqlite_master WHERE name = ?", (TABLE,))
                .fetchone()
                is None
            ):
                self.close()
                raise RecordStoreError(f"{self.path} holds no decision record")
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn().executescript(SCHEMA + POLICY_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are begun and ended here, explicitly.
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def append(self, rows: Sequence[StoredRecord]) -> None:
        if not rows:
            return
        conn = self._conn()
        last = rows[-1]
        # IMMEDIATE takes the write lock now, so a busy file fails here, before any insert.
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(INSERT, rows)
            conn.execute(MOVE_HEAD, (last.writer_id, last.seq, last.hash))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def head(self, writer_id: str) -> Head | None:
        found = (
            self._conn()
            .execute(
                f'SELECT "last_seq", "last_hash" FROM {HEAD_TABLE} WHERE "writer_id" = ?',
                (writer_id,),
            )
            .fetchone()
        )
        return None if found is None else Head(*found)

    def _prune_before(self, cutoff: str, now: str) -> int:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            removed = prune_chains(conn, "?", cutoff, now)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return removed

    def decisions_for(self, application_id: str, limit: int | None = None) -> list[StoredRecord]:
        cursor = self._conn().cursor()
        cursor.row_factory = _row
        return cursor.execute(
            f'{SELECT} WHERE "application_id" = ? ORDER BY "time" DESC, "writer_id", "seq" DESC'
            " LIMIT ?",
            (application_id, -1 if limit is None else limit),
        ).fetchall()

    def _rows_between(self, since: str, until: str) -> Iterator[StoredRecord]:
        cursor = self._conn().cursor()
        cursor.row_factory = _row
        yield from cursor.execute(
            f'{SELECT} WHERE "time" >= ? AND "time" < ? ORDER BY "time", "writer_id", "seq"',
            (since, until),
        )

    def count(self) -> int:
        return self._conn().execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]

    def verify(self) -> VerifyReport:
        # Its own connection and one read transaction: a snapshot of rows, heads and marks
        # that writers committing meanwhile do not change (WAL readers see a fixed state).
        conn = self._connect()
        try:
            conn.execute("BEGIN")
            heads = {w: Head(s, h) for w, s, h in conn.execute(f"SELECT * FROM {HEAD_TABLE}")}
            marks = {
                w: PruneMark(s, h)
                for w, s, h in conn.execute(
                    f'SELECT "writer_id", "through_seq", "through_hash" FROM {PRUNE_TABLE}'
                )
            }
            cursor = conn.cursor()
            cursor.row_factory = _row
            rows = cursor.execute(f'{SELECT} ORDER BY "writer_id", "seq"')
            report = verify_chains(rows, heads, marks)
            conn.execute("COMMIT")
            return report
        finally:
            conn.close()
