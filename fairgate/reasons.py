"""Principal reasons for a denial, in the contract's terms, computed from the served model.

A denied applicant is told what counted most against them (US ECOA / Regulation B adverse
action notices: up to four specific reasons). Each model feature's contribution is measured
against a reference applicant recorded at training (the column-wise median of the approved
applicants' features):

- logistic model: ``coef_j / scale_j * (x_j - reference_j)``, exact in log-odds;
- gradient boosting (no additive form): the score change when the feature alone is set to
  the reference, ``score(x) - score(x with feature j from the reference)`` (a one-at-a-time
  occlusion, model-agnostic); the compiled trees score all of a denial's occlusions from
  their leaf table without building the occluded rows (``TreeOcclusion``), any other scorer
  scores the occluded rows in one call.

A one-hot feature's columns count as one feature. Only contributions below zero are reasons,
most negative first, at most four. A feature that reads a protected attribute's field (or is
``sensitive``), or a field the contract marks ``reasons = false``, is never a reason; nor is a
feature whose field the applicant left out (filled as the contract says): the applicant did
not give that value, so it is not theirs to be told about. Codes
are ``R-`` + the feature name in capitals: stable across retraining and contracts' versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from fairgate.contract import Contract, Feature
from fairgate.contract_features import ContractFeatures, feature_columns
from fairgate.contract_missing import missing_mask
from fairgate.scorer import LogisticScorer, Scorer, TreeOcclusion, TreeScorer

MAX_REASONS: Final[int] = 4


@dataclass(frozen=True)
class Reason:
    code: str
    text: str


@dataclass(frozen=True)
class _Block:
    feature: Feature
    columns: np.ndarray  # model-column indices
    label: str
    values: tuple[str, ...]  # one_hot: the category of each column


def reference_applicant(features: np.ndarray, approved: np.ndarray) -> np.ndarray:
    """The reference in model-column space: the median of the approved applicants' rows."""
    chosen = features[np.asarray(approved, dtype=bool)]
    if len(chosen) == 0:
        raise ValueError("no approved applicant to take a reference from")
    return np.median(chosen, axis=0)


def eligible(contract: Contract, feature: Feature) -> bool:
    """Whether a feature may be given as a reason (never a protected attribute's field)."""
    protected = {p.field for p in contract.protected}
    if feature.sensitive or protected & set(feature.inputs):
        return False
    return all(contract.field(name).reasons for name in feature.inputs)


def _label(contract: Contract, feature: Feature) -> str:
    if feature.reason:
        return feature.reason
    return feature.name if feature.transform == "ratio" else feature.field or feature.name


class Explainer:
    """Reasons for denials under one served model (``features`` as the model sees them).

    Everything that does not depend on the applicant is prepared here, so a denial costs a
    few numpy calls: the column-to-feature sum is one matrix product, and every reason a
    numeric feature can give ("too low", "too high") exists before the first request.
    """

    def __init__(self, features: ContractFeatures, scorer: Scorer, reference: np.ndarray) -> None:
        contract = features.contract
        if len(reference) != len(features.names):
            raise ValueError("the reference has not one value per model column")
        self.contract = contract
        self.scorer = scorer
        self.reference = np.asarray(reference, dtype=np.float64)
        index = {name: i for i, name in enumerate(features.names)}
        blocks = []
        for feature in features.features:
            if not eligible(contract, feature):
                continue
            names = feature_columns(contract, feature)
            values = tuple(n.removeprefix(_prefix(feature)) for n in names)
            blocks.append(
                _Block(feature, np.array([index[n] for n in names]), _label(contract, feature),
                       values if feature.transform == "one_hot" else ())
            )  # fmt: skip
        self.blocks = blocks
        # (columns, features): 1 where a model column belongs to an eligible feature.
        self._sum = np.zeros((len(features.names), len(blocks)))
        for j, block in enumerate(blocks):
            self._sum[block.columns, j] = 1.0
        self._first = np.array([b.columns[0] for b in blocks], dtype=np.intp)
        self._first_reference = self.reference[self._first]
        # Occlusion (gradient boosting): row j of the mask marks block j's columns.
        self._occlude = self._sum.T.astype(bool)
        self._fields = {j: b.feature.field or "" for j, b in enumerate(blocks) if b.values}
        self._fixed = [self._fixed_reasons(b) for b in blocks]
        # Block -> its fields a request may leave out (filled): such a block is no reason
        # for an applicant who left one out.
        self._optional = {
            j: [n for n in b.feature.inputs if contract.field(n).missing is not None]
            for j, b in enumerate(blocks)
        }
        self._optional = {j: names for j, names in self._optional.items() if names}
        self._by_value: dict[tuple[int, str], Reason] = {}
        self._weights: np.ndarray | None = None
        self._trees: TreeOcclusion | None = None
        if isinstance(scorer, LogisticScorer):
            self._weights = scorer.coef[0] / scorer.scale
        elif isinstance(scorer, TreeScorer) and blocks:
            self._trees = scorer.occlusion(self.reference, self._occlude)

    @staticmethod
    def _fixed_reasons(block: _Block) -> tuple[Reason, Reason] | None:
        code = f"R-{block.feature.name.upper()}"
        if block.values:
            return None
        if block.feature.reason:
            return (Reason(code, block.feature.reason), Reason(code, block.feature.reason))
        # Below the reference and counting against: too low; above it: too high.
        return (Reason(code, f"{block.label} too low"), Reason(code, f"{block.label} too high"))

    def contributions(self, matrix: np.ndarray, scores: np.ndarray | None = None) -> np.ndarray:
        """(rows, eligible features): each feature's contribution against the reference.

        ``scores``: the rows' scores when the caller has them (the decider does), which
        spares the occlusion one scorer call, the costlier half for gradient boosting.
        """
        if self._weights is not None:
            return ((matrix - self.reference) * self._weights) @ self._sum
        base = self.scorer.score(matrix) if scores is None else scores
        if self._trees is not None:  # the same scores, looked up in the leaf table
            return base[:, None] - self._trees.scores(matrix)
        rows, k = matrix.shape[0], len(self.blocks)
        # (rows, k, columns): row i with block j's columns set to the reference, in one
        # np.where against the precomputed (k, columns) mask.
        occluded = np.where(self._occlude, self.reference, matrix[:, None, :])
        return base[:, None] - self.scorer.score(occluded.reshape(rows * k, -1)).reshape(rows, k)

    def explain(
        self,
        matrix: np.ndarray,
        columns: Mapping[str, np.ndarray],
        rows: np.ndarray | None = None,
        scores: np.ndarray | None = None,
    ) -> list[list[Reason]]:
        """Up to four reasons for each of ``rows`` (default: every row) of ``matrix`` (the
        applicants' model columns) and ``columns`` (their fields): the denials. ``scores``:
        the whole matrix's scores, if already computed."""
        rows = np.arange(len(matrix)) if rows is None else np.asarray(rows)
        if not self.blocks or len(rows) == 0:
            return [[] for _ in range(len(rows))]
        chosen = matrix[rows]
        contribution = self.contributions(chosen, None if scores is None else scores[rows])
        if self._optional:
            left_out = self._left_out(columns, rows)
            contribution[left_out] = np.nan  # NaN is never a reason, and sorts last
        order = np.argsort(contribution, axis=1, kind="stable")[:, :MAX_REASONS].tolist()
        below = (chosen[:, self._first] < self._first_reference).tolist()
        values = contribution.tolist()
        result = []
        for i, picks in enumerate(order):
            reasons = []
            for j in picks:
                if not values[i][j] < 0:  # only what counted against is a reason (NaN is not)
                    break
                fixed = self._fixed[j]
                if fixed is not None:
                    reasons.append(fixed[0] if below[i][j] else fixed[1])
                else:
                    reasons.append(self._category(j, columns[self._fields[j]][rows[i]]))
            result.append(reasons)
        return result

    def _left_out(self, columns: Mapping[str, np.ndarray], rows: np.ndarray) -> np.ndarray:
        """(rows, blocks): True where the row left out a field the block reads."""
        result = np.zeros((len(rows), len(self.blocks)), dtype=bool)
        masks: dict[str, np.ndarray] = {}
        for j, names in self._optional.items():
            for name in names:
                if name not in masks:
                    masks[name] = missing_mask(np.asarray(columns[name])[rows])
                result[:, j] |= masks[name]
        return result

    def _category(self, j: int, value: object) -> Reason:
        key = (j, str(value))
        reason = self._by_value.get(key)
        if reason is None:
            block = self.blocks[j]
            reason = Reason(f"R-{block.feature.name.upper()}", f"{block.label}: {value}")
            self._by_value[key] = reason
        return reason


def _prefix(feature: Feature) -> str:
    return f"{feature.field}_" if feature.prefix is None else feature.prefix
