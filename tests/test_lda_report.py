"""The audit report's less-discriminatory-alternative section, its plot and the trade-off doc's
lda column, on ``metrics["lda"]`` dicts built from real ``Figures`` and ``select`` output on a
tiny literal book (600 applicants, two genders, three age bands).

The book: historical labels favour men (``0.8 x male``), repayment does not. ``proxy`` scores
read gender strongly (the baseline), ``blind`` weakly, ``noise`` not at all and not merit
either; each at cut-offs 0.50, 0.45 and 0.40. With the default rule ``blind@0.4000`` is a
discovery; with zero AUC and agreement margins nothing passes and the baseline stays.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
from matplotlib import pyplot as plt

from tests.test_docs import script
from training.lda_figures import ValidationAudit
from training.lda_plot import pareto_figure, pareto_front, plot_lda_pareto
from training.lda_select import AGREEMENT_BELOW, AUC_BELOW, DISCOVERY, REFUTATION, select
from training.pipeline import TrainConfig, run_training
from training.report import markdown_report, write_reports
from training.report_lda import SANDBOX, SECTION, lda_section, ratio, rejection_counts

MODELS = (("proxy", "baseline"), ("blind", "drop-one"), ("noise", "regularisation"))
CUTS = (0.5, 0.45, 0.4)
BASELINE = "proxy@0.5000"


def book(seed: int, n: int = 600):
    rng = np.random.default_rng(seed)
    gender = rng.choice(["female", "male"], n)
    age = rng.choice(["18-29", "30-49", "50+"], n)
    merit = rng.normal(size=n)
    male = (gender == "male").astype(float)
    labels = (merit + 0.8 * male + rng.normal(scale=0.5, size=n) > 0.4).astype(int)
    repaid = (merit + rng.normal(scale=0.5, size=n) > -0.2).astype(int)
    scores = {
        "proxy": 1 / (1 + np.exp(-(2 * merit + 1.2 * male - 0.6))),
        "blind": 1 / (1 + np.exp(-(2 * merit + 0.5 * male - 0.5))),
        "noise": rng.random(n),
    }
    return labels, {"gender": gender, "age_band": age}, repaid, scores


def lda_metrics(*, sandbox: bool = True, **rule) -> dict:
    """``metrics["lda"]`` as the pipeline writes it: validation candidates and policies,
    the baseline and the chosen one re-measured on another book (the test split)."""
    figures = {}
    for part, seed in (("validation", 0), ("test", 1)):
        labels, groups, repaid, scores = book(seed)
        audit = ValidationAudit(
            labels=labels, groups=groups, repaid=repaid if sandbox else None, n_boot=50, seed=0
        )
        figures[part] = (audit, groups, scores)
    audit, groups, scores = figures["validation"]
    table = [
        audit.figures(f"{model}@{cut:.4f}", scores[model], threshold=cut, family=family)
        for model, family in MODELS
        for cut in CUTS
    ]
    selection = select(table, baseline=BASELINE, **rule)
    # Group thresholds as the pipeline measures them: the 0/1 decisions read as scores.
    cuts = np.where(groups["gender"] == "male", 0.75, 0.35)
    decided = (scores["proxy"] > cuts).astype(float)
    policies = {
        "unmitigated": audit.figures("unmitigated", scores["proxy"], threshold=0.5),
        "mitigated": audit.figures("mitigated", decided, threshold=0.5),
    }
    test_audit, _, test_scores = figures["test"]

    def on_test(name: str) -> dict:
        model, cut = name.split("@")
        return test_audit.figures(name, test_scores[model], threshold=float(cut)).to_dict()

    return {
        "selection": selection.to_dict(),
        "candidates": [row.to_dict() for row in table],
        "test": {
            "baseline": on_test(selection.baseline.name),
            "chosen": on_test(selection.chosen.name),
        },
        "policies": {name: row.to_dict() | {"threshold": None} for name, row in policies.items()},
        "seconds": 1.25,
    }


@pytest.fixture(scope="module")
def discovery() -> dict:
    lda = lda_metrics()
    assert lda["selection"]["outcome"] == DISCOVERY
    assert lda["selection"]["chosen"] == "blind@0.4000"
    return lda


@pytest.fixture(scope="module")
def refutation() -> dict:
    lda = lda_metrics(auc_margin=0.0, agreement_margin=0.0)
    assert lda["selection"]["outcome"] == REFUTATION
    return lda


def table(lines: list[str], first_cell: str) -> dict[str, list[str]]:
    """The Markdown table whose header starts with ``first_cell``: label -> cells."""
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_cell} |"))
    rows = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[cells[0]] = cells[1:]
    return rows


def floored(value: float) -> str:
    return f"{math.floor(round(value * 1000, 6)) / 1000:.3f}"


def expected_cells(row: dict) -> dict[str, str]:
    cells = {
        "cut-off (approve iff score > t, everyone)": f"{row['threshold']:.4f}",
        "AUC": f"{row['auc']:.3f}",
        "agreement with the historical decisions": f"{100 * row['agreement']:.1f}%",
        "approval rate": f"{100 * row['approval_rate']:.1f}%",
    }
    for attribute, value in row["ratios"].items():
        low, high = row["ratio_intervals"][attribute]
        cells[f"{attribute} four-fifths ratio (95% CI)"] = (
            f"{floored(value)} ({floored(low)}-{floored(high)})"
        )
        cells[f"{attribute} equalized-odds difference"] = f"{row['equalized_odds'][attribute]:.3f}"
    if row["accuracy_repaid"] is not None:
        cells[f"accuracy against repayment ({SANDBOX})"] = f"{100 * row['accuracy_repaid']:.1f}%"
    return cells


def test_a_discovery_says_its_outcome_and_the_test_figures_of_both(discovery):
    lines = lda_section(discovery)
    assert lines[0] == f"## {SECTION}"
    summary = discovery["selection"]["summary"]
    assert summary.startswith("discovery: blind@0.4000 instead of proxy@0.5000; disparity")
    said = summary.removeprefix("discovery: ")
    assert f"**Discovery** (validation split, where the choice is made): {said}." in lines
    rows = table(lines, "figure (test split)")
    assert rows["figure (test split)"] == ["baseline: `proxy@0.5000`", "chosen: `blind@0.4000`"]
    baseline, chosen = (
        expected_cells(discovery["test"]["baseline"]),
        expected_cells(discovery["test"]["chosen"]),
    )
    assert set(rows) - {"figure (test split)", "---"} == set(baseline)
    for label in baseline:
        assert rows[label] == [baseline[label], chosen[label]], label


def test_a_refutation_keeps_the_baseline_in_one_column(refutation):
    lines = lda_section(refutation)
    text = "\n".join(lines)
    assert (
        "**Refutation within the searched family** (validation split, where the choice is "
        "made): none of 9 candidates (1 meeting the business need without harm;"
    ) in text
    rows = table(lines, "figure (test split)")
    assert rows["figure (test split)"] == ["baseline, kept: `proxy@0.5000`"]
    expected = expected_cells(refutation["test"]["baseline"])
    assert {label: cells[0] for label, cells in rows.items() if label in expected} == expected
    assert "The baseline `proxy@0.5000` stays: ranked 1 of the 1 candidate" in text
    assert "No other candidate met the business need without harm." in text
    assert "chosen" not in rows["figure (test split)"][0]


@pytest.mark.parametrize("sandbox", [True, False])
def test_accuracy_against_repayment_only_where_the_book_knows_who_repaid(sandbox):
    text = "\n".join(lda_section(lda_metrics(sandbox=sandbox)))
    assert (SANDBOX in text) is sandbox
    assert ("accuracy against repayment" in text) is sandbox


def test_why_the_chosen_one_won_names_its_rank_and_the_runner_up(discovery):
    text = "\n".join(lda_section(discovery))
    ranking = discovery["selection"]["ranking"]
    assert ranking[0] == "blind@0.4000"
    runner = ranking[1]
    reason = discovery["selection"]["reasons"][runner][0]
    assert (
        f"`blind@0.4000` ranked 1 of the {len(ranking)} candidates that met the business need "
        f"without harm, and has less disparity than the baseline `proxy@0.5000`. The "
        f"runner-up, `{runner}`: {reason}."
    ) in text


def test_rejections_are_counted_by_reason(refutation):
    reasons = refutation["selection"]["reasons"]
    lines = lda_section(refutation)
    rows = table(lines, "reason")
    auc_prefix, agreement_prefix = AUC_BELOW.split("{")[0], AGREEMENT_BELOW.split("{")[0]
    auc = sum(any(r.startswith(auc_prefix) for r in why) for why in reasons.values())
    agreement = sum(any(r.startswith(agreement_prefix) for r in why) for why in reasons.values())
    # The proxy's other cut-offs share its AUC; every other candidate agrees less with history.
    assert auc == 6 and agreement == 8
    assert rows["business necessity: AUC below the baseline's less 0.0"] == [str(auc)]
    assert rows[
        "business necessity: agreement with the historical decisions below the baseline's less 0.0"
    ] == [str(agreement)]
    assert f"Why the other {len(refutation['candidates']) - 1} candidates" in "\n".join(lines)
    # Every kind counted is a known kind: no reason falls through as raw text.
    assert all(" below the floor " not in kind for kind in rejection_counts(reasons))


def test_the_rule_families_and_time_are_stated(discovery):
    text = "\n".join(lda_section(discovery))
    assert "AUC at least the baseline's less 0.02" in text
    assert "agreement with the historical decisions at least the baseline's less 0.03" in text
    assert "approval rate within 0.05 of the baseline's" in text
    assert "no more than 0.01 below the baseline's" in text
    assert "each ratio's bootstrap 95% lower bound" in text
    assert (
        "Searched: 9 candidates (model and cut-off pairs) in 3 families (baseline 3, "
        "drop-one 3, regularisation 3;"
    ) in text
    assert "searched and selected in 1.2 s" in text


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0.7996, "0.799"), (0.8, "0.800"), (0.81, "0.810"), (1.0, "1.000"), (None, "n/a")],
)
def test_ratios_are_never_rounded_up_across_the_line(value, shown):
    assert ratio(value) == shown


def _collection(figure, label: str):
    return next(c for c in figure.axes[0].collections if c.get_label() == label)


def test_the_plot_marks_and_labels_baseline_chosen_and_policies(discovery, tmp_path):
    path = tmp_path / "lda_pareto.png"
    labels = plot_lda_pareto(discovery, path, attribute="gender")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for label in (
        "baseline: proxy@0.5000",
        "chosen: blind@0.4000",
        "unmitigated",
        "mitigated (group thresholds)",
        "four-fifths line (0.8)",
        "Pareto front of the candidates",
    ):
        assert label in labels
    figure = pareto_figure(discovery, attribute="gender")
    try:
        chosen = next(r for r in discovery["candidates"] if r["name"] == "blind@0.4000")
        star = _collection(figure, "chosen: blind@0.4000").get_offsets()
        np.testing.assert_allclose(star, [[chosen["agreement"], chosen["ratios"]["gender"]]])
        axis = figure.axes[0]
        assert "gender four-fifths ratio" in axis.get_ylabel()
        assert "agreement with the historical decisions" in axis.get_xlabel()
        assert any(line.get_label() == "four-fifths line (0.8)" and line.get_ydata()[0] == 0.8
                   for line in axis.lines)  # fmt: skip
    finally:
        plt.close(figure)


def test_the_plot_of_a_refutation_marks_the_kept_baseline(refutation, tmp_path):
    labels = plot_lda_pareto(refutation, tmp_path / "p.png", attribute="age_band")
    assert "baseline, kept: proxy@0.5000" in labels
    assert not any(label.startswith("chosen") for label in labels)


def test_pareto_front():
    points = [(0.8, 0.9), (0.9, 0.7), (0.7, 0.6), (0.85, 0.9), (0.9, 0.65)]
    assert pareto_front(points) == [3, 1]


@pytest.fixture(scope="module")
def trained_metrics() -> dict:
    """A real small run's metrics (the synthetic book: its repayment is known)."""
    config = TrainConfig(rows=3000, seed=5, bootstrap=10, save=False, reports_dir=None)
    return run_training(config).metrics


def test_the_audit_report_carries_the_section_the_plot_and_the_lda_row(trained_metrics, tmp_path):
    metrics = trained_metrics | {"tag": "fairgate-loan:test"}
    paths = write_reports(
        tmp_path,
        metrics,
        labels=np.array([0, 1, 0, 1]),
        scores=np.array([0.2, 0.8, 0.3, 0.9]),
        groups=np.array(["female", "female", "male", "male"]),
    )
    assert tmp_path / "lda_pareto.png" in paths
    assert (tmp_path / "lda_pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    audit = (tmp_path / "audit.md").read_text()
    assert f"## {SECTION}" in audit
    assert "![less discriminatory alternative](lda_pareto.png)" in audit
    rows = table(audit.splitlines(), "policy")
    header = rows["policy"]
    assert header[-1] == f"accuracy vs repaid ({SANDBOX})"
    chosen = metrics["lda"]["test"]["chosen"]
    assert rows["lda"][0] == f"{chosen['agreement']:.4f}"
    assert rows["lda"][-1] == f"{chosen['accuracy_repaid']:.4f}"
    sandbox = metrics["baseline"]["overall"]["sandbox"]["accuracy_repaid"]
    assert rows["unmitigated"][-1] == f"{sandbox:.4f}"
    assert f"Approve iff score > {chosen['threshold']:.4f}, for every group" in audit


def test_a_real_book_report_has_no_sandbox_column_and_thresholds_only_no_section(
    trained_metrics,
):
    metrics = {key: value for key, value in trained_metrics.items() if key != "lda"}
    for key in ("baseline", "randomized", "mitigated"):
        overall = {k: v for k, v in metrics[key]["overall"].items() if k != "sandbox"}
        metrics[key] = metrics[key] | {"overall": overall}
    audit = markdown_report(metrics)
    assert SANDBOX not in audit and "repaid" not in audit
    assert f"## {SECTION}" not in audit and "| lda |" not in audit
    assert "No less discriminatory alternative was searched (`--mitigation thresholds`)" in audit


tradeoff = script("tradeoff")


def test_the_tradeoff_doc_has_an_lda_column():
    text = tradeoff.PATH.read_text()
    header = next(line for line in text.splitlines() if line.startswith("| figure (dashboard"))
    assert tradeoff.HEADING["lda"] in header
    readme = text.split("## In the README")[1].split("## Derived figures")[0]
    rows = [line for line in readme.splitlines() if line.startswith("| ")]
    assert all(len(row.strip("|").split("|")) == 1 + len(tradeoff.MODES) for row in rows)
    assert "fairgate serve --port 3924 --workers 1 --policy lda" in text
    assert "fairgate probe --once --target http://127.0.0.1:3924 --json reports/lda.json" in text
    # The default's own figures, from the run: blind, so its twins never flip.
    data = json.loads(re.search(r"## Data\n\n```json\n(.*?)\n```", text, re.S).group(1))
    lda = data["modes"]["lda"]
    assert lda["flip_rate"] == 0 and lda["gap_median"] == 0


def _lda_bullet(**lda_row) -> str:
    from tests.test_tradeoff_doc import row

    lda = {"outcome": DISCOVERY, "chosen": "drop:x@0.3000", "baseline": BASELINE,
           "threshold": 0.3, "baseline_test_dp_ratio": 0.7, "candidates": 9}  # fmt: skip
    alike = {"flip_rate": 0.0, "favours_man": 0.0, "favours_woman": 0.0, "gap_median": 0.0}
    blind = row(**alike | {"test_dp_ratio": 0.82, "accuracy_cost": -0.048} | lda_row)
    return tradeoff._lda_bullet({"modes": {"unmitigated": row(), "lda": blind}, "lda": lda})


def test_the_lda_bullet_claims_alike_twins_only_when_the_probe_saw_them():
    text = _lda_bullet()
    assert "Identical twins are decided alike: no flips, and no extra income" in text
    assert "its demographic parity ratio is 0.820 (the naive model at 0.5: 1.000;" in text
    assert "at 4.8 points of accuracy" in text and SANDBOX not in text
    flipped = _lda_bullet(flip_rate=0.01, favours_man=0.01, gap_median=120.0)
    assert "decided alike" not in flipped
    assert (
        "Twin pairs decided differently: 1.0%, all favouring the man; median extra income a "
        "woman needs +$120" in flipped
    )
    paid = _lda_bullet(accuracy_repaid=0.706)
    assert SANDBOX not in paid  # the naive column has no repayment figure: no comparison
