"""The audit report's table of every policy on the test split, in one set of columns.

The group-threshold policies come from ``training.fairness.fairness_report`` (``baseline``,
``randomized``, ``mitigated``); the served default ``lda`` from its ``Figures`` on the test
split (``metrics["lda"]["test"]["chosen"]``), which carry no F1 or per-rate differences: a
``-`` in those cells. Accuracy against repayment is a last column when the book knows who
repaid (the synthetic sandbox) and absent otherwise.
"""

from __future__ import annotations

from typing import Any

from training.report_lda import SANDBOX, SECTION, disparity_attribute, ratio

__all__ = ["lda_paragraph", "lda_rule", "policy_table", "served_note"]


def _figure(value: float | None, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


def _sandbox(result: dict[str, Any]) -> float | None:
    """Accuracy against repayment, known on the synthetic book only."""
    return result["overall"].get("sandbox", {}).get("accuracy_repaid")


def _policy_row(label: str, result: dict[str, Any], attribute: str, sandbox: bool) -> str:
    g = result["groups"][attribute]
    disparities = " | ".join(
        _figure(g[name])
        for name in (
            "demographic_parity_difference",
            "demographic_parity_ratio",
            "true_positive_rate_difference",
            "false_positive_rate_difference",
            "equalized_odds_difference",
        )
    )
    row = (
        f"| {label} | {result['overall']['accuracy']:.4f} | {result['overall']['f1']:.4f} "
        f"| {result['overall']['selection_rate']:.4f} | {disparities} |"
    )
    return row + (f" {_figure(_sandbox(result))} |" if sandbox else "")


def _lda_row(chosen: dict[str, Any], attribute: str, sandbox: bool) -> str:
    """The served default in the same table, from its ``Figures`` on the test split: no F1
    or per-rate differences there (the search does not compute them)."""
    cells = [
        f"{chosen['agreement']:.4f}",
        "-",
        f"{chosen['approval_rate']:.4f}",
        "-",
        _figure(chosen["ratios"].get(attribute)),
        "-",
        "-",
        _figure(chosen["equalized_odds"].get(attribute)),
    ]
    if sandbox:
        cells.append(_figure(chosen.get("accuracy_repaid")))
    return "| lda | " + " | ".join(cells) + " |"


def policy_table(metrics: dict[str, Any], attribute: str) -> list[str]:
    """Every policy on the test split; accuracy against repayment where the book knows it."""
    results = (
        ("unmitigated", metrics["baseline"]),
        ("randomized", metrics["randomized"]),
        ("deterministic", metrics["mitigated"]),
    )
    lda = metrics.get("lda")
    sandbox = any(_sandbox(result) is not None for _, result in results) or (
        lda is not None and lda["test"]["chosen"].get("accuracy_repaid") is not None
    )
    header = (
        "| policy | accuracy (vs history) | F1 | approval rate | DP difference | DP ratio "
        "| TPR difference | FPR difference | EO difference |"
    )
    rule = "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    if sandbox:
        header += f" accuracy vs repaid ({SANDBOX}) |"
        rule += "---:|"
    rows = [header, rule]
    rows += [_policy_row(label, result, attribute, sandbox) for label, result in results]
    if lda is not None:
        rows.append(_lda_row(lda["test"]["chosen"], attribute, sandbox))
    return rows


def served_note(metrics: dict[str, Any]) -> str:
    if "lda" in metrics:
        return (
            "The served default is `lda`: one cut-off for everyone on a model that reads no "
            f'protected attribute (section "{SECTION}" below); `-` marks a figure the '
            "search does not compute. The group-threshold policies stay for comparison: the "
            "deterministic one (one threshold per group, `--policy mitigated`) and the "
            "randomized one, fairlearn's ThresholdOptimizer rule as fitted, realised here by "
            "fairlearn's own seeded `predict`."
        )
    return (
        "No less discriminatory alternative was searched (`--mitigation thresholds`): the "
        "deterministic policy (one threshold per group) is the one to serve. The randomized "
        "one is fairlearn's ThresholdOptimizer rule as fitted, realised here by fairlearn's "
        "own seeded `predict`."
    )


def lda_rule(metrics: dict[str, Any]) -> list[str]:
    chosen = metrics["lda"]["test"]["chosen"]
    return [
        "## The served policy (`lda`)",
        "",
        f"Approve iff score > {chosen['threshold']:.4f}, for every group and any unseen one, "
        f"on the model `{chosen['name']}` (its features: the contract's, without the "
        "protected attributes). How it was chosen: the last section.",
    ]


def lda_paragraph(metrics: dict[str, Any], attribute: str) -> list[str]:
    lda = metrics.get("lda")
    if lda is None:
        return []
    test = lda["test"]
    key = disparity_attribute(lda, attribute)
    before, after = test["baseline"]["ratios"].get(key), test["chosen"]["ratios"].get(key)
    outcome = lda["selection"]["outcome"]
    return [
        f"The served default, the attribute-blind alternative (`lda`, {outcome}): one cut-off "
        f"for everyone; on the test split the {key} four-fifths ratio is {ratio(after)} "
        f"(the blind baseline's {ratio(before)}) at {test['chosen']['agreement']:.1%} agreement "
        f"with the historical decisions (the baseline's {test['baseline']['agreement']:.1%}).",
        "",
    ]
