"""The policy store's table, in the record's database: one DDL per backend.

Kept apart from ``record.policy_store`` so that each backend's schema (created once, when the
record is opened) can include it without importing the store.
"""

from __future__ import annotations

from typing import Final

POLICY_TABLE: Final[str] = "policy_log"
# The newest entry's number and hash, moved in each append's transaction: deleting the newest
# entries (after dropping the trigger) leaves a head that no entry matches.
POLICY_HEAD: Final[str] = "policy_log_head"
POLICY_COLUMNS: Final[tuple[str, ...]] = (
    "seq",
    "time",
    "kind",
    "model_version",
    "mode",
    "version",
    "parent",
    "author",
    "reason",
    "body",
    "prev_hash",
    "hash",
)
# One chain for the whole store: every version and every promotion or rollback, in order.
# ``seq`` is the primary key, so two writers racing for the same place cannot both commit.
SQLITE: Final[str] = f"""
CREATE TABLE IF NOT EXISTS {POLICY_TABLE} (
    "seq" INTEGER PRIMARY KEY, "time" TEXT NOT NULL, "kind" TEXT NOT NULL,
    "model_version" TEXT NOT NULL, "mode" TEXT NOT NULL, "version" TEXT NOT NULL,
    "parent" TEXT NOT NULL, "author" TEXT NOT NULL, "reason" TEXT NOT NULL,
    "body" TEXT NOT NULL, "prev_hash" TEXT NOT NULL, "hash" TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS {POLICY_HEAD} (
    "id" INTEGER PRIMARY KEY CHECK ("id" = 1), "last_seq" INTEGER NOT NULL,
    "last_hash" TEXT NOT NULL
) STRICT;
CREATE TRIGGER IF NOT EXISTS {POLICY_TABLE}_append_only BEFORE UPDATE ON {POLICY_TABLE}
BEGIN SELECT RAISE(ABORT, 'the policy log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {POLICY_TABLE}_no_delete BEFORE DELETE ON {POLICY_TABLE}
BEGIN SELECT RAISE(ABORT, 'the policy log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS {POLICY_HEAD}_kept BEFORE DELETE ON {POLICY_HEAD}
BEGIN SELECT RAISE(ABORT, 'the policy log head is kept'); END;
"""
POSTGRES: Final[str] = f"""
CREATE TABLE IF NOT EXISTS {POLICY_TABLE} (
    "seq" bigint PRIMARY KEY, "time" text NOT NULL, "kind" text NOT NULL,
    "model_version" text NOT NULL, "mode" text NOT NULL, "version" text NOT NULL,
    "parent" text NOT NULL, "author" text NOT NULL, "reason" text NOT NULL,
    "body" text NOT NULL, "prev_hash" text NOT NULL, "hash" text NOT NULL
);
CREATE TABLE IF NOT EXISTS {POLICY_HEAD} (
    "id" integer PRIMARY KEY CHECK ("id" = 1), "last_seq" bigint NOT NULL,
    "last_hash" text NOT NULL
);
CREATE OR REPLACE FUNCTION {POLICY_TABLE}_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the policy log is append-only'; END $$;
CREATE OR REPLACE TRIGGER {POLICY_TABLE}_append_only BEFORE UPDATE OR DELETE ON {POLICY_TABLE}
FOR EACH ROW EXECUTE FUNCTION {POLICY_TABLE}_refuse_change();
CREATE OR REPLACE TRIGGER {POLICY_TABLE}_no_truncate BEFORE TRUNCATE ON {POLICY_TABLE}
FOR EACH STATEMENT EXECUTE FUNCTION {POLICY_TABLE}_refuse_change();
CREATE OR REPLACE TRIGGER {POLICY_HEAD}_kept BEFORE DELETE OR TRUNCATE ON {POLICY_HEAD}
FOR EACH STATEMENT EXECUTE FUNCTION {POLICY_TABLE}_refuse_change();
"""
