"""Compile fairlearn's randomized ThresholdOptimizer into one deterministic threshold per group.

A randomized rule approves some applicants by lottery, which no one can explain to the
applicant. Per group, the deterministic threshold is chosen on the validation split so that
the rate the constraint is about equals the randomized policy's expected rate on the same
rows: the selection rate for demographic parity, the true-positive rate for TPR parity (and
its complement FNR), the false-positive rate for FPR parity (and its complement TNR). For
equalized odds one threshold cannot in general hit both the TPR and the FPR target, so the
threshold minimising the larger miss is chosen and both misses are reported per group.

Example: a group whose randomized rule approves 0.6 x [score > 0.4] + 0.4 x [score > 0.7]
has an expected selection rate that some single cut reproduces; demographic parity keeps that
cut, so every group's selection rate stays where fairlearn put it.

A validation group the randomized policy holds no rule for (one outcome only, see
``training.mitigate``) gets no threshold of its own either: the unseen-group rule decides
it, and its ``GroupFit`` carries that rule's threshold, no targets, and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

from fairgate.policy import GroupRule, ThresholdPolicy
from training.mitigate import unfittable_groups

# Which rows each constraint's rate is measured on: all, label 1, label 0.
_RATES: Final[dict[str, tuple[str, ...]]] = {
    "demographic_parity": ("selection_rate",),
    "true_positive_rate_parity": ("true_positive_rate",),
    "false_negative_rate_parity": ("true_positive_rate",),  # FNR = 1 - TPR
    "false_positive_rate_parity": ("false_positive_rate",),
    "true_negative_rate_parity": ("false_positive_rate",),  # TNR = 1 - FPR
    "equalized_odds": ("true_positive_rate", "false_positive_rate"),
}


@dataclass(frozen=True)
class GroupFit:
    """One group's compiled threshold: targets (randomized, expected), achieved, and the miss.

    ``unfitted``: why the group has no rule of its own (then ``threshold`` is the unseen
    rule's and there are no targets).
    """

    threshold: float
    target: dict[str, float]
    achieved: dict[str, float]
    unfitted: str | None = None

    @property
    def gap(self) -> float | None:
        if not self.target:
            return None
        return max(abs(self.achieved[k] - self.target[k]) for k in self.target)

    def to_dict(self) -> dict[str, object]:
        data: dict[str, object] = {
            "threshold": self.threshold if np.isfinite(self.threshold) else "-inf",
            "target": self.target,
            "achieved": self.achieved,
            "gap": self.gap,
        }
        if self.unfitted is not None:
            data["unfitted"] = self.unfitted
        return data


def _rows(rate: str, labels: np.ndarray) -> np.ndarray:
    if rate == "selection_rate":
        return np.ones(len(labels), dtype=bool)
    return labels == (1 if rate == "true_positive_rate" else 0)


def _rate_at(candidates: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Share of ``scores`` strictly above each candidate threshold."""
    if len(scores) == 0:
        return np.zeros(len(candidates))
    ordered = np.sort(scores)
    return (len(ordered) - np.searchsorted(ordered, candidates, side="right")) / len(ordered)


def fit_group_threshold(
    scores: np.ndarray, labels: np.ndarray, probability: np.ndarray, constraint: str
) -> GroupFit:
    """The threshold on one group's validation rows that best matches the randomized rates.

    ``probability`` is the randomized policy's approval probability for each row; the
    targets are its means over the rows each rate is measured on.
    """
    if constraint not in _RATES:
        raise ValueError(f"unknown constraint {constraint!r}; known: {sorted(_RATES)}")
    # Approving strictly above an observed score, or everyone (-inf): every achievable rate.
    candidates = np.concatenate([[-np.inf], np.unique(scores)])
    target, curves = {}, {}
    for rate in _RATES[constraint]:
        rows = _rows(rate, labels)
        target[rate] = float(probability[rows].mean()) if rows.any() else 0.0
        curves[rate] = _rate_at(candidates, scores[rows])
    miss = np.max([np.abs(curves[r] - target[r]) for r in target], axis=0)
    best = int(np.argmin(miss))  # ties: the lowest threshold, i.e. the more lenient one
    return GroupFit(
        threshold=float(candidates[best]),
        target=target,
        achieved={r: float(curves[r][best]) for r in target},
    )


def deterministic_policy(
    randomized: ThresholdPolicy,
    *,
    scores: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
) -> tuple[ThresholdPolicy, dict[str, GroupFit]]:
    """The ``mitigated`` policy compiled from ``randomized`` on the validation rows."""
    probability = randomized.approval_probability(scores, groups)
    fits = {}
    for group in randomized.rules:
        mask = groups == group
        fits[group] = fit_group_threshold(
            scores[mask], labels[mask], probability[mask], randomized.constraint
        )
    draft = ThresholdPolicy(
        attributes=randomized.attributes,
        rules={g: GroupRule.threshold(f.threshold) for g, f in fits.items()},
        unseen=GroupRule.threshold(fits[next(iter(fits))].threshold),
        unseen_rule=randomized.unseen_rule,
        constraint=randomized.constraint,
        objective=randomized.objective,
        mode="mitigated",
    )
    # The unseen rule is chosen over the fitted groups' rows, as the randomized one was.
    fitted = np.isin(np.asarray(groups).astype(str), list(randomized.rules))
    policy = draft.with_unseen_rule(
        randomized.unseen_rule, scores=scores[fitted], groups=groups[fitted]
    )
    reasons = unfittable_groups(labels[~fitted], groups[~fitted]) if (~fitted).any() else {}
    for group, reason in reasons.items():
        fits[group] = GroupFit(
            threshold=policy.unseen.threshold0, target={}, achieved={}, unfitted=reason
        )
    return policy, fits
