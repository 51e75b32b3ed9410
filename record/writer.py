"""Group commit: one writer per process turns the records of concurrent callers into one
transaction, and each caller's ``await writer.append(records)`` returns after the commit.

``GroupCommit`` holds what every writer shares (the hash chain, the transaction, the failure
handling); ``RecordWriter`` below commits from a thread of its own (PostgreSQL), and
``record.process_writer`` from a process of its own (SQLite).

While a transaction commits, new records queue; the next transaction takes all of them (up to
``max_batch``), so under load one commit (and one fsync) serves many requests. When the store
fails (locked or full SQLite file, PostgreSQL down) the records of that transaction are
refused with ``RecordUnavailable`` and, for ``retry_after`` seconds, so is every new append,
without waiting on the store (fail fast: the service answers 503 with Retry-After). Then the
next transaction tries again, so the writer recovers by itself once the store is back. A
record is never acknowledged before its commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

from record.entry import GENESIS, Record, link, prepare
from record.store import RecordStore

log = logging.getLogger("fairgate.record")
# One caller's prepared records (``entry.prepare``) and the future its append waits on
# (a thread's ``concurrent.futures.Future`` or an event loop's ``asyncio.Future``).
Pending = tuple[list[tuple[Any, ...]], Any]


class RecordUnavailable(RuntimeError):
    """The record store cannot take records now; ask again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def new_writer_id() -> str:
    """Unique per writer process: host, pid and a random suffix (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class GroupCommit:
    """What every writer shares: one hash chain, the store's transactions, the down state.

    A user decides where transactions run (``RecordWriter``: a thread of its own; the writer
    process's loop, ``process_writer.serve``) and feeds ``write`` batches of pending records.
    """

    def __init__(
        self,
        store: RecordStore,
        *,
        writer_id: str | None = None,
        max_batch: int = 10_000,
        retry_after: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.writer_id = writer_id or new_writer_id()
        self.max_batch = max_batch
        self.retry_after = retry_after
        self._clock = clock
        self._down_until = 0.0
        self._down_reason = ""
        self._seq = 0
        self._hash = GENESIS
        self._synced = False  # the chain's end is read from the store before the first commit
        self.commits = 0  # transactions committed (the bench reports records per commit)

    def _refusal(self) -> RecordUnavailable | None:
        """The error for a new append while the store is down (no attempt is made)."""
        remaining = self._down_until - self._clock()
        return RecordUnavailable(self._down_reason, remaining) if remaining > 0 else None

    def write(self, batch: Sequence[Pending]) -> None:
        """Commit a batch in one transaction; settle each pending future (or outcome)."""
        if not batch:
            return
        refused = self._refusal()
        if refused is not None:  # queued just before a failure: refuse without a new attempt
            for _, future in batch:
                future.set_exception(refused)
            return
        try:
            self._commit([record for records, _ in batch for record in records])
        except Exception as cause:
            self._fail(batch, cause)
        else:
            for _, future in batch:
                future.set_result(None)

    def _commit(self, records: list[tuple[Any, ...]]) -> None:
        if not self._synced:
            # After a failed commit its outcome is unknown (the connection may have dropped
            # after COMMIT reached the server): the head, moved in the same transaction, says.
            head = self.store.head(self.writer_id)
            self._seq, self._hash = (0, GENESIS) if head is None else head
            self._synced = True
        rows = link(records, self.writer_id, self._seq, self._hash)
        self.store.append(rows)
        self._seq, self._hash = rows[-1].seq, rows[-1].hash
        self.commits += 1

    def _fail(self, batch: Sequence[Pending], cause: Exception) -> None:
        self._synced = False
        self.store.reset()
        reason = f"the decision record store is unavailable ({type(cause).__name__}: {cause})"
        self._down_reason = reason.strip()
        self._down_until = self._clock() + self.retry_after
        log.warning("record commit failed, refusing records for %.1fs: %s",
                    self.retry_after, self._down_reason)  # fmt: skip
        error = RecordUnavailable(self._down_reason, self.retry_after)
        error.__cause__ = cause
        for _, future in batch:
            future.set_exception(error)


class RecordWriter(GroupCommit):
    """Appends records to ``store`` with group commit, from a background thread.

    For a store across the network (PostgreSQL): a commit's round trip must not hold up the
    event loop. A local SQLite file is better served by ``process_writer.ProcessWriter``.

    >>> writer = RecordWriter(open_record("postgresql://...")).start()  # doctest: +SKIP
    >>> await writer.append([record])  # returns once committed  # doctest: +SKIP
    """

    def __init__(self, store: RecordStore, **options: Any) -> None:
        super().__init__(store, **options)
        self._pending: list[Pending] = []
        self._wake = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> RecordWriter:
        self._thread = threading.Thread(target=self._run, name="fairgate-record", daemon=True)
        self._thread.start()
        return self

    def submit(self, records: Sequence[Record]) -> Future[None]:
        """Queue ``records``; the future resolves after their commit (or fails).

        A malformed record raises ValueError or TypeError here, before anything is queued.
        """
        return self._submit(prepare(records))

    def _submit(self, prepared: list[tuple[Any, ...]]) -> Future[None]:
        future: Future[None] = Future()
        if not prepared:
            future.set_result(None)
            return future
        if self._thread is None or self._closing:
            future.set_exception(RecordUnavailable("the record writer is not running", 1.0))
            return future
        refused = self._refusal()
        if refused is not None:
            future.set_exception(refused)
            return future
        with self._wake:
            self._pending.append((prepared, future))
            self._wake.notify()
        return future

    async def append(self, records: Sequence[Record]) -> None:
        """Append and wait for the commit; raises ``RecordUnavailable`` if the store failed."""
        await asyncio.wrap_future(self.submit(records))

    async def append_prepared(self, prepared: list[tuple[Any, ...]]) -> None:
        """``append`` for records already encoded (``entry.encode``)."""
        await asyncio.wrap_future(self._submit(prepared))

    def append_sync(self, records: Sequence[Record], timeout: float | None = None) -> None:
        self.submit(records).result(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        """``close`` for an async shutdown hook (the same call: the thread is joined)."""
        self.close(timeout)

    def __enter__(self) -> RecordWriter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the writer thread ------------------------------------------------------------
    def _take(self) -> list[Pending] | None:
        """The next transaction's share of the queue; None once closing and empty."""
        with self._wake:
            while not self._pending and not self._closing:
                self._wake.wait()
            if not self._pending:
                return None
            taken, size = 0, 0
            while taken < len(self._pending) and size < self.max_batch:
                size += len(self._pending[taken][0])
                taken += 1
            batch, self._pending = self._pending[:taken], self._pending[taken:]
        # A caller that gave up (its request was cancelled) was never answered: its records
        # are dropped, and its future can no longer be cancelled once running.
        return [item for item in batch if item[1].set_running_or_notify_cancel()]

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            try:
                self.write(batch)
            except Exception:  # a bug here must not stop the thread every caller waits on
                log.exception("record writer error")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(RecordUnavailable("record writer error", 1.0))


def utc_now() -> datetime:
    return datetime.now(UTC)
