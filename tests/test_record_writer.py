"""The group-commit writer against real stores: concurrent callers share transactions, an
append returns only after its commit, and a failing store (a locked SQLite file, PostgreSQL
stopped mid-stream) refuses records without losing an acknowledged one, then recovers."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from record import Record, RecordUnavailable, RecordWriter, open_record
from tests.postgres import PostgresServer

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def record(app_id: str) -> Record:
    return Record(
        time=T0, application_id=app_id, request={"application_id": app_id}, score=0.5,
        group="female", rule="female", draw=None, approval_probability=1.0, decision="approve",
        reasons=[], model_version="m:1", policy_version="p-1", probe=False,
    )  # fmt: skip


@contextmanager
def sqlite_write_lock(path: Path):
    """Another process's view: a connection holding the file's write lock."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def stored_ids(store) -> set[str]:
    return {row.application_id for row in store.rows_between()}


def test_concurrent_appends_share_transactions(tmp_path):
    path = tmp_path / "record.sqlite"
    store = open_record(f"sqlite:///{path}")

    async def many() -> None:
        with RecordWriter(store, writer_id="w") as writer:
            # While the file is locked the first commit waits; the other 49 queue behind it
            # and go in one transaction once the lock is gone.
            with sqlite_write_lock(path):
                tasks = [asyncio.ensure_future(writer.append([record(f"A{i}")]))
                         for i in range(50)]  # fmt: skip
                await asyncio.sleep(0.3)
                assert not any(task.done() for task in tasks)  # nothing acknowledged yet
            await asyncio.gather(*tasks)
            assert writer.commits <= 2

    asyncio.run(many())
    assert store.count() == 50
    assert store.verify().ok
    store.close()


def test_a_locked_sqlite_file_fails_fast_and_recovers(tmp_path):
    path = tmp_path / "record.sqlite"
    store = open_record(f"sqlite:///{path}", busy_timeout=0.2)
    with RecordWriter(store, writer_id="w", retry_after=1.0) as writer:
        writer.append_sync([record("before")])
        with sqlite_write_lock(path):
            with pytest.raises(RecordUnavailable, match="locked") as failed:
                writer.append_sync([record("locked-1")])
            assert 0 < failed.value.retry_after <= 1.0
            start = time.monotonic()
            with pytest.raises(RecordUnavailable):  # refused at once, not after busy_timeout
                writer.append_sync([record("locked-2")])
            assert time.monotonic() - start < 0.15
        time.sleep(1.0)
        writer.append_sync([record("after")])
    assert stored_ids(store) == {"before", "after"}
    assert store.verify().ok
    store.close()


def test_after_a_failure_the_chain_resumes_from_the_stored_head(tmp_path):
    # A commit whose acknowledgement is lost (the connection drops after COMMIT) leaves the
    # store ahead of the writer; here another writer with the same id stands for that commit.
    path = tmp_path / "record.sqlite"
    store = open_record(f"sqlite:///{path}", busy_timeout=0.1)
    with RecordWriter(store, writer_id="w", retry_after=0.1) as writer:
        writer.append_sync([record("1"), record("2")])
        with RecordWriter(open_record(f"sqlite:///{path}"), writer_id="w") as twin:
            twin.append_sync([record("3")])
        with sqlite_write_lock(path), pytest.raises(RecordUnavailable):
            writer.append_sync([record("lost")])
        time.sleep(0.15)
        writer.append_sync([record("4")])
    assert [r.seq for r in store.decisions_for("4")] == [4]
    assert store.verify().ok
    store.close()


def test_postgres_stopped_mid_stream_then_back(tmp_path):
    server = PostgresServer()
    try:
        store = open_record(server.url, connect_timeout=2)
        acknowledged: list[str] = []
        refused: list[BaseException] = []
        stop = threading.Event()

        async def appender(writer: RecordWriter, name: str) -> None:
            n = 0
            while not stop.is_set():
                batch = [record(f"{name}-{n}-{k}") for k in range(5)]
                n += 1
                try:
                    await writer.append(batch)
                except RecordUnavailable as error:
                    refused.append(error)
                    await asyncio.sleep(0.05)
                else:
                    acknowledged.extend(r.application_id for r in batch)

        async def run() -> None:
            with RecordWriter(store, writer_id="w", retry_after=0.3) as writer:
                tasks = [asyncio.ensure_future(appender(writer, f"t{i}")) for i in range(8)]
                await asyncio.sleep(0.5)
                before = len(acknowledged)
                await asyncio.to_thread(server.stop)
                await asyncio.sleep(1.0)
                during = len(acknowledged)
                await asyncio.to_thread(server.start)
                deadline = time.monotonic() + 20
                while len(acknowledged) < during + 100 and time.monotonic() < deadline:
                    await asyncio.sleep(0.1)
                stop.set()
                await asyncio.gather(*tasks)
                assert before > 0
                assert len(acknowledged) >= during + 100, "no recovery after the restart"

        asyncio.run(run())
        assert refused, "stopping PostgreSQL refused nothing"
        assert all(isinstance(e, RecordUnavailable) for e in refused)
        ids = stored_ids(store)
        assert set(acknowledged) <= ids  # every acknowledged record is in PostgreSQL
        assert len(ids) - len(acknowledged) <= 5 * 8  # at most a batch per appender unanswered
        report = store.verify()
        assert report.ok, report.problems
        # This thread's connection died with the server: its first use fails, the next
        # reconnects.
        with contextlib.suppress(psycopg.OperationalError):
            store.count()
        assert store.count() == len(ids)
        store.close()
    finally:
        server.destroy()


def test_a_cancelled_append_is_dropped_and_the_writer_goes_on(tmp_path):
    path = tmp_path / "record.sqlite"
    store = open_record(f"sqlite:///{path}")

    async def cancel_one() -> None:
        with RecordWriter(store, writer_id="w") as writer:
            with sqlite_write_lock(path):
                first = asyncio.ensure_future(writer.append([record("first")]))
                await asyncio.sleep(0.1)  # the writer is now waiting on the lock with it
                gone = asyncio.ensure_future(writer.append([record("cancelled")]))
                await asyncio.sleep(0.05)
                gone.cancel()
            await first
            await writer.append([record("after")])
            with pytest.raises(asyncio.CancelledError):
                await gone

    asyncio.run(cancel_one())
    assert stored_ids(store) == {"first", "after"}
    assert store.verify().ok
    store.close()


WRITER_PROCESS = """
import sys
from datetime import UTC, datetime
from record import Record, RecordWriter, open_record
store = open_record(sys.argv[1])
with RecordWriter(store) as writer:
    for n in range(40):
        writer.append_sync([Record(
            time=datetime.now(UTC), application_id=f"{sys.argv[2]}-{n}-{k}", request={},
            score=0.5, group="g", rule="g", draw=None, approval_probability=1.0,
            decision="approve", reasons=[], model_version="m", policy_version="p", probe=False,
        ) for k in range(25)])
"""


def test_two_processes_share_one_sqlite_file(tmp_path):
    # As two BentoML workers do: two writers, two chains, one file, nothing lost.
    import subprocess
    import sys

    url = f"sqlite:///{tmp_path / 'record.sqlite'}"
    open_record(url).close()
    processes = [
        subprocess.Popen([sys.executable, "-c", WRITER_PROCESS, url, name])
        for name in ("a", "b")
    ]
    assert [p.wait(120) for p in processes] == [0, 0]
    store = open_record(url)
    report = store.verify()
    assert (report.ok, report.writers, report.rows) == (True, 2, 2 * 40 * 25)
    store.close()


@pytest.fixture
def small_disk(tmp_path):
    """A real 4 MiB filesystem (tmpfs), so the SQLite file can run out of space."""
    import subprocess

    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    yield mount_point
    subprocess.run(["umount", str(mount_point)], check=True)


def fill_disk(filler: Path) -> None:
    """Take every free byte of the filesystem ``filler`` is on."""
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass


def test_a_full_disk_refuses_records_and_recovers_when_space_is_freed(small_disk):
    store = open_record(f"sqlite:///{small_disk / 'record.sqlite'}")
    filler = small_disk / "filler"
    acknowledged: list[str] = []
    with RecordWriter(store, writer_id="w", retry_after=0.2) as writer:
        writer.append_sync([record("first")])
        acknowledged.append("first")
        fill_disk(filler)  # then try to record more
        with pytest.raises(RecordUnavailable, match="full"):
            for n in range(200):
                batch = [record(f"full-{n}-{k}") for k in range(50)]
                writer.append_sync(batch)
                acknowledged.extend(r.application_id for r in batch)
        filler.unlink()
        time.sleep(0.25)
        writer.append_sync([record("after")])
        acknowledged.append("after")
    assert stored_ids(store) == set(acknowledged)
    assert store.verify().ok
    store.close()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"score": float("nan")}, ValueError, "score must be a finite number"),
        ({"draw": float("inf")}, ValueError, "draw must be a finite number"),
        ({"time": datetime(2026, 1, 1)}, ValueError, "timezone-aware"),
        ({"request": {"tags": {"a", "b"}}}, TypeError, "not JSON serializable"),
    ],
    ids=["nan-score", "inf-draw", "naive-time", "request-not-json"],
)
def test_a_malformed_record_fails_its_own_caller_only(tmp_path, change, error, message):
    from dataclasses import replace

    store = open_record(f"sqlite:///{tmp_path / 'record.sqlite'}")
    with RecordWriter(store, writer_id="w") as writer:
        with pytest.raises(error, match=message):
            writer.append_sync([record("bad-batch-good-row"), replace(record("bad"), **change)])
        writer.append_sync([record("good")])  # nothing refused after it
    assert stored_ids(store) == {"good"}
    store.close()
