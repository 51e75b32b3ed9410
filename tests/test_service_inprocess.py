"""The service in-process through BentoML's to_asgi(): logic and errors."""

import pytest

from fairgate.features import FeatureSpec
from fairgate.generator import generate_applicants, to_records
from fairgate.schema import MAX_BATCH, Applicant, group_keys

EXAMPLE = Applicant.model_json_schema()["example"]


def test_decide_returns_the_documented_fields(client, trained):
    body = client.post("/decide", json=EXAMPLE).json()
    assert body["application_id"] == "APP-000001"
    assert body["decision"] in {"approve", "deny"}
    assert body["decision"] == ("approve" if body["approved"] else "deny")
    assert body["group"] == "female" and body["rule"] == "female"
    assert body["policy_version"] == trained.policy.version
    assert body["model_version"] == trained.tag
    assert body["probe"] is False


def test_same_application_same_decision_across_calls_and_batches(client):
    records = to_records(generate_applicants(200, seed=31))
    singles = [client.post("/decide", json=r).json() for r in records[:50]]
    batch = client.post("/decide_batch", json={"applications": records}).json()["decisions"]
    reversed_batch = client.post("/decide_batch", json={"applications": records[::-1]}).json()[
        "decisions"
    ][::-1]
    for single, a, b in zip(singles, batch, reversed_batch, strict=False):
        assert single["approved"] == a["approved"] == b["approved"]
        assert single["score"] == a["score"]
    assert [d["approved"] for d in batch] == [d["approved"] for d in reversed_batch]


def test_service_decisions_equal_the_trained_policy(client, trained):
    """The served decision is the sklearn model's score through the fitted policy."""
    columns = generate_applicants(300, seed=32)
    served = client.post("/decide_batch", json={"applications": to_records(columns)}).json()[
        "decisions"
    ]
    features = FeatureSpec(include_sensitive=True).build(columns)
    scores = trained.model.predict_proba(features)[:, 1]
    approved, _, _ = trained.policy.decide(
        columns["application_id"], scores, group_keys(columns, ("gender",))
    )
    assert [d["approved"] for d in served] == approved.tolist()
    assert [d["score"] for d in served] == pytest.approx(scores.tolist(), abs=1e-12)


def test_probe_header_marks_the_decision(client):
    plain = client.post("/decide", json=EXAMPLE).json()
    probe = client.post("/decide", json=EXAMPLE, headers={"X-Fairgate-Probe": "1"}).json()
    assert probe["probe"] is True
    assert probe["approved"] == plain["approved"]


def test_unseen_group_uses_the_fallback_rule(client):
    body = client.post("/decide", json=EXAMPLE | {"gender": "nonbinary"}).json()
    assert body["rule"] == "unseen:most-lenient"


@pytest.mark.parametrize(
    ("payload", "field", "expected"),
    [
        (EXAMPLE | {"annual_income": "52000"}, "annual_income", "valid number"),
        (EXAMPLE | {"annual_income": -1}, "annual_income", "greater than or equal to 0"),
        (EXAMPLE | {"age": 17}, "age", "greater than or equal to 18"),
        (EXAMPLE | {"age": "34"}, "age", "valid integer"),
        (EXAMPLE | {"favourite_colour": "red"}, "favourite_colour", "Extra inputs"),
        (EXAMPLE | {"gender": "x"}, "gender", "'female', 'male'"),
        ({k: v for k, v in EXAMPLE.items() if k != "loan_amount"}, "loan_amount", "required"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, payload, field, expected):
    response = client.post("/decide", json=payload)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail[0]["loc"] == [field]
    assert expected in detail[0]["msg"]


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_are_rejected(client, literal):
    raw = f'{{"application_id": "A1", "annual_income": {literal.decode()}}}'.encode()
    response = client.post("/decide", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    finite = [d for d in response.json()["detail"] if d["loc"] == ["annual_income"]]
    assert finite and "finite" in finite[0]["msg"]


def test_batch_limits(client):
    empty = client.post("/decide_batch", json={"applications": []})
    assert empty.status_code == 400 and empty.json()["detail"][0]["loc"] == ["applications"]
    over = client.post("/decide_batch", json={"applications": [EXAMPLE] * (MAX_BATCH + 1)})
    assert over.status_code == 400 and "at most 1000" in over.json()["detail"][0]["msg"]
    bad_row = client.post("/decide_batch", json={"applications": [EXAMPLE, EXAMPLE | {"age": 5}]})
    assert bad_row.status_code == 400
    assert bad_row.json()["detail"][0]["loc"] == ["applications", 1, "age"]


def test_malformed_json_is_a_400(client):
    response = client.post(
        "/decide", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


def test_policy_and_openapi(client, trained):
    policy = client.get("/policy").json()
    assert policy["policy"]["version"] == trained.policy.version
    assert set(policy["policy"]["rules"]) == {"female", "male"}
    assert "demographic_parity_ratio" in policy["training"]["fairness"]["mitigated"]
    spec = client.get("/docs.json").json()
    assert {"/decide", "/decide_batch"} <= set(spec["paths"])
    assert "APP-000001" in str(spec)  # the request example is published
    for path in ("/healthz", "/livez", "/readyz"):
        assert client.get(path).status_code == 200
