"""The LDA search on small synthetic books: blind by construction, figures equal to
fairlearn's own, and a choice that holds on a book it never saw."""

from __future__ import annotations

import numpy as np
import pytest
from fairlearn.metrics import demographic_parity_ratio, equalized_odds_difference
from fairlearn.reductions import DemographicParity, GridSearch
from sklearn.linear_model import LogisticRegression

from fairgate.schema import SYNTHETIC_CONTRACT, group_keys, synthetic_features
from training.lda_figures import ValidationAudit
from training.lda_search import feature_blocks, search
from training.lda_select import DISCOVERY, select
from training.loan_book import BiasConfig, synthetic_loan_book
from training.model import build_model

SEED = 11
AUDITED = SYNTHETIC_CONTRACT.groups.audit  # ("gender", "age_band")
SPEC = synthetic_features()


def _groups(columns):
    return {a: group_keys(columns, (a,)) for a in AUDITED}


def _run(preset, rows, seed=SEED, **options):
    bias = BiasConfig(preset=preset)
    train = synthetic_loan_book(rows, seed=seed, bias=bias)
    validation = synthetic_loan_book(rows // 2, seed=seed + 1, bias=bias)
    candidates = search(
        SPEC.build(train.columns),
        train.label,
        SPEC.build(validation.columns),
        validation.label,
        groups_train=_groups(train.columns),
        groups_val=_groups(validation.columns),
        blocks=feature_blocks(SPEC),
        seed=seed,
        repaid_val=validation.repaid,
        **options,
    )
    return train, validation, candidates


@pytest.fixture(scope="module")
def small():
    """20,000 training rows of the income-bar book, 10,000 validation rows."""
    return _run("income-bar", 20_000)


def _distinct_models(candidates):
    seen = {}
    for candidate in candidates:
        seen.setdefault(candidate.name.split("@")[0], candidate)
    return list(seen.values())


def test_every_family_is_searched_and_the_baseline_comes_first(small):
    _, _, candidates = small
    assert candidates[0].name == "baseline@0.5000"
    families = {c.family for c in candidates}
    assert {"baseline", "drop-one", "regularisation", "demographic-parity"} <= families
    assert len({c.name for c in candidates}) == len(candidates)


def test_scores_do_not_change_when_only_the_protected_fields_change(small):
    # Blind by construction: each applicant's gender swapped and age moved to another
    # band (18-29 <-> 50-64, 30-49 <-> 65+), the features rebuilt, every scorer re-run.
    _, validation, candidates = small
    columns = validation.columns
    flipped = dict(columns)
    flipped["gender"] = np.where(columns["gender"] == "female", "male", "female").astype(object)
    flipped["age"] = np.where(columns["age"] < 50, columns["age"] + 30, columns["age"] - 30)
    flipped["age"] = np.clip(flipped["age"], 18, 100)
    assert (group_keys(flipped, ("gender",)) != group_keys(columns, ("gender",))).all()
    assert (group_keys(flipped, ("age_band",)) != group_keys(columns, ("age_band",))).mean() > 0.9
    before, after = SPEC.build(columns), SPEC.build(flipped)
    for candidate in _distinct_models(candidates):
        assert candidate.scorer.coef.shape == (1, len(SPEC.names))
        np.testing.assert_array_equal(
            candidate.scorer.score(before), candidate.scorer.score(after), err_msg=candidate.name
        )


def test_a_dropped_block_is_coefficient_zero_and_unread(small):
    _, validation, candidates = small
    blocks = dict(feature_blocks(SPEC))
    features = SPEC.build(validation.columns)
    dropped = [c for c in _distinct_models(candidates) if c.dropped]
    assert len(dropped) >= len(blocks)
    rng = np.random.default_rng(0)
    for candidate in dropped:
        columns = [i for name in candidate.dropped for i in blocks[name]]
        assert (candidate.scorer.coef[0, columns] == 0).all()
        assert (candidate.scorer.mean[columns] == 0).all()
        assert (candidate.scorer.scale[columns] == 1).all()
        noisy = features.copy()
        noisy[:, columns] = rng.normal(size=(len(noisy), len(columns)))
        np.testing.assert_array_equal(
            candidate.scorer.score(features), candidate.scorer.score(noisy)
        )


def test_the_baseline_is_the_trainers_model(small):
    train, validation, candidates = small
    model = build_model("logistic", monotonic=SPEC.monotonic_constraints, seed=SEED)
    model.fit(SPEC.build(train.columns), train.label)
    expected = model.predict_proba(SPEC.build(validation.columns))[:, 1]
    got = candidates[0].scorer.score(SPEC.build(validation.columns))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_the_reductions_are_fairlearns_own_grid_search_predictors(small):
    # An independent fit: fairlearn's GridSearch on the trainer's standardised columns,
    # with the search's grid; each predictor's probabilities are the candidate's scores.
    train, validation, candidates = small
    scaler = build_model("logistic", monotonic=SPEC.monotonic_constraints, seed=SEED)[0]
    x_train = scaler.fit_transform(SPEC.build(train.columns))
    grid = GridSearch(
        LogisticRegression(max_iter=1000, random_state=SEED),
        constraints=DemographicParity(),
        grid_size=21,
        grid_limit=1.0,
    )
    grid.fit(x_train, train.label, sensitive_features=_groups(train.columns)["gender"])
    x_val = SPEC.build(validation.columns)
    ours = {c.name.split("@")[0]: c for c in candidates if c.family == "demographic-parity"}
    assert len(ours) == len(grid.predictors_) == 21
    for i, predictor in enumerate(grid.predictors_):
        expected = predictor.predict_proba(scaler.transform(x_val))[:, 1]
        got = ours[f"demographic-parity:{i:02d}"].scorer.score(x_val)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_the_table_figures_equal_fairlearns_metrics(small):
    _, validation, candidates = small
    x_val = SPEC.build(validation.columns)
    groups = _groups(validation.columns)
    # Every GridSearch predictor at 0.5 and at its most lenient cut-off, and a sample of
    # the rest (fairlearn's metrics cost ~0.1 s a call).
    reductions = [c for c in candidates if c.family == "demographic-parity"]
    lenient = {c.name.split("@")[0]: c for c in reductions}.values()
    checked = [c for c in reductions if c.threshold == 0.5] + list(lenient) + candidates[::15]
    assert len(checked) >= 2 * 21
    for candidate in checked:
        approved = (candidate.scorer.score(x_val) > candidate.threshold).astype(int)
        figures = candidate.figures
        assert figures.approval_rate == pytest.approx(approved.mean(), abs=1e-12)
        assert figures.agreement == pytest.approx(np.mean(approved == validation.label), abs=1e-12)
        for attribute in AUDITED:
            ratio = demographic_parity_ratio(
                validation.label, approved, sensitive_features=groups[attribute]
            )
            odds = equalized_odds_difference(
                validation.label, approved, sensitive_features=groups[attribute]
            )
            assert figures.ratios[attribute] == pytest.approx(ratio, abs=1e-12), candidate.name
            assert figures.equalized_odds[attribute] == pytest.approx(odds, abs=1e-12)
            low, high = figures.ratio_intervals[attribute]
            assert low <= figures.ratios[attribute] <= high


def test_a_group_too_small_to_judge_is_left_out_as_in_the_audit():
    # Group "c" has 10 rows: the ratio and equalized-odds difference are fairlearn's over
    # groups "a" and "b" alone; with only one group left there is no ratio at all.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 410)
    approved = rng.integers(0, 2, 410)
    groups = np.array(["a"] * 200 + ["b"] * 200 + ["c"] * 10, dtype=object)
    audit = ValidationAudit(labels=labels, groups={"g": groups, "one": groups == "c"}, seed=0)
    figures = audit.figures("x", approved.astype(float), threshold=0.5)
    judged = groups != "c"
    expected = demographic_parity_ratio(
        labels[judged], approved[judged], sensitive_features=groups[judged]
    )
    odds = equalized_odds_difference(
        labels[judged], approved[judged], sensitive_features=groups[judged]
    )
    assert figures.ratios["g"] == pytest.approx(expected, abs=1e-12)
    assert figures.equalized_odds["g"] == pytest.approx(odds, abs=1e-12)
    assert figures.ratios["one"] is None
    assert figures.ratio_intervals["one"] is None


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            {"labels": np.array([0, 1, 2]), "groups": {}},
            r"labels must be 0/1, got values \[0, 1, 2\]",
        ),
        (
            {"labels": np.array([0, 1]), "groups": {"g": np.array(["a"])}},
            "g has 1 rows, the labels 2",
        ),
        ({"labels": np.array([0, 1]), "groups": {}, "repaid": np.array([1])}, "repaid has 1 rows"),
    ],
    ids=["labels-not-binary", "group-length", "repaid-length"],
)
def test_the_audit_refuses_inconsistent_rows(arguments, message):
    with pytest.raises(ValueError, match=message):
        ValidationAudit(**arguments)


def test_the_equalized_odds_reduction_is_a_family_too():
    candidates = _run("income-bar", 4_000, reductions=("equalized-odds",), grid_size=5)[2]
    models = {c.name.split("@")[0] for c in candidates if c.family == "equalized-odds"}
    assert models and all(name.startswith("equalized-odds:") for name in models)
    assert not any(c.family == "demographic-parity" for c in candidates)


def test_the_search_repeats_exactly():
    first = _run("proxy", 4_000, seed=3, grid_size=5, greedy_steps=2)[2]
    second = _run("proxy", 4_000, seed=3, grid_size=5, greedy_steps=2)[2]
    assert [c.figures for c in first] == [c.figures for c in second]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"policy_attribute": "religion"}, "policy attribute 'religion' is not in groups_train"),
        ({"reductions": ("error-rate",)}, "reductions must be among"),
        ({"blocks": [("all", range(5))]}, "blocks must cover each of the 13 columns once"),
    ],
    ids=["policy-attribute", "reduction", "blocks"],
)
def test_bad_arguments_are_refused(options, message):
    book = synthetic_loan_book(200, seed=1)
    features = SPEC.build(book.columns)
    arguments = {"blocks": feature_blocks(SPEC)} | options
    with pytest.raises(ValueError, match=message):
        search(
            features,
            book.label,
            features,
            book.label,
            groups_train=_groups(book.columns),
            groups_val=_groups(book.columns),
            seed=0,
            **arguments,
        )


@pytest.mark.parametrize("preset", ["income-bar", "proxy"])
def test_the_chosen_alternative_holds_on_an_unseen_book(preset):
    # 30,000 training rows, 15,000 validation rows to choose on; judged on 100,000
    # applicants of another seed that took no part in the search or the choice.
    _, _, candidates = _run(preset, 30_000, seed=SEED)
    selection = select([c.figures for c in candidates], baseline=candidates[0].name)
    assert selection.outcome == DISCOVERY, selection.summary
    unseen = synthetic_loan_book(100_000, seed=SEED + 2, bias=BiasConfig(preset=preset))
    audit = ValidationAudit(
        labels=unseen.label, groups=_groups(unseen.columns), repaid=unseen.repaid
    )
    features = SPEC.build(unseen.columns)
    by_name = {c.name: c for c in candidates}
    base, chosen = (
        audit.figures(name, by_name[name].scorer.score(features), threshold=by_name[name].threshold)
        for name in (selection.baseline.name, selection.chosen.name)
    )
    assert chosen.ratios["gender"] >= 0.80, (chosen, base)
    assert chosen.ratios["age_band"] >= base.ratios["age_band"] - 0.01
    assert chosen.agreement >= base.agreement - 0.03
    assert chosen.accuracy_repaid >= base.accuracy_repaid - 0.01
