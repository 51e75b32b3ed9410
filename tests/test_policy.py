"""The compiled policies: randomized against fairlearn, deterministic against hand-computed
cases and fairlearn's expected rates, unseen-group rules on hand-built tables."""

import json
import math

import numpy as np
import pytest
from fairlearn.postprocessing import ThresholdOptimizer

from fairgate.draw import DrawKey, draw_fields
from fairgate.policy import NEEDS_DRAWS, GroupRule, ThresholdPolicy
from fairgate.schema import SYNTHETIC_CONTRACT, group_keys, synthetic_features
from training.compile_policy import deterministic_policy, fit_group_threshold
from training.loan_book import synthetic_loan_book
from training.model import build_model

KEY = DrawKey(b"test-draw-key-0123456789")
FIELDS = draw_fields(SYNTHETIC_CONTRACT)
VALIDATION = slice(20_000, 30_000)
HELD_OUT = slice(30_000, 40_000)


@pytest.fixture(scope="module")
def fitted():
    book = synthetic_loan_book(40_000, seed=21)
    spec = synthetic_features(include_sensitive=True)
    features = spec.build(book.columns)
    groups = group_keys(book.columns, ("gender", "age_band"))
    model = build_model("logistic", monotonic=spec.monotonic_constraints, seed=0).fit(
        features[:20_000], book.label[:20_000]
    )
    return book, features, groups, model


def fit(fitted, constraint):
    book, features, groups, model = fitted
    optimizer = ThresholdOptimizer(
        estimator=model, constraints=constraint, prefit=True, predict_method="predict_proba"
    )
    optimizer.fit(
        features[VALIDATION], book.label[VALIDATION], sensitive_features=groups[VALIDATION]
    )
    scores = model.predict_proba(features)[:, 1]
    policy = ThresholdPolicy.from_threshold_optimizer(
        optimizer,
        attributes=("gender", "age_band"),
        scores=scores[VALIDATION],
        groups=groups[VALIDATION],
    )
    return optimizer, policy, scores


def _rows(columns, rows):
    return {name: values[rows] for name, values in columns.items()}


@pytest.mark.parametrize(
    "constraint", ["demographic_parity", "equalized_odds", "true_positive_rate_parity"]
)
def test_approval_probability_equals_fairlearn_pmf(fitted, constraint):
    _book, features, groups, _ = fitted
    optimizer, policy, scores = fit(fitted, constraint)
    assert policy.mode == "randomized" and policy.randomized
    expected = optimizer._pmf_predict(features[HELD_OUT], sensitive_features=groups[HELD_OUT])[:, 1]
    actual = policy.approval_probability(scores[HELD_OUT], groups[HELD_OUT])
    assert len(actual) == 10_000
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)


def test_randomized_decisions_do_not_depend_on_batch_order_or_company(fitted):
    book, _, groups, _ = fitted
    _, policy, scores = fit(fitted, "demographic_parity")
    draws = KEY.draws(book.columns, FIELDS)
    whole, _, _ = policy.decide(scores, groups, draws)
    order = np.random.default_rng(0).permutation(len(scores))
    reordered = KEY.draws(_rows(book.columns, order), FIELDS)
    shuffled, _, _ = policy.decide(scores[order], groups[order], reordered)
    np.testing.assert_array_equal(shuffled, whole[order])
    singles = []
    for i in range(400):
        draw = KEY.draws(_rows(book.columns, [i]), FIELDS)
        singles.append(policy.decide(scores[i : i + 1], groups[i : i + 1], draw)[0][0])
    np.testing.assert_array_equal(singles, whole[:400])


def _assert_single_equals_batch(policy, scores, groups, draws):
    batch = policy.decide(scores, groups, draws)
    for i in range(len(scores)):
        one = policy.decide(
            scores[i : i + 1], groups[i : i + 1], None if draws is None else draws[i : i + 1]
        )
        for got, want in zip(one, batch, strict=True):
            assert got.dtype == want.dtype and got.shape == (1,)
            assert got.tobytes() == want[i : i + 1].tobytes(), (i, got, want[i])
    return batch


@pytest.mark.parametrize("constraint", ["demographic_parity", "equalized_odds"])
def test_one_application_decides_bit_for_bit_as_in_a_batch(fitted, constraint):
    """``decide`` takes a path of its own for one application (Python floats, not numpy):
    the same probability bits, decision and rule as the batch path, for the randomized
    policy (with draws; equalized odds also mixes in a constant, p_ignore > 0), the
    deterministic one, and a group unseen at fit."""
    book, _, groups, _ = fitted
    _, randomized, scores = fit(fitted, constraint)
    deterministic, _ = deterministic_policy(
        randomized, scores=scores[VALIDATION], labels=book.label[VALIDATION],
        groups=groups[VALIDATION],
    )  # fmt: skip
    rows = np.arange(600)
    mixed = groups[rows].copy()
    mixed[::7] = "never-seen-group"
    draws = KEY.draws(_rows(book.columns, rows), FIELDS)
    if constraint == "equalized_odds":
        assert any(rule.p_ignore > 0 for rule in randomized.rules.values())
    for policy, policy_draws in ((randomized, draws), (deterministic, None)):
        batch = _assert_single_equals_batch(policy, scores[rows], mixed, policy_draws)
        assert batch[2].max() == len(policy.rules)  # the unseen rule was used
    with pytest.raises(ValueError, match=NEEDS_DRAWS):
        randomized.decide(scores[:1], groups[:1])


def test_one_application_decides_as_in_a_batch_on_a_hand_built_table():
    """Rules fairlearn's fits above do not produce: ``<`` operators, infinite thresholds, a
    constant mixed in, scores exactly on a threshold, and draws of 0 and just under 1."""
    rules = {
        "lt": GroupRule(p0=0.3, operator0="<", threshold0=0.4, p1=0.7, operator1="<",
                        threshold1=0.6),
        "mixed": GroupRule(p0=0.25, operator0=">", threshold0=0.2, p1=0.75, operator1="<",
                           threshold1=0.8, p_ignore=0.35, constant=0.6),
        "infinite": GroupRule(p0=0.5, operator0=">", threshold0=-np.inf, p1=0.5,
                              operator1=">", threshold1=np.inf, p_ignore=0.1, constant=1.0),
    }  # fmt: skip
    policy = ThresholdPolicy(
        attributes=("gender",), rules=rules, unseen=rules["mixed"], unseen_rule="pooled",
        constraint="equalized_odds", objective="balanced_accuracy_score", mode="randomized",
    )  # fmt: skip
    grid = np.array([0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 0.2 + 1e-16, np.nextafter(0.4, 0)])
    names = [*rules, "unseen"]
    scores = np.repeat(grid, len(names) * 3)
    groups = np.array([n for _ in grid for n in names for _ in range(3)], dtype=object)
    draws = np.tile([0.0, 0.5, np.nextafter(1.0, 0)], len(grid) * len(names))
    approved, probability, _ = _assert_single_equals_batch(policy, scores, groups, draws)
    assert {0.0, 1.0} < set(probability.tolist())  # certain and uncertain cases both
    assert approved.any() and not approved.all()


def test_randomized_policy_refuses_to_decide_without_draws(fitted):
    _, policy, scores = fit(fitted, "demographic_parity")
    with pytest.raises(ValueError, match=NEEDS_DRAWS):
        policy.decide(scores[:10], np.array(["female&30-49"] * 10, dtype=object))


def test_group_approval_rates_match_fairlearn_randomized_predict(fitted):
    book, features, groups, _ = fitted
    optimizer, policy, scores = fit(fitted, "demographic_parity")
    rows = slice(20_000, 40_000)
    draws = KEY.draws(_rows(book.columns, np.arange(20_000, 40_000)), FIELDS)
    ours, _, _ = policy.decide(scores[rows], groups[rows], draws)
    theirs = optimizer.predict(features[rows], sensitive_features=groups[rows], random_state=1)
    for group in np.unique(groups[rows]):
        mask = groups[rows] == group
        n = mask.sum()
        p = theirs[mask].mean()
        # Two independent Bernoulli samples of the same probabilities: 4 standard errors.
        tolerance = 4 * np.sqrt(max(p * (1 - p), 0.01) * 2 / n)
        assert abs(ours[mask].mean() - p) <= tolerance, group


@pytest.mark.parametrize(
    "constraint, rate, rows",
    [
        ("demographic_parity", "selection_rate", None),
        ("true_positive_rate_parity", "true_positive_rate", 1),
        ("false_positive_rate_parity", "false_positive_rate", 0),
    ],
)
def test_deterministic_rates_equal_fairlearns_expected_rates(fitted, constraint, rate, rows):
    """Per group on the validation rows: the single threshold's rate equals the mean of
    fairlearn's own ``_pmf_predict`` within one applicant (1/n), the best a cut can do."""
    book, features, groups, _ = fitted
    optimizer, randomized, scores = fit(fitted, constraint)
    policy, fits = deterministic_policy(
        randomized,
        scores=scores[VALIDATION],
        labels=book.label[VALIDATION],
        groups=groups[VALIDATION],
    )
    assert policy.mode == "mitigated" and not policy.randomized
    pmf = optimizer._pmf_predict(features[VALIDATION], sensitive_features=groups[VALIDATION])[:, 1]
    labels, validation_groups = book.label[VALIDATION], groups[VALIDATION]
    approved, probability, _ = policy.decide(scores[VALIDATION], validation_groups)
    assert set(np.unique(probability)) <= {0.0, 1.0}
    for group in policy.rules:
        mask = validation_groups == group
        if rows is not None:
            mask &= labels == rows
        n = int(mask.sum())
        assert abs(approved[mask].mean() - pmf[mask].mean()) <= 1 / n + 1e-12, group
        assert fits[group].gap <= 1 / n + 1e-12


def test_deterministic_threshold_hand_computed_selection_rate():
    # Target 0.4 of 5 applicants: approve the top 2, i.e. strictly above 0.3.
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    fit = fit_group_threshold(scores, np.zeros(5, dtype=int), np.full(5, 0.4), "demographic_parity")
    assert fit.threshold == 0.3
    assert fit.achieved == {"selection_rate": 0.4}
    assert fit.gap == pytest.approx(0.0, abs=1e-12)


def test_deterministic_threshold_hand_computed_tpr_tie_goes_lenient():
    # Positives score 0.2, 0.4, 0.5 with expected TPR (0 + 0.5 + 1) / 3 = 0.5. A cut can give
    # 2/3 (above 0.2) or 1/3 (above 0.4), both 1/6 off: the lower threshold is kept.
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    labels = np.array([0, 1, 0, 1, 1])
    probability = np.array([0.0, 0.0, 1.0, 0.5, 1.0])
    fit = fit_group_threshold(scores, labels, probability, "true_positive_rate_parity")
    assert fit.target == {"true_positive_rate": 0.5}
    assert fit.threshold == 0.2
    assert fit.achieved["true_positive_rate"] == pytest.approx(2 / 3)
    assert fit.gap == pytest.approx(1 / 6)


def test_equalized_odds_reports_how_far_one_threshold_is():
    # Positives at 0.1 and 0.3, negatives at 0.2 and 0.4; the randomized rule approves every
    # positive and no negative (TPR 1, FPR 0). Cuts: above -inf (1, 1), 0.1 (.5, 1),
    # 0.2 (.5, .5), 0.3 (0, .5), 0.4 (0, 0): the smallest larger miss is 0.5, at 0.2.
    scores = np.array([0.1, 0.2, 0.3, 0.4])
    labels = np.array([1, 0, 1, 0])
    fit = fit_group_threshold(scores, labels, labels.astype(float), "equalized_odds")
    assert fit.threshold == 0.2
    assert fit.target == {"true_positive_rate": 1.0, "false_positive_rate": 0.0}
    assert fit.achieved == {"true_positive_rate": 0.5, "false_positive_rate": 0.5}
    assert fit.gap == 0.5


def _table_policy(unseen_rule):
    # Three groups with plain cuts; on scores 0.1, 0.2, 0.4, 0.5, 0.7, 0.9 they approve
    # a: 2/6 (above 0.6), b: 4/6 (above 0.3), c: 3/6 (above 0.45).
    rules = {
        "a": GroupRule.threshold(0.6),
        "b": GroupRule.threshold(0.3),
        "c": GroupRule.threshold(0.45),
    }
    draft = ThresholdPolicy(
        attributes=("gender",),
        rules=rules,
        unseen=rules["a"],
        unseen_rule="most-lenient",
        constraint="demographic_parity",
        objective="accuracy_score",
        mode="mitigated",
    )
    scores = np.array([0.1, 0.2, 0.4, 0.5, 0.7, 0.9])
    # Fit-time population: a a a b b b; pooled rate (0 + 3) / 6 = 0.5.
    groups = np.array(["a", "a", "a", "b", "b", "b"], dtype=object)
    return draft.with_unseen_rule(unseen_rule, scores=scores, groups=groups)


def test_most_lenient_unseen_rule_on_a_hand_built_table():
    policy = _table_policy("most-lenient")
    assert policy.unseen == GroupRule.threshold(0.3)  # b approves the most (4/6)
    index = policy.group_index(np.array(["z"], dtype=object))
    assert policy.is_unseen(index).all()
    assert policy.rule_name(int(index[0])) == "unseen:most-lenient"


def test_pooled_unseen_rule_on_a_hand_built_table():
    policy = _table_policy("pooled")
    assert policy.unseen == GroupRule.threshold(0.45)  # c's 3/6 is the pooled 0.5
    probability = policy.approval_probability(np.array([0.44, 0.46]), np.array(["z", "z"]))
    np.testing.assert_array_equal(probability, [0.0, 1.0])


def test_json_round_trip_and_edit_detection(fitted):
    _, policy, scores = fit(fitted, "equalized_odds")
    data = json.loads(json.dumps(policy.to_dict()))
    again = ThresholdPolicy.from_dict(data)
    assert again.version == policy.version and again.mode == "randomized"
    groups = np.array(list(policy.rules), dtype=object).repeat(10)
    np.testing.assert_array_equal(
        again.approval_probability(scores[: len(groups)], groups),
        policy.approval_probability(scores[: len(groups)], groups),
    )
    first = next(iter(data["rules"]))
    data["rules"][first]["p0"] = 1.0
    with pytest.raises(ValueError, match="does not match its version"):
        ThresholdPolicy.from_dict(data)
    relabelled = json.loads(json.dumps(policy.to_dict())) | {"mode": "mitigated"}
    with pytest.raises(ValueError, match="does not match its version"):
        ThresholdPolicy.from_dict(relabelled)


def test_boundary_distance_is_to_the_nearest_weighted_finite_threshold():
    rules = {
        "a": GroupRule.threshold(0.6),
        # Randomized: weight 0.3 above 0.5, weight 0.7 above 0.7.
        "b": GroupRule(
            p0=0.3, operator0=">", threshold0=0.5, p1=0.7, operator1=">", threshold1=0.7
        ),
        # Weight 0 on the second term: its threshold does not matter.
        "c": GroupRule(
            p0=1.0, operator0=">", threshold0=0.2, p1=0.0, operator1=">", threshold1=0.9
        ),
        # Always approve: fairlearn writes it as a threshold at -inf.
        "d": GroupRule.threshold(-math.inf),
    }
    policy = ThresholdPolicy(
        attributes=("g",), rules=rules, unseen=rules["a"], unseen_rule="most-lenient",
        constraint="demographic_parity", objective="accuracy_score",
    )  # fmt: skip
    scores = np.array([0.55, 0.62, 0.66, 0.85, 0.3, 0.99])
    groups = np.array(["a", "b", "b", "c", "d", "zz"], dtype=object)
    expected = [0.05, 0.08, 0.04, 0.65, math.inf, 0.39]  # zz: unseen -> rule "a"
    np.testing.assert_allclose(policy.boundary_distance(scores, groups), expected)
