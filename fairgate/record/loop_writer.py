"""Group commit in the event loop's own thread, for a record on local disk (SQLite).

A SQLite commit of a few rows takes a few hundred microseconds (most of it the fsync), so it
can run in the thread that serves requests. Doing so is faster than a writer thread: a
thread that enters SQLite releases the GIL and must win it back from a busy event loop on
every statement, which costs up to the interpreter's switch interval (5 ms) each time and
showed as the tail of the service's latency (measured in docs/benchmarks.md).

Records are collected for a short *window* after the first one arrives, then committed in one
transaction: under load one commit serves every request of the window; at low load a record
waits at most ``window`` seconds more than its commit. ``await writer.append(records)``
returns after the commit or raises ``RecordUnavailable``, as ``RecordWriter.append`` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final

from fairgate.record.entry import Record, prepare
from fairgate.record.store import RecordStore
from fairgate.record.writer import GroupCommit, Pending, RecordUnavailable

# 2 ms: at ~1,000 requests/s, a commit per two requests or fewer, while adding at most 2 ms
# to a decision's latency (the p99 target is 20 ms).
DEFAULT_WINDOW: Final[float] = 0.002
# A commit blocks the event loop, so the lock wait of a busy SQLite file must be short: long
# enough for another worker's commit to end, short enough not to stall health probes.
LOOP_BUSY_TIMEOUT: Final[float] = 0.2


class LoopWriter(GroupCommit):
    """Appends records with group commit, committing in the running event loop's thread.

    >>> writer = LoopWriter(open_record("sqlite:///record.sqlite")).start()  # doctest: +SKIP
    >>> await writer.append([record])  # returns once committed  # doctest: +SKIP
    """

    def __init__(
        self, store: RecordStore, *, window: float = DEFAULT_WINDOW, **options: Any
    ) -> None:
        super().__init__(store, **options)
        self.window = window
        self._pending: list[Pending] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._running = False

    def start(self) -> LoopWriter:
        self._running = True
        return self

    async def append(self, records: Sequence[Record]) -> None:
        """Append and wait for the commit; raises ``RecordUnavailable`` if the store failed.

        A malformed record raises ValueError or TypeError here, before anything is queued.
        """
        await self.append_prepared(prepare(records))

    async def append_prepared(self, prepared: list[tuple[Any, ...]]) -> None:
        """``append`` for records already encoded (``entry.encode``)."""
        if not prepared:
            return
        if not self._running:
            raise RecordUnavailable("the record writer is not running", 1.0)
        refused = self._refusal()
        if refused is not None:
            raise refused
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._pending.append((prepared, future))
        self._size += len(prepared)
        if self._size >= self.max_batch:
            self._schedule(loop.call_soon(self._flush))
        elif self._timer is None:
            self._schedule(loop.call_later(self.window, self._flush))
        await future

    def _schedule(self, handle: asyncio.TimerHandle | asyncio.Handle) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = handle

    def _flush(self) -> None:
        self._timer = None
        batch, self._pending, self._size = self._pending, [], 0
        # A caller whose request was cancelled (the client went away) was never answered:
        # its records are not written.
        self._write([item for item in batch if not item[1].cancelled()])

    def close(self) -> None:
        """Commit what is queued now (worker shutdown), then refuse new appends."""
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
        if self._pending:
            self._flush()
