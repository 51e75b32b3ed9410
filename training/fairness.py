"""Group fairness on held-out data, computed with fairlearn's MetricFrame.

Point estimates come from fairlearn itself; bootstrap intervals resample rows with a seeded
generator and recompute the same quantities with numpy (MetricFrame per resample would
cost minutes on a million rows).

Groups too small to judge. A group of fewer than ``MIN_GROUP_SIZE`` applicants keeps its
row (count, rates) but is marked ``too_small`` and left out of every disparity: one person
denied would otherwise make the demographic-parity ratio 0.00 with a 0%-0% interval. A
grouping with fewer than two groups large enough has no ratio or difference (``None``,
null in JSON), never a 0.00 or 1.00 standing for "not measured".
"""

from __future__ import annotations

import math
from typing import Any, Final

import numpy as np
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

# Below 30 a 95% interval on an approval rate is wider than +-18 points: no verdict on it.
MIN_GROUP_SIZE: Final[int] = 30
_DISPARITIES: Final[tuple[str, ...]] = (
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "true_positive_rate_difference",
    "false_positive_rate_difference",
    "equalized_odds_difference",
)

GROUP_METRICS = {
    "count": count,
    "selection_rate": selection_rate,
    "true_positive_rate": true_positive_rate,
    "false_positive_rate": false_positive_rate,
    "accuracy": accuracy_score,
}


def overall_metrics(y_true: np.ndarray, y_pred: np.ndarray, y_score: np.ndarray | None) -> dict:
    metrics = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1": float(f1_score(y_true, y_pred)),
        "selection_rate": float(np.mean(y_pred)),
    }
    if y_score is not None:
        metrics["roc_auc"] = float(roc_auc_score(y_true, y_score))
    return metrics


def _bootstrap_selection(
    y_pred: np.ndarray, groups: np.ndarray, *, n_boot: int, seed: int
) -> dict[str, Any]:
    """95% percentile intervals for per-group selection rate, DP difference and DP ratio.

    Stratified: each group is resampled within itself, so every resample holds every group
    at its observed size (a plain row bootstrap sometimes drops a small group, whose rate is
    then undefined). For 0/1 decisions, the number approved in n draws with replacement from
    a group is Binomial(n, observed rate), drawn directly: the same distribution as resampling
    rows, without materialising n_boot x n indices.
    """
    if not np.isin(y_pred, (0.0, 1.0)).all():
        raise ValueError("selection-rate bootstrap needs 0/1 decisions")
    names, codes = np.unique(groups.astype(str), return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    observed = np.bincount(codes, weights=y_pred, minlength=len(names)) / sizes
    rng = np.random.default_rng(seed)
    rates = rng.binomial(sizes, observed, size=(n_boot, len(names))) / sizes
    high, low = rates.max(axis=1), rates.min(axis=1)
    diff = high - low
    # A resample where every group's rate is 0 has no ratio; it is left out of the interval.
    ratio = np.divide(low, high, out=np.full(n_boot, np.nan), where=high > 0)

    def interval(values: np.ndarray) -> list[float]:
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            return [float("nan"), float("nan")]
        return [float(np.percentile(finite, 2.5)), float(np.percentile(finite, 97.5))]

    return {
        "selection_rate": {str(n): interval(rates[:, i]) for i, n in enumerate(names)},
        "demographic_parity_difference": interval(diff),
        "demographic_parity_ratio": interval(ratio),
        "n_boot": n_boot,
    }


def _measure(value: float) -> float | None:
    # fairlearn's 0/0 (every judged group's rate 0) is no ratio, and JSON has no NaN.
    return float(value) if math.isfinite(value) else None


def group_fairness(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    groups: np.ndarray,
    *,
    n_boot: int = 200,
    seed: int = 0,
    min_group_size: int = MIN_GROUP_SIZE,
) -> dict[str, Any]:
    """Per-group table and disparity summaries for one grouping of the rows.

    Returns ``by_group`` (each group's count, rates and ``too_small``), ``too_small``
    (group -> count, for groups under ``min_group_size``), the disparities over the other
    groups (``None`` when fewer than two), and ``bootstrap_95`` intervals (``None`` for a
    group too small, and for disparities that are ``None``).
    """
    frame = MetricFrame(
        metrics=GROUP_METRICS, y_true=y_true, y_pred=y_pred, sensitive_features=groups
    )
    by_group = {
        str(group): {name: float(value) for name, value in row.items()}
        for group, row in frame.by_group.to_dict(orient="index").items()
    }
    too_small = {
        g: int(row["count"]) for g, row in by_group.items() if row["count"] < min_group_size
    }
    for group, row in by_group.items():
        row["too_small"] = group in too_small
    keys = np.asarray(groups).astype(str)
    judged = ~np.isin(keys, list(too_small))
    result: dict[str, Any] = {
        "by_group": by_group,
        "min_group_size": min_group_size,
        "too_small": too_small,
        **dict.fromkeys(_DISPARITIES),
    }
    if len(by_group) - len(too_small) >= 2:
        # One frame gives every disparity; fairlearn's demographic_parity_* and
        # equalized_odds_difference would each rebuild it (same numbers, tested).
        if too_small:
            frame = MetricFrame(
                metrics=GROUP_METRICS,
                y_true=np.asarray(y_true)[judged],
                y_pred=np.asarray(y_pred)[judged],
                sensitive_features=keys[judged],
            )
        difference, ratio = frame.difference(), frame.ratio()
        result |= {
            "demographic_parity_difference": _measure(difference["selection_rate"]),
            "demographic_parity_ratio": _measure(ratio["selection_rate"]),
            "true_positive_rate_difference": _measure(difference["true_positive_rate"]),
            "false_positive_rate_difference": _measure(difference["false_positive_rate"]),
            "equalized_odds_difference": _measure(
                max(difference["true_positive_rate"], difference["false_positive_rate"])
            ),
        }
    result["bootstrap_95"] = _judged_intervals(
        np.asarray(y_pred, dtype=np.float64), keys, judged, list(by_group), n_boot=n_boot, seed=seed
    )
    return result


def _judged_intervals(
    y_pred: np.ndarray,
    keys: np.ndarray,
    judged: np.ndarray,
    names: list[str],
    *,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """``_bootstrap_selection`` over the judged rows; no interval for a group too small,
    nor for a disparity between fewer than two groups."""
    intervals: dict[str, Any] = {
        "selection_rate": dict.fromkeys(names),
        "demographic_parity_difference": None,
        "demographic_parity_ratio": None,
        "n_boot": n_boot,
    }
    if not judged.any():
        return intervals
    boot = _bootstrap_selection(y_pred[judged], keys[judged], n_boot=n_boot, seed=seed)
    intervals["selection_rate"] |= {
        group: [_measure(bound) for bound in bounds]
        for group, bounds in boot["selection_rate"].items()
    }
    if len(boot["selection_rate"]) >= 2:
        for name in ("demographic_parity_difference", "demographic_parity_ratio"):
            intervals[name] = [_measure(bound) for bound in boot[name]]
    return intervals


SELECTION_METRICS = {"count": count, "selection_rate": selection_rate}


def selection_fairness(
    y_pred: np.ndarray, groups: np.ndarray, *, n_boot: int = 200, seed: int = 0
) -> dict[str, Any]:
    """``group_fairness``'s label-free part, for decisions without outcomes (the live record):
    per-group count and selection rate, demographic parity difference and ratio (the
    four-fifths ratio), with the same bootstrap intervals."""
    # count and selection_rate read y_pred only; MetricFrame still wants a y_true.
    frame = MetricFrame(
        metrics=SELECTION_METRICS, y_true=y_pred, y_pred=y_pred, sensitive_features=groups
    )
    by_group = {
        str(group): {name: float(value) for name, value in row.items()}
        for group, row in frame.by_group.to_dict(orient="index").items()
    }
    return {
        "by_group": by_group,
        "demographic_parity_difference": float(frame.difference()["selection_rate"]),
        "demographic_parity_ratio": float(frame.ratio()["selection_rate"]),
        "bootstrap_95": _bootstrap_selection(
            y_pred.astype(np.float64), groups, n_boot=n_boot, seed=seed
        ),
    }


def sandbox_metrics(y_pred: np.ndarray, repaid: np.ndarray) -> dict[str, float]:
    """Agreement with who repaid: known only in the synthetic sandbox, where the book says
    whether every applicant, the denied included, would have repaid. A real book cannot
    say it of the applicants it denied, so these figures exist for the synthetic book alone.
    """
    return {"accuracy_repaid": float(accuracy_score(repaid, y_pred))}


def fairness_report(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_score: np.ndarray | None,
    groupings: dict[str, np.ndarray],
    *,
    n_boot: int,
    seed: int,
    repaid: np.ndarray | None = None,
) -> dict[str, Any]:
    """Overall metrics plus ``group_fairness`` for each named grouping (attribute or cross).

    With ``repaid`` (the synthetic book's ground truth), ``overall`` gains ``sandbox``:
    ``{"accuracy_repaid": ...}`` (``sandbox_metrics``).
    """
    overall: dict[str, Any] = overall_metrics(y_true, y_pred, y_score)
    if repaid is not None:
        overall["sandbox"] = sandbox_metrics(y_pred, repaid)
    return {
        "overall": overall,
        "groups": {
            name: group_fairness(y_true, y_pred, keys, n_boot=n_boot, seed=seed)
            for name, keys in groupings.items()
        },
    }
