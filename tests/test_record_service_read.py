"""``GET /decisions/{application_id}`` in a real ``bentoml serve``: the reader's credential,
newest first, off without a token, in /docs.json, and no request body in any log line."""

from __future__ import annotations

import httpx
import pytest

from record import open_record
from tests.conftest import LiveService
from tests.suite_home import TEST_PROBE_TOKEN
from tests.test_record_service import applications, sqlite_url

pytestmark = pytest.mark.integration

READER = "reader-token-for-the-suite-0123"
PROBE = {"X-Fairgate-Probe": "1", "X-Fairgate-Probe-Token": TEST_PROBE_TOKEN}
# A value no other request carries, to look for in the server's log afterwards.
MARKER_INCOME = 98765.4321


@pytest.fixture(scope="module")
def reading_service(trained, tmp_path_factory):
    path = tmp_path_factory.mktemp("record") / "record.sqlite"
    server = LiveService(
        trained.tag, FAIRGATE_RECORD_URL=sqlite_url(path), FAIRGATE_RECORD_READ_TOKEN=READER
    ).wait()
    yield server, path
    server.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_application_s_decisions_newest_first_with_the_reader_token(reading_service):
    server, path = reading_service
    row = applications(1, seed=501, prefix="READ")[0] | {"annual_income": MARKER_INCOME}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        live = client.post("/decide", json=row).json()
        probe = client.post("/decide", json=row, headers=PROBE).json()
        got = client.get(f"/decisions/{row['application_id']}", headers=bearer(READER))
    assert got.status_code == 200
    records = got.json()
    assert [r["probe"] for r in records] == [True, False]  # newest first
    assert records[0]["time"] >= records[1]["time"]
    for record, answer in zip(records, (probe, live), strict=True):
        assert record["request"] == row
        assert record["application_id"] == row["application_id"]
        assert (record["decision"], record["score"]) == (answer["decision"], answer["score"])
        assert record["reasons"] == answer["reasons"]
    with open_record(sqlite_url(path), create=False) as store:
        stored = [r.as_dict() for r in store.decisions_for(row["application_id"])]
    assert records == stored


@pytest.mark.parametrize(
    "headers",
    [
        {},
        bearer("not-the-reader-token-0123"),
        bearer(READER[:-1]),
        {"Authorization": f"Basic {READER}"},
        {"Authorization": READER},
        bearer(TEST_PROBE_TOKEN),  # the probe token is not a reader credential
    ],
)
def test_without_the_right_bearer_token_401(reading_service, headers):
    server, _ = reading_service
    response = httpx.get(f"{server.url}/decisions/READ-000000", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["detail"][0]["loc"] == ["authorization"]
    assert "request" not in response.text


def test_an_id_never_decided_is_404(reading_service):
    server, _ = reading_service
    response = httpx.get(f"{server.url}/decisions/NEVER-SEEN", headers=bearer(READER), timeout=10)
    assert response.status_code == 404
    assert "no recorded decision for application_id 'NEVER-SEEN'" in response.text


def test_no_log_line_carries_a_request_body(reading_service):
    server, _ = reading_service
    row = applications(1, seed=502, prefix="LOGGED")[0] | {"annual_income": MARKER_INCOME}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.post("/decide", json=row).status_code == 200
        assert client.post("/decide", json=row | {"age": -1}).status_code == 400
        assert client.post("/decide_batch", json={"applications": [row]}).status_code == 200
        assert client.get(f"/decisions/{row['application_id']}").status_code == 401
        assert (
            client.get(f"/decisions/{row['application_id']}", headers=bearer(READER)).status_code
            == 200
        )
    log = server.log.read_text()
    assert "98765.4321" not in log
    assert row["application_id"] not in log


def test_the_endpoint_is_documented(reading_service):
    server, _ = reading_service
    spec = httpx.get(f"{server.url}/docs.json", timeout=10).json()
    operation = spec["paths"]["/decisions/{application_id}"]["get"]
    assert operation["security"] == [{"recordReader": []}]
    assert spec["components"]["securitySchemes"]["recordReader"]["scheme"] == "bearer"
    assert {"200", "401", "404", "503"} <= operation["responses"].keys()
    schema = spec["components"]["schemas"]["DecisionRecord"]
    # The documented fields are the stored row's, read back from a real record above.
    from record import StoredRecord

    assert set(schema["required"]) == set(StoredRecord._fields)
    assert "Reason" in spec["components"]["schemas"]
    for post in ("/decide", "/decide_batch"):
        assert "503" in spec["paths"][post]["post"]["responses"]


def test_without_a_reader_token_the_endpoint_is_off(trained, tmp_path):
    server = LiveService(trained.tag, FAIRGATE_RECORD_URL=sqlite_url(tmp_path / "r.sqlite"))
    try:
        server.wait()
        row = applications(1, seed=503, prefix="OFF")[0]
        assert httpx.post(f"{server.url}/decide", json=row, timeout=30).status_code == 200
        for headers in ({}, bearer(READER), {"Authorization": "Bearer"}):
            response = httpx.get(
                f"{server.url}/decisions/{row['application_id']}", headers=headers, timeout=10
            )
            assert response.status_code == 404
            assert "FAIRGATE_RECORD_READ_TOKEN is not set" in response.text
    finally:
        server.stop()
