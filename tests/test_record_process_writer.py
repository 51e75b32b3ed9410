"""The writer process (what the service uses for SQLite) against real files and a real child
process: concurrent calls share transactions, none returns before its commit, a locked or full
file refuses records fast without losing an acknowledged one, a killed child is replaced and
continues the chain, and closing commits what was sent."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from record import RecordUnavailable, open_record
from record.process_writer import ProcessWriter
from tests.test_record_writer import (
    fill_disk,
    record,
    small_disk,
    sqlite_write_lock,
    stored_ids,
)

__all__ = ["small_disk"]  # the fixture, re-used from the thread writer's tests


def writer_for(path: Path, **options: float) -> ProcessWriter:
    url = f"sqlite:///{path}"
    options.setdefault("window", 0.0)  # commit at once unless a test is about the window
    return ProcessWriter(url, open_record(url), writer_id="w", **options).start()


def test_an_append_returns_after_its_commit_and_concurrent_ones_share_commits(tmp_path):
    path = tmp_path / "record.sqlite"

    async def many() -> ProcessWriter:
        writer = writer_for(path)
        await writer.append([record("first")])
        assert stored_ids(writer.store) == {"first"}  # committed when the call returned
        # While the file is locked the child's next commit waits; the calls sent meanwhile
        # queue in the pipe and go in together once the lock is gone.
        with sqlite_write_lock(path):
            tasks = [asyncio.ensure_future(writer.append([record(f"A{i}")])) for i in range(50)]
            await asyncio.sleep(0.2)
            assert not any(task.done() for task in tasks)  # nothing answered before its commit
            assert writer.store.count() == 1
        await asyncio.gather(*tasks)
        assert writer.store.count() == 51
        assert writer.commits <= 3
        writer.close()
        return writer

    writer = asyncio.run(many())
    assert writer.store.verify().ok
    writer.store.close()


def test_the_calls_of_one_window_share_one_commit_made_after_the_window(tmp_path):
    path = tmp_path / "record.sqlite"

    async def window() -> ProcessWriter:
        writer = writer_for(path, window=0.3)
        await writer.append([record("warm")])
        tasks = [asyncio.ensure_future(writer.append([record(f"W{i}")])) for i in range(20)]
        await asyncio.sleep(0.1)  # inside the window: not committed, not answered
        assert writer.store.count() == 1
        assert not any(task.done() for task in tasks)
        await asyncio.gather(*tasks)
        assert writer.commits == 2  # the warm-up's, then one for all twenty
        writer.close()
        return writer

    writer = asyncio.run(window())
    assert writer.store.count() == 21
    writer.store.close()


def test_a_locked_sqlite_file_fails_fast_and_recovers(tmp_path):
    path = tmp_path / "record.sqlite"

    async def locked() -> ProcessWriter:
        writer = writer_for(path, busy_timeout=0.2, retry_after=0.5)
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
        return writer

    writer = asyncio.run(locked())
    assert stored_ids(writer.store) == {"before", "after"}
    assert writer.store.verify().ok
    writer.store.close()


def test_a_killed_writer_process_fails_its_calls_and_the_next_one_restarts_it(tmp_path):
    path = tmp_path / "record.sqlite"

    async def crash() -> ProcessWriter:
        writer = writer_for(path)
        await writer.append([record("before")])
        first = writer.pid
        assert first is not None
        # Stopped, then killed: the call sent meanwhile can only have been lost with it.
        os.kill(first, signal.SIGSTOP)
        waiting = asyncio.ensure_future(writer.append([record("lost")]))
        await asyncio.sleep(0.1)
        os.kill(first, signal.SIGKILL)
        with pytest.raises(RecordUnavailable, match="exited"):
            await waiting
        await writer.append([record("after")])  # a new child, the same chain
        assert writer.pid not in (None, first) and writer.starts == 2
        writer.close()
        return writer

    writer = asyncio.run(crash())
    assert stored_ids(writer.store) == {"before", "after"}
    assert writer.store.verify().ok  # the new child continued the chain from the store's head
    writer.store.close()


class FailingStart(ProcessWriter):
    """A writer whose child exits at once, as one that cannot start would, while ``broken``."""

    broken = True

    def command(self) -> list[str]:
        return [sys.executable, "-c", "raise SystemExit(3)"] if self.broken else super().command()


def test_a_child_that_cannot_start_is_restarted_after_a_doubling_delay_not_per_call(tmp_path):
    path = tmp_path / "record.sqlite"
    url = f"sqlite:///{path}"

    async def failing() -> FailingStart:
        writer = FailingStart(url, open_record(url), writer_id="w", window=0.0,
                              restart_delay=(0.4, 0.8)).start()  # fmt: skip
        with pytest.raises(RecordUnavailable, match=r"exited \(code 3\)"):
            await writer.append([record("a")])
        # Refused at once, without a new child, until the delay is over.
        for _ in range(20):
            with pytest.raises(RecordUnavailable, match="as it started; restarting in"):
                await writer.append([record("b")])
        assert writer.starts == 1
        with pytest.raises(RecordUnavailable) as refused:
            await writer.append([record("b")])
        assert 0 < refused.value.retry_after <= 0.4
        await asyncio.sleep(0.45)
        with pytest.raises(RecordUnavailable, match="exited"):
            await writer.append([record("c")])  # the second start, which fails again
        assert writer.starts == 2
        with pytest.raises(RecordUnavailable) as refused:
            await writer.append([record("c")])
        assert 0.4 < refused.value.retry_after <= 0.8  # doubled
        await asyncio.sleep(0.85)
        with pytest.raises(RecordUnavailable, match="exited"):
            await writer.append([record("d")])
        with pytest.raises(RecordUnavailable) as refused:
            await writer.append([record("d")])
        assert 0.4 < refused.value.retry_after <= 0.8  # capped at restart_delay[1]
        # Mended: the next start after the delay serves, and continues the chain.
        writer.broken = False
        await asyncio.sleep(0.85)
        await writer.append([record("e")])
        assert writer.starts == 4
        # A child that had started and then died is replaced at once, without a delay.
        os.kill(writer.pid, signal.SIGKILL)
        while writer.pid is not None:  # until its end of file is read
            await asyncio.sleep(0.01)
        await writer.append([record("f")])
        assert writer.starts == 5
        writer.close()
        return writer

    writer = asyncio.run(failing())
    assert stored_ids(writer.store) == {"e", "f"}
    assert writer.store.verify().ok
    writer.store.close()


def test_a_child_killed_idle_is_replaced_at_once_and_one_dead_unread_waits(tmp_path):
    """No call has attached to either child, so neither pipe was read: the writer tells a
    child that had opened the record (its ready frame is in the pipe) from one that never
    did by what the dead child left there."""
    path = tmp_path / "record.sqlite"
    url = f"sqlite:///{path}"

    async def idle() -> tuple[ProcessWriter, FailingStart]:
        writer = writer_for(path)
        child = psutil.Process(writer.pid)
        deadline = time.monotonic() + 30
        while not any(f.path == str(path) for f in child.open_files()):  # the record is open
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # and its ready frame written
        child.kill()
        child.wait(10)
        await writer.append([record("after an idle kill")])  # no delay
        assert writer.starts == 2
        writer.close()

        failing = FailingStart(url, open_record(url), writer_id="f", window=0.0,
                               restart_delay=(5.0, 5.0)).start()  # fmt: skip
        psutil.Process(failing.pid).wait(30)
        with pytest.raises(RecordUnavailable, match="as it started; restarting in") as refused:
            await failing.append([record("never")])  # the first call already waits
        assert refused.value.retry_after > 4 and failing.starts == 1
        failing.close()
        return writer, failing

    writer, failing = asyncio.run(idle())
    assert stored_ids(writer.store) == {"after an idle kill"}
    writer.store.close()
    failing.store.close()


def test_aclose_commits_and_answers_everything_sent_even_beyond_a_full_pipe(tmp_path):
    path = tmp_path / "record.sqlite"

    async def shutdown() -> ProcessWriter:
        writer = writer_for(path)
        await writer.append([record("warm")])
        pid = writer.pid
        assert pid is not None
        # The child paused: 40 calls of 1,000 records (~2 MB) fill its pipe, and the rest
        # waits in the worker's transport buffer when the shutdown hook runs.
        os.kill(pid, signal.SIGSTOP)
        batches = [[record(f"S{i}-{k}") for k in range(1000)] for i in range(40)]
        sent = [asyncio.ensure_future(writer.append(batch)) for batch in batches]
        await asyncio.sleep(0.1)
        assert writer._transport is not None and writer._transport.get_write_buffer_size() > 0
        asyncio.get_running_loop().call_later(0.2, os.kill, pid, signal.SIGCONT)
        await writer.aclose()  # as the worker's shutdown hook does
        await asyncio.gather(*sent)  # every call answered: committed
        assert writer.pid is None
        with pytest.raises(RecordUnavailable, match="not running"):
            await writer.append([record("late")])
        assert writer.starts == 1  # no child started after the close
        return writer

    writer = asyncio.run(shutdown())
    assert writer.store.count() == 1 + 40 * 1000
    assert writer.store.verify().ok
    writer.store.close()


def test_a_stuck_writer_process_answers_unavailable_at_the_deadline(tmp_path):
    path = tmp_path / "record.sqlite"

    async def stuck() -> ProcessWriter:
        writer = writer_for(path, deadline=0.3)
        await writer.append([record("before")])
        pid = writer.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)  # as a stalled fsync would hold it
        start = time.monotonic()
        with pytest.raises(RecordUnavailable, match=r"not committed in 0\.3 s"):
            await writer.append([record("late")])
        assert time.monotonic() - start < 2.0
        os.kill(pid, signal.SIGCONT)
        await writer.append([record("after")])  # the same child, going again
        assert writer.starts == 1
        await writer.aclose()
        return writer

    writer = asyncio.run(stuck())
    # The call that gave up was answered 503; its record, already sent, is committed anyway.
    assert stored_ids(writer.store) == {"before", "late", "after"}
    writer.store.close()


def test_close_without_the_loop_commits_what_reached_the_pipe_and_fails_its_calls(tmp_path):
    path = tmp_path / "record.sqlite"

    async def shutdown() -> ProcessWriter:
        writer = writer_for(path)
        await writer.append([record("warm")])
        sent = [asyncio.ensure_future(writer.append([record(f"S{i}")])) for i in range(20)]
        await asyncio.sleep(0)  # each call has written its frame to the pipe
        writer.close()  # nothing awaited: the child commits what it read, then exits
        results = await asyncio.gather(*sent, return_exceptions=True)
        assert all(isinstance(r, RecordUnavailable) for r in results)  # never left hanging
        return writer

    writer = asyncio.run(shutdown())
    assert stored_ids(writer.store) == {"warm"} | {f"S{i}" for i in range(20)}
    writer.store.close()


def test_a_full_disk_refuses_records_and_recovers_when_space_is_freed(small_disk):
    path = small_disk / "record.sqlite"
    filler = small_disk / "filler"
    acknowledged: list[str] = []

    async def fill() -> ProcessWriter:
        writer = writer_for(path, retry_after=0.2)
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
        return writer

    writer = asyncio.run(fill())
    assert stored_ids(writer.store) == set(acknowledged)
    assert writer.store.verify().ok
    writer.store.close()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"score": float("nan")}, ValueError, "score must be a finite number"),
        ({"time": datetime(2026, 1, 1)}, ValueError, "timezone-aware"),
    ],
    ids=["nan-score", "naive-time"],
)
def test_a_malformed_record_fails_its_own_caller_only(tmp_path, change, error, message):
    path = tmp_path / "record.sqlite"

    async def mixed() -> ProcessWriter:
        writer = writer_for(path)
        bad = writer.append([record("bad-batch-good-row"), replace(record("bad"), **change)])
        results = await asyncio.gather(bad, writer.append([record("good")]),
                                       return_exceptions=True)  # fmt: skip
        assert isinstance(results[0], error) and message in str(results[0])
        assert results[1] is None
        writer.close()
        return writer

    writer = asyncio.run(mixed())
    assert stored_ids(writer.store) == {"good"}
    writer.store.close()
