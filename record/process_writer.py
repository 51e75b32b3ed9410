"""Group commit in a process of its own: the worker's event loop never waits on SQLite.

A service worker (``ProcessWriter``) sends each call's encoded records down a pipe to a child
process (``python -m record.process_writer``) and awaits its acknowledgement. The
child links the hash chain, inserts and commits: the SQLite work per row and the fsync run
on another core, under another GIL, and a slow commit or a WAL checkpoint does not stop the
worker from serving (measured in docs/benchmarks.md). A thread would not do: the
``sqlite3`` module releases the GIL around every statement, and each re-acquisition waits up
to the interpreter's switch interval behind a busy event loop.

The child commits the calls that arrive within a short window after the first one (group
commit), and applies ``GroupCommit``'s rules unchanged: a failed commit refuses its records
and, for ``retry_after`` seconds, every new one, with ``RecordUnavailable`` (503 +
Retry-After in the service). A record is acknowledged only after its commit. If the child
dies, every call waiting on it fails with ``RecordUnavailable`` and the next call starts a
new child, which continues the worker's chain from the store's head. The child sends a first
frame, with no acknowledgement in it, once it has opened the record. A child that dies before
that frame (it cannot start: a broken install, the record's directory gone) is started again
only after a delay that doubles up to ``RESTART_DELAY``'s second figure; calls meanwhile get
``RecordUnavailable`` at once, so a worker does not start a Python process per request. A
child that had started (killed while idle, say) is replaced at once. The child ignores
SIGINT/SIGTERM and exits when the worker closes the pipe, after committing what it holds
(``aclose``: the worker's shutdown hook sends what it buffered, waits for the acks, then for
the child).

Frames in both directions: a 4-byte big-endian length, then a pickle. Worker -> child:
``(call_id, rows)``; child -> worker, one frame per transaction: ``(commits so far,
[(call_id, None | (message, retry_after)), ...])``, and first ``(0, [])`` once the
record is open
(pickle is safe here: both ends are this program, over a pipe only they hold).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, Final

from record.entry import Record, prepare
from record.store import RecordStore, open_record
from record.writer import GroupCommit, RecordUnavailable, new_writer_id

log = logging.getLogger("fairgate.record")
_HEADER = struct.Struct(">I")
# A batch of 1,000 records is ~0.5 MB pickled: a pipe that holds it spares partial writes.
_PIPE_BYTES: Final[int] = 1 << 20
_F_SETPIPE_SZ: Final[int] = 1031  # Linux's fcntl.F_SETPIPE_SZ, spelled out for other systems
# A commit waits this long after its first call for others to join it: under load one
# commit serves several requests, not one (each commit writes its pages again to the WAL,
# and the WAL's size sets how often a checkpoint stalls the writer), for at most 2 ms more.
DEFAULT_WINDOW: Final[float] = 0.002
# A call waits this long for its commit (a commit takes milliseconds), then answers 503.
DEFAULT_DEADLINE: Final[float] = 5.0
# A child that dies before its ready frame is restarted after 0.5 s, then 1, 2, ... 30 s.
RESTART_DELAY: Final[tuple[float, float]] = (0.5, 30.0)


def frame(payload: Any) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


class FrameReader:
    """Whole frames out of the bytes read so far (reads may split or join frames)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[Any]:
        self._buffer += data
        while len(self._buffer) >= _HEADER.size:
            (size,) = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + size
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[_HEADER.size : end])
            del self._buffer[:end]
            yield pickle.loads(payload)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _grow_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):  # not Linux, or above the system's pipe-max-size
        fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_BYTES)


# --- the child ------------------------------------------------------------------------


class _Outcome:
    """What ``GroupCommit.write`` reports for one call (it sets a future's result)."""

    def __init__(self, call_id: int) -> None:
        self.call_id = call_id
        # Until ``write`` reports a commit, a call counts as not recorded.
        self.error: tuple[str, float] | None = ("the record writer did not commit it", 1.0)

    def set_result(self, _: None) -> None:
        self.error = None

    def set_exception(self, error: BaseException) -> None:
        retry_after = error.retry_after if isinstance(error, RecordUnavailable) else 1.0
        self.error = (str(error), retry_after)


def serve(
    url: str, writer_id: str, *, busy_timeout: float, retry_after: float, window: float
) -> None:
    """The child's loop: read calls, commit each group, acknowledge every call of it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the worker's shutdown ends it (pipe EOF)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    store = open_record(url, busy_timeout=busy_timeout)
    committer = GroupCommit(store, writer_id=writer_id, retry_after=retry_after)
    # Acks go to a private copy of stdout; fd 1 itself now points at stderr, so a stray print
    # (a library's warning) cannot corrupt the frames.
    source, sink = sys.stdin.fileno(), os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _grow_pipe(source)
    _write_all(sink, frame((0, [])))  # ready: the record is open (no call to acknowledge)
    reader = FrameReader()
    calls: deque[tuple[int, list[tuple[Any, ...]]]] = deque()
    queued = 0  # rows in calls
    due = 0.0  # when the oldest queued call's window ends
    open_ = True
    while open_ or calls:
        # Wait for input: without limit when nothing is queued, else until the window ends.
        wait = None if not calls else max(0.0, due - time.monotonic())
        if open_ and queued < committer.max_batch and select.select([source], [], [], wait)[0]:
            data = os.read(source, _PIPE_BYTES)
            if not data:
                open_ = False  # the worker closed the pipe: commit what is left, then exit
            for call in reader.feed(data):
                if not calls:
                    due = time.monotonic() + window
                calls.append(call)
                queued += len(call[1])
            if open_ and queued < committer.max_batch and time.monotonic() < due:
                continue
        if not calls:
            continue
        group, size = [], 0
        while calls and size < committer.max_batch:
            call_id, rows = calls.popleft()
            group.append((rows, _Outcome(call_id)))
            size += len(rows)
        queued -= size
        due = time.monotonic()  # calls left over (past max_batch) have waited long enough
        try:
            committer.write(group)
        except Exception as error:  # a bug must fail these calls, not end the writer
            log.exception("record writer error")
            for _, outcome in group:
                outcome.set_exception(RecordUnavailable(f"record writer error: {error}", 1.0))
        _write_all(sink, frame((committer.commits, [(o.call_id, o.error) for _, o in group])))
    store.close()


def main(argv: Sequence[str] | None = None) -> None:
    url, writer_id, busy_timeout, retry_after, window = (argv or sys.argv[1:])[:5]
    serve(url, writer_id, busy_timeout=float(busy_timeout), retry_after=float(retry_after),
          window=float(window))  # fmt: skip


# --- the worker's side ------------------------------------------------------------------


class ProcessWriter:
    """Appends records through a writer process; ``await append(...)`` returns once committed.

    ``store`` is the worker's own handle on the same record, for reading (``GET
    /decisions``); the child opens the record from ``url`` to write.
    """

    def __init__(
        self,
        url: str,
        store: RecordStore,
        *,
        writer_id: str | None = None,
        busy_timeout: float = 0.5,
        retry_after: float = 1.0,
        window: float = DEFAULT_WINDOW,
        deadline: float = DEFAULT_DEADLINE,
        restart_delay: tuple[float, float] = RESTART_DELAY,
    ) -> None:
        self.url = url
        self.window = window
        self.deadline = deadline
        self.store = store
        self.writer_id = writer_id or new_writer_id()
        self.busy_timeout = busy_timeout
        self.retry_after = retry_after
        self.restart_delay = restart_delay
        self.starts = 0  # child processes started (a restart after a crash adds one)
        self.commits = 0  # transactions the current child has committed
        self._running = False
        self._process: subprocess.Popen[bytes] | None = None
        self._transport: asyncio.WriteTransport | None = None
        self._waiting: dict[int, asyncio.Future[None]] = {}
        self._ids = itertools.count()
        self._attaching: asyncio.Lock | None = None
        self._gone: asyncio.Future[None] | None = None  # done once the attached child is gone
        self._answered = False  # whether the current child has sent a frame (it started)
        self._delay = 0.0  # before the next start, after children that died unanswered
        self._start_at = 0.0  # time.monotonic() at which a new child may start
        self._last_exit = ""  # why the last child is gone, for the refusals meanwhile

    def start(self) -> ProcessWriter:
        self._running = True
        self._spawn()
        return self

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def command(self) -> list[str]:
        """The child's command line."""
        return [sys.executable, "-m", "record.process_writer", self.url, self.writer_id,
                str(self.busy_timeout), str(self.retry_after), str(self.window)]  # fmt: skip

    def _spawn(self) -> None:
        # The child imports what the worker imports fairgate from (a bento's src included).
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p or os.getcwd() for p in sys.path))
        self._process = subprocess.Popen(
            self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True
        )
        assert self._process.stdin is not None and self._process.stdout is not None
        _grow_pipe(self._process.stdin.fileno())
        os.set_blocking(self._process.stdout.fileno(), False)
        if self._transport is not None:
            self._transport.close()  # the previous child's pipe
        self._transport = None  # attached to the running loop on first use
        # The calls waiting on this child: if it dies, these fail, not the next child's.
        self._waiting = {}
        self._answered = False
        self.starts += 1

    def _exited(self, process: subprocess.Popen[bytes], code: int) -> None:
        """Forget the current child, gone with ``code``; delay the next start if it never
        sent a frame (it could not start), else start the next one at once."""
        if self._transport is None and not self._answered:
            # Never attached, so never read: its ready frame, if it sent one, is in the pipe.
            assert process.stdout is not None
            with contextlib.suppress(OSError):
                self._answered = bool(os.read(process.stdout.fileno(), _HEADER.size))
        if self._transport is not None:
            self._transport.close()
        self._process, self._transport = None, None
        if self._gone is not None and not self._gone.done():
            self._gone.set_result(None)
        first, longest = self.restart_delay
        self._delay = 0.0 if self._answered else min(max(first, 2 * self._delay), longest)
        self._start_at = time.monotonic() + self._delay
        self._last_exit = f"the record writer process exited (code {code})"
        if self._running:
            log.warning("record writer process %s exited with %s%s", process.pid, code,
                        f"; next start in {self._delay:g} s" if self._delay else "")  # fmt: skip

    async def _attach(self) -> asyncio.WriteTransport:
        if self._transport is not None:  # attached to a child not known to be gone
            return self._transport
        if self._attaching is None:
            self._attaching = asyncio.Lock()
        async with self._attaching:  # one transport per child, however many calls arrive
            if not self._running:  # closed while this call waited for the lock
                raise RecordUnavailable("the record writer is not running", 1.0)
            process = self._process
            if process is not None and process.poll() is not None:
                # Died before any call attached to it (no reader, so no end of file seen).
                self._exited(process, process.returncode)
                assert process.stdin is not None and process.stdout is not None
                with contextlib.suppress(OSError):
                    process.stdin.close()
                process.stdout.close()
                process = None
            if process is None:
                wait = self._start_at - time.monotonic()
                if wait > 0:
                    message = f"{self._last_exit} as it started; restarting in {wait:.1f} s"
                    raise RecordUnavailable(message, wait)
                try:
                    self._spawn()
                except OSError as error:  # out of processes or descriptors: a 503, not a 500
                    message = f"cannot start the record writer: {error}"
                    raise RecordUnavailable(message, 1.0) from error
                process = self._process
            assert process is not None and process.stdin is not None
            assert process.stdout is not None
            if self._transport is None:
                loop = asyncio.get_running_loop()
                transport, _ = await loop.connect_write_pipe(asyncio.BaseProtocol, process.stdin)
                if not self._running or process is not self._process:  # closed meanwhile
                    transport.abort()
                    raise RecordUnavailable("the record writer is not running", 1.0)
                self._transport = transport
                self._gone = loop.create_future()
                loop.add_reader(
                    process.stdout.fileno(), self._on_readable, process, FrameReader(),
                    self._waiting,
                )  # fmt: skip
            return self._transport

    async def append(self, records: Sequence[Record]) -> None:
        """Append and wait for the commit; raises ``RecordUnavailable`` if the store failed.

        A malformed record raises ValueError or TypeError here, before anything is sent.
        """
        await self.append_prepared(prepare(records))

    async def append_prepared(self, prepared: list[tuple[Any, ...]]) -> None:
        """``append`` for records already encoded (``entry.encode``)."""
        if not prepared:
            return
        if not self._running:
            raise RecordUnavailable("the record writer is not running", 1.0)
        transport = await self._attach()
        call_id = next(self._ids)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[call_id] = future
        transport.write(frame((call_id, prepared)))
        # Once sent, a record is committed even if this call is cancelled (its client gone)
        # or gives up at its deadline (a child stuck in a stalled fsync): the decision was
        # made, and a record without an answer loses nothing; an answer without one would.
        # One timer per call, not ``wait_for`` (a task and a shield per call).
        timer = asyncio.get_running_loop().call_later(self.deadline, self._give_up, future)
        try:
            await future
        finally:
            timer.cancel()

    def _give_up(self, future: asyncio.Future[None]) -> None:
        if not future.done():
            message = f"the record writer has not committed in {self.deadline:g} s"
            future.set_exception(RecordUnavailable(message, self.retry_after))

    def _on_readable(
        self,
        process: subprocess.Popen[bytes],
        reader: FrameReader,
        waiting: dict[int, asyncio.Future[None]],
    ) -> None:
        assert process.stdout is not None
        try:
            data = os.read(process.stdout.fileno(), _PIPE_BYTES)
        except BlockingIOError:
            return
        if not data:
            self._child_gone(process, waiting)
            return
        for commits, acks in reader.feed(data):
            if process is self._process:
                self._answered = True
            self.commits = commits
            for call_id, error in acks:
                future = waiting.pop(call_id, None)
                if future is None or future.done():
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(RecordUnavailable(error[0], error[1]))

    def _child_gone(
        self, process: subprocess.Popen[bytes], waiting: dict[int, asyncio.Future[None]]
    ) -> None:
        assert process.stdout is not None
        asyncio.get_running_loop().remove_reader(process.stdout.fileno())
        process.stdout.close()
        code = process.wait()
        if process is self._process:
            self._exited(process, code)
        _fail(waiting, RecordUnavailable(f"the record writer process exited (code {code})", 1.0))

    async def aclose(self, timeout: float = 10.0) -> None:
        """Stop taking records; send what is buffered, let the child commit and acknowledge
        it, then wait for the child to exit (killed after ``timeout`` seconds). A call still
        unanswered then fails with ``RecordUnavailable``. The service's shutdown hook."""
        self._running = False
        process, transport, gone = self._process, self._transport, self._gone
        if process is None:
            return
        if transport is None or gone is None:  # never attached (both or neither): nothing sent
            self.close(timeout)
            return
        transport.close()  # flushes its buffer, then closes the pipe: the child sees EOF
        try:
            await asyncio.wait_for(asyncio.shield(gone), timeout)
        except TimeoutError:
            log.warning("record writer process %s did not finish in %.0f s; killed",
                        process.pid, timeout)  # fmt: skip
            process.kill()
            await asyncio.wait_for(asyncio.shield(gone), timeout)
        _fail(self._waiting, RecordUnavailable("the record writer is closed", 1.0))

    def close(self, timeout: float = 10.0) -> None:
        """``aclose`` without waiting in the event loop: closes the pipe at once, so records
        still in the transport's buffer (a full pipe) are dropped and their calls fail;
        what reached the pipe is committed, and the child is waited for."""
        self._running = False
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        if self._transport is not None:
            with contextlib.suppress(RuntimeError):  # no loop running: no reader either
                asyncio.get_running_loop().remove_reader(process.stdout.fileno())
            self._transport.abort()
            self._transport = None
        with contextlib.suppress(OSError):
            process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()
        _fail(self._waiting, RecordUnavailable("the record writer is closed", 1.0))


def _fail(waiting: dict[int, asyncio.Future[None]], error: RecordUnavailable) -> None:
    """Fail every call still waiting (a child gone, or the writer closed), and forget them."""
    for future in waiting.values():
        if not future.done():
            future.set_exception(error)
    waiting.clear()


if __name__ == "__main__":
    main()
