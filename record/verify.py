"""Check the record's hash chains: find every edited, deleted or inserted row.

Each writer process keeps one chain: rows numbered 1, 2, 3, ... each holding the hash of the
row before it. The store also keeps each writer's head (last sequence number and hash, written
in the same transaction as the rows) and, after a prune, a mark naming the last row removed.
A row whose columns no longer give its hash was edited; a hole in the numbers, or a chain that
ends before its head, lost rows; a row past its head, of a writer without a head, or whose
previous hash is not the hash of the row before it was inserted (or its hash forged).

This finds changes made with plain SQL. Someone who can also recompute every hash from the
changed row to the head, and rewrite the head, can forge a consistent chain: anchoring the
heads elsewhere (an export, a ticket) is what would catch that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import groupby
from typing import Literal, NamedTuple

from record.entry import GENESIS, StoredRecord, row_hash

Kind = Literal["edited", "deleted", "inserted"]


class Head(NamedTuple):
    """A writer's last committed row."""

    last_seq: int
    last_hash: str


class PruneMark(NamedTuple):
    """The last row a prune removed from a writer's chain (its successor is the new start)."""

    through_seq: int
    through_hash: str


@dataclass(frozen=True)
class Problem:
    writer_id: str
    seq: int
    kind: Kind
    message: str

    def __str__(self) -> str:
        return f"{self.kind}: writer {self.writer_id} seq {self.seq}: {self.message}"


@dataclass
class VerifyReport:
    rows: int = 0
    writers: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chains(
    rows: Iterable[StoredRecord],
    heads: Mapping[str, Head],
    marks: Mapping[str, PruneMark],
) -> VerifyReport:
    """Verify ``rows`` (ordered by writer id, then sequence number) against heads and marks."""
    report = VerifyReport()
    seen: set[str] = set()
    for writer_id, chain_rows in groupby(rows, key=lambda row: row.writer_id):
        seen.add(writer_id)
        report.writers += 1
        last = _verify_writer(writer_id, chain_rows, marks.get(writer_id), report)
        _check_head(writer_id, last, heads.get(writer_id), report)
    for writer_id in sorted(heads.keys() - seen):
        report.writers += 1
        head, mark = heads[writer_id], marks.get(writer_id)
        if mark is None or mark != (head.last_seq, head.last_hash):
            start = 1 if mark is None else mark.through_seq + 1
            report.problems.append(Problem(
                writer_id, start, "deleted",
                f"rows {start}..{head.last_seq} are missing (the whole chain after "
                f"{'its start' if mark is None else 'the prune mark'})",
            ))  # fmt: skip
    return report


def _verify_writer(
    writer_id: str,
    rows: Iterable[StoredRecord],
    mark: PruneMark | None,
    report: VerifyReport,
) -> Head:
    expected_seq, expected_prev = (1, GENESIS) if mark is None else (
        mark.through_seq + 1, mark.through_hash
    )  # fmt: skip
    problems = report.problems
    for row in rows:
        report.rows += 1
        if row_hash(row, row.prev_hash) != row.hash:
            problems.append(Problem(
                writer_id, row.seq, "edited", "its columns do not give its hash"
            ))  # fmt: skip
        if row.seq > expected_seq:
            gap = f"{expected_seq}" if row.seq == expected_seq + 1 else (
                f"{expected_seq}..{row.seq - 1}"
            )  # fmt: skip
            problems.append(Problem(
                writer_id, expected_seq, "deleted", f"row(s) {gap} are missing"
            ))  # fmt: skip
        elif row.seq < expected_seq:
            problems.append(Problem(
                writer_id, row.seq, "inserted",
                "a row before the prune mark" if mark else "sequence out of order",
            ))  # fmt: skip
        elif row.prev_hash != expected_prev:
            problems.append(Problem(
                writer_id, row.seq, "inserted",
                "its previous hash is not the hash of the row before it "
                "(a row was inserted, or the one before was rewritten with a new hash)",
            ))  # fmt: skip
        expected_seq, expected_prev = row.seq + 1, row.hash
    return Head(expected_seq - 1, expected_prev)


def _check_head(writer_id: str, last: Head, head: Head | None, report: VerifyReport) -> None:
    if head is None:
        report.problems.append(Problem(
            writer_id, last.last_seq, "inserted", "rows of a writer that never committed any"
        ))  # fmt: skip
    elif last.last_seq < head.last_seq:
        report.problems.append(Problem(
            writer_id, last.last_seq + 1, "deleted",
            f"row(s) {last.last_seq + 1}..{head.last_seq} at the end of the chain are missing",
        ))  # fmt: skip
    elif last.last_seq > head.last_seq:
        report.problems.append(Problem(
            writer_id, head.last_seq + 1, "inserted",
            f"row(s) {head.last_seq + 1}..{last.last_seq} after the writer's last commit",
        ))  # fmt: skip
    elif last.last_hash != head.last_hash:
        report.problems.append(Problem(
            writer_id, last.last_seq, "edited", "the last row's hash is not the committed one"
        ))  # fmt: skip
