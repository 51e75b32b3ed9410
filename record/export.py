"""Export records to Parquet or CSV with pyarrow, streamed in chunks (months of records
need not fit in memory). The time is a UTC timestamp; request and reasons stay JSON text,
so a row can still be checked against its hash."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from record.entry import COLUMNS, StoredRecord

FORMATS = ("parquet", "csv")
SUFFIXES: dict[str, Literal["parquet", "csv"]] = {".parquet": "parquet", ".csv": "csv"}
CHUNK = 10_000
SCHEMA = pa.schema([
    ("writer_id", pa.string()),
    ("seq", pa.int64()),
    ("time", pa.timestamp("us", tz="UTC")),
    ("application_id", pa.string()),
    ("request", pa.string()),
    ("score", pa.float64()),
    ("group", pa.string()),
    ("rule", pa.string()),
    ("draw", pa.float64()),
    ("approval_probability", pa.float64()),
    ("decision", pa.string()),
    ("reasons", pa.string()),
    ("model_version", pa.string()),
    ("policy_version", pa.string()),
    ("probe", pa.bool_()),
    ("prev_hash", pa.string()),
    ("hash", pa.string()),
])  # fmt: skip
assert tuple(SCHEMA.names) == COLUMNS


def _batches(rows: Iterable[StoredRecord]) -> Iterator[pa.RecordBatch]:
    iterator = iter(rows)
    while chunk := list(islice(iterator, CHUNK)):
        columns = list(zip(*chunk, strict=True))
        arrays = [
            pa.array(values, type=pa.string()).cast(field.type)
            if field.name == "time"
            else pa.array(values, type=field.type)
            for field, values in zip(SCHEMA, columns, strict=True)
        ]
        yield pa.RecordBatch.from_arrays(arrays, schema=SCHEMA)


def format_of(path: Path) -> Literal["parquet", "csv"] | None:
    """The format a file's suffix names, or None (any case: ``X.CSV`` is CSV).

    >>> format_of(Path("decisions.csv"))
    'csv'
    """
    return SUFFIXES.get(Path(path).suffix.lower())


def write_records(
    rows: Iterable[StoredRecord], path: Path, format: Literal["parquet", "csv"]
) -> int:
    """Write ``rows`` to ``path`` (created, with its directory); returns how many."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)} (got {format!r})")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    writer: pq.ParquetWriter | pa_csv.CSVWriter = (
        pq.ParquetWriter(path, SCHEMA) if format == "parquet" else pa_csv.CSVWriter(path, SCHEMA)
    )
    with writer:
        for batch in _batches(rows):
            writer.write_batch(batch)
            count += batch.num_rows
    return count
