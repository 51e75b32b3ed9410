"""The service in-process through BentoML's to_asgi(): logic and errors."""

import numpy as np
import pytest

from fairgate.artifacts import load_serving_bundle
from fairgate.decider import Decider
from fairgate.draw import DrawKey
from fairgate.generator import generate_applicants, to_records
from fairgate.schema import MAX_BATCH, Applicant, group_keys, synthetic_features
from tests.suite_home import TEST_PROBE_TOKEN
from tests.synthetic_oracle import FeatureSpec

EXAMPLE = Applicant.model_json_schema()["example"]


# A probe claim with the suite's token (tests/suite_home.py sets FAIRGATE_PROBE_TOKEN).
PROBE = {"X-Fairgate-Probe": "1", "X-Fairgate-Probe-Token": TEST_PROBE_TOKEN}


def test_decide_returns_the_documented_fields(client, trained):
    body = client.post("/decide", json=EXAMPLE).json()
    assert body["application_id"] == "APP-000001"
    assert body["decision"] in {"approve", "deny"}
    assert body["decision"] == ("approve" if body["approved"] else "deny")
    assert body["group"] == "female" and body["rule"] == "female"
    # The default policy: the less discriminatory alternative.
    assert body["policy_version"] == trained.lda.policy.version
    assert body["policy_mode"] == "lda"
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


def test_service_decisions_equal_hand_applied_cuts(client, trained):
    """Served decision (the default, lda) = the chosen alternative's score on the frozen
    pre-contract feature builder (no protected feature) > the one published cut."""
    columns = generate_applicants(300, seed=32)
    served = client.post("/decide_batch", json={"applications": to_records(columns)}).json()[
        "decisions"
    ]
    features = FeatureSpec(include_sensitive=False).build(columns)
    scores = trained.lda.scorer.score(features)
    policy = client.get("/policy").json()["policy"]
    cuts = {float(rule["threshold0"]) for rule in [*policy["rules"].values(), policy["unseen"]]}
    assert len(cuts) == 1
    assert [d["approved"] for d in served] == (scores > cuts.pop()).tolist()
    assert {d["approval_probability"] for d in served} <= {0.0, 1.0}
    assert {d["policy_mode"] for d in served} == {"lda"}
    assert [d["score"] for d in served] == pytest.approx(scores.tolist(), abs=1e-12)


def test_mitigated_decisions_equal_hand_applied_cuts(trained):
    """Mitigated decision = scikit-learn's score > the group's cut from the stored policy."""
    decider = Decider(load_serving_bundle(trained.tag, "mitigated"))
    columns = generate_applicants(300, seed=32)
    decided = decider.decide([Applicant(**r) for r in to_records(columns)])
    features = synthetic_features(include_sensitive=True).build(columns)
    scores = trained.model.predict_proba(features)[:, 1]
    rules = decider.policy.to_dict()["rules"]
    expected = [
        bool(score > float(rules[gender]["threshold0"]))
        for score, gender in zip(scores, columns["gender"], strict=True)
        if gender in rules
    ]
    seen = np.isin(decided.group, list(rules))
    assert seen.sum() > 250
    assert decided.approved[seen].tolist() == expected
    assert set(decided.probability.tolist()) <= {0.0, 1.0}
    assert decider.policy.mode == "mitigated"
    np.testing.assert_allclose(decided.score, scores, rtol=0, atol=1e-12)


def _denied_under_fresh_ids(post, record: dict, n: int = 1000) -> int:
    batch = [record | {"application_id": f"retry-{i:04d}"} for i in range(n)]
    decisions = post(batch)
    assert len(decisions) == n
    return sum(d["approved"] for d in decisions)


def test_a_denied_application_stays_denied_under_1000_fresh_ids(client):
    records = to_records(generate_applicants(50, seed=33))
    first = client.post("/decide_batch", json={"applications": records}).json()["decisions"]
    denied = next(r for r, d in zip(records, first, strict=True) if not d["approved"])

    def post(batch):
        return client.post("/decide_batch", json={"applications": batch}).json()["decisions"]

    assert _denied_under_fresh_ids(post, denied) == 0


def test_randomized_mode_cannot_be_re_rolled_and_realises_fairlearns_probability(trained):
    """The randomized policy decides by a keyed draw: an application whose approval
    probability is strictly between 0 and 1, once denied, is denied under every id."""
    bundle = load_serving_bundle(trained.tag, "randomized")
    decider = Decider(bundle, DrawKey(b"in-process-draw-key-0123"))
    columns = generate_applicants(3000, seed=34)
    applicants = [Applicant(**r) for r in to_records(columns)]
    result = decider.decide(applicants)
    features = synthetic_features(include_sensitive=True).build(columns)
    groups = group_keys(columns, ("gender",))
    seen = np.isin(groups, list(bundle.policy.rules))
    pmf = trained.optimizer._pmf_predict(features[seen], sensitive_features=groups[seen])[:, 1]
    np.testing.assert_allclose(result.probability[seen], pmf, rtol=0, atol=1e-12)
    lottery = np.flatnonzero(seen & (result.probability > 0) & (result.probability < 1))
    denied = next(i for i in lottery if not result.approved[i])
    record = to_records(columns)[denied]

    def post(batch):
        decided = decider.decide([Applicant(**r) for r in batch])
        return [{"approved": bool(a)} for a in decided.approved]

    assert _denied_under_fresh_ids(post, record) == 0


def test_probe_header_marks_the_decision(client):
    plain = client.post("/decide", json=EXAMPLE).json()
    probe = client.post("/decide", json=EXAMPLE, headers=PROBE).json()
    assert probe["probe"] is True
    assert probe["approved"] == plain["approved"]


@pytest.mark.parametrize(
    "claims",
    [
        # A claim then a denial of it, and the other way round: any claim must be proved
        # (a handler reading only the first or only the last of them would differ).
        [("X-Fairgate-Probe", "1"), ("X-Fairgate-Probe", "0")],
        [("X-Fairgate-Probe", "0"), ("X-Fairgate-Probe", "1")],
    ],
)
def test_repeated_probe_claims_need_the_token(client, claims):
    refused = client.post("/decide", json=EXAMPLE, headers=claims)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "probe claim refused"
    token = [("X-Fairgate-Probe-Token", TEST_PROBE_TOKEN)]
    proved = client.post("/decide", json=EXAMPLE, headers=claims + token)
    assert proved.status_code == 200 and proved.json()["probe"] is True


def test_several_probe_tokens_are_refused_even_with_the_right_one_among_them(client):
    guesses = [("X-Fairgate-Probe", "1"), ("X-Fairgate-Probe-Token", "wrong-token-0123456789"),
               ("X-Fairgate-Probe-Token", TEST_PROBE_TOKEN)]  # fmt: skip
    refused = client.post("/decide", json=EXAMPLE, headers=guesses)
    assert refused.status_code == 403, refused.text


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
    assert policy["policy"]["version"] == trained.lda.policy.version
    assert policy["model_version"] == trained.tag and policy["policy_mode"] == "lda"
    assert set(policy["policy"]["rules"]) == {"female", "male"}
    assert "demographic_parity_ratio" in policy["training"]["fairness"]["mitigated"]
    spec = client.get("/docs.json").json()
    assert {"/decide", "/decide_batch"} <= set(spec["paths"])
    assert "APP-000001" in str(spec)  # the request example is published
    for path in ("/healthz", "/livez", "/readyz"):
        assert client.get(path).status_code == 200
