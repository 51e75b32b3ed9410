"""The decision record in a real ``bentoml serve``: every 200 has its committed record.

Records == 200 responses (live and probe, flagged), the record matches the answer, and a
store that fails (a locked SQLite file, PostgreSQL stopped mid-traffic) gives only 200s with
records and documented 503s with Retry-After, recovering by itself once the store is back.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from fairgate.generator import generate_applicants, to_records
from record import open_record
from tests.conftest import LiveService
from tests.postgres import PostgresServer, postgres_server, postgres_url  # noqa: F401
from tests.suite_home import TEST_PROBE_TOKEN

pytestmark = pytest.mark.integration

PROBE = {"X-Fairgate-Probe": "1", "X-Fairgate-Probe-Token": TEST_PROBE_TOKEN}


def applications(n: int, seed: int, prefix: str) -> list[dict]:
    """``n`` synthetic applications with ids unique to this test (``prefix``)."""
    rows = to_records(generate_applicants(n, seed=seed))
    for i, row in enumerate(rows):
        row["application_id"] = f"{prefix}-{i:06d}"
    return rows


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.as_posix()}"


def test_every_answered_decision_is_recorded_as_answered(trained, tmp_path):
    path = tmp_path / "record.sqlite"
    server = LiveService(trained.tag, workers=2, FAIRGATE_RECORD_URL=sqlite_url(path)).wait()
    try:
        rows = applications(240, seed=401, prefix="REC")
        answered: dict[str, dict] = {}
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for row in rows[:40]:
                response = client.post("/decide", json=row)
                assert response.status_code == 200
                answered[row["application_id"]] = response.json()
            batch = client.post("/decide_batch", json={"applications": rows[40:200]})
            assert batch.status_code == 200
            answered |= {d["application_id"]: d for d in batch.json()["decisions"]}
            for row in rows[200:]:
                response = client.post("/decide", json=row, headers=PROBE)
                assert response.status_code == 200
                answered[row["application_id"]] = response.json()
    finally:
        server.stop()
    with open_record(sqlite_url(path), create=False) as store:
        assert store.count() == len(answered) == 240
        assert store.verify().ok
        sent = {row["application_id"]: row for row in rows}
        for application_id, decision in answered.items():
            (stored,) = store.decisions_for(application_id)
            record = stored.as_dict()
            assert record["request"] == sent[application_id]
            for name in ("score", "group", "rule", "decision", "approval_probability",
                         "model_version", "policy_version", "probe", "reasons"):  # fmt: skip
                assert record[name] == decision[name], name
            assert record["draw"] is None  # the mitigated policy draws nothing
        assert sum(store.decisions_for(a)[0].probe for a in answered) == 40
        assert any(store.decisions_for(a)[0].reasons_data() for a in answered)


def test_the_record_is_off_only_when_asked(trained, tmp_path):
    """Two servers on one data directory: with FAIRGATE_RECORD=off the default record gets
    nothing (it is not even created); with the switch left alone it gets the decision."""
    data = tmp_path / "data"
    default = sqlite_url(data / "record.sqlite")  # where FAIRGATE_DATA_DIR's record goes
    off, on = applications(2, seed=402, prefix="OFF")
    for row, switch in ((off, {"FAIRGATE_RECORD": "off"}), (on, {})):
        server = LiveService(trained.tag, FAIRGATE_DATA_DIR=str(data), **switch).wait()
        try:
            assert httpx.post(f"{server.url}/decide", json=row, timeout=30).status_code == 200
        finally:
            server.stop()
        if switch:
            assert not data.exists(), sorted(p.name for p in data.rglob("*"))
    with open_record(default, create=False) as store:
        assert store.decisions_for(off["application_id"]) == []
        (recorded,) = store.decisions_for(on["application_id"])
        assert recorded.request_data() == on
        assert store.count() == 1


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")  # the write lock, as another writer mid-transaction holds it
    return conn


def test_a_locked_sqlite_file_gives_503_then_recovers(trained, tmp_path):
    path = tmp_path / "record.sqlite"
    server = LiveService(trained.tag, FAIRGATE_RECORD_URL=sqlite_url(path)).wait()
    try:
        rows = applications(40, seed=403, prefix="LOCK")
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.post("/decide", json=rows[0]).status_code == 200
            lock = _hold_write_lock(path)
            refused = client.post("/decide", json=rows[1])
            assert refused.status_code == 503
            assert refused.headers["Retry-After"] == "1"
            body = refused.json()
            assert body["error"] == "decision record unavailable"
            assert "database is locked" in body["detail"][0]["msg"]
            assert "application_id" not in body  # nothing was decided
            # Within Retry-After, refused at once, without waiting on the lock again.
            started = time.monotonic()
            assert client.post("/decide_batch", json={"applications": rows[2:5]}).status_code == 503
            assert time.monotonic() - started < 1.0
            lock.rollback()
            lock.close()
            deadline = time.monotonic() + 10
            status = 0
            for row in rows[5:]:
                status = client.post("/decide", json=row).status_code
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert status == 200
    finally:
        server.stop()
    with open_record(sqlite_url(path), create=False) as store:
        assert store.verify().ok
        assert store.decisions_for(rows[1]["application_id"]) == []  # the 503 left no record
        assert store.decisions_for(rows[2]["application_id"]) == []


class Traffic:
    """Threads sending single decisions in a loop, keeping every status and answered id."""

    def __init__(self, url: str, rows: list[dict], threads: int = 4) -> None:
        self.url, self.rows = url, rows
        self.statuses: Counter[int] = Counter()
        self.answered: list[str] = []
        self.retry_after: set[str] = set()
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]
        for thread in self._threads:
            thread.start()

    def _take(self) -> dict | None:
        with self._lock:
            if self._next >= len(self.rows):
                return None
            self._next += 1
            return self.rows[self._next - 1]

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self._stop.is_set() and (row := self._take()) is not None:
                response = client.post("/decide", json=row)
                with self._lock:
                    self.statuses[response.status_code] += 1
                    if response.status_code == 200:
                        self.answered.append(response.json()["application_id"])
                    elif response.status_code == 503:
                        self.retry_after.add(response.headers.get("Retry-After", "missing"))
                if response.status_code == 503:
                    time.sleep(0.05)

    def count(self, status: int) -> int:
        with self._lock:
            return self.statuses[status]

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def _wait_until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_postgresql_stopped_mid_traffic_gives_only_recorded_200s_and_503s(trained):
    database = PostgresServer()
    server = LiveService(trained.tag, workers=2, FAIRGATE_RECORD_URL=database.url).wait()
    traffic = Traffic(server.url, applications(20_000, seed=404, prefix="PG"))
    try:
        assert _wait_until(lambda: traffic.count(200) >= 100, 60)
        database.stop()
        assert _wait_until(lambda: traffic.count(503) >= 20, 60), traffic.statuses
        database.start()
        before = traffic.count(200)
        # It recovers by itself: answers again without anything restarted.
        assert _wait_until(lambda: traffic.count(200) >= before + 100, 60), traffic.statuses
    finally:
        traffic.stop()
        server.stop()
    try:
        assert set(traffic.statuses) <= {200, 503}, traffic.statuses
        assert traffic.retry_after == {"1"}
        with open_record(database.url, create=False) as store:
            assert store.verify().ok
            recorded = {r.application_id for r in store.rows_between()}
        # Every 200 has its record; a 503 whose commit reached the server before the
        # connection dropped may have one too (docs/record.md), so no equality here.
        missing = set(traffic.answered) - recorded
        assert not missing, sorted(missing)[:5]
        assert len(traffic.answered) == len(set(traffic.answered))
    finally:
        database.destroy()


def test_two_services_share_one_postgresql_with_two_clean_chains(trained, postgres_url):  # noqa: F811
    # One after the other: the first creates the tables.
    first = LiveService(trained.tag, FAIRGATE_RECORD_URL=postgres_url).wait()
    second = LiveService(trained.tag, FAIRGATE_RECORD_URL=postgres_url)
    rows = applications(200, seed=405, prefix="TWO")
    try:
        second.wait()
        with httpx.Client(timeout=30) as client:
            for i, row in enumerate(rows):
                url = first.url if i % 2 else second.url
                assert client.post(f"{url}/decide", json=row).status_code == 200
    finally:
        first.stop()
        second.stop()
    with open_record(postgres_url, create=False) as store:
        report = store.verify()
        assert report.ok and report.writers == 2 and report.rows == 200
