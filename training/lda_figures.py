"""The figures one candidate decision rule is judged on, measured on the validation split.

A less-discriminatory-alternative search scores a few hundred (model, cut-off) pairs on
the same validation rows, so the rows' groups are encoded once (``ValidationAudit``) and
each candidate costs a few ``bincount`` calls. The quantities are fairlearn's, as
``training/fairness.py`` reports them: the four-fifths ratio is fairlearn's
``demographic_parity_ratio`` (lowest group approval rate over the highest) and the
equalized-odds difference its ``equalized_odds_difference`` (the larger of the TPR and FPR
gaps between groups), both over the groups large enough to judge; tests check both against
fairlearn's own functions. fairlearn's ``MetricFrame`` costs ~0.35 s per call on 50,000
rows, which is minutes over a search.

Example::

    audit = ValidationAudit(labels=y_val, groups={"gender": g, "age_band": a}, seed=0)
    figures = audit.figures("baseline@0.500", scores, threshold=0.5)
    figures.ratios["gender"], figures.ratio_intervals["gender"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Final

import numpy as np
from sklearn.metrics import roc_auc_score

from training.fairness import MIN_GROUP_SIZE

NOT_BINARY: Final[str] = "labels must be 0/1, got values {values}"
LENGTHS: Final[str] = "{name} has {got} rows, the labels {expected}"


@dataclass(frozen=True)
class Figures:
    """One candidate's row in the table a reviewer reads (no model object in it).

    ``ratios``: the four-fifths ratio per audited attribute, ``None`` where fewer than two
    groups are large enough to judge. ``ratio_intervals``: their stratified bootstrap 95%
    intervals. ``accuracy_repaid``: agreement with the sandbox's ground truth, ``None`` on
    a real book (nobody knows who would have repaid a denied loan).
    """

    name: str
    auc: float
    agreement: float
    approval_rate: float
    ratios: Mapping[str, float | None]
    ratio_intervals: Mapping[str, tuple[float, float] | None] = field(default_factory=dict)
    equalized_odds: Mapping[str, float | None] = field(default_factory=dict)
    accuracy_repaid: float | None = None
    family: str = ""
    threshold: float | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio_intervals"] = {
            k: None if v is None else list(v) for k, v in self.ratio_intervals.items()
        }
        return data


@dataclass(frozen=True)
class _Grouping:
    codes: np.ndarray  # group index per row; -1 for a group too small to judge
    sizes: np.ndarray  # rows per judged group
    positives: np.ndarray  # label-1 rows per judged group
    names: tuple[str, ...]


def _encode(groups: np.ndarray, labels: np.ndarray, min_group_size: int) -> _Grouping:
    names, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    judged = np.flatnonzero(sizes >= min_group_size)
    remap = np.full(len(names), -1, dtype=np.intp)
    remap[judged] = np.arange(len(judged))
    codes = remap[codes]
    kept = codes >= 0
    return _Grouping(
        codes=codes,
        sizes=sizes[judged],
        positives=np.bincount(codes[kept], weights=labels[kept], minlength=len(judged)),
        names=tuple(str(names[i]) for i in judged),
    )


class ValidationAudit:
    """The validation rows, their labels and groupings, encoded once for many candidates.

    Groups under ``min_group_size`` rows are left out of every ratio and difference, as in
    ``training.fairness.group_fairness``; an attribute with fewer than two groups left has
    no ratio (``None``). Every candidate's bootstrap uses the same ``seed``, so two
    candidates are compared on the same resampling noise and a run repeats exactly.
    """

    def __init__(
        self,
        *,
        labels: np.ndarray,
        groups: Mapping[str, np.ndarray],
        repaid: np.ndarray | None = None,
        n_boot: int = 200,
        seed: int = 0,
        min_group_size: int = MIN_GROUP_SIZE,
    ) -> None:
        labels = np.asarray(labels)
        values = np.unique(labels)
        if not np.isin(values, (0, 1)).all():
            raise ValueError(NOT_BINARY.format(values=values.tolist()))
        columns = {**groups, "repaid": repaid}
        for name, column in columns.items():
            if column is not None and len(column) != len(labels):
                raise ValueError(LENGTHS.format(name=name, got=len(column), expected=len(labels)))
        self.labels = labels.astype(np.int8)
        self.repaid = None if repaid is None else np.asarray(repaid).astype(np.int8)
        self.n_boot = n_boot
        self.seed = seed
        self._groupings = {
            name: _encode(column, self.labels, min_group_size) for name, column in groups.items()
        }

    def auc(self, scores: np.ndarray) -> float:
        return float(roc_auc_score(self.labels, scores))

    def figures(
        self,
        name: str,
        scores: np.ndarray,
        *,
        threshold: float,
        auc: float | None = None,
        family: str = "",
    ) -> Figures:
        """Figures of "approve iff score > threshold" (the served policy's comparison).

        ``auc`` is the model's, whatever the cut-off: pass it when scoring one model at
        several thresholds so it is computed once.
        """
        approved = (np.asarray(scores) > threshold).astype(np.int8)
        ratios, intervals, odds = {}, {}, {}
        for attribute, grouping in self._groupings.items():
            ratios[attribute], intervals[attribute] = self._ratio(approved, grouping)
            odds[attribute] = self._equalized_odds(approved, grouping)
        return Figures(
            name=name,
            auc=self.auc(scores) if auc is None else auc,
            agreement=float(np.mean(approved == self.labels)),
            approval_rate=float(approved.mean()),
            ratios=ratios,
            ratio_intervals=intervals,
            equalized_odds=odds,
            accuracy_repaid=None
            if self.repaid is None
            else float(np.mean(approved == self.repaid)),
            family=family,
            threshold=float(threshold),
        )

    def _ratio(
        self, approved: np.ndarray, grouping: _Grouping
    ) -> tuple[float | None, tuple[float, float] | None]:
        if len(grouping.sizes) < 2:
            return None, None
        kept = grouping.codes >= 0
        counts = np.bincount(
            grouping.codes[kept], weights=approved[kept], minlength=len(grouping.sizes)
        )
        rates = counts / grouping.sizes
        if rates.max() == 0:
            return None, None  # nobody approved: fairlearn's 0/0, no ratio
        # Stratified bootstrap as in training.fairness: a group's approvals in n draws with
        # replacement are Binomial(n, its rate), drawn directly.
        rng = np.random.default_rng(self.seed)
        boot = rng.binomial(grouping.sizes, rates, size=(self.n_boot, len(rates))) / grouping.sizes
        high = boot.max(axis=1)
        ratio = np.divide(boot.min(axis=1), high, out=np.full(self.n_boot, np.nan), where=high > 0)
        ratio = ratio[np.isfinite(ratio)]
        interval = (
            (float(np.percentile(ratio, 2.5)), float(np.percentile(ratio, 97.5)))
            if ratio.size
            else None
        )
        return float(rates.min() / rates.max()), interval

    def _equalized_odds(self, approved: np.ndarray, grouping: _Grouping) -> float | None:
        if len(grouping.sizes) < 2:
            return None
        kept = grouping.codes >= 0
        codes, approved, labels = grouping.codes[kept], approved[kept], self.labels[kept]
        k = len(grouping.sizes)
        negatives = grouping.sizes - grouping.positives
        if (grouping.positives == 0).any() or (negatives == 0).any():
            return None  # a rate with no denominator: not measured
        true_pos = np.bincount(codes, weights=approved * labels, minlength=k) / grouping.positives
        false_pos = np.bincount(codes, weights=approved * (1 - labels), minlength=k) / negatives
        return float(max(np.ptp(true_pos), np.ptp(false_pos)))
