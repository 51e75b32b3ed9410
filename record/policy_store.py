"""The policy store: every policy version and every promotion or rollback, in the record's
database, append-only and hash-chained like the decisions.

One table (``record.policy_schema``), one chain. An entry is a ``version`` (a policy's rules,
the window of live decisions it was computed from and its expected effect, with its parent)
or an activation: ``promote`` (make a version active) or ``rollback`` (return to the version
active before). Versions and activations belong to a *scope*, the model and the policy mode
being served (a mode's scores come from its own scorer: an lda cut-off means nothing to the
main model). What is active in a scope is the top of a stack replayed from its activations:
the trained policy at the bottom, each promote pushes, each rollback pops.

Every replica's workers poll ``last_seq`` (one indexed read) and, when it moved, read what is
active now; so a promotion written from any machine reaches every replica.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

from record.entry import GENESIS, format_time, to_json
from record.policy_schema import POLICY_COLUMNS, POLICY_HEAD, POLICY_TABLE
from record.policy_schema import POSTGRES as POSTGRES_SCHEMA
from record.policy_schema import SQLITE as SQLITE_SCHEMA
from record.store import RecordStore, open_record

Kind = Literal["version", "promote", "rollback"]
ENCODING: Final[str] = "fairgate-policy-1"
POLICY_LOCK: Final[int] = 0x706F6C69  # advisory lock: one appender at a time (PostgreSQL)
NOTHING_TO_ROLL_BACK: Final[str] = (
    "nothing to roll back in {scope}: the trained policy {version} is active"
)
ALREADY_ACTIVE: Final[str] = "{version} is already the active version in {scope}"
UNKNOWN_VERSION: Final[str] = "no policy version {version!r} for {scope} in the store"
_QUOTED = ", ".join(f'"{name}"' for name in POLICY_COLUMNS)


class PolicyStoreError(RuntimeError):
    """A version that is not there, a rollback with nothing to return to."""


class Scope(NamedTuple):
    """What a policy applies to: the model whose scores it reads and the served mode."""

    model_version: str
    mode: str

    def __str__(self) -> str:
        return f"{self.model_version} ({self.mode})"


class PolicyEntry(NamedTuple):
    """A row of the policy log, in column order."""

    seq: int
    time: str
    kind: str
    model_version: str
    mode: str
    version: str
    parent: str  # a version's parent; an activation's "active before"
    author: str
    reason: str
    body: str  # JSON: a version's policy, window and expected effect; {} for an activation
    prev_hash: str
    hash: str

    @property
    def scope(self) -> Scope:
        return Scope(self.model_version, self.mode)

    def body_data(self) -> dict[str, Any]:
        return json.loads(self.body)

    def as_dict(self) -> dict[str, Any]:
        row = self._asdict()
        row["body"] = self.body_data()
        return row


@dataclass(frozen=True)
class Active:
    """What is active in a scope: the version, the activation that made it so (None: the
    trained policy, never changed) and the version a rollback would return to."""

    version: str
    since: PolicyEntry | None
    previous: str | None


def entry_hash(fields: Sequence[Any], prev_hash: str) -> str:
    """SHA-256 over an entry's ten data columns and the previous hash, each text as
    ``<length>:<text>`` so that no text can be taken for another."""
    seq, *texts = fields[:10]
    parts = "".join(f"{len(t)}:{t}" for t in texts)
    return hashlib.sha256(f"{ENCODING}\n{int(seq)}\n{parts}{prev_hash}".encode()).hexdigest()


def default_author() -> str:
    """``user@host``, for entries whose author is not given."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def replay_active(entries: Sequence[PolicyEntry], scope: Scope, trained: str) -> Active:
    """The active version of ``scope`` after its activations in ``entries`` (oldest first)."""
    stack: list[str] = [trained]
    since: PolicyEntry | None = None
    for entry in entries:
        if entry.kind == "version" or entry.scope != scope:
            continue
        if entry.kind == "promote":
            stack.append(entry.version)
        elif len(stack) > 1:
            stack.pop()
        since = entry
    return Active(stack[-1], since, stack[-2] if len(stack) > 1 else None)


class PolicyStore:
    """The policy log in a record store's database (its connections, one per thread)."""

    def __init__(
        self, store: RecordStore, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self.store = store
        self.clock = clock
        self._p = "?" if store.backend == "sqlite" else "%s"
        self._ensure_table()

    @classmethod
    def open(cls, url: str) -> PolicyStore:
        return cls(open_record(url))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> PolicyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _ensure_table(self) -> None:
        # A record made before the policy log existed gets the table on first use.
        conn = self.store.connection()
        if self.store.backend == "sqlite":
            conn.executescript(SQLITE_SCHEMA)
            return
        from record.postgres_store import SCHEMA_LOCK

        # The record's schema lock, not the appenders': opening a record runs this DDL too, and
        # two sessions replacing the same function at once fail ("tuple concurrently updated").
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            conn.execute(POSTGRES_SCHEMA)

    # --- reading ----------------------------------------------------------------------
    def last_seq(self) -> int:
        """The newest entry's number (0: none); what the workers poll."""
        row = self.store.connection().execute(f'SELECT MAX("seq") FROM {POLICY_TABLE}').fetchone()
        return int(row[0] or 0)

    def entries(self, scope: Scope | None = None) -> list[PolicyEntry]:
        """Every entry (of ``scope``), oldest first."""
        query = f"SELECT {_QUOTED} FROM {POLICY_TABLE}"
        args: tuple[Any, ...] = ()
        if scope is not None:
            query += f' WHERE "model_version" = {self._p} AND "mode" = {self._p}'
            args = tuple(scope)
        rows = self.store.connection().execute(query + ' ORDER BY "seq"', args).fetchall()
        return [PolicyEntry(*row) for row in rows]

    def version(self, scope: Scope, version: str) -> PolicyEntry:
        """The ``version`` entry of that version in ``scope``; ``PolicyStoreError`` if none."""
        for entry in self.entries(scope):
            if entry.kind == "version" and entry.version == version:
                return entry
        raise PolicyStoreError(UNKNOWN_VERSION.format(version=version, scope=scope))

    def active(self, scope: Scope, trained: str) -> Active:
        """What is active in ``scope``; ``trained``: the model's own policy version."""
        return replay_active(self.entries(scope), scope, trained)

    # --- writing ----------------------------------------------------------------------
    def add_version(
        self,
        scope: Scope,
        version: str,
        *,
        parent: str,
        body: dict[str, Any],
        author: str | None = None,
        reason: str = "",
    ) -> PolicyEntry:
        """Store a version (its body holds the policy under ``"policy"``); a version already
        stored in this scope is returned as it is (the same rules have the same version)."""

        def stored() -> PolicyEntry | None:
            for entry in self.entries(scope):
                if entry.kind == "version" and entry.version == version:
                    return entry
            return None

        return stored() or self._append(
            "version", scope, lambda: (version, parent), author, reason, body, stored
        )

    def promote(
        self, scope: Scope, version: str, *, trained: str, author: str | None, reason: str
    ) -> PolicyEntry:
        """Make a stored version active; returns the activation."""
        self.version(scope, version)  # refuses an unknown one

        def named() -> tuple[str, str]:
            now = self.active(scope, trained).version
            if now == version:  # a second push of it would make the next rollback a no-op
                raise PolicyStoreError(ALREADY_ACTIVE.format(version=version, scope=scope))
            return version, now

        return self._append("promote", scope, named, author, reason, {})

    def rollback(
        self, scope: Scope, *, trained: str, author: str | None, reason: str
    ) -> PolicyEntry:
        """Return to the version active before the current one."""

        def named() -> tuple[str, str]:
            now = self.active(scope, trained)
            if now.previous is None:
                raise PolicyStoreError(NOTHING_TO_ROLL_BACK.format(scope=scope, version=trained))
            return now.previous, now.version

        return self._append("rollback", scope, named, author, reason, {})

    def _append(
        self,
        kind: Kind,
        scope: Scope,
        named: Callable[[], tuple[str, str]],
        author: str | None,
        reason: str,
        body: dict[str, Any],
        stored: Callable[[], PolicyEntry | None] = lambda: None,
    ) -> PolicyEntry:
        """Append an entry; ``named`` gives its version and parent, read under the write lock
        (what is active is read there: two racing promotions or rollbacks each see the
        other's entry, or one of them would name a stale parent or pop twice). ``stored``: the
        entry this one would repeat, looked for under the lock too (returned, nothing added)."""
        conn = self.store.connection()
        p = self._p
        author = author or default_author()
        text = to_json(body)
        insert = f"INSERT INTO {POLICY_TABLE} ({_QUOTED}) VALUES ({', '.join([p] * 12)})"
        last = f'SELECT "seq", "hash" FROM {POLICY_TABLE} ORDER BY "seq" DESC LIMIT 1'

        head = (
            f'INSERT INTO {POLICY_HEAD} VALUES (1, {p}, {p}) ON CONFLICT ("id") DO UPDATE SET '
            '"last_seq" = excluded."last_seq", "last_hash" = excluded."last_hash"'
        )

        def write() -> PolicyEntry:
            already = stored()
            if already is not None:
                return already
            found = conn.execute(last).fetchone()
            seq, prev = (1, GENESIS) if found is None else (found[0] + 1, found[1])
            version, parent = named()
            data = (kind, scope.model_version, scope.mode, version, parent, author, reason, text)
            fields = (seq, format_time(self.clock()), *data)
            entry = PolicyEntry(*fields, prev, entry_hash(fields, prev))
            conn.execute(insert, entry)
            conn.execute(head, (entry.seq, entry.hash))
            return entry

        if self.store.backend == "sqlite":
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: no two appenders
            try:
                entry = write()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return entry
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (POLICY_LOCK,))
            return write()

    # --- checking ---------------------------------------------------------------------
    def _snapshot(self) -> tuple[tuple[int, str] | None, list[PolicyEntry]]:
        """The head and every entry from one read transaction: an append committed between
        two separate reads would look like an entry inserted past the head."""
        conn = self.store.connection()
        head_query = f'SELECT "last_seq", "last_hash" FROM {POLICY_HEAD}'
        if self.store.backend == "sqlite":
            conn.execute("BEGIN")
            try:
                head = conn.execute(head_query).fetchone()
                entries = self.entries()
            finally:
                conn.execute("COMMIT")
            return head, entries
        import psycopg

        with self.store._connect() as own:
            own.autocommit = False
            own.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            with own.transaction():
                head = own.execute(head_query).fetchone()
                query = f'SELECT {_QUOTED} FROM {POLICY_TABLE} ORDER BY "seq"'
                entries = [PolicyEntry(*row) for row in own.execute(query).fetchall()]
        return head, entries

    def verify(self) -> list[str]:
        """Problems in the chain (none: intact): an edited entry, a hole, a broken link, newest
        entries missing (the head names an entry that is not there)."""
        problems = []
        expected_seq, prev = 1, GENESIS
        head, entries = self._snapshot()
        last = (entries[-1].seq, entries[-1].hash) if entries else (0, GENESIS)
        if head is None and entries:
            problems.append(f"the head is missing ({len(entries)} entries, none named by it)")
        if head is not None and last != tuple(head):
            if last[0] > head[0]:
                problems.append(f"entries {head[0] + 1} to {last[0]}: past the head (inserted)")
            else:
                problems.append(f"entries after {last[0]} missing: the head names entry {head[0]}")
        for entry in entries:
            if entry.seq != expected_seq:
                problems.append(f"entry {expected_seq} to {entry.seq - 1} missing")
            if entry.prev_hash != prev:
                problems.append(f"entry {entry.seq}: does not follow the entry before it")
            if entry_hash(entry, entry.prev_hash) != entry.hash:
                problems.append(f"entry {entry.seq}: edited (its hash does not match)")
            expected_seq, prev = entry.seq + 1, entry.hash
        return problems
