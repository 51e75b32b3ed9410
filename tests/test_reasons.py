"""Principal reasons for denials: hand-computed contributions, a field pushed until it
denies, protected attributes never named, and another contract's own field names."""

from __future__ import annotations

import csv
from dataclasses import replace

import httpx
import numpy as np
import pytest

from fairgate.artifacts import ServingBundle, load_serving_bundle
from fairgate.contract import ContractError, parse_contract
from fairgate.contract_features import ContractFeatures
from fairgate.contract_request import request_model
from fairgate.decider import Decider
from fairgate.generator import generate_applicants, to_applicants
from fairgate.reasons import Explainer, reference_applicant
from fairgate.schema import Applicant
from fairgate.scorer import LogisticScorer
from tests.conftest import GERMAN

SMALL_TEXT = """
name = "small"
[[fields]]
name = "id"
type = "id"
[[fields]]
name = "income"
type = "number"
[[fields]]
name = "debt"
type = "number"
[[fields]]
name = "zip_risk"
type = "number"
reasons = false
[[fields]]
name = "sex"
type = "category"
constraints = { enum = ["f", "m"] }
[label]
column = "y"
approved = [1]
denied = [0]
[[protected]]
name = "sex"
field = "sex"
[groups]
policy = ["sex"]
audit = ["sex"]
prober = ["sex"]
[[features]]
name = "income"
transform = "as_is"
field = "income"
[[features]]
name = "debt"
transform = "as_is"
field = "debt"
reason = "existing debt too high"
[[features]]
name = "zip_risk"
transform = "as_is"
field = "zip_risk"
[[features]]
name = "is_f"
transform = "one_hot"
field = "sex"
values = ["f"]
prefix = "is_"
sensitive = true
"""
SMALL = parse_contract(SMALL_TEXT)


def test_hand_computed_logistic_contributions_and_order():
    features = ContractFeatures(SMALL, include_sensitive=True)
    assert features.names == ("income", "debt", "zip_risk", "is_f")
    # log-odds = 2 (income - 50) / 10 - 1 (debt - 5) / 1 + 3 (zip - 0) / 1 - 4 (is_f - 0.5) / 0.5
    scorer = LogisticScorer(
        mean=np.array([50.0, 5.0, 0.0, 0.5]), scale=np.array([10.0, 1.0, 1.0, 0.5]),
        coef=np.array([[2.0, -1.0, 3.0, -4.0]]), intercept=np.array([0.0]),
    )  # fmt: skip
    reference = np.array([60.0, 4.0, 0.0, 0.0])
    explainer = Explainer(features, scorer, reference)
    # Only income and debt may be reasons: zip_risk says reasons = false, is_f is protected.
    assert [b.feature.name for b in explainer.blocks] == ["income", "debt"]
    x = np.array([[45.0, 7.0, -2.0, 1.0], [70.0, 9.0, 0.0, 1.0], [70.0, 1.0, 0.0, 1.0]])
    # By hand: income 2/10 (x - 60), debt -1/1 (x - 4).
    expected = np.array([[-3.0, -3.0], [2.0, -5.0], [2.0, 3.0]])
    np.testing.assert_allclose(explainer.contributions(x), expected)
    columns = {"sex": np.array(["f", "f", "f"], dtype=object)}
    reasons = explainer.explain(x, columns)
    # Row 0: a tie, broken by contract order; row 1: debt only; row 2: nothing counts against.
    assert [(r.code, r.text) for r in reasons[0]] == [
        ("R-INCOME", "income too low"), ("R-DEBT", "existing debt too high"),
    ]  # fmt: skip
    assert [r.code for r in reasons[1]] == ["R-DEBT"]
    assert reasons[2] == []


def test_reference_is_the_median_approved_row():
    rows = np.array([[1.0, 10.0], [3.0, 30.0], [100.0, 0.0], [2.0, 20.0]])
    approved = np.array([True, True, False, True])
    np.testing.assert_array_equal(reference_applicant(rows, approved), [2.0, 20.0])
    with pytest.raises(ValueError, match="no approved applicant"):
        reference_applicant(rows, np.zeros(4, dtype=bool))


@pytest.fixture(scope="module")
def decider(trained):
    """The naive model (gender and age are features) under the mitigated policy."""
    return Decider(load_serving_bundle(trained.tag, "mitigated"))


def _pushed_until_denied(decider, field, values):
    base = Applicant.model_json_schema()["example"]
    first = decider.decide([Applicant.model_validate(base)])
    assert first.approved[0] and first.reasons[0] == []  # approvals carry no reasons
    for value in values:
        changed = Applicant.model_validate(base | {field: value})
        result = decider.decide([changed])
        if not result.approved[0]:
            return result.reasons[0]
    raise AssertionError(f"never denied while raising {field}")


@pytest.mark.parametrize(
    ("field", "values", "code", "text"),
    [
        # The texts are the synthetic contract's own `reason` entries.
        ("monthly_debt_payments", [450.0 * 1.25**k for k in range(1, 40)],
         "R-DEBT_TO_INCOME", "debt-to-income ratio too high"),
        ("delinquencies_2y", list(range(1, 60)), "R-DELINQUENCIES_2Y",
         "too many delinquencies in the last 2 years"),
    ],
)  # fmt: skip
def test_the_field_pushed_until_denied_is_the_first_reason(decider, field, values, code, text):
    reasons = _pushed_until_denied(decider, field, values)
    assert 1 <= len(reasons) <= 4
    assert (reasons[0].code, reasons[0].text) == (code, text)


def test_protected_attributes_are_never_reasons_even_in_the_naive_model(decider):
    assert {"is_female", "age"} <= set(f.name for f in decider.bundle.features.features)
    applicants = to_applicants(generate_applicants(3000, seed=31))
    result = decider.decide(applicants)
    denied = [r for ok, r in zip(result.approved, result.reasons, strict=True) if not ok]
    assert len(denied) > 300
    codes = {reason.code for reasons in denied for reason in reasons}
    assert codes and not codes & {"R-IS_FEMALE", "R-AGE"}
    assert all(1 <= len(reasons) <= 4 for reasons in denied)
    texts = {reason.text for reasons in denied for reason in reasons}
    assert not any("gender" in t or t.startswith("age ") for t in texts)


def test_batch_and_single_give_the_same_reasons(decider):
    applicants = to_applicants(generate_applicants(200, seed=32))
    batch = decider.decide(applicants).reasons
    singles = [decider.decide([a]).reasons[0] for a in applicants]
    assert batch == singles


def test_gradient_boosting_reasons_by_occlusion(tmp_path):
    from training.pipeline import TrainConfig, run_training

    config = TrainConfig(rows=20_000, seed=3, model="gbm", bootstrap=0, reports_dir=None,
                         save=False, mitigation="thresholds")  # fmt: skip
    result = run_training(config)
    explainer = Explainer(result.feature_builder, result.scorer, result.reference)
    base = generate_applicants(1, seed=5)
    rows = []
    for value in (0, 2, 5, 10):
        table = dict(base, delinquencies_2y=np.array([value]))
        rows.append(result.feature_builder.build(table))
    matrix = np.vstack(rows)
    # Occlusion: each eligible feature set to the reference, the score change read off.
    contribution = explainer.contributions(matrix)
    column = [b.feature.name for b in explainer.blocks].index("delinquencies_2y")
    by_hand = result.scorer.score(matrix) - result.scorer.score(
        np.where(np.arange(matrix.shape[1]) == result.feature_builder.names.index(
            "delinquencies_2y"), result.reference, matrix)
    )  # fmt: skip
    np.testing.assert_allclose(contribution[:, column], by_hand)
    # The decider hands over the scores it has: the same contributions, one scorer call fewer.
    given = explainer.contributions(matrix, result.scorer.score(matrix))
    np.testing.assert_array_equal(given, contribution)
    # Any other scorer gets the occluded rows scored in one call; the compiled trees' table
    # walk must give exactly the same contributions.
    class Opaque:
        kind = "opaque"

        def score(self, features: np.ndarray) -> np.ndarray:
            return result.scorer.score(features)

        def arrays(self) -> dict[str, np.ndarray]:
            return {}

    generic = Explainer(result.feature_builder, Opaque(), result.reference)
    assert generic._trees is None and explainer._trees is not None
    np.testing.assert_array_equal(generic.contributions(matrix), contribution)
    # Ten delinquencies in two years count against (the synthetic world's truth: -0.9
    # log-odds each), and the reason reads so.
    assert contribution[-1, column] < 0
    (reasons,) = explainer.explain(matrix[-1:], {k: v[:1] for k, v in base.items()})
    assert ("R-DELINQUENCIES_2Y", "too many delinquencies in the last 2 years") in [
        (r.code, r.text) for r in reasons
    ]


def test_a_reason_text_on_a_protected_feature_is_refused():
    # A protected attribute is never a reason, so a text for one would only mislead.
    text = SMALL_TEXT.replace("sensitive = true\n", 'sensitive = true\nreason = "sex"\n')
    with pytest.raises(ContractError, match=r"features.3: reads protected field 'sex'"):
        parse_contract(text)


def test_denials_over_http_carry_the_reasons_and_approvals_none(trained, live_service):
    """The real server (`bentoml serve`, two workers): /decide and /decide_batch."""
    base = Applicant.model_json_schema()["example"]
    # Heavy existing debt and recent delinquencies: the two features that must lead.
    indebted = base | {"application_id": "R-1", "monthly_debt_payments": 3500.0,
                       "delinquencies_2y": 4}  # fmt: skip
    single = httpx.post(f"{live_service.url}/decide", json=indebted, timeout=30)
    assert single.status_code == 200, single.text
    denial = single.json()
    assert denial["decision"] == "deny"
    assert 1 <= len(denial["reasons"]) <= 4
    assert {r["code"] for r in denial["reasons"][:2]} == {"R-DEBT_TO_INCOME", "R-DELINQUENCIES_2Y"}
    assert all(set(r) == {"code", "text"} for r in denial["reasons"])
    batch = httpx.post(
        f"{live_service.url}/decide_batch", json={"applications": [base, indebted]}, timeout=30
    ).json()["decisions"]
    assert batch[0]["decision"] == "approve" and batch[0]["reasons"] == []
    assert batch[1]["reasons"] == denial["reasons"]


def _german_applicants(contract) -> list:
    """Every row of the German book as a request of its contract (ids generated)."""
    model, kinds = request_model(contract), {f.name: f.type for f in contract.fields}
    with GERMAN.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [
        model.model_validate(
            {"application_id": f"G-{i}"}
            | {k: int(v) if kinds[k] == "integer" else v for k, v in row.items() if k in kinds}
        )
        for i, row in enumerate(rows)
    ]


@pytest.mark.parametrize("naive", [False, True])
def test_the_german_book_gets_reasons_in_its_own_fields(german_trained, naive):
    from training.pipeline import run_training

    result = german_trained
    if naive:  # protected fields as features: still never a reason
        config = replace(german_trained.config, include_sensitive=True, save=False,
                         reports_dir=None, bootstrap=0)  # fmt: skip
        result = run_training(config)
    contract = result.contract
    decider = Decider(
        ServingBundle(tag="german", scorer=result.scorer, policy=result.policy,
                      features=result.feature_builder, contract_text=result.contract_text,
                      reference=result.reference)
    )  # fmt: skip
    applicants = _german_applicants(contract)
    decided = decider.decide(applicants)
    denied = [(a, r) for a, ok, r in zip(applicants, decided.approved, decided.reasons,
                                         strict=True) if not ok]  # fmt: skip
    assert len(denied) > 100
    protected = {"age_in_years", "personal_status_and_sex"}
    allowed = {f"R-{f.name.upper()}": f for f in contract.features if f.field not in protected}
    for applicant, reasons in denied:
        assert 1 <= len(reasons) <= 4
        for reason in reasons:
            feature = allowed[reason.code]  # a KeyError: a code outside the contract's features
            if feature.transform == "one_hot":
                # A category reason names the applicant's own value of that field.
                assert reason.text == f"{feature.field}: {getattr(applicant, feature.field)}"
            else:
                assert reason.text in (f"{feature.field} too low", f"{feature.field} too high")
    assert not any(p in r.text for _, rs in denied for r in rs for p in protected)
