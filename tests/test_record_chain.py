"""The record's pure parts: the canonical row hash, the chain, verify on literal rows,
retention durations and the record URL."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from record import Record, RecordUrlError, parse_duration, parse_record_url
from record.entry import GENESIS, StoredRecord, chain, row_hash
from record.retention import Duration, DurationError, parse_moment
from record.verify import Head, PruneMark, verify_chains

T0 = datetime(2026, 1, 31, 12, 0, 0, 250000, tzinfo=UTC)


def make_record(app_id: str = "APP-1", **changes) -> Record:
    fields = dict(
        time=T0, application_id=app_id, request={"income": 52000.0, "gender": "female"},
        score=0.75, group="female", rule="female", draw=None, approval_probability=1.0,
        decision="approve", reasons=[], model_version="m:1", policy_version="p-1", probe=False,
    )  # fmt: skip
    return Record(**(fields | changes))


def documented_digest(request: str) -> str:
    """``make_record()``'s first row's hash, written out by hand from entry._digest's
    docstring (docs/record.md): texts as <length>:<text>, numbers by repr and a newline,
    probe as 0/1, then the previous hash; ``request`` is the stored request text."""
    text = (
        "fairgate-record-1\n" "2:w1" "1\n" "2026-01-31T12:00:00.250000Z" "5:APP-1"
        f"{len(request)}:{request}" "0.75\n" "6:female" "6:female" "None\n"
        "1.0\n" "7:approve" "2:[]" "3:m:1" "3:p-1" "0" + "0" * 64
    )  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_first_rows_hash_is_sha256_of_the_documented_encoding():
    (row,) = chain([make_record()], "w1", 0, GENESIS)
    assert row.hash == documented_digest('{"gender":"female","income":52000.0}')
    assert row.request == '{"gender":"female","income":52000.0}'  # keys sorted
    assert (row.seq, row.prev_hash, row.time) == (1, GENESIS, "2026-01-31T12:00:00.250000Z")


def test_rows_chain_each_to_the_one_before_and_continue_from_a_head():
    first = chain([make_record("A"), make_record("B")], "w1", 0, GENESIS)
    more = chain([make_record("C")], "w1", first[-1].seq, first[-1].hash)
    rows = first + more
    assert [r.seq for r in rows] == [1, 2, 3]
    assert [r.prev_hash for r in rows] == [GENESIS, rows[0].hash, rows[1].hash]
    assert len({r.hash for r in rows}) == 3


@pytest.mark.parametrize(
    "change",
    [
        {"score": 0.7500000000000001},
        {"decision": "deny"},
        {"probe": True},
        {"draw": 0.5},
        {"reasons": [{"code": "dti", "text": "debt-to-income ratio too high"}]},
        {"request": {"income": 52000.5, "gender": "female"}},
        {"time": T0 + timedelta(microseconds=1)},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_column_is_in_the_hash(change):
    (base,) = chain([make_record()], "w1", 0, GENESIS)
    (other,) = chain([make_record(**change)], "w1", 0, GENESIS)
    assert base.hash != other.hash


def test_a_text_cannot_be_shifted_into_its_neighbour():
    # "ab" + "c" and "a" + "bc" are different rows: the length prefixes keep them apart.
    (one,) = chain([make_record(group="ab", rule="c")], "w1", 0, GENESIS)
    (two,) = chain([make_record(group="a", rule="bc")], "w1", 0, GENESIS)
    assert one.hash != two.hash


def test_request_text_is_stored_and_hashed_as_given():
    raw = '{"income": 52000.0,  "gender": "female"}'  # not canonical: kept byte for byte
    (row,) = chain([make_record(request=raw)], "w1", 0, GENESIS)
    assert row.request == raw
    assert row.hash == documented_digest(raw)  # hashed as given, not re-encoded
    # What verify recomputes from the stored row is that same digest.
    assert row_hash(row, row.prev_hash) == row.hash


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        chain([make_record(time=datetime(2026, 1, 1))], "w1", 0, GENESIS)


# --- verify on literal chains ------------------------------------------------------------
def writer_rows(writer: str, count: int) -> list[StoredRecord]:
    return chain([make_record(f"APP-{i}") for i in range(count)], writer, 0, GENESIS)


def heads_of(*chains: list[StoredRecord]) -> dict[str, Head]:
    return {rows[-1].writer_id: Head(rows[-1].seq, rows[-1].hash) for rows in chains}


def test_intact_chains_verify():
    a, b = writer_rows("a", 5), writer_rows("b", 3)
    report = verify_chains(a + b, heads_of(a, b), {})
    assert (report.ok, report.rows, report.writers) == (True, 8, 2)


def test_an_edited_row_is_found():
    a = writer_rows("a", 5)
    a[2] = a[2]._replace(score=0.1)
    report = verify_chains(a, heads_of(writer_rows("a", 5)), {})
    assert [(p.kind, p.seq) for p in report.problems] == [("edited", 3)]


def test_an_edit_with_its_hash_recomputed_breaks_the_next_link():
    a = writer_rows("a", 5)
    forged = a[2]._replace(score=0.1)
    a[2] = forged._replace(hash=row_hash(forged, forged.prev_hash))
    report = verify_chains(a, heads_of(writer_rows("a", 5)), {})
    assert [(p.kind, p.seq) for p in report.problems] == [("inserted", 4)]


@pytest.mark.parametrize(
    ("deleted", "expected"),
    [([0], ("deleted", 1)), ([2, 3], ("deleted", 3)), ([4], ("deleted", 5))],
    ids=["first", "middle-two", "last"],
)
def test_deleted_rows_are_found(deleted, expected):
    full = writer_rows("a", 5)
    kept = [r for i, r in enumerate(full) if i not in deleted]
    report = verify_chains(kept, heads_of(full), {})
    assert [(p.kind, p.seq) for p in report.problems] == [expected]


def test_a_whole_deleted_chain_is_found_by_its_head():
    a, b = writer_rows("a", 3), writer_rows("b", 3)
    report = verify_chains(a, heads_of(a, b), {})
    assert [(p.writer_id, p.kind, p.seq) for p in report.problems] == [("b", "deleted", 1)]


def test_inserted_rows_are_found():
    a = writer_rows("a", 3)
    extra = chain([make_record("X")], "a", 3, a[-1].hash)  # a correct-looking 4th row
    intruder = writer_rows("intruder", 1)
    report = verify_chains(a + extra + intruder, heads_of(a), {})
    assert [(p.writer_id, p.kind, p.seq) for p in report.problems] == [
        ("a", "inserted", 4),
        ("intruder", "inserted", 1),
    ]


def test_a_prune_mark_starts_the_chain_at_the_first_kept_row():
    a = writer_rows("a", 5)
    mark = {"a": PruneMark(2, a[1].hash)}
    assert verify_chains(a[2:], heads_of(a), mark).ok
    # Without the mark, the missing first rows are deletions.
    assert [(p.kind, p.seq) for p in verify_chains(a[2:], heads_of(a), {}).problems] == [
        ("deleted", 1)
    ]
    # A mark does not excuse a hole after it.
    holes = verify_chains(a[3:], heads_of(a), mark).problems
    assert [(p.kind, p.seq) for p in holes] == [("deleted", 3)]
    # A fully pruned chain verifies when its mark is its head.
    assert verify_chains([], heads_of(a), {"a": PruneMark(5, a[4].hash)}).ok


# --- durations and the URL ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", Duration(days=30)), ("2w", Duration(days=14)), ("25mo", Duration(months=25)),
     ("2y", Duration(months=24)), (" 6mo ", Duration(months=6))],
)  # fmt: skip
def test_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "25", "25m", "-3d", "1.5y", "d"])
def test_bad_durations_say_what_to_write(text):
    with pytest.raises(DurationError, match=r"d \(days\), w \(weeks\), mo \(months\)"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("now", "months", "expected"),
    [
        (datetime(2026, 3, 31, tzinfo=UTC), 1, datetime(2026, 2, 28, tzinfo=UTC)),
        (datetime(2028, 3, 31, tzinfo=UTC), 1, datetime(2028, 2, 29, tzinfo=UTC)),
        (datetime(2026, 11, 22, 5, tzinfo=UTC), 25, datetime(2024, 10, 22, 5, tzinfo=UTC)),
        (datetime(2026, 1, 15, tzinfo=UTC), 12, datetime(2025, 1, 15, tzinfo=UTC)),
    ],
)
def test_months_are_calendar_months(now, months, expected):
    assert Duration(months=months).before(now) == expected


def test_moments_are_dates_or_durations_ago():
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert parse_moment("2026-01-31", now) == datetime(2026, 1, 31, tzinfo=UTC)
    assert parse_moment("30d", now) == datetime(2026, 1, 30, tzinfo=UTC)
    assert parse_moment("2026-01-31T12:00:00+01:00", now) == datetime(2026, 1, 31, 11, tzinfo=UTC)
    with pytest.raises(DurationError, match="neither a date"):
        parse_moment("last week", now)


def test_record_urls():
    assert parse_record_url("sqlite:////var/lib/r.sqlite").path.as_posix() == "/var/lib/r.sqlite"
    assert parse_record_url("sqlite:///data/r.sqlite").path.as_posix() == "data/r.sqlite"
    url = parse_record_url("postgresql://u:p@db:5432/fairgate")
    assert (url.backend, url.dsn) == ("postgresql", "postgresql://u:p@db:5432/fairgate")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "FAIRGATE_RECORD_URL is not set"),
        ("  ", "FAIRGATE_RECORD_URL is not set"),
        ("mysql://h/db", "unknown store 'mysql'"),
        ("sqlite://r.sqlite", "sqlite:/// and then the file's path"),
        ("sqlite:///", "expected a database file"),
        ("sqlite:///dir/", "expected a database file"),
        ("postgresql://host:5432", "names no database"),
    ],
)
def test_bad_record_urls_name_the_problem(text, message):
    with pytest.raises(RecordUrlError, match=message):
        parse_record_url(text)
