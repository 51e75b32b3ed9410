"""What a record writer is to its user: ``Appender``, the interface both writers implement.

``writer.RecordWriter`` commits from a thread of its own (a store across the network) and
``process_writer.ProcessWriter`` from a process of its own (a local SQLite file); the service
(``service/recording.py``) picks one by the record's URL and then uses only this.

>>> writer: Appender = RecordWriter(open_record(url)).start()  # doctest: +SKIP
>>> await writer.append_prepared(rows)  # returns once committed  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, Self, runtime_checkable

from record.entry import Record
from record.store import RecordStore


@runtime_checkable
class Appender(Protocol):
    """Appends records to one hash chain (``writer_id``'s) in ``store``, group-committed.

    Every ``append`` returns once its records are committed, or raises
    ``RecordUnavailable``: a record is never acknowledged before its commit.
    """

    store: RecordStore  # the same record, for reading (``GET /decisions``)
    writer_id: str

    def start(self) -> Self:
        """Start committing (a thread, a process); returns the writer."""
        ...

    async def append(self, records: Sequence[Record]) -> None:
        """Append ``records`` and wait for their commit."""
        ...

    async def append_prepared(self, prepared: list[tuple[Any, ...]]) -> None:
        """``append`` for records already encoded (``entry.encode``)."""
        ...

    async def aclose(self, timeout: float = 10.0) -> None:
        """Commit what was appended, then stop (an async shutdown hook)."""
        ...

    def close(self, timeout: float = 10.0) -> None:
        """``aclose`` outside an event loop."""
        ...
