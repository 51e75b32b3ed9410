"""The shared backend for several replicas: PostgreSQL through psycopg 3.

Rows go in with ``COPY ... FROM STDIN`` (one round trip of streamed rows per transaction;
measured faster than a pipelined ``executemany``, see docs/record.md). ``request`` and
``reasons`` are ``json`` columns, which keep the text exactly as written (``jsonb`` would
re-encode it and the hash is over the text), and are read back as text for the same reason.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

import psycopg
from psycopg.types.string import TextLoader

from record.entry import StoredRecord, format_time
from record.policy_schema import POSTGRES as POLICY_SCHEMA
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
    "writer_id" text NOT NULL,
    "seq" bigint NOT NULL,
    "time" timestamptz NOT NULL,
    "application_id" text NOT NULL,
    "request" json NOT NULL,
    "score" double precision NOT NULL,
    "group" text NOT NULL,
    "rule" text NOT NULL,
    "draw" double precision,
    "approval_probability" double precision NOT NULL,
    "decision" text NOT NULL,
    "reasons" json NOT NULL,
    "model_version" text NOT NULL,
    "policy_version" text NOT NULL,
    "probe" boolean NOT NULL,
    "prev_hash" text NOT NULL,
    "hash" text NOT NULL,
    PRIMARY KEY ("writer_id", "seq")
);
CREATE INDEX IF NOT EXISTS {TABLE}_application ON {TABLE} ("application_id");
-- Time first (export, prune and audit windows), then every column a recalibration reads, so
-- that its query can be answered from the index alone (record/policy_window.py).
CREATE INDEX IF NOT EXISTS {TABLE}_window ON {TABLE} ("time")
    INCLUDE ("model_version", "policy_version", "probe", "group", "score", "decision", "draw");
DROP INDEX IF EXISTS {TABLE}_time;
CREATE TABLE IF NOT EXISTS {HEAD_TABLE} (
    "writer_id" text PRIMARY KEY, "last_seq" bigint NOT NULL, "last_hash" text NOT NULL
);
CREATE TABLE IF NOT EXISTS {PRUNE_TABLE} (
    "writer_id" text PRIMARY KEY, "through_seq" bigint NOT NULL,
    "through_hash" text NOT NULL, "cutoff" timestamptz NOT NULL, "pruned_at" timestamptz NOT NULL
);
CREATE OR REPLACE FUNCTION {TABLE}_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'decision records are append-only'; END $$;
-- Append-only: an edit is refused here; verify() finds one made around this trigger.
CREATE OR REPLACE TRIGGER {TABLE}_append_only BEFORE UPDATE ON {TABLE}
FOR EACH ROW EXECUTE FUNCTION {TABLE}_refuse_update();
"""
SCHEMA_LOCK = 0x66616972  # advisory lock: replicas starting together create the schema once
COPY = f"COPY {TABLE} ({QUOTED}) FROM STDIN"
INSERT = f"INSERT INTO {TABLE} ({QUOTED}) VALUES ({', '.join(['%s'] * 17)})"
MOVE_HEAD = (
    f'INSERT INTO {HEAD_TABLE} VALUES (%s, %s, %s) ON CONFLICT ("writer_id") DO UPDATE SET '
    '"last_seq" = excluded."last_seq", "last_hash" = excluded."last_hash"'
)
SELECT = f"SELECT {QUOTED} FROM {TABLE}"


def _redacted(dsn: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


def _row(values: Sequence[Any]) -> StoredRecord:
    return StoredRecord(values[0], values[1], format_time(values[2]), *values[3:])


class PostgresStore(RecordStore):
    backend = "postgresql"

    def __init__(
        self,
        dsn: str,
        *,
        connect_timeout: float = 5.0,
        insert: Literal["copy", "executemany"] = "copy",
        create: bool = True,
    ) -> None:
        super().__init__()
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self.insert = insert
        conn = self._conn()
        if not create:
            if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is None:
                self.close()
                raise RecordStoreError(f"the database at {_redacted(dsn)} holds no decision record")
            return
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(SCHEMA)
            conn.execute(POLICY_SCHEMA)

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self.dsn, connect_timeout=max(1, round(self.connect_timeout)),
                               autocommit=True)  # fmt: skip
        # json as text: the hash is over the text as stored, not a re-encoding of it.
        for name in ("json", "jsonb"):
            conn.adapters.register_loader(name, TextLoader)
        return conn

    def _alive(self, conn: psycopg.Connection) -> bool:
        return not (conn.closed or conn.broken)

    def append(self, rows: Sequence[StoredRecord]) -> None:
        if not rows:
            return
        conn = self._conn()
        last = rows[-1]
        with conn.transaction(), conn.cursor() as cursor:
            if self.insert == "copy":
                with cursor.copy(COPY) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(INSERT, rows)
            cursor.execute(MOVE_HEAD, (last.writer_id, last.seq, last.hash))

    def head(self, writer_id: str) -> Head | None:
        found = (
            self._conn()
            .execute(
                f'SELECT "last_seq", "last_hash" FROM {HEAD_TABLE} WHERE "writer_id" = %s',
                (writer_id,),
            )
            .fetchone()
        )
        return None if found is None else Head(*found)

    def _prune_before(self, cutoff: str, now: str) -> int:
        conn = self._conn()
        with conn.transaction():
            return prune_chains(conn, "%s", cutoff, now)

    def decisions_for(self, application_id: str, limit: int | None = None) -> list[StoredRecord]:
        query = (
            f'{SELECT} WHERE "application_id" = %s '
            'ORDER BY "time" DESC, "writer_id", "seq" DESC LIMIT %s'
        )
        rows = self._conn().execute(query, (application_id, limit)).fetchall()
        return [_row(row) for row in rows]

    def _rows_between(self, since: str, until: str) -> Iterator[StoredRecord]:
        # A server-side cursor on a connection of its own: an export of months of records
        # streams in chunks instead of arriving whole.
        with self._connect() as conn, conn.transaction(), conn.cursor(name="export") as cursor:
            cursor.itersize = 5_000
            cursor.execute(
                f'{SELECT} WHERE "time" >= %s AND "time" < %s ORDER BY "time", "writer_id", "seq"',
                (since, until),
            )
            for row in cursor:
                yield _row(row)

    def count(self) -> int:
        return self._conn().execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]

    def verify(self) -> VerifyReport:
        # One REPEATABLE READ transaction: rows, heads and marks from the same snapshot.
        with self._connect() as conn:
            conn.autocommit = False
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with conn.transaction():
                heads = {w: Head(s, h) for w, s, h in conn.execute(f"SELECT * FROM {HEAD_TABLE}")}
                marks = {
                    w: PruneMark(s, h)
                    for w, s, h in conn.execute(
                        f'SELECT "writer_id", "through_seq", "through_hash" FROM {PRUNE_TABLE}'
                    )
                }
                with conn.cursor(name="verify") as cursor:
                    cursor.itersize = 5_000
                    cursor.execute(f'{SELECT} ORDER BY "writer_id", "seq"')
                    return verify_chains((_row(r) for r in cursor), heads, marks)
