"""Real loan books as they come: a thin band splits, trains and is audited as too small.

The Spanish credit-scoring book (modeldata's ``credit_data``, 4,454 applications, from
``tests/real_books``) banded at the draft's age edges has a 65+ band of 23 applicants, 2 of
them "bad": today's label x group strata made scikit-learn refuse the split ("Classes with
too few members are: [8]"). The counts below are taken from the data with pandas, not from
the code under test.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fairlearn.postprocessing import ThresholdOptimizer
from sklearn.linear_model import LogisticRegression

from fairgate.policy import GroupRule
from tests import real_books
from training.compile_policy import deterministic_policy
from training.loan_book import BiasConfig
from training.mitigate import (
    UNFITTED_ONE_LABEL,
    compile_policy,
    fit_threshold_optimizer,
)
from training.pipeline import (
    MIN_GROUP_APPLICANTS,
    THIN_GROUP,
    THIN_LABEL,
    ThinGroupError,
    TrainConfig,
    _artifact_metadata,
    _config_dict,
    run_training,
    stratified_split,
)

EDGES = [25, 35, 50, 65]  # training.draft_contract.AGE_EDGES: what `fairgate init` drafts
BANDS = ["18-24", "25-34", "35-49", "50-64", "65+"]
# Complete columns only: the test is about thin groups, not about empty cells.
COLUMNS = ["Status", "Seniority", "Records", "Time", "Age", "Expenses", "Amount", "Price"]


@pytest.fixture(scope="module")
def spanish(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    book = real_books.credit_data(tmp_path_factory.mktemp("credit_data"))
    frame = pd.read_csv(book)[COLUMNS].copy()
    frame["band"] = pd.cut(frame["Age"], [0, *EDGES, 200], right=False, labels=BANDS).astype(str)
    return frame


def _arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    labels = (frame["Status"] == "good").to_numpy().astype(np.int8)
    return labels, frame["band"].to_numpy(dtype=object)


def test_the_spanish_books_65_plus_band_is_thin(spanish):
    # The premise, counted with pandas: the band scikit-learn could not stratify.
    old = spanish[spanish["band"] == "65+"]
    assert len(old) == 23 and (old["Status"] == "bad").sum() == 2


@pytest.mark.parametrize("seed", [42, 0, 7])
def test_a_thin_band_still_splits_and_lands_in_every_part(spanish, seed):
    labels, bands = _arrays(spanish)
    split = stratified_split(labels, bands, seed=seed, attribute="Age_band")
    parts = (split.train, split.validation, split.test)
    together = np.concatenate(parts)
    assert len(together) == len(spanish) and len(np.unique(together)) == len(spanish)
    assert [len(p) for p in parts] == [2672, 891, 891]  # 60/20/20 of 4,454
    for part in parts:
        assert set(bands[part]) == set(BANDS)  # 65+ included, however thin
    # Strata large enough keep their share in each part, within a row of rounding.
    for band in BANDS:
        for label in (0, 1):
            stratum = (bands == band) & (labels == label)
            if stratum.sum() >= 10:
                assert abs(stratum[split.test].sum() - 0.2 * stratum.sum()) <= 1.5


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(("good", "bad"), [(5, 0), (4, 1), (3, 2), (2, 3), (21, 2), (6, 1)])
def test_any_group_of_five_lands_in_train_validation_and_test(good, bad, seed):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([rng.integers(0, 2, 300), np.ones(good), np.zeros(bad)])
    groups = np.array(["big"] * 300 + ["thin"] * (good + bad), dtype=object)
    split = stratified_split(labels.astype(np.int8), groups, seed=seed)
    for part in (split.train, split.validation, split.test):
        assert "thin" in set(groups[part])


def test_a_group_too_small_to_split_is_refused_by_name(spanish):
    labels, bands = _arrays(spanish)
    # Keep three of the 65+ band (2 good, 1 bad) and one of the 50-64 band (good).
    old = np.flatnonzero(bands == "65+")
    kept_old = [*old[labels[old] == 1][:2], *old[labels[old] == 0][:1]]
    middle = np.flatnonzero((bands == "50-64") & (labels == 1))[:1]
    rows = np.r_[np.flatnonzero(~np.isin(bands, ["65+", "50-64"])), kept_old, middle]
    with pytest.raises(ThinGroupError) as refused:
        stratified_split(labels[rows], bands[rows], seed=42, attribute="Age_band")
    message = str(refused.value)
    assert THIN_GROUP.format(name="Age_band=65+", count=3, denied=1) in message
    assert THIN_GROUP.format(name="Age_band=50-64", count=1, denied=0) in message
    assert "group 'Age_band=65+' has 3 applicants (1 denied): too few to split" in message
    assert "merge it with a neighbour band in the contract" in message
    assert isinstance(refused.value, ValueError)  # `fairgate train` reports ValueErrors


def test_a_label_too_rare_to_split_is_refused():
    labels = np.array([1] * 100 + [0] * (MIN_GROUP_APPLICANTS - 1), dtype=np.int8)
    with pytest.raises(ThinGroupError, match="the book has 4 denied applicants: too few"):
        stratified_split(labels, np.array(["a"] * len(labels), dtype=object), seed=0)
    assert THIN_LABEL.format(count=4, outcome="denied").startswith("the book has 4 denied")


def _validation_with_a_one_label_group() -> tuple[np.ndarray, np.ndarray, np.ndarray, object]:
    """Two groups of 200 with both outcomes and a group 'thin' of 5, all approved."""
    rng = np.random.default_rng(11)
    x = rng.normal(size=(405, 2))
    labels = (x[:, 0] + rng.normal(size=405) > 0).astype(int)
    groups = np.array(["a"] * 200 + ["b"] * 200 + ["thin"] * 5, dtype=object)
    labels[groups == "thin"] = 1
    model = LogisticRegression().fit(x, labels)
    return x, labels, groups, model


@pytest.mark.parametrize("constraint", ["demographic_parity", "equalized_odds"])
def test_a_one_label_group_in_validation_gets_the_unseen_rule(constraint):
    x, labels, groups, model = _validation_with_a_one_label_group()
    # fairlearn itself refuses it, so the pipeline must never hand it such a group.
    with pytest.raises(ValueError, match="Degenerate labels for sensitive feature value thin"):
        ThresholdOptimizer(
            estimator=model, constraints=constraint, prefit=True, predict_method="predict_proba"
        ).fit(x, labels, sensitive_features=groups)
    optimizer = fit_threshold_optimizer(
        model, x, labels, groups, constraint=constraint, objective="accuracy_score"
    )
    assert optimizer.unfitted_groups_ == {
        "thin": UNFITTED_ONE_LABEL.format(outcome="approved", count=5)
    }
    # The oracle: plain fairlearn on the rows it can fit, and the most lenient of its rules
    # (the highest approval rate over those rows' scores), found here by hand.
    fitted = groups != "thin"
    plain = ThresholdOptimizer(
        estimator=model, constraints=constraint, prefit=True, predict_method="predict_proba"
    ).fit(x[fitted], labels[fitted], sensitive_features=groups[fitted])
    rates = {
        g: plain._pmf_predict(x[fitted], sensitive_features=[g] * fitted.sum())[:, 1].mean()
        for g in ("a", "b")
    }
    lenient = max(rates, key=rates.__getitem__)
    thin = groups == "thin"
    np.testing.assert_array_equal(
        optimizer._pmf_predict(x[thin], sensitive_features=groups[thin]),
        plain._pmf_predict(x[thin], sensitive_features=[lenient] * thin.sum()),
    )
    np.testing.assert_array_equal(
        optimizer._pmf_predict(x[fitted], sensitive_features=groups[fitted]),
        plain._pmf_predict(x[fitted], sensitive_features=groups[fitted]),
    )
    # Both compiled policies decide the thin group with their unseen rule, and say why.
    scores = model.predict_proba(x)[:, 1]
    randomized = compile_policy(
        optimizer, attributes=("g",), scores=scores, groups=groups, unseen_rule="most-lenient"
    )
    assert set(randomized.rules) == {"a", "b"}
    assert randomized.unseen == randomized.rules[lenient]
    policy, fits = deterministic_policy(randomized, scores=scores, labels=labels, groups=groups)
    assert "thin" not in policy.rules
    _, _, index = policy.decide(scores[thin], groups[thin])
    assert policy.is_unseen(index).all()
    assert policy.unseen == GroupRule.threshold(fits["thin"].threshold)
    assert fits["thin"].to_dict()["unfitted"].startswith("only approved applicants (5)")
    assert fits["thin"].gap is None and fits["a"].gap is not None


def _contract() -> str:
    features = "\n".join(
        f'[[features]]\nname = "{name}"\ntransform = "{transform}"\nfield = "{name}"\n'
        for name, transform in [("Seniority", "as_is"), ("Time", "as_is"),
                                ("Expenses", "as_is"), ("Amount", "log1p"),
                                ("Price", "log1p"), ("Records", "one_hot")]
    )  # fmt: skip
    numbers = "\n".join(
        f'[[fields]]\nname = "{name}"\ntype = "integer"\ndescription = "{name}"\n'
        f"example = 1\nconstraints = {{ minimum = 0, maximum = 100000 }}\n"
        for name in ("Seniority", "Time", "Expenses", "Amount", "Price")
    )
    return f"""name = "spanish_credit"
version = 1
description = "modeldata's credit_data, complete columns"

[[fields]]
name = "application_id"
type = "id"
description = "id"
example = "APP-1"
constraints = {{ minLength = 1, maxLength = 64, pattern = '^[A-Za-z0-9][A-Za-z0-9._:-]*$' }}

[[fields]]
name = "Age"
type = "integer"
description = "age"
example = 30
constraints = {{ minimum = 18, maximum = 100 }}

[[fields]]
name = "Records"
type = "category"
description = "records"
example = "no"
constraints = {{ enum = ["no", "yes"] }}

{numbers}
[label]
column = "Status"
approved = ["good"]
denied = ["bad"]

[[protected]]
name = "Age_band"
field = "Age"
edges = {EDGES}
labels = {json.dumps(BANDS)}
representatives = [21, 30, 42, 57, 66]

[groups]
policy = ["Age_band"]
audit = ["Age_band"]
prober = ["Age_band"]
separator = "&"

{features}"""


@pytest.fixture(scope="module")
def trained_spanish(spanish, tmp_path_factory):
    work = tmp_path_factory.mktemp("spanish")
    book = work / "credit_data.csv"
    spanish[COLUMNS].to_csv(book, index=False)
    contract = work / "spanish.toml"
    contract.write_text(_contract())
    config = TrainConfig(
        data=book, contract=contract, bootstrap=20, reports_dir=work / "reports", save=False
    )
    return run_training(config)


def test_the_spanish_book_trains_and_its_thin_band_is_explained(trained_spanish):
    result = trained_spanish
    reports = result.config.reports_dir
    metrics = json.loads((reports / "metrics.json").read_text())
    # The 65+ band is in every part; in validation it has no denied applicant here, so it
    # has no threshold of its own and is decided by the unseen rule, with the reason.
    validation = result.split.validation
    old = result.book.columns["Age"][validation] >= 65
    assert old.any() and (result.book.label[validation][old] == 1).all()
    assert "65+" not in result.policy.rules
    assert metrics["deterministic_fit"]["65+"]["unfitted"] == UNFITTED_ONE_LABEL.format(
        outcome="approved", count=int(old.sum())
    )
    audit = (reports / "audit.md").read_text()
    assert "- Age_band 65+: only approved applicants" in audit
    assert "| 65+ | the unseen-group rule (see above) |" in audit


def test_the_spanish_audit_marks_the_thin_band_too_small(trained_spanish):
    result = trained_spanish
    metrics = json.loads((result.config.reports_dir / "metrics.json").read_text())
    test = result.split.test
    old_in_test = int((result.book.columns["Age"][test] >= 65).sum())
    assert 0 < old_in_test < 30
    for label in ("baseline", "randomized", "mitigated"):
        fairness = metrics[label]["groups"]["Age_band"]
        assert fairness["too_small"] == {"65+": old_in_test}
        assert fairness["by_group"]["65+"]["too_small"] is True
        assert fairness["bootstrap_95"]["selection_rate"]["65+"] is None
        # The ratio is over the four bands large enough, recomputed here from their rows.
        rates = [row["selection_rate"] for g, row in fairness["by_group"].items() if g != "65+"]
        assert fairness["demographic_parity_ratio"] == pytest.approx(min(rates) / max(rates))
    audit = (result.config.reports_dir / "audit.md").read_text()
    assert f"Too small to judge (fewer than 30 applicants): Age_band 65+ ({old_in_test})." in audit
    assert "| 65+ | " in audit and "(too small to judge)" in audit


def test_the_headline_uses_the_contracts_attribute_name(trained_spanish):
    audit = (trained_spanish.config.reports_dir / "audit.md").read_text()
    assert "Applicants with Age_band " in audit and "for applicants with Age_band " in audit
    assert "age_band" not in audit and "gender" not in audit


def test_a_real_book_carries_no_synthetic_bias(trained_spanish):
    metrics = json.loads((trained_spanish.config.reports_dir / "metrics.json").read_text())
    assert metrics["config"]["bias"] is None and metrics["config"]["rows"] is None
    served = _artifact_metadata(trained_spanish.metrics, "&", trained_spanish.lda)  # GET /policy
    assert served["config"]["bias"] is None
    assert served["fairness"]["mitigated"]["too_small"] == {"65+": metrics["mitigated"]["groups"][
        "Age_band"]["too_small"]["65+"]}  # fmt: skip


def test_the_synthetic_book_keeps_its_bias():
    config = TrainConfig(rows=5000, bias=BiasConfig(preset="income-bar", gap=30_000.0))
    data = _config_dict(config)
    assert (data["bias"]["preset"], data["bias"]["gap"]) == ("income-bar", 30_000.0)
    assert data["rows"] == 5000
