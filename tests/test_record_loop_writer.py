"""The in-loop group-commit writer (what the service uses for SQLite) against real files:
appends of one window share a transaction, none returns before its commit, a locked or full
file refuses records fast without losing an acknowledged one, and the writer recovers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import datetime

import pytest

from fairgate.record import RecordUnavailable, open_record
from fairgate.record.loop_writer import LoopWriter
from tests.test_record_writer import (
    fill_disk,
    record,
    small_disk,
    sqlite_write_lock,
    stored_ids,
)

__all__ = ["small_disk"]  # the fixture, re-used from the thread writer's tests


def test_the_appends_of_one_window_share_one_commit_made_after_the_window(tmp_path):
    store = open_record(f"sqlite:///{tmp_path / 'record.sqlite'}")

    async def many() -> None:
        writer = LoopWriter(store, writer_id="w", window=0.05).start()
        tasks = [asyncio.ensure_future(writer.append([record(f"A{i}")])) for i in range(50)]
        await asyncio.sleep(0.02)  # inside the window: queued, not committed, not answered
        assert store.count() == 0
        assert not any(task.done() for task in tasks)
        await asyncio.gather(*tasks)
        assert writer.commits == 1
        writer.close()

    asyncio.run(many())
    assert store.count() == 50
    assert store.verify().ok
    store.close()


def test_a_full_batch_commits_without_waiting_for_the_window(tmp_path):
    store = open_record(f"sqlite:///{tmp_path / 'record.sqlite'}")

    async def full() -> float:
        writer = LoopWriter(store, writer_id="w", window=5.0, max_batch=100).start()
        start = time.monotonic()
        await writer.append([record(f"B{i}") for i in range(100)])
        writer.close()
        return time.monotonic() - start

    assert asyncio.run(full()) < 1.0
    assert store.count() == 100
    store.close()


def test_a_locked_sqlite_file_fails_fast_and_recovers(tmp_path):
    path = tmp_path / "record.sqlite"
    store = open_record(f"sqlite:///{path}", busy_timeout=0.2)

    async def locked() -> None:
        writer = LoopWriter(store, writer_id="w", retry_after=0.5).start()
        await writer.append([record("before")])
        with sqlite_write_lock(path):
            with pytest.raises(RecordUnavailable, match="locked") as failed:
                await writer.append([record("locked-1")])
            assert 0 < failed.value.retry_after <= 0.5
            start = time.monotonic()
            with pytest.raises(RecordUnavailable):  # refused at once, not after busy_timeout
                await writer.append([record("locked-2")])
            assert time.monotonic() - start < 0.15
        await asyncio.sleep(0.5)
        await writer.append([record("after")])
        writer.close()

    asyncio.run(locked())
    assert stored_ids(store) == {"before", "after"}
    assert store.verify().ok
    store.close()


def test_a_cancelled_append_is_not_written(tmp_path):
    store = open_record(f"sqlite:///{tmp_path / 'record.sqlite'}")

    async def cancel_one() -> None:
        writer = LoopWriter(store, writer_id="w", window=0.05).start()
        kept = asyncio.ensure_future(writer.append([record("kept")]))
        gone = asyncio.ensure_future(writer.append([record("cancelled")]))
        await asyncio.sleep(0.01)
        gone.cancel()
        await kept
        with pytest.raises(asyncio.CancelledError):
            await gone
        writer.close()

    asyncio.run(cancel_one())
    assert stored_ids(store) == {"kept"}
    store.close()


def test_close_commits_what_is_queued_and_refuses_new_appends(tmp_path):
    store = open_record(f"sqlite:///{tmp_path / 'record.sqlite'}")

    async def shutdown() -> None:
        writer = LoopWriter(store, writer_id="w", window=10.0).start()
        queued = asyncio.ensure_future(writer.append([record("queued")]))
        await asyncio.sleep(0.01)
        writer.close()
        await queued  # answered by the commit close() made
        with pytest.raises(RecordUnavailable, match="not running"):
            await writer.append([record("late")])

    asyncio.run(shutdown())
    assert stored_ids(store) == {"queued"}
    store.close()


def test_a_full_disk_refuses_records_and_recovers_when_space_is_freed(small_disk):
    store = open_record(f"sqlite:///{small_disk / 'record.sqlite'}")
    filler = small_disk / "filler"
    acknowledged: list[str] = []

    async def fill() -> None:
        writer = LoopWriter(store, writer_id="w", retry_after=0.2).start()
        await writer.append([record("first")])
        acknowledged.append("first")
        fill_disk(filler)
        with pytest.raises(RecordUnavailable, match="full"):
            for n in range(200):
                batch = [record(f"full-{n}-{k}") for k in range(50)]
                await writer.append(batch)
                acknowledged.extend(r.application_id for r in batch)
        filler.unlink()
        await asyncio.sleep(0.25)
        await writer.append([record("after")])
        acknowledged.append("after")
        writer.close()

    asyncio.run(fill())
    assert stored_ids(store) == set(acknowledged)
    assert store.verify().ok
    store.close()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"score": float("nan")}, ValueError, "score must be a finite number"),
        ({"time": datetime(2026, 1, 1)}, ValueError, "timezone-aware"),
    ],
    ids=["nan-score", "naive-time"],
)
def test_a_malformed_record_fails_its_own_caller_only(tmp_path, change, error, message):
    store = open_record(f"sqlite:///{tmp_path / 'record.sqlite'}")

    async def mixed() -> None:
        writer = LoopWriter(store, writer_id="w").start()
        bad = writer.append([record("bad-batch-good-row"), replace(record("bad"), **change)])
        results = await asyncio.gather(bad, writer.append([record("good")]),
                                       return_exceptions=True)  # fmt: skip
        assert isinstance(results[0], error) and message in str(results[0])
        assert results[1] is None
        writer.close()

    asyncio.run(mixed())
    assert stored_ids(store) == {"good"}
    store.close()
