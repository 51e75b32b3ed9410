"""Acceptance for the offline pipeline, on the session's trained model."""

import json

import bentoml
import numpy as np
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from typer.testing import CliRunner

from fairgate.artifacts import ArtifactError, load_serving_bundle
from fairgate.cli import app
from fairgate.schema import group_keys
from training.pipeline import TrainConfig, run_training


def test_reported_group_metrics_equal_fairlearn_metricframe(trained):
    test = trained.split.test
    columns = {k: v[test] for k, v in trained.book.columns.items()}
    groups = group_keys(columns, ("gender",))
    y = trained.book.label[test]
    scores = trained.model.predict_proba(trained.features[test])[:, 1]
    y_pred = (scores > 0.5).astype(int)
    frame = MetricFrame(
        metrics={"sr": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
        y_true=y,
        y_pred=y_pred,
        sensitive_features=groups,
    )
    reported = trained.metrics["baseline"]["groups"]["gender"]
    for group in ("female", "male"):
        row = reported["by_group"][group]
        assert row["selection_rate"] == frame.by_group.loc[group, "sr"]
        assert row["true_positive_rate"] == frame.by_group.loc[group, "tpr"]
        assert row["false_positive_rate"] == frame.by_group.loc[group, "fpr"]
        assert row["count"] == (groups == group).sum()
    assert reported["demographic_parity_ratio"] == demographic_parity_ratio(
        y, y_pred, sensitive_features=groups
    )
    assert reported["demographic_parity_difference"] == demographic_parity_difference(
        y, y_pred, sensitive_features=groups
    )
    assert reported["equalized_odds_difference"] == equalized_odds_difference(
        y, y_pred, sensitive_features=groups
    )


def test_naive_model_is_unfair_and_mitigation_fixes_parity(trained):
    tradeoff = trained.metrics["tradeoff"]
    assert tradeoff["dp_ratio_before"] < 0.8
    assert tradeoff["dp_ratio_after"] >= 0.9
    report = (trained.config.reports_dir / "audit.md").read_text()
    assert "below the four-fifths line" in report
    assert f"({tradeoff['accuracy_cost'] * 100:+.1f}% points)" in report


def test_reports_and_artifacts_are_written(trained):
    reports = trained.config.reports_dir
    for name in ("metrics.json", "audit.md", "group_rates.png", "roc_thresholds.png"):
        assert (reports / name).stat().st_size > 0
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["tag"] == trained.tag
    assert trained.tag in {str(m.tag) for m in bentoml.models.list()}
    bundle = load_serving_bundle(trained.tag)
    assert bundle.policy.version == trained.policy.version
    holdout = trained.features[trained.split.test]
    np.testing.assert_array_equal(bundle.scorer.score(holdout), trained.scorer.score(holdout))


def test_training_is_reproducible(tmp_path):
    config = TrainConfig(rows=6000, seed=3, bootstrap=10, reports_dir=None, save=False)
    a, b = run_training(config), run_training(config)
    assert a.metrics["data"]["fingerprint"] == b.metrics["data"]["fingerprint"]
    assert a.policy.to_dict() == b.policy.to_dict()


def test_cli_train_and_bad_option(tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "train",
            "--rows",
            "5000",
            "--bootstrap",
            "10",
            "--reports",
            str(tmp_path),
            "--name",
            "fairgate-cli-test",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "saved fairgate-cli-test:" in result.output
    bad = runner.invoke(app, ["train", "--rows", "5000", "--model", "forest"])
    assert bad.exit_code == 2
    assert "model must be one of" in bad.output


def test_unmitigated_bundle_decides_like_the_models_own_predict(trained):
    bundle = load_serving_bundle(trained.tag, "unmitigated")
    test = trained.split.test
    columns = {k: v[test] for k, v in trained.book.columns.items()}
    groups = group_keys(columns, bundle.policy.attributes)
    scores = bundle.scorer.score(trained.features[test])
    approved, probability, _ = bundle.policy.decide(columns["application_id"], scores, groups)
    np.testing.assert_array_equal(approved, trained.model.predict(trained.features[test]) == 1)
    assert set(np.unique(probability)) <= {0.0, 1.0}
    assert bundle.policy.constraint == "none"
    assert bundle.policy.version != trained.policy.version


def test_unknown_policy_mode_is_refused(trained):
    with pytest.raises(ArtifactError, match="policy mode must be one of"):
        load_serving_bundle(trained.tag, "lenient")
