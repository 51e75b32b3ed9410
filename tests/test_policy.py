"""The compiled policy against fairlearn's ThresholdOptimizer on the same arrays."""

import json

import numpy as np
import pytest
from fairlearn.postprocessing import ThresholdOptimizer

from fairgate.features import FeatureSpec
from fairgate.policy import ThresholdPolicy
from fairgate.schema import group_keys
from training.loan_book import synthetic_loan_book
from training.model import build_model


@pytest.fixture(scope="module")
def fitted():
    book = synthetic_loan_book(40_000, seed=21)
    spec = FeatureSpec(include_sensitive=True)
    features = spec.build(book.columns)
    groups = group_keys(book.columns, ("gender", "age_band"))
    model = build_model("logistic", spec=spec, seed=0).fit(features[:20_000], book.label[:20_000])
    return book, features, groups, model


def fit(fitted, constraint):
    book, features, groups, model = fitted
    optimizer = ThresholdOptimizer(
        estimator=model, constraints=constraint, prefit=True, predict_method="predict_proba"
    )
    optimizer.fit(
        features[20_000:30_000], book.label[20_000:30_000], sensitive_features=groups[20_000:30_000]
    )
    scores = model.predict_proba(features)[:, 1]
    policy = ThresholdPolicy.from_threshold_optimizer(
        optimizer,
        attributes=("gender", "age_band"),
        scores=scores[20_000:30_000],
        groups=groups[20_000:30_000],
    )
    return optimizer, policy, scores


@pytest.mark.parametrize(
    "constraint", ["demographic_parity", "equalized_odds", "true_positive_rate_parity"]
)
def test_approval_probability_equals_fairlearn_pmf(fitted, constraint):
    _book, features, groups, _ = fitted
    optimizer, policy, scores = fit(fitted, constraint)
    rows = slice(30_000, 40_000)  # 10,000 rows the optimizer never saw
    expected = optimizer._pmf_predict(features[rows], sensitive_features=groups[rows])[:, 1]
    actual = policy.approval_probability(scores[rows], groups[rows])
    assert len(actual) == 10_000
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


def test_decisions_do_not_depend_on_batch_order_or_company(fitted):
    book, _, groups, _ = fitted
    _, policy, scores = fit(fitted, "demographic_parity")
    ids = book.columns["application_id"]
    whole, _, _ = policy.decide(ids, scores, groups)
    order = np.random.default_rng(0).permutation(len(ids))
    shuffled, _, _ = policy.decide(ids[order], scores[order], groups[order])
    np.testing.assert_array_equal(shuffled, whole[order])
    singles = [
        policy.decide(ids[i : i + 1], scores[i : i + 1], groups[i : i + 1])[0][0]
        for i in range(0, 400)
    ]
    np.testing.assert_array_equal(singles, whole[:400])


def test_group_approval_rates_match_fairlearn_randomized_predict(fitted):
    book, features, groups, _ = fitted
    optimizer, policy, scores = fit(fitted, "demographic_parity")
    rows = slice(20_000, 40_000)
    ours, _, _ = policy.decide(book.columns["application_id"][rows], scores[rows], groups[rows])
    theirs = optimizer.predict(features[rows], sensitive_features=groups[rows], random_state=1)
    for group in np.unique(groups[rows]):
        mask = groups[rows] == group
        n = mask.sum()
        p = theirs[mask].mean()
        # Two independent Bernoulli samples of the same probabilities: 4 standard errors.
        tolerance = 4 * np.sqrt(max(p * (1 - p), 0.01) * 2 / n)
        assert abs(ours[mask].mean() - p) <= tolerance, group


def test_unseen_group_gets_the_explicit_rule_never_silent_denial(fitted):
    _, policy, scores = fit(fitted, "demographic_parity")
    unseen = np.array(["nonbinary&30-49"] * 100, dtype=object)
    index = policy.group_index(unseen)
    assert policy.is_unseen(index).all()
    assert policy.rule_name(int(index[0])) == "unseen:most-lenient"
    probability = policy.approval_probability(scores[:100], unseen)
    lenient = max(
        policy.rules,
        key=lambda g: policy.approval_probability(
            scores[20_000:30_000], np.full(10_000, g, dtype=object)
        ).mean(),
    )
    np.testing.assert_array_equal(
        probability, policy.approval_probability(scores[:100], np.full(100, lenient, dtype=object))
    )
    assert probability.max() > 0


def test_json_round_trip_and_tamper_detection(fitted):
    _, policy, scores = fit(fitted, "equalized_odds")
    data = json.loads(json.dumps(policy.to_dict()))
    again = ThresholdPolicy.from_dict(data)
    assert again.version == policy.version
    groups = np.array(list(policy.rules), dtype=object).repeat(10)
    np.testing.assert_array_equal(
        again.approval_probability(scores[: len(groups)], groups),
        policy.approval_probability(scores[: len(groups)], groups),
    )
    first = next(iter(data["rules"]))
    data["rules"][first]["p0"] = 1.0
    with pytest.raises(ValueError, match="does not match its version"):
        ThresholdPolicy.from_dict(data)


def test_draws_are_keyed_on_policy_version():
    base = {"attributes": ("gender",), "unseen_rule": "most-lenient", "objective": "accuracy_score"}
    from fairgate.policy import GroupRule

    rule = GroupRule(p0=0.5, operator0=">", threshold0=0.5, p1=0.5, operator1=">", threshold1=0.4)
    a = ThresholdPolicy(
        rules={"female": rule}, unseen=rule, constraint="demographic_parity", **base
    )
    b = ThresholdPolicy(rules={"female": rule}, unseen=rule, constraint="equalized_odds", **base)
    ids = [f"id-{i}" for i in range(2000)]
    assert a.version != b.version
    draws_a = a.draws(ids)
    np.testing.assert_array_equal(draws_a, a.draws(ids))
    assert not np.array_equal(draws_a, b.draws(ids))
    assert draws_a.min() >= 0 and draws_a.max() < 1 and abs(draws_a.mean() - 0.5) < 0.03
