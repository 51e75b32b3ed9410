"""One decision record: what the caller gives (``Record``) and what is stored (``StoredRecord``).

A stored row carries its writer's id, its sequence number in that writer's chain, the hash of
the row before it and its own hash: SHA-256 over a canonical encoding of every other column and
the previous hash. Any edit of a stored column changes the hash computed from the row.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

GENESIS = "0" * 64  # the "previous hash" of every chain's first row
# Bumped if the canonical encoding ever changes; it is part of every hashed payload.
ENCODING = "fairgate-record-1"


@dataclass(frozen=True, slots=True)
class Record:
    """A decision as the service made it (``request`` is the application as received)."""

    time: datetime
    application_id: str
    request: Mapping[str, Any] | str
    score: float
    group: str
    rule: str
    draw: float | None
    approval_probability: float
    decision: str
    reasons: Sequence[Mapping[str, str]]
    model_version: str
    policy_version: str
    probe: bool


class StoredRecord(NamedTuple):
    """A row of the record, in column order (a tuple, so drivers take it as it is)."""

    writer_id: str
    seq: int
    time: str  # canonical UTC text, see ``format_time``
    application_id: str
    request: str  # JSON text, hashed as stored
    score: float
    group: str
    rule: str
    draw: float | None
    approval_probability: float
    decision: str
    reasons: str  # JSON list of {"code", "text"}
    model_version: str
    policy_version: str
    probe: bool
    prev_hash: str
    hash: str

    def request_data(self) -> dict[str, Any]:
        return json.loads(self.request)

    def reasons_data(self) -> list[dict[str, str]]:
        return json.loads(self.reasons)

    def datetime(self) -> datetime:
        return parse_time(self.time)

    def as_dict(self) -> dict[str, Any]:
        """The row as JSON-ready values: request and reasons parsed, the chain fields kept.

        What ``GET /decisions/{application_id}`` can answer with.
        """
        row = self._asdict()
        row["request"], row["reasons"] = self.request_data(), self.reasons_data()
        return row


COLUMNS: tuple[str, ...] = StoredRecord._fields


def format_time(moment: datetime) -> str:
    """Canonical text of an aware datetime: always UTC, always microseconds.

    >>> format_time(datetime(2026, 1, 31, 12, tzinfo=UTC))
    '2026-01-31T12:00:00.000000Z'
    """
    if moment.tzinfo is None:
        raise ValueError(f"record time must be timezone-aware (got {moment!r})")
    # isoformat, not strftime: glibc's %Y writes year 1 as "1", not "0001".
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def to_json(value: Any) -> str:
    """Compact JSON with sorted keys, by orjson (faster than the standard library's)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _digest(fields: Sequence[Any], prev_hash: str) -> str:
    """SHA-256 (hex) of the canonical encoding of a row's 15 data columns and ``prev_hash``.

    The encoding is plain text, built in one f-string (cheaper than JSON-encoding the row):
    each text column as ``<length>:<text>``, so no text can be taken for another;
    each number by ``repr`` (for a float, the shortest text that reads back as the same
    double, so a row read back from either backend gives the hash computed when written)
    and a newline; the probe flag as 1 or 0; the time and the hashes have a fixed width.
    """
    (
        writer_id,
        seq,
        time_text,
        application_id,
        request,
        score,
        group,
        rule,
        draw,
        probability,
        decision,
        reasons,
        model_version,
        policy_version,
        probe,
    ) = fields[:15]
    text = (
        f"{ENCODING}\n{len(writer_id)}:{writer_id}{seq!r}\n{time_text}"
        f"{len(application_id)}:{application_id}{len(request)}:{request}{score!r}\n"
        f"{len(group)}:{group}{len(rule)}:{rule}{draw!r}\n{probability!r}\n"
        f"{len(decision)}:{decision}{len(reasons)}:{reasons}"
        f"{len(model_version)}:{model_version}{len(policy_version)}:{policy_version}"
        f"{1 if probe else 0}{prev_hash}"
    )
    return hashlib.sha256(text.encode()).hexdigest()


def row_hash(row: StoredRecord | Sequence[Any], prev_hash: str) -> str:
    """The hash a stored row should carry, given the hash of the row before it."""
    return _digest(row, prev_hash)


def _finite(value: Any, name: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"record {name} must be a finite number (got {value!r})")
    return number


def encode(
    time_text: str,
    application_id: str,
    request: Mapping[str, Any] | str,
    score: float,
    group: str,
    rule: str,
    draw: float | None,
    approval_probability: float,
    decision: str,
    reasons: Sequence[Mapping[str, str]],
    model_version: str,
    policy_version: str,
    probe: bool,
) -> tuple[Any, ...]:
    """One record's data columns after ``writer_id`` and ``seq``, checked and encoded.

    The one encoding of a record: ``prepare`` calls it for ``Record`` objects and the service
    (``service/recording.py``) for its decisions directly, without a ``Record`` in between.
    ``time_text`` is ``format_time(time)``; ``request`` a mapping (encoded here, keys sorted)
    or JSON text, stored and hashed as given.
    """
    return (
        time_text,
        str(application_id),
        request if isinstance(request, str) else to_json(request),
        _finite(score, "score"),
        str(group),
        str(rule),
        None if draw is None else _finite(draw, "draw"),
        _finite(approval_probability, "approval_probability"),
        str(decision),
        to_json(reasons) if reasons else "[]",
        str(model_version),
        str(policy_version),
        bool(probe),
    )


def prepare(records: Iterable[Record]) -> list[tuple[Any, ...]]:
    """The data columns after ``writer_id`` and ``seq`` of each record (``encode``).

    Done in the caller's thread (``RecordWriter.append``), so a malformed record (a naive
    time, a NaN score, a request JSON cannot encode) fails its own caller with ValueError or
    TypeError, not a whole transaction of other callers' records.
    """
    prepared = []
    append = prepared.append
    # The records of one request share their time: format each distinct instant once.
    last_time: datetime | None = None
    time_text = ""
    for r in records:
        if r.time is not last_time:
            last_time, time_text = r.time, format_time(r.time)
        append(encode(time_text, r.application_id, r.request, r.score, r.group, r.rule, r.draw,
                      r.approval_probability, r.decision, r.reasons, r.model_version,
                      r.policy_version, r.probe))  # fmt: skip
    return prepared


def link(
    prepared: Iterable[tuple[Any, ...]], writer_id: str, last_seq: int, last_hash: str
) -> list[StoredRecord]:
    """Stored rows for prepared records, continuing the chain after ``(last_seq, last_hash)``."""
    rows: list[StoredRecord] = []
    append = rows.append
    seq, prev = last_seq, last_hash
    for columns in prepared:
        seq += 1
        fields = (writer_id, seq, *columns)
        digest = _digest(fields, prev)
        append(StoredRecord(*fields, prev, digest))
        prev = digest
    return rows


def chain(
    records: Iterable[Record], writer_id: str, last_seq: int, last_hash: str
) -> list[StoredRecord]:
    """Stored rows for ``records``: ``prepare`` then ``link``."""
    return link(prepare(records), writer_id, last_seq, last_hash)
