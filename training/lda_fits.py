"""The models a less-discriminatory-alternative search fits, each compiled to a scorer.

All of them are logistic regressions on the baseline's standardised columns (one scaler,
so every coefficient is on one scale and comparable), compiled to the serving format
``LogisticScorer(mean, scale, coef, intercept)``. A model fitted without some columns
gets coefficient 0, mean 0 and scale 1 on them: it still takes the full feature vector,
so its artifact needs no new format, and a reader sees plainly which columns it ignores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from fairlearn.reductions import DemographicParity, EqualizedOdds, GridSearch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from fairgate.scorer import LogisticScorer

Block = tuple[str, Sequence[int]]
Reduction = Literal["demographic-parity", "equalized-odds"]
Family = Literal[
    "baseline", "drop-one", "greedy-drop", "regularisation", "demographic-parity", "equalized-odds"
]


@dataclass(frozen=True)
class FittedModel:
    """A model of the search, before any cut-off: what it ignores and why it is there."""

    name: str
    family: Family
    dropped: tuple[str, ...]
    c: float
    scorer: LogisticScorer
    note: str = ""


class LogisticFits:
    """Logistic fits on standardised training columns (``scaled = (x - mean) / scale``)."""

    def __init__(
        self,
        *,
        scaled: np.ndarray,
        labels: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
        seed: int,
    ) -> None:
        self.scaled = scaled
        self.labels = np.asarray(labels)
        self.mean = mean
        self.scale = scale
        self.seed = seed

    def scorer(self, coef: np.ndarray, intercept: float, kept: np.ndarray) -> LogisticScorer:
        """The serving scorer of coefficients fitted on the ``kept`` columns."""
        read = np.zeros(len(self.mean), dtype=bool)
        read[kept] = True
        full = np.zeros((1, len(self.mean)))
        full[0, kept] = coef
        return LogisticScorer(
            mean=np.where(read, self.mean, 0.0),
            scale=np.where(read, self.scale, 1.0),
            coef=full,
            intercept=np.array([intercept]),
        )

    def fit(self, kept: np.ndarray, *, c: float = 1.0) -> LogisticScorer:
        """The trainer's logistic regression (``training.model``) on the ``kept`` columns."""
        model = LogisticRegression(C=c, max_iter=1000, random_state=self.seed)
        model.fit(self.scaled[:, kept], self.labels)
        return self.scorer(model.coef_[0], float(model.intercept_[0]), kept)


def ratio_at_rate(decision: np.ndarray, codes: np.ndarray, sizes: np.ndarray, rate: float) -> float:
    """Four-fifths ratio when the top ``rate`` share by ``decision`` is approved: two models
    compared at one approval rate, so a drop is not credited for merely approving more."""
    approved = decision > np.quantile(decision, 1.0 - rate)
    rates = np.bincount(codes, weights=approved, minlength=len(sizes)) / sizes
    return float(rates.min() / rates.max()) if rates.max() > 0 else 0.0


class BlockDrops:
    """Models without some feature blocks, each set of dropped blocks fitted once and
    judged on the training split: AUC, and the policy attribute's ratio at the baseline's
    approval rate ``rate``. The validation split is left for the figures the selection
    reads, so the greedy path is not fitted to them."""

    def __init__(
        self,
        fits: LogisticFits,
        blocks: Sequence[Block],
        groups: np.ndarray,
        *,
        rate: float,
        min_group_size: int,
    ) -> None:
        self.fits = fits
        self.rate = rate
        self.columns = {name: np.asarray(cols, dtype=np.intp) for name, cols in blocks}
        names, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
        sizes = np.bincount(codes, minlength=len(names))
        # Groups too small to judge are left out, as everywhere in the audit.
        self.judged = sizes[codes] >= min_group_size
        self.comparable = int((sizes >= min_group_size).sum()) >= 2
        _, self.codes = np.unique(codes[self.judged], return_inverse=True)
        self.sizes = np.bincount(self.codes)
        self._models: dict[frozenset[str], LogisticScorer] = {}

    def model(self, dropped: frozenset[str]) -> LogisticScorer:
        if dropped not in self._models:
            every = np.arange(len(self.fits.mean))
            gone = [self.columns[name] for name in dropped]
            kept = np.setdiff1d(every, np.concatenate(gone)) if gone else every
            self._models[dropped] = self.fits.fit(kept)
        return self._models[dropped]

    def judge(self, dropped: frozenset[str]) -> tuple[float, float]:
        """(training AUC, policy attribute's ratio at the baseline's approval rate)."""
        decision = self.fits.scaled @ self.model(dropped).coef[0]
        auc = float(roc_auc_score(self.fits.labels, decision))
        ratio = ratio_at_rate(decision[self.judged], self.codes, self.sizes, self.rate)
        return auc, ratio

    def greedy(self, *, steps: int, auc_margin: float) -> list[tuple[tuple[str, ...], str]]:
        """[(blocks dropped so far, why the last one)], one entry per step taken.

        Each step drops the block whose removal (refitted, not merely occluded: the other
        columns take up what they can) raises the ratio most, among the drops that keep
        the training AUC within ``auc_margin`` of the baseline's; a drop that costs more
        would fail the business-necessity bound anyway. It stops when no drop raises it.
        """
        if not self.comparable:
            return []
        floor = self.judge(frozenset())[0] - auc_margin
        dropped: tuple[str, ...] = ()
        sequence = []
        for _ in range(steps):
            current = self.judge(frozenset(dropped))[1]
            left = [name for name in self.columns if name not in dropped]
            if len(left) <= 1:
                break  # a model reads at least one block
            judged = {name: self.judge(frozenset((*dropped, name))) for name in left}
            eligible = {name: ratio for name, (auc, ratio) in judged.items() if auc >= floor}
            best = max(eligible, key=eligible.__getitem__, default=None)
            if best is None or eligible[best] <= current:
                break
            dropped = (*dropped, best)
            auc, ratio = judged[best]
            sequence.append(
                (
                    dropped,
                    f"greedy step {len(dropped)}: dropping {best} raises the policy "
                    f"attribute's ratio at the baseline approval rate {current:.3f} -> "
                    f"{ratio:.3f} (training split, AUC {auc:.3f}), the most among drops "
                    f"keeping the AUC within {auc_margin} of the baseline's",
                )
            )
        return sequence


def reduction_models(
    fits: LogisticFits,
    groups: np.ndarray,
    *,
    reduction: Reduction,
    grid_size: int,
    grid_limit: float,
) -> list[FittedModel]:
    """Every deterministic predictor of fairlearn's ``GridSearch`` under ``reduction``.

    The protected attribute goes in at fit only (``sensitive_features=``); each predictor
    is an ordinary logistic regression on the model columns. fairlearn's own pick
    (``best_idx_``, a fixed error/violation trade-off) is not used: the selection rule
    chooses among all of them, cut-offs included.
    """
    constraint = DemographicParity() if reduction == "demographic-parity" else EqualizedOdds()
    grid = GridSearch(
        LogisticRegression(max_iter=1000, random_state=fits.seed),
        constraints=constraint,
        grid_size=grid_size,
        grid_limit=grid_limit,
    )
    grid.fit(fits.scaled, fits.labels, sensitive_features=np.asarray(groups).astype(str))
    every = np.arange(len(fits.mean))
    models = []
    for i, predictor in enumerate(grid.predictors_):
        # A grid point whose relabelled targets are all one class gets fairlearn's constant
        # DummyClassifier: approve everyone or no one, not a model to serve.
        if not isinstance(predictor, LogisticRegression):
            continue
        lambdas = ", ".join(f"{v:+.2f}" for v in grid.lambda_vecs_.iloc[:, i] if v != 0)
        models.append(
            FittedModel(
                name=f"{reduction}:{i:02d}",
                family=reduction,
                dropped=(),
                c=1.0,
                scorer=fits.scorer(predictor.coef_[0], float(predictor.intercept_[0]), every),
                note=f"fairlearn GridSearch point {i}, Lagrange multipliers [{lambdas or '0'}]",
            )
        )
    return models
