"""Every row of docs/reliability.md: a bad input, the status it gets and what the message says.

The parametrized cases run in-process through BentoML's ASGI app (same middleware,
validation and error handling as ``bentoml serve``) with hand-written expectations; the
documented table and example are compared with a live ``bentoml serve``, cell by cell.
The live-server versions of the faults are in test_faults.py.
"""

import json
import re

import httpx
import pytest

from fairgate.schema import Applicant
from service.launch import REPO

EXAMPLE = Applicant.model_json_schema()["example"]


def body(**changes):
    record = dict(EXAMPLE)
    for key, value in changes.items():
        if value is ...:
            del record[key]
        else:
            record[key] = value
    return json.dumps(record)


def batch(n, **row_changes):
    rows = [dict(EXAMPLE, application_id=f"APP-{i}") for i in range(n)]
    if row_changes:
        rows[3].update(row_changes)
    return json.dumps({"applications": rows})


JSON = "application/json"
# (case, path, raw body, content type, status, loc, words the message must contain)
CASES = [
    ("wrong type (list for a number)", "/decide", body(annual_income=[1]), JSON, 400,
     ["annual_income"], "valid number"),
    ("number as a string", "/decide", body(annual_income="52000"), JSON, 400,
     ["annual_income"], "valid number"),
    ("boolean for an integer", "/decide", body(age=True), JSON, 400, ["age"], "valid integer"),
    ("NaN", "/decide", body(annual_income="N").replace('"N"', "NaN"), JSON, 400,
     ["annual_income"], "finite number"),
    ("Infinity", "/decide", body(loan_amount="I").replace('"I"', "Infinity"), JSON, 400,
     ["loan_amount"], "finite number"),
    ("negative income", "/decide", body(annual_income=-1), JSON, 400, ["annual_income"],
     "greater than or equal to 0"),
    ("absurdly large income", "/decide", body(annual_income=1e300), JSON, 400,
     ["annual_income"], "less than or equal to 10000000"),
    ("age under 18", "/decide", body(age=12), JSON, 400, ["age"], "greater than or equal to 18"),
    ("fractional age", "/decide", body(age=30.5), JSON, 400, ["age"], "valid integer"),
    ("missing field", "/decide", body(age=...), JSON, 400, ["age"], "Field required"),
    ("null for a required field", "/decide", body(age=None), JSON, 400, ["age"],
     "Field required"),
    ("extra field", "/decide", body(ssn="123-45-6789"), JSON, 400, ["ssn"],
     "Extra inputs are not permitted"),
    ("unknown group", "/decide", body(gender="other"), JSON, 400, ["gender"],
     "'female', 'male', 'nonbinary' or 'undisclosed'"),
    ("control character in id", "/decide", body(application_id="APP\u0000-1"), JSON, 400,
     ["application_id"], "should match pattern"),
    ("newline in id", "/decide", body(application_id="APP-1\nINFO forged log line"), JSON, 400,
     ["application_id"], "should match pattern"),
    ("very long id (10,000 chars)", "/decide", body(application_id="A" * 10_000), JSON, 400,
     ["application_id"], "at most 64 characters"),
    ("body is not an object", "/decide", "[1, 2, 3]", JSON, 400, None, "Input should be an object"),
    ("empty batch", "/decide_batch", json.dumps({"applications": []}), JSON, 400,
     ["applications"], "at least 1 item"),
    ("over-limit batch (1,001)", "/decide_batch", batch(1001), JSON, 400, ["applications"],
     "at most 1000 items"),
    ("one bad row in a batch", "/decide_batch", batch(5, age=12), JSON, 400,
     ["applications", 3, "age"], "greater than or equal to 18"),
    ("oversized body (3 MB)", "/decide_batch", "x" * 3_000_000, JSON, 413, ["body"],
     "the limit is 2097152 bytes"),
    ("malformed JSON", "/decide", '{"annual_income": ', JSON, 400, None, "Invalid JSON"),
    ("wrong content type", "/decide", body(), "text/plain", 415, ["content-type"],
     "expected Content-Type: application/json"),
    ("form content type", "/decide", "age=30", "application/x-www-form-urlencoded", 415,
     ["content-type"], "expected Content-Type: application/json"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "raw", "content_type", "status", "loc", "words"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_gets_a_clear_4xx(client, path, raw, content_type, status, loc, words):
    response = client.post(path, content=raw.encode(), headers={"content-type": content_type})
    assert response.status_code == status, response.text[:500]
    text = response.text
    assert words in text, text[:500]
    if loc is not None:
        locs = [item["loc"] for item in response.json()["detail"]]
        assert loc in locs, locs


def test_the_service_still_decides_after_every_bad_input(client):
    for _, path, raw, content_type, *_ in CASES:
        client.post(path, content=raw.encode(), headers={"content-type": content_type})
    response = client.post("/decide", content=body(), headers={"content-type": JSON})
    assert response.status_code == 200 and response.json()["application_id"] == "APP-000001"


def test_every_case_is_a_row_of_docs_reliability():
    doc = (REPO / "docs" / "reliability.md").read_text()
    for name, *_ in CASES:
        words = name.split(" (")[0]
        assert f"| {words}" in doc, f"docs/reliability.md has no row for {name!r}"


DOC = REPO / "docs" / "reliability.md"
VALIDATION_KEYS = {"type", "loc", "msg", "url"}  # pydantic's errors, passed on by BentoML
GUARD_KEYS = {"type", "loc", "msg"}  # service/request_guard.py's 413 and 415


def documented_rows() -> dict[str, list[str]]:
    """The bad-input table: first cell -> [endpoint, status, type, loc, msg] (unquoted)."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1].startswith("`/decide"):
            rows[cells[0]] = [cells[1].strip("`"), cells[2], cells[3].strip("`"),
                              cells[4].strip("`"), cells[5]]  # fmt: skip
    return rows


def row_for(case_name: str, rows: dict[str, list[str]]) -> list[str]:
    words = case_name.split(" (")[0]
    matches = [cells for name, cells in rows.items() if name.startswith(words)]
    assert len(matches) == 1, f"{case_name!r}: {len(matches)} rows in {DOC.name}"
    return matches[0]


def test_every_table_row_is_a_case():
    assert len(documented_rows()) == len(CASES)


@pytest.mark.integration
def test_every_documented_error_body_is_what_the_live_service_sends(live_service):
    rows = documented_rows()
    for name, path, raw, content_type, *_ in CASES:
        endpoint, status, kind, loc, msg = row_for(name, rows)
        response = httpx.post(
            f"{live_service.url}{path}",
            content=raw.encode(),
            headers={"content-type": content_type},
            timeout=30,
        )
        sent = response.json()
        assert (endpoint, int(status)) == (path, response.status_code), name
        assert sent.keys() == {"error", "detail"}, name
        assert isinstance(sent["error"], str) and len(sent["detail"]) == 1, name
        item = sent["detail"][0]
        assert item.keys() == (GUARD_KEYS if response.status_code in (413, 415)
                               else VALIDATION_KEYS), name  # fmt: skip
        assert (item["type"], item["loc"], item["msg"]) == (kind, json.loads(loc), msg), name


@pytest.mark.integration
def test_the_documented_example_body_is_what_the_live_service_sends(live_service):
    example = json.loads(re.search(r"```json\n(.*?)```", DOC.read_text(), re.S).group(1))
    sent = httpx.post(f"{live_service.url}/decide", content=body(age=12),
                      headers={"content-type": JSON}, timeout=30).json()  # fmt: skip
    # pydantic's version is part of the url; the rest is compared as written.
    version = re.compile(r"errors\.pydantic\.dev/[0-9.]+/")
    for item in [*example["detail"], *sent["detail"]]:
        item["url"] = version.sub("errors.pydantic.dev/VERSION/", item["url"])
    assert sent == example
