"""The audit report: JSON metrics, PNG plots and a Markdown page a non-engineer can read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")  # reports are written on headless machines
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

FOUR_FIFTHS: Final[float] = 0.8
_PLOTTED: Final[tuple[str, ...]] = ("selection_rate", "true_positive_rate", "false_positive_rate")


def _who(group: str, attribute: str) -> str:
    # In the contract's own terms: the report knows no attribute by name.
    return f"applicants with {attribute} {group}"


def headline(attribute: str, fairness: dict[str, Any]) -> str:
    """One sentence, e.g. 'Applicants with gender female were approved at 31% against 58% for
    applicants with gender male; ratio 0.53, below the four-fifths line.'"""
    rates = {g: row["selection_rate"] for g, row in fairness["by_group"].items()}
    low, high = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)
    ratio = fairness["demographic_parity_ratio"]
    verdict = "below" if ratio < FOUR_FIFTHS else "at or above"
    return (
        f"{_who(low, attribute).capitalize()} were approved at {rates[low]:.0%} against "
        f"{rates[high]:.0%} for {_who(high, attribute)}; ratio {ratio:.2f}, {verdict} "
        "the four-fifths line."
    )


def plot_group_rates(baseline: dict, mitigated: dict, attribute: str, path: Path) -> None:
    groups = list(baseline["groups"][attribute]["by_group"])
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    x = np.arange(len(groups))
    for axis, metric in zip(axes, _PLOTTED, strict=True):
        for offset, (label, result) in zip(
            (-0.2, 0.2), (("before", baseline), ("after", mitigated)), strict=True
        ):
            values = [result["groups"][attribute]["by_group"][g][metric] for g in groups]
            axis.bar(x + offset, values, width=0.4, label=label)
        axis.set_xticks(x, groups, rotation=30)
        axis.set_title(metric.replace("_", " "))
        axis.set_ylim(0, 1)
    axes[0].legend()
    figure.suptitle(f"Per-group rates by {attribute}, before and after mitigation")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_roc_with_thresholds(
    labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, policy: dict[str, Any], path: Path
) -> None:
    """Per-group ROC curves with each group's fitted threshold marked on its curve."""
    figure, axis = plt.subplots(figsize=(5.5, 5))
    for group in sorted(set(groups.tolist())):
        mask = groups == group
        fpr, tpr, thresholds = roc_curve(labels[mask], scores[mask])
        (line,) = axis.plot(fpr, tpr, label=str(group))
        rule = policy["rules"].get(str(group))
        if rule is not None:
            threshold = float(
                rule["threshold0"] if rule["p0"] >= rule["p1"] else rule["threshold1"]
            )
            if np.isfinite(threshold):
                at = int(np.argmin(np.abs(thresholds - threshold)))
                axis.plot(fpr[at], tpr[at], "o", color=line.get_color())
    axis.plot([0, 1], [0, 1], ":", color="grey")
    axis.set_xlabel("false positive rate")
    axis.set_ylabel("true positive rate")
    axis.set_title("ROC per group; dots: the policy's main threshold")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _table(result: dict, attribute: str) -> list[str]:
    rows = [
        "| group | count | approval rate (95% CI) | TPR | FPR | accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    fairness = result["groups"][attribute]
    for group, row in fairness["by_group"].items():
        low, high = fairness["bootstrap_95"]["selection_rate"][group]
        rows.append(
            f"| {group} | {row['count']:.0f} | {row['selection_rate']:.1%} "
            f"({low:.1%}-{high:.1%}) | {row['true_positive_rate']:.1%} | "
            f"{row['false_positive_rate']:.1%} | {row['accuracy']:.1%} |"
        )
    return rows


def _policy_row(label: str, result: dict[str, Any], attribute: str) -> str:
    g = result["groups"][attribute]
    return (
        f"| {label} | {result['overall']['accuracy']:.4f} | {result['overall']['f1']:.4f} "
        f"| {result['overall']['selection_rate']:.4f} | "
        f"{g['demographic_parity_difference']:.4f} | {g['demographic_parity_ratio']:.4f} | "
        f"{g['true_positive_rate_difference']:.4f} | {g['false_positive_rate_difference']:.4f} | "
        f"{g['equalized_odds_difference']:.4f} |"
    )


def markdown_report(metrics: dict[str, Any]) -> str:
    base, after = metrics["baseline"], metrics["mitigated"]
    policy_attr = "&".join(metrics["config"]["attributes"])
    data = metrics["data"]
    lines = [
        f"# Fairness audit: {metrics['tag']}",
        "",
        f"Data: {data['source']}, {data['rows']:,} applications "
        f"(test split {data['test_rows']:,}), "
        f"fingerprint `{data['fingerprint'][:16]}`. Model: {metrics['config']['model']} "
        f"({'with' if metrics['config']['include_sensitive'] else 'without'} protected attributes "
        f"as features). Seed {metrics['config']['seed']}.",
        "",
        "## In one paragraph",
        "",
        "Before mitigation: " + headline(policy_attr, base["groups"][policy_attr]),
        "",
        f"After the deterministic `{metrics['config']['constraint']}` thresholds: "
        + headline(policy_attr, after["groups"][policy_attr]),
        "",
        f"Accuracy moved from {base['overall']['accuracy']:.1%} to "
        f"{after['overall']['accuracy']:.1%} ({metrics['tradeoff']['accuracy_cost']:+.1%} points); "
        f"the demographic parity ratio from {metrics['tradeoff']['dp_ratio_before']:.2f} to "
        f"{metrics['tradeoff']['dp_ratio_after']:.2f}.",
        "",
        "The four-fifths line: a group's approval rate below 80% of the most-approved group's "
        "is the usual red flag for disparate impact.",
        "",
        "## Unmitigated, randomized and deterministic policies (test split)",
        "",
        "The served default is the deterministic one (one threshold per group); the randomized "
        "one is fairlearn's ThresholdOptimizer rule as fitted, realised here by fairlearn's "
        "own seeded `predict`.",
        "",
        "| policy | accuracy | F1 | approval rate | DP difference | DP ratio | TPR difference "
        "| FPR difference | EO difference |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, result in (
        ("unmitigated", base),
        ("randomized", metrics["randomized"]),
        ("deterministic", after),
    ):
        lines.append(_policy_row(label, result, policy_attr))
    lines += [
        "",
        "## How close the deterministic thresholds come (validation split)",
        "",
        f"Per group, the rate `{metrics['config']['constraint']}` is about, as the randomized "
        "rule expects it and as the single threshold achieves it.",
        "",
        "| group | threshold | rate | randomized (target) | deterministic | gap |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for group, fit in metrics["deterministic_fit"].items():
        for rate, target in fit["target"].items():
            threshold = fit["threshold"]
            shown = threshold if isinstance(threshold, str) else f"{threshold:.4f}"
            lines.append(
                f"| {group} | {shown} | {rate.replace('_', ' ')} | {target:.4f} | "
                f"{fit['achieved'][rate]:.4f} | {abs(fit['achieved'][rate] - target):.4f} |"
            )
    for attribute in base["groups"]:
        lines += [
            "",
            f"## By {attribute}",
            "",
            headline(attribute, base["groups"][attribute]) + " (before)",
            "",
            "Before:",
            "",
            *_table(base, attribute),
            "",
            "After:",
            "",
            *_table(after, attribute),
        ]
    lines += [
        "",
        "## The decision policy",
        "",
        f"Constraint `{metrics['policy']['constraint']}`, "
        f"objective `{metrics['policy']['objective']}`, version `{metrics['policy']['version']}`.",
        "",
        "| group | rule |",
        "|---|---|",
    ]
    for group, rule in metrics["policy"]["rules"].items():
        lines.append(f"| {group} | {rule['reads']} |")
    lines.append(
        f"| unseen group ({metrics['policy']['unseen_rule']}) | "
        f"{metrics['policy']['unseen']['reads']} |"
    )
    lines += ["", "![rates](group_rates.png)", "", "![roc](roc_thresholds.png)", ""]
    return "\n".join(lines)


def write_reports(
    directory: Path,
    metrics: dict[str, Any],
    *,
    labels: np.ndarray,
    scores: np.ndarray,
    groups: np.ndarray,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    attribute = "&".join(metrics["config"]["attributes"])
    paths = [
        directory / "metrics.json",
        directory / "group_rates.png",
        directory / "roc_thresholds.png",
        directory / "audit.md",
    ]
    paths[0].write_text(json.dumps(metrics, indent=2, sort_keys=True))
    plot_group_rates(metrics["baseline"], metrics["mitigated"], attribute, paths[1])
    plot_roc_with_thresholds(labels, scores, groups, metrics["policy"], paths[2])
    paths[3].write_text(markdown_report(metrics))
    return paths
