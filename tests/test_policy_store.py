"""The policy store and the live-decision window on both backends: a SQLite file and a
PostgreSQL server the test starts (tests/postgres.py). Tampering is done with raw SQL, as an
insider would; the entry hash is checked against an encoding written out here by hand."""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from fairgate.recalibrate import Window
from record import Record, RecordWriter, open_record
from record.entry import GENESIS
from record.policy_store import (
    Active,
    PolicyEntry,
    PolicyStore,
    PolicyStoreError,
    Scope,
    entry_hash,
)
from record.policy_window import read_window
from record.store import RecordStore
from tests.postgres import postgres_server, postgres_url, raw_sql  # noqa: F401 - fixtures

LDA = Scope("m:1", "lda")
TRAINED = "p-trained"
T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@dataclass
class Backend:
    url: str
    raw: Callable[[str], list[tuple]]  # one SQL statement, outside the store
    allow_edits: tuple[str, ...]  # what lifts the append-only triggers


# What lifts the append-only triggers, per backend.
LIFT = {
    "sqlite": ("DROP TRIGGER policy_log_append_only", "DROP TRIGGER policy_log_no_delete"),
    "postgresql": ("ALTER TABLE policy_log DISABLE TRIGGER policy_log_append_only",),
}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Iterator[Backend]:
    url, raw = raw_sql(request, tmp_path)
    yield Backend(url, raw, LIFT[request.param])


@pytest.fixture
def store(backend: Backend) -> Iterator[PolicyStore]:
    with PolicyStore.open(backend.url) as opened:
        yield opened


def add(store: PolicyStore, version: str, scope: Scope = LDA) -> PolicyEntry:
    return store.add_version(scope, version, parent=TRAINED, body={"policy": {"v": version}},
                             author="alice", reason=f"add {version}")  # fmt: skip


def promote(store: PolicyStore, version: str, scope: Scope = LDA) -> PolicyEntry:
    return store.promote(scope, version, trained=TRAINED, author="bob", reason=f"to {version}")


def rollback(store: PolicyStore, scope: Scope = LDA) -> PolicyEntry:
    return store.rollback(scope, trained=TRAINED, author="carol", reason="back")


def history(store: PolicyStore) -> None:
    """Five entries: two versions, two promotions, one rollback."""
    add(store, "p-a")
    add(store, "p-b")
    promote(store, "p-a")
    promote(store, "p-b")
    rollback(store)


# --- versions, promotions, rollbacks --------------------------------------------------------


def test_add_version_is_idempotent_per_scope(store: PolicyStore):
    first = add(store, "p-a")
    again = store.add_version(LDA, "p-a", parent="p-other", body={"policy": {"v": "changed"}},
                              author="mallory", reason="again")  # fmt: skip
    assert again == first and store.last_seq() == 1
    other = add(store, "p-a", Scope("m:1", "mitigated"))  # the same version in another scope
    assert other.seq == 2 and other.scope == Scope("m:1", "mitigated")
    assert store.version(LDA, "p-a") == first
    assert first.body_data() == {"policy": {"v": "p-a"}}
    assert (first.kind, first.parent, first.author, first.reason) == (
        "version", TRAINED, "alice", "add p-a",
    )  # fmt: skip


def test_an_unknown_version_is_refused(store: PolicyStore):
    add(store, "p-a", Scope("m:2", "lda"))  # known, but in another scope
    for version in ("p-a", "p-nowhere"):
        with pytest.raises(PolicyStoreError) as caught:
            promote(store, version)
        assert str(caught.value) == f"no policy version {version!r} for m:1 (lda) in the store"
    assert store.last_seq() == 1


def test_promote_pushes_and_rollback_pops(store: PolicyStore):
    assert store.active(LDA, TRAINED) == Active(TRAINED, None, None)
    add(store, "p-a")
    add(store, "p-b")
    steps = [
        (lambda: promote(store, "p-a"), ("promote", "p-a", TRAINED), ("p-a", TRAINED)),
        (lambda: promote(store, "p-b"), ("promote", "p-b", "p-a"), ("p-b", "p-a")),
        (lambda: rollback(store), ("rollback", "p-a", "p-b"), ("p-a", TRAINED)),
        (lambda: rollback(store), ("rollback", TRAINED, "p-a"), (TRAINED, None)),
    ]
    for step, written, (active, previous) in steps:
        entry = step()
        # An activation names the version it makes active and, as parent, the one before.
        assert (entry.kind, entry.version, entry.parent) == written
        now = store.active(LDA, TRAINED)
        assert (now.version, now.since, now.previous) == (active, entry, previous)
    with pytest.raises(PolicyStoreError) as caught:
        rollback(store)
    assert str(caught.value) == (
        "nothing to roll back in m:1 (lda): the trained policy p-trained is active"
    )
    assert store.last_seq() == 6


def test_each_scope_has_its_own_active_version(store: PolicyStore):
    scopes = [LDA, Scope("m:1", "mitigated"), Scope("m:2", "lda")]
    for scope in scopes:
        add(store, "p-a", scope)
        add(store, "p-b", scope)
    promote(store, "p-a", scopes[0])
    promote(store, "p-b", scopes[0])
    promote(store, "p-b", scopes[1])
    rollback(store, scopes[0])
    actives = [store.active(scope, TRAINED).version for scope in scopes]
    assert actives == ["p-a", "p-b", TRAINED]
    with pytest.raises(PolicyStoreError, match="nothing to roll back in m:2 \\(lda\\)"):
        rollback(store, scopes[2])
    assert [e.seq for e in store.entries(scopes[1])] == [3, 4, 9]


def test_last_seq_moves_with_each_append_and_entries_are_ordered(store: PolicyStore):
    assert store.last_seq() == 0 and store.entries() == []
    steps = [(lambda: add(store, "p-a"), 1), (lambda: add(store, "p-b"), 2),
             (lambda: promote(store, "p-b"), 3), (lambda: add(store, "p-a"), 3),
             (lambda: rollback(store), 4)]  # fmt: skip
    for step, last in steps:
        step()
        assert store.last_seq() == last
    assert [e.seq for e in store.entries()] == [1, 2, 3, 4]
    assert [e.kind for e in store.entries()] == ["version", "version", "promote", "rollback"]
    assert store.verify() == []


# --- append-only, hash-chained -------------------------------------------------------------


def by_hand(row: tuple, prev_hash: str) -> str:
    """The entry hash, spelled out: the encoding name, the number, each text column as
    ``<length>:<text>``, then the previous hash."""
    seq, *texts = row[:10]
    text = f"fairgate-policy-1\n{seq}\n" + "".join(f"{len(t)}:{t}" for t in texts) + prev_hash
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def test_an_entry_hash_is_sha256_of_its_spelled_out_encoding(store: PolicyStore, backend):
    store.add_version(LDA, "p-aaa", parent=TRAINED, body={"policy": {"b": 2, "a": 1}},
                      author="alice", reason="réason")  # fmt: skip
    promote(store, "p-aaa")
    (first, second) = backend.raw("SELECT * FROM policy_log ORDER BY seq")
    time = first[1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", time)
    assert first[2:10] == ("version", "m:1", "lda", "p-aaa", TRAINED, "alice", "réason",
                           '{"policy":{"a":1,"b":2}}')  # fmt: skip
    # Lengths in characters, written out: the text hashed is UTF-8.
    text = (f"fairgate-policy-1\n1\n27:{time}7:version3:m:13:lda5:p-aaa9:p-trained5:alice"
            '6:réason24:{"policy":{"a":1,"b":2}}' + "0" * 64)  # fmt: skip
    assert first[10:] == (GENESIS, hashlib.sha256(text.encode()).hexdigest())
    assert second[10] == first[11]
    assert second[11] == by_hand(second, first[11]) == entry_hash(second, first[11])
    assert second[2:10] == ("promote", "m:1", "lda", "p-aaa", TRAINED, "bob", "to p-aaa", "{}")


@pytest.mark.parametrize("statement", ["UPDATE policy_log SET reason = 'x' WHERE seq = 2",
                                       "DELETE FROM policy_log WHERE seq = 5"])  # fmt: skip
def test_updates_and_deletes_are_refused_by_the_database(store: PolicyStore, backend, statement):
    history(store)
    with pytest.raises(Exception, match="append-only"):
        backend.raw(statement)
    assert store.last_seq() == 5 and store.verify() == []


@pytest.mark.parametrize(
    ("statement", "problems"),
    [
        ("UPDATE policy_log SET reason = 'nothing to see' WHERE seq = 3",
         ["entry 3: edited (its hash does not match)"]),
        ("UPDATE policy_log SET version = 'p-b' WHERE seq = 3",
         ["entry 3: edited (its hash does not match)"]),
        ("UPDATE policy_log SET body = '{\"policy\":{\"v\":\"p-evil\"}}' WHERE seq = 1",
         ["entry 1: edited (its hash does not match)"]),
        ("DELETE FROM policy_log WHERE seq = 2",
         ["entry 2 to 2 missing", "entry 3: does not follow the entry before it"]),
        ("DELETE FROM policy_log WHERE seq IN (1, 2)",
         ["entry 1 to 2 missing", "entry 3: does not follow the entry before it"]),
    ],
    ids=["reason", "version", "body", "hole", "first-two"],
)  # fmt: skip
def test_verify_finds_an_edit_or_a_hole(store: PolicyStore, backend, statement, problems):
    history(store)
    for lift in backend.allow_edits:
        backend.raw(lift)
    backend.raw(statement)
    assert store.verify() == problems


def test_verify_finds_a_forged_link(store: PolicyStore, backend):
    """An insider appends a promotion with a correct hash of its own, linked to the entry
    before the rollback (to hide it): the link gives it away. An insert needs no trigger lifted."""
    history(store)
    rows = backend.raw("SELECT * FROM policy_log ORDER BY seq")
    prev = rows[3][11]  # entry 4's hash, not entry 5's
    forged = (6, rows[4][1], "promote", "m:1", "lda", "p-b", "p-a", "bob", "to p-b", "{}")
    digest = by_hand(forged, prev)
    values = ", ".join(f"'{v}'" if isinstance(v, str) else str(v) for v in forged)
    backend.raw(f"INSERT INTO policy_log VALUES ({values}, '{prev}', '{digest}')")
    assert store.verify() == [
        "entries 6 to 6: past the head (inserted)",
        "entry 6: does not follow the entry before it",
    ]
    assert store.active(LDA, TRAINED).version == "p-b"  # what the forger wanted served


def test_verify_finds_the_newest_entries_deleted(store: PolicyStore, backend):
    """Deleting the last promotion reverts what is served; the head still names it."""
    history(store)
    for lift in backend.allow_edits:
        backend.raw(lift)
    backend.raw("DELETE FROM policy_log WHERE seq >= 4")
    assert store.verify() == ["entries after 3 missing: the head names entry 5"]


# --- several appenders at once ---------------------------------------------------------------


def test_concurrent_promotions_lose_nothing(backend: Backend):
    threads, each = 6, 8
    with PolicyStore.open(backend.url) as setup:
        add(setup, "p-a")
        add(setup, "p-b")
    # Opened at once, as a replica's workers start together (each runs the schema's DDL).
    start = threading.Barrier(threads, timeout=10)
    errors: list[BaseException] = []

    refused: list[int] = []

    def run(worker: int) -> None:
        try:
            with PolicyStore.open(backend.url) as mine:
                start.wait()
                for i in range(each):
                    try:
                        mine.promote(LDA, ("p-a", "p-b")[(worker + i) % 2], trained=TRAINED,
                                     author=f"w{worker}", reason=str(i))  # fmt: skip
                    except PolicyStoreError as error:  # the other one won the race to it
                        assert "already the active version" in str(error)
                        refused.append(i)
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=run, args=(w,)) for w in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []
    with PolicyStore.open(backend.url) as store:
        entries = store.entries()
        assert [e.seq for e in entries] == list(range(1, 3 + threads * each - len(refused)))
        assert store.verify() == []
        # Each promotion names the version active just before it (read under the write lock,
        # not before it, or two racing promotions both name the same one) and changes it.
        active = TRAINED
        for entry in entries[2:]:
            assert (entry.parent, entry.version != entry.parent) == (active, True)
            active = entry.version


def test_concurrent_rollbacks_pop_one_each(backend: Backend):
    """Four people roll back at once from p-c, three versions above the trained one: three
    pop one each, the fourth is refused, and each entry names what it really did."""
    with PolicyStore.open(backend.url) as setup:
        for version in ("p-a", "p-b", "p-c"):
            add(setup, version)
            promote(setup, version)
    start = threading.Barrier(4, timeout=10)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with PolicyStore.open(backend.url) as mine:
                start.wait()
                rollback(mine)
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=run) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [str(e) for e in errors] == [
        "nothing to roll back in m:1 (lda): the trained policy p-trained is active"
    ]
    with PolicyStore.open(backend.url) as store:
        entries = store.entries()
        assert [(e.version, e.parent) for e in entries[6:]] == [
            ("p-b", "p-c"), ("p-a", "p-b"), (TRAINED, "p-a"),
        ]  # fmt: skip
        assert store.active(LDA, TRAINED).version == TRAINED and store.verify() == []


# --- the window of live decisions ------------------------------------------------------------


def decision(app_id: str, time: datetime, score: float, group: str, *, draw: float | None = None,
             approve: bool = True, model: str = "m:1", policy: str = "p-1",
             probe: bool = False) -> Record:  # fmt: skip
    return Record(
        time=time, application_id=app_id, request={"application_id": app_id}, score=score,
        group=group, rule=group, draw=draw, approval_probability=1.0 if approve else 0.0,
        decision="approve" if approve else "deny", reasons=[], model_version=model,
        policy_version=policy, probe=probe,
    )  # fmt: skip


UNTIL = T0 + timedelta(hours=1)
INSIDE = [
    decision("A1", T0, 0.9, "f"),  # the window's first instant is in it
    decision("A2", T0 + timedelta(minutes=10), 0.2, "m", draw=0.25, approve=False, policy="p-2"),
    decision("A3", UNTIL - timedelta(microseconds=1), 0.6, "f", draw=0.75),
    decision("A4", T0 + timedelta(minutes=20), 0.55, "x", policy="p-2"),  # not a policy group
    decision("A5", T0 + timedelta(minutes=30), 0.1, "m", draw=0.0, approve=False),
]
OUTSIDE = [
    decision("B1", T0 + timedelta(minutes=5), 0.31, "f", probe=True),
    decision("B2", T0 + timedelta(minutes=5), 0.32, "f", model="m:2"),
    decision("B3", T0 + timedelta(minutes=5), 0.33, "y", policy="p-3"),
    decision("B4", T0 - timedelta(microseconds=1), 0.34, "f"),
    decision("B5", UNTIL, 0.35, "z"),  # the window ends before its last instant
]


def rows_of(window: Window) -> list[tuple]:
    """(score, group, approved, draw or None) per decision, by score."""
    assert len(window.codes) == len(window.approved) == len(window.draws) == len(window)
    return sorted(
        (float(s), window.names[c], bool(a), None if math.isnan(d) else float(d))
        for s, c, a, d in zip(window.scores, window.codes, window.approved, window.draws,
                              strict=True)
    )  # fmt: skip


@pytest.fixture
def record_store(backend: Backend) -> Iterator[RecordStore]:
    opened = open_record(backend.url)
    with RecordWriter(opened, writer_id="w1") as writer:
        writer.append_sync(OUTSIDE[:3] + INSIDE[:3])
    with RecordWriter(opened, writer_id="w2") as writer:
        writer.append_sync(OUTSIDE[3:] + INSIDE[3:])
    yield opened
    opened.close()


@pytest.mark.parametrize(
    "groups", [(), ("f", "m"), ("m", "f", "never-seen"), ("x", "f", "m")]
)  # the last knows every group: PostgreSQL's binary COPY path, no fallback
def test_read_window_returns_exactly_the_live_decisions_in_range(record_store, groups):
    window = read_window(record_store, since=T0, until=UNTIL, model_version="m:1",
                         policy_versions=["p-1", "p-2"], groups=groups, draws=True)  # fmt: skip
    assert rows_of(window) == [(0.1, "m", False, 0.0), (0.2, "m", False, 0.25),
                               (0.55, "x", True, None), (0.6, "f", True, 0.75),
                               (0.9, "f", True, None)]  # fmt: skip
    assert window.approved.dtype == bool and window.draws.dtype == float
    assert window.codes.dtype == np.intp and {"f", "m", "x"} <= set(window.names)
    assert sorted(window.scores[window.split()["f"]].tolist()) == [0.6, 0.9]


def test_read_window_without_draws_has_nan_and_filters_by_version(record_store):
    window = read_window(record_store, since=T0, until=UNTIL, model_version="m:1",
                         policy_versions=["p-2"], groups=["f", "m"])  # fmt: skip
    assert rows_of(window) == [(0.2, "m", False, None), (0.55, "x", True, None)]
    for versions, model in ((["p-1"], "m:9"), ([], "m:1")):
        empty = read_window(record_store, since=T0, until=UNTIL, model_version=model,
                            policy_versions=versions)  # fmt: skip
        assert (len(empty), empty.names, empty.split()) == (0, [], {})


class _CommitBetweenReads:
    """A store connection that lets another writer commit just before its second query."""

    def __init__(self, conn: Any, commit: Callable[[], None]) -> None:
        self.conn, self.commit, self.selects = conn, commit, 0

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.lstrip().upper().startswith("SELECT"):
            self.selects += 1
            if self.selects == 2:
                self.commit()
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_read_window_is_one_snapshot_when_a_decision_lands_meanwhile(tmp_path):
    """A decision of a group the policy does not know, committed while the window is read,
    is in it or not; it never shifts the other rows' group names."""
    url = f"sqlite:///{tmp_path / 'record.sqlite'}"
    store = open_record(url)
    with RecordWriter(store, writer_id="w1") as writer:
        writer.append_sync(INSIDE)

    def commit() -> None:
        with open_record(url) as other, RecordWriter(other, writer_id="w2") as late:
            late.append_sync([decision("L1", T0 + timedelta(minutes=1), 0.7, "late")])

    wrapped = _CommitBetweenReads(store._conn(), commit)
    store._conn = lambda: wrapped  # type: ignore[method-assign]
    try:
        window = read_window(store, since=T0, until=UNTIL, model_version="m:1",
                             policy_versions=["p-1", "p-2"], groups=["f", "m"])  # fmt: skip
    finally:
        del store._conn
        store.close()
    expected = [(0.1, "m", False, None), (0.2, "m", False, None), (0.55, "x", True, None),
                (0.6, "f", True, None), (0.9, "f", True, None)]  # fmt: skip
    assert rows_of(window) in (expected, sorted([*expected, (0.7, "late", True, None)]))


def test_promoting_the_active_version_is_refused(store: PolicyStore):
    """A second push of the active version would make the next rollback change nothing."""
    add(store, "p-a")
    promote(store, "p-a")
    with pytest.raises(PolicyStoreError, match="p-a is already the active version"):
        promote(store, "p-a")
    rollback(store)
    assert store.active(LDA, TRAINED).version == TRAINED
