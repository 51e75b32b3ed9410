"""The soak's record check (loadtests/soak.py) on hand-made answers and records."""

from __future__ import annotations

from types import SimpleNamespace

import orjson

from loadtests.answers import AnswerLog, read_answers
from loadtests.soak import check_records
from record import RecordWriter, open_record
from tests.test_record_writer import record


def answer(status: int, body: object = None, retry_after: str | None = None) -> SimpleNamespace:
    headers = {} if retry_after is None else {"Retry-After": retry_after}
    return SimpleNamespace(status_code=status, content=orjson.dumps(body), headers=headers)


def test_the_answer_log_keeps_ids_of_200s_and_the_retry_after_of_503s(tmp_path):
    log = AnswerLog(tmp_path / "answers.jsonl")
    log(answer(200, {"application_id": "A"}), start_time=1.0)
    batch = {"count": 2, "decisions": [{"application_id": "B"}, {"application_id": "C"}]}
    log(answer(200, batch), start_time=2.0)
    log(answer(503, {"error": "decision record unavailable"}, "1"), start_time=3.0)
    log(None, start_time=4.0)  # a connection error: no response
    assert read_answers(tmp_path / "answers.jsonl") == [
        (200, 1.0, ["A"], None), (200, 2.0, ["B", "C"], None), (503, 3.0, [], "1"),
        (0, 4.0, [], None),
    ]  # fmt: skip


def test_a_200_without_its_record_is_missing_and_a_bare_503_is_unexpected(tmp_path):
    url = f"sqlite:///{tmp_path / 'record.sqlite'}"
    with RecordWriter(open_record(url), writer_id="w") as writer:
        # A answered twice and recorded twice; B answered twice, recorded once;
        # D recorded but answered 503 (its commit had landed).
        writer.append_sync([record("A"), record("A"), record("B"), record("D")])
    log = AnswerLog(tmp_path / "answers.jsonl")
    for app_id, sent in (("A", 1.0), ("A", 2.0), ("B", 3.0), ("B", 4.0)):
        log(answer(200, {"application_id": app_id}), start_time=sent)
    log(answer(503, {}, "1"), start_time=5.0)
    log(answer(503, {}), start_time=6.0)  # no Retry-After: not the documented answer
    log(answer(500, {}), start_time=7.0)
    check = check_records(tmp_path / "answers.jsonl", url, back_at=3.5)
    assert (check.answered, check.records, check.missing, check.extra) == (4, 4, 1, 1)
    assert check.unexpected == {-503: 1, 500: 1}
    assert check.last_200_after_outage  # B's second answer was sent at 4.0 > 3.5
    assert not check_records(tmp_path / "answers.jsonl", url, back_at=4.5).last_200_after_outage
