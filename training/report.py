"""The audit report: JSON metrics, PNG plots and a Markdown page a non-engineer can read.

Everything is said in the contract's own terms: its attribute names exactly as written
(``Age_band``, never a lower-cased ``age_band``) and its policy grouping as the audit named
it. Groups too small to judge (``training.fairness``) are named in each headline, never
ranked in it; policy groups without a threshold of their own (``training.mitigate``) are
listed with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")  # reports are written on headless machines
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from training.lda_plot import plot_lda_pareto
from training.report_lda import disparity_attribute, lda_section
from training.report_policies import lda_paragraph, lda_rule, policy_table, served_note

FOUR_FIFTHS: Final[float] = 0.8
LDA_PLOT: Final[str] = "lda_pareto.png"
_PLOTTED: Final[tuple[str, ...]] = ("selection_rate", "true_positive_rate", "false_positive_rate")


def _who(group: str, attribute: str) -> str:
    # In the contract's own terms: the report knows no attribute by name.
    return f"applicants with {attribute} {group}"


def _sentence(text: str) -> str:
    # str.capitalize() would lower-case the rest: "Applicants with age_band" for Age_band.
    return text[:1].upper() + text[1:]


def _too_small(attribute: str, fairness: dict[str, Any]) -> str:
    """E.g. ' Too small to judge (fewer than 30 applicants): Age_band 65+ (4).'"""
    if not fairness["too_small"]:
        return ""
    named = ", ".join(f"{group} ({count})" for group, count in fairness["too_small"].items())
    return (
        f" Too small to judge (fewer than {fairness['min_group_size']} applicants): "
        f"{attribute} {named}."
    )


def headline(attribute: str, fairness: dict[str, Any]) -> str:
    """One sentence, e.g. 'Applicants with gender female were approved at 31% against 58% for
    applicants with gender male; ratio 0.53, below the four-fifths line.', over the groups
    large enough to judge, then the ones too small (``_too_small``)."""
    rates = {
        g: row["selection_rate"]
        for g, row in fairness["by_group"].items()
        if g not in fairness["too_small"]
    }
    ratio = fairness["demographic_parity_ratio"]
    small = _too_small(attribute, fairness)
    if len(rates) < 2:
        return (
            f"No approval ratio by {attribute}: fewer than two groups have "
            f"{fairness['min_group_size']} applicants or more." + small
        )
    if ratio is None:
        return f"No approval ratio by {attribute}: no group large enough was approved." + small
    low, high = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)
    verdict = "below" if ratio < FOUR_FIFTHS else "at or above"
    return (
        f"{_sentence(_who(low, attribute))} were approved at {rates[low]:.0%} against "
        f"{rates[high]:.0%} for {_who(high, attribute)}; ratio {ratio:.2f}, {verdict} "
        "the four-fifths line." + small
    )


def _figure(value: float | None, spec: str = ".4f") -> str:
    return "n/a" if value is None else format(value, spec)


def policy_grouping(metrics: dict[str, Any]) -> str:
    """The policy grouping's name among the audited ones, e.g. ``gender&age_band``: the
    policy attributes joined with the contract's separator (1 to 3 characters), whatever
    it is."""
    attributes = metrics["config"]["attributes"]
    names = metrics["baseline"]["groups"]
    if len(attributes) == 1:
        return str(attributes[0])
    start = len(attributes[0])
    for name in names:
        for width in (1, 2, 3):
            if name[start : start + width].join(attributes) == name:
                return str(name)
    raise KeyError(f"no audited grouping joins the policy attributes {attributes}: {list(names)}")


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
    """Per-group ROC curves with each group's fitted threshold marked on its curve.

    A group with one outcome only has no ROC curve (its false- or true-positive rate is
    0/0); it is named in the legend instead of drawn."""
    figure, axis = plt.subplots(figsize=(5.5, 5))
    for group in sorted(set(groups.tolist())):
        mask = groups == group
        if np.unique(labels[mask]).size < 2:
            axis.plot([], [], " ", label=f"{group}: one outcome only, no curve")
            continue
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
        interval = fairness["bootstrap_95"]["selection_rate"][group]
        if row["too_small"]:
            shown = "too small to judge"
        elif interval is None or None in interval:
            shown = "no interval"
        else:
            shown = f"{interval[0]:.1%}-{interval[1]:.1%}"
        rows.append(
            f"| {group} | {row['count']:.0f} | {row['selection_rate']:.1%} ({shown}) | "
            f"{row['true_positive_rate']:.1%} | {row['false_positive_rate']:.1%} | "
            f"{row['accuracy']:.1%} |"
        )
    return rows


def _fit_rows(metrics: dict[str, Any]) -> list[str]:
    rows = []
    for group, fit in metrics["deterministic_fit"].items():
        threshold = fit["threshold"]
        shown = threshold if isinstance(threshold, str) else f"{threshold:.4f}"
        if "unfitted" in fit:
            rows.append(f"| {group} | {shown} (unseen-group rule) | none | - | - | - |")
        for rate, target in fit["target"].items():
            rows.append(
                f"| {group} | {shown} | {rate.replace('_', ' ')} | {target:.4f} | "
                f"{fit['achieved'][rate]:.4f} | {abs(fit['achieved'][rate] - target):.4f} |"
            )
    return rows


def _unfitted(metrics: dict[str, Any]) -> dict[str, str]:
    """Policy groups without a threshold of their own, with the reason."""
    return {
        group: fit["unfitted"]
        for group, fit in metrics["deterministic_fit"].items()
        if "unfitted" in fit
    }


def markdown_report(metrics: dict[str, Any]) -> str:
    base, after = metrics["baseline"], metrics["mitigated"]
    policy_attr = policy_grouping(metrics)
    data = metrics["data"]
    tradeoff = metrics["tradeoff"]
    unfitted = _unfitted(metrics)
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
        f"{after['overall']['accuracy']:.1%} ({tradeoff['accuracy_cost']:+.1%} points); "
        f"the demographic parity ratio from {_figure(tradeoff['dp_ratio_before'], '.2f')} to "
        f"{_figure(tradeoff['dp_ratio_after'], '.2f')}.",
        "",
        *lda_paragraph(metrics, policy_attr),
        "The four-fifths line: a group's approval rate below 80% of the most-approved group's "
        "is the usual red flag for disparate impact. Groups of fewer than "
        f"{base['groups'][policy_attr]['min_group_size']} applicants in the test split are "
        "too small to judge: they are shown, but left out of every ratio and difference.",
        "",
        "## Every policy (test split)",
        "",
        served_note(metrics),
        "",
        *policy_table(metrics, policy_attr),
    ]
    lines += [
        "",
        "## How close the deterministic thresholds come (validation split)",
        "",
        f"Per group, the rate `{metrics['config']['constraint']}` is about, as the randomized "
        "rule expects it and as the single threshold achieves it.",
        "",
        "| group | threshold | rate | randomized (target) | deterministic | gap |",
        "|---|---:|---|---:|---:|---:|",
        *_fit_rows(metrics),
    ]
    if unfitted:
        lines += ["", "Groups without a threshold of their own:", ""]
        lines += [f"- {policy_attr} {group}: {reason}." for group, reason in unfitted.items()]
    for attribute in base["groups"]:
        lines += [
            "",
            f"## By {attribute}",
            "",
            "Before: " + headline(attribute, base["groups"][attribute]),
            "",
            "After: " + headline(attribute, after["groups"][attribute]),
            "",
            "Before:",
            "",
            *_table(base, attribute),
            "",
            "After:",
            "",
            *_table(after, attribute),
        ]
    heading = "## The decision policy"
    if "lda" in metrics:
        lines += ["", *lda_rule(metrics)]
        heading = "## The group-threshold policy (`mitigated`)"
    lines += [
        "",
        heading,
        "",
        f"Constraint `{metrics['policy']['constraint']}`, "
        f"objective `{metrics['policy']['objective']}`, version `{metrics['policy']['version']}`.",
        "",
        "| group | rule |",
        "|---|---|",
    ]
    for group, rule in metrics["policy"]["rules"].items():
        lines.append(f"| {group} | {rule['reads']} |")
    for group in unfitted:
        lines.append(f"| {group} | the unseen-group rule (see above) |")
    lines.append(
        f"| unseen group ({metrics['policy']['unseen_rule']}) | "
        f"{metrics['policy']['unseen']['reads']} |"
    )
    if "lda" in metrics:
        lines += ["", *lda_section(metrics["lda"], image=LDA_PLOT)]
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
    attribute = policy_grouping(metrics)
    paths = [
        directory / "metrics.json",
        directory / "group_rates.png",
        directory / "roc_thresholds.png",
        directory / "audit.md",
    ]
    paths[0].write_text(json.dumps(metrics, indent=2, sort_keys=True))
    plot_group_rates(metrics["baseline"], metrics["mitigated"], attribute, paths[1])
    plot_roc_with_thresholds(labels, scores, groups, metrics["policy"], paths[2])
    if "lda" in metrics:
        paths.insert(3, directory / LDA_PLOT)
        lda = metrics["lda"]
        plot_lda_pareto(lda, paths[3], attribute=disparity_attribute(lda, attribute))
    paths[-1].write_text(markdown_report(metrics))
    return paths
