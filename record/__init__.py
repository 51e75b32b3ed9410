"""The decision record: every decision appended, hash-chained, readable by application id.

>>> store = open_record("sqlite:///data/record.sqlite")  # doctest: +SKIP
>>> with RecordWriter(store) as writer:  # doctest: +SKIP
...     writer.append_sync([record])
>>> store.verify().ok  # doctest: +SKIP
True
"""

from record.appender import Appender
from record.entry import Record, StoredRecord
from record.retention import DEFAULT_RETENTION, Duration, DurationError, parse_duration
from record.store import RecordStore, RecordStoreError, open_record
from record.url import ENV_VAR, RecordUrl, RecordUrlError, parse_record_url
from record.verify import Problem, VerifyReport
from record.writer import RecordUnavailable, RecordWriter, utc_now

__all__ = [
    "DEFAULT_RETENTION",
    "ENV_VAR",
    "Appender",
    "Duration",
    "DurationError",
    "Problem",
    "Record",
    "RecordStore",
    "RecordStoreError",
    "RecordUnavailable",
    "RecordUrl",
    "RecordUrlError",
    "RecordWriter",
    "StoredRecord",
    "VerifyReport",
    "open_record",
    "parse_duration",
    "parse_record_url",
    "utc_now",
]
