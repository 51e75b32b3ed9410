"""Acceptance for the offline pipeline, on the session's trained model."""

import json
from pathlib import Path

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
from sklearn.metrics import accuracy_score
from typer.testing import CliRunner

from cli.main import app
from fairgate.artifacts import ArtifactError, load_serving_bundle
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


def _independent_rows(trained) -> dict[str, tuple[float, float, float]]:
    """(accuracy, DP difference, EO difference) per policy on the test split, computed here:
    scikit-learn's predict, fairlearn's seeded randomized predict, and the deterministic cuts
    read from the saved policy file and applied to scikit-learn's scores."""
    test = trained.split.test
    columns = {k: v[test] for k, v in trained.book.columns.items()}
    groups = group_keys(columns, ("gender",))
    y = trained.book.label[test]
    x = trained.features[test]
    root = Path(bentoml.models.get(trained.tag).path)
    rules = json.loads((root / "policy.json").read_text())["rules"]
    cuts = np.array([float(rules[g]["threshold0"]) for g in groups])
    predictions = {
        "unmitigated": trained.model.predict(x),
        "randomized": trained.optimizer.predict(
            x, sensitive_features=groups, random_state=trained.config.seed
        ),
        "deterministic": (trained.model.predict_proba(x)[:, 1] > cuts).astype(int),
    }
    return {
        name: (
            accuracy_score(y, p),
            demographic_parity_difference(y, p, sensitive_features=groups),
            equalized_odds_difference(y, p, sensitive_features=groups),
        )
        for name, p in predictions.items()
    }


def test_report_figures_equal_independently_computed_ones(trained):
    reports = trained.config.reports_dir
    metrics = json.loads((reports / "metrics.json").read_text())
    audit = (reports / "audit.md").read_text()
    keys = {"unmitigated": "baseline", "randomized": "randomized", "deterministic": "mitigated"}
    for name, (accuracy, dp_difference, eo_difference) in _independent_rows(trained).items():
        reported = metrics[keys[name]]
        assert reported["overall"]["accuracy"] == pytest.approx(accuracy, abs=1e-12)
        gender = reported["groups"]["gender"]
        assert gender["demographic_parity_difference"] == pytest.approx(dp_difference, abs=1e-12)
        assert gender["equalized_odds_difference"] == pytest.approx(eo_difference, abs=1e-12)
        row = next(line for line in audit.splitlines() if line.startswith(f"| {name} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert float(cells[1]) == pytest.approx(accuracy, abs=5e-5)
        assert float(cells[4]) == pytest.approx(dp_difference, abs=5e-5)
        assert float(cells[8]) == pytest.approx(eo_difference, abs=5e-5)
    # The demographic-parity thresholds keep fairlearn's parity: within 3 points on test.
    assert metrics["mitigated"]["groups"]["gender"]["demographic_parity_difference"] < 0.03
    for group, fit in metrics["deterministic_fit"].items():
        assert f"| {group} | {fit['threshold']:.4f} | selection rate |" in audit


def test_reports_and_artifacts_are_written(trained):
    reports = trained.config.reports_dir
    for name in ("group_rates.png", "roc_thresholds.png"):
        assert (reports / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["tag"] == trained.tag
    assert trained.tag in {str(m.tag) for m in bentoml.models.list()}
    bundle = load_serving_bundle(trained.tag, "mitigated")
    assert bundle.policy.version == trained.policy.version and bundle.policy.mode == "mitigated"
    default = load_serving_bundle(trained.tag)  # the less discriminatory alternative
    assert default.policy.version == trained.lda.policy.version and default.policy.mode == "lda"
    randomized = load_serving_bundle(trained.tag, "randomized")
    assert randomized.policy.version == trained.randomized.version
    assert randomized.policy.randomized
    holdout = trained.features[trained.split.test]
    np.testing.assert_array_equal(bundle.scorer.score(holdout), trained.scorer.score(holdout))


def test_training_is_reproducible(tmp_path):
    config = TrainConfig(rows=6000, seed=3, bootstrap=10, reports_dir=None, save=False)
    a, b = run_training(config), run_training(config)
    assert a.metrics["data"]["fingerprint"] == b.metrics["data"]["fingerprint"]
    assert a.policy.to_dict() == b.policy.to_dict()
    # The search too: the same candidates, figures and choice (its duration aside).
    assert a.lda.policy.to_dict() == b.lda.policy.to_dict()
    timeless = ({k: v for k, v in r.metrics["lda"].items() if k != "seconds"} for r in (a, b))
    assert next(timeless) == next(timeless)


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


def test_cli_train_signs_with_the_artifact_key(tmp_path):
    key = "cli-artifact-key-0123456789"
    result = CliRunner().invoke(
        app,
        ["train", "--rows", "5000", "--bootstrap", "10", "--reports", str(tmp_path),
         "--name", "fairgate-cli-signed"],
        env={"FAIRGATE_ARTIFACT_KEY": key},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    tag = result.output.split("saved ", 1)[1].split()[0]
    assert load_serving_bundle(tag, artifact_key=key.encode()).tag == tag
    with pytest.raises(ArtifactError, match="signature does not match"):
        load_serving_bundle(tag, artifact_key=key[::-1].encode())
    short = CliRunner().invoke(app, ["train"], env={"FAIRGATE_ARTIFACT_KEY": "short"})
    assert short.exit_code == 2 and "FAIRGATE_ARTIFACT_KEY: too short" in short.output


def test_cli_serve_lists_every_configuration_error_and_exits_2(trained):
    result = CliRunner().invoke(
        app,
        ["serve", "--model", trained.tag, "--policy", "randomized"],
        env={"FAIRGATE_GC": "aggressive", "FAIRGATE_MAX_BODY_BYTES": "lots"},
    )
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    for expected in ("FAIRGATE_DRAW_KEY: required", "FAIRGATE_GC='aggressive'",
                     "FAIRGATE_MAX_BODY_BYTES='lots'"):  # fmt: skip
        assert expected in text


def test_unmitigated_bundle_decides_like_the_models_own_predict(trained):
    bundle = load_serving_bundle(trained.tag, "unmitigated")
    test = trained.split.test
    columns = {k: v[test] for k, v in trained.book.columns.items()}
    groups = group_keys(columns, bundle.policy.attributes)
    scores = bundle.scorer.score(trained.features[test])
    approved, probability, _ = bundle.policy.decide(scores, groups)
    np.testing.assert_array_equal(approved, trained.model.predict(trained.features[test]) == 1)
    assert set(np.unique(probability)) <= {0.0, 1.0}
    assert bundle.policy.constraint == "none"
    assert bundle.policy.version != trained.policy.version


def test_unknown_policy_mode_is_refused(trained):
    with pytest.raises(ArtifactError, match="policy mode must be one of"):
        load_serving_bundle(trained.tag, "lenient")
