"""Both record backends against real databases: a SQLite file and a PostgreSQL server that
the test starts (tests/postgres.py). Tampering is done with raw SQL, as an insider would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from record import Record, RecordWriter, open_record
from record.store import RecordStore, RecordStoreError
from tests.postgres import postgres_server, postgres_url, raw_sql  # noqa: F401 - fixtures

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


@dataclass
class Backend:
    url: str
    raw: Callable[[str], list[tuple]]  # runs one SQL statement outside the store
    allow_edits: str  # the SQL that lifts the append-only trigger


# What lifts the append-only trigger, per backend.
LIFT = {
    "sqlite": "DROP TRIGGER decision_record_append_only",
    "postgresql": "ALTER TABLE decision_record DISABLE TRIGGER decision_record_append_only",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path) -> Iterator[Backend]:
    url, raw = raw_sql(request, tmp_path)
    yield Backend(url, raw, LIFT[request.param])


def record(app_id: str, time: datetime = T0, **changes) -> Record:
    fields = dict(
        time=time, application_id=app_id,
        request={"application_id": app_id, "annual_income": 52000.0, "gender": "female"},
        score=0.8164808822698211, group="female", rule="female", draw=None,
        approval_probability=1.0, decision="approve", reasons=[], model_version="m:1",
        policy_version="p-1", probe=False,
    )  # fmt: skip
    return Record(**(fields | changes))


def fill(store: RecordStore, writer_id: str = "w1", count: int = 6) -> None:
    with RecordWriter(store, writer_id=writer_id) as writer:
        writer.append_sync([record(f"APP-{i}", T0 + timedelta(minutes=i)) for i in range(count)])


@pytest.fixture
def store(backend: Backend) -> Iterator[RecordStore]:
    opened = open_record(backend.url)
    yield opened
    opened.close()


def test_records_round_trip_exactly(store: RecordStore):
    reasons = [{"code": "dti_high", "text": "debt-to-income ratio too high"},
               {"code": "history_short", "text": "credit history too short"}]  # fmt: skip
    with RecordWriter(store, writer_id="w1") as writer:
        denied = record("A", score=0.1 + 0.2, draw=1 / 3, decision="deny",
                        approval_probability=0.0, reasons=reasons, probe=True)  # fmt: skip
        writer.append_sync([denied])
    (row,) = store.decisions_for("A")
    assert (row.score, row.draw, row.approval_probability) == (0.30000000000000004, 1 / 3, 0.0)
    assert row.reasons_data() == reasons
    assert row.request_data() == {"application_id": "A", "annual_income": 52000.0,
                                  "gender": "female"}  # fmt: skip
    assert (row.probe, row.decision, row.datetime()) == (True, "deny", T0)
    view = row.as_dict()
    assert view["reasons"] == reasons and view["request"]["annual_income"] == 52000.0
    assert (view["seq"], view["time"], view["hash"]) == (1, "2026-01-01T09:00:00.000000Z", row.hash)
    assert store.verify().ok


def test_decisions_for_an_application_newest_first(store: RecordStore):
    with RecordWriter(store, writer_id="w1") as writer:
        writer.append_sync([record("A", T0), record("B", T0)])
        writer.append_sync([record("A", T0 + timedelta(days=2), decision="deny")])
        writer.append_sync([record("A", T0 + timedelta(days=1))])
    rows = store.decisions_for("A")
    assert [r.time for r in rows] == [
        "2026-01-03T09:00:00.000000Z", "2026-01-02T09:00:00.000000Z",
        "2026-01-01T09:00:00.000000Z",
    ]  # fmt: skip
    assert rows[0].decision == "deny"
    assert [r.application_id for r in store.decisions_for("B")] == ["B"]
    assert store.decisions_for("nobody") == []
    assert len(store.decisions_for("A", limit=2)) == 2


def test_updates_are_refused_by_the_store(store: RecordStore, backend: Backend):
    fill(store)
    with pytest.raises(Exception, match="append-only"):
        backend.raw("UPDATE decision_record SET score = 0 WHERE seq = 2")


def test_an_edited_row_is_found(store: RecordStore, backend: Backend):
    fill(store)
    fill(store, "w2", 3)
    assert store.verify().ok
    backend.raw(backend.allow_edits)
    backend.raw("UPDATE decision_record SET decision = 'deny' WHERE writer_id = 'w1' AND seq = 3")
    report = store.verify()
    assert [(p.writer_id, p.kind, p.seq) for p in report.problems] == [("w1", "edited", 3)]
    assert (report.rows, report.writers) == (9, 2)


def test_an_edited_request_is_found(store: RecordStore, backend: Backend):
    fill(store)
    backend.raw(backend.allow_edits)
    backend.raw(
        'UPDATE decision_record SET request = \'{"application_id":"APP-4",'
        '"annual_income":92000.0,"gender":"female"}\' WHERE seq = 5'
    )
    assert [(p.kind, p.seq) for p in store.verify().problems] == [("edited", 5)]


@pytest.mark.parametrize(
    ("where", "expected"),
    [("seq = 3", [("deleted", 3)]), ("seq = 6", [("deleted", 6)]), ("seq <= 2", [("deleted", 1)])],
    ids=["middle", "last", "first-two"],
)
def test_a_deleted_row_is_found(store: RecordStore, backend: Backend, where, expected):
    fill(store)
    backend.raw(f"DELETE FROM decision_record WHERE {where}")
    assert [(p.kind, p.seq) for p in store.verify().problems] == expected


def test_an_inserted_row_is_found(store: RecordStore, backend: Backend):
    fill(store)
    # A copy of row 2 as row 7 of the same writer, and as the first row of a new writer.
    columns = ('"time", application_id, request, score, "group", rule, draw, '
               "approval_probability, decision, reasons, model_version, policy_version, probe, "
               "prev_hash, hash")  # fmt: skip
    for writer_id, seq in (("w1", 7), ("ghost", 1)):
        backend.raw(
            f"INSERT INTO decision_record (writer_id, seq, {columns}) "
            f"SELECT '{writer_id}', {seq}, {columns} FROM decision_record WHERE seq = 2"
        )
    problems = [(p.writer_id, p.kind, p.seq) for p in store.verify().problems]
    assert ("w1", "inserted", 7) in problems
    assert ("ghost", "inserted", 1) in problems


def test_prune_keeps_verify_clean_and_keeps_the_newer_rows(store: RecordStore):
    fill(store, "w1", 6)  # minutes 0..5 after T0
    fill(store, "w2", 2)  # minutes 0..1: all older than the cutoff below
    now = T0 + timedelta(days=30, minutes=3)
    assert store.prune("30d", now=now) == 3 + 2
    assert store.count() == 3
    assert [r.application_id for r in store.rows_between()] == [
        "APP-3", "APP-4", "APP-5",
    ]  # fmt: skip
    report = store.verify()
    assert report.ok, report.problems
    # The same writer goes on after a prune, from its head (seq 6), and nothing more is old.
    with RecordWriter(store, writer_id="w1") as writer:
        writer.append_sync([record("APP-6", now)])
    assert [r.seq for r in store.decisions_for("APP-6")] == [7]
    assert store.verify().ok
    assert store.prune("30d", now=now) == 0


def test_pruned_rows_deleted_again_are_found(store: RecordStore, backend: Backend):
    fill(store)
    store.prune("30d", now=T0 + timedelta(days=30, minutes=2))  # removes seq 1..2
    backend.raw("DELETE FROM decision_record WHERE seq = 3")
    assert [(p.kind, p.seq) for p in store.verify().problems] == [("deleted", 3)]


def test_default_retention_is_25_months(store: RecordStore):
    fill(store, count=2)  # 2026-01-01 09:00 and 09:01
    assert store.prune(now=datetime(2028, 2, 1, 9, 0, tzinfo=UTC)) == 0  # exactly 25 months
    assert store.prune(now=datetime(2028, 2, 1, 9, 0, 0, 1, tzinfo=UTC)) == 1
    assert store.prune(now=datetime(2028, 2, 1, 9, 2, tzinfo=UTC)) == 1


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_export_a_time_range(store: RecordStore, tmp_path, format):
    fill(store)
    out = tmp_path / f"out.{format}"
    count = store.export(out, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=4),
                         format=format)  # fmt: skip
    assert count == 3
    frame = pd.read_parquet(out) if format == "parquet" else pd.read_csv(out)
    assert list(frame["application_id"]) == ["APP-1", "APP-2", "APP-3"]
    assert list(frame["seq"]) == [2, 3, 4]
    assert pd.to_datetime(frame["time"], utc=True).iloc[0] == pd.Timestamp("2026-01-01T09:01:00Z")
    assert frame["score"].iloc[0] == 0.8164808822698211


def test_open_without_create_refuses_a_missing_record(backend: Backend, tmp_path):
    if backend.url.startswith("sqlite"):
        with pytest.raises(RecordStoreError, match="no such file"):
            open_record(f"sqlite:///{tmp_path / 'missing.sqlite'}", create=False)
    else:
        with pytest.raises(RecordStoreError, match="holds no decision record"):
            open_record(backend.url, create=False)
    open_record(backend.url).close()  # creates the tables
    open_record(backend.url, create=False).close()
