"""Compiled scorers: the trained scikit-learn model as plain numpy arrays (numpy only here;
compiling from scikit-learn happens at training, in ``training/compile_model.py``).

The service scores with these, not with scikit-learn: no pickle is loaded at serving time
(arrays are stored in ``.npz`` read with ``allow_pickle=False``) and a single application
costs a small fraction of a scikit-learn ``predict_proba`` call (docs/benchmarks.md).
Scores equal ``predict_proba(X)[:, 1]`` within 1e-12 (tested on held-out data; the tree
scorer is bit-exact, missing values included, the logistic one differs in the last ulp
because it reduces row by row), and a row's score never depends on the other rows of its
batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.special import expit

from fairgate.tree_table import CHUNK_BYTES, LeafTable


class Scorer(Protocol):
    kind: str

    def score(self, features: np.ndarray) -> np.ndarray: ...

    def arrays(self) -> dict[str, np.ndarray]: ...


class LogisticScorer:
    """``expit((x - mean) / scale . coef + intercept)``: StandardScaler + LogisticRegression."""

    kind = "logistic"

    def __init__(
        self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: np.ndarray
    ) -> None:
        self.mean = mean
        self.scale = scale
        self.coef = coef  # shape (1, n_features), as scikit-learn keeps it
        self.intercept = intercept

    def score(self, features: np.ndarray) -> np.ndarray:
        scaled = (features - self.mean) / self.scale
        # A row-wise reduction, not ``scaled @ coef.T``: BLAS picks a different kernel for one
        # row than for many, and the last-ulp difference could flip a score sitting on a
        # threshold between /decide and /decide_batch. Within 1e-15 of scikit-learn's matmul.
        decision = (scaled * self.coef[0]).sum(axis=1) + self.intercept[0]
        return expit(decision)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
        }


class TreeScorer:
    """A HistGradientBoosting ensemble flattened into node arrays (leaves point to themselves),
    scored through a per-column table of leaf sets built at load time (``LeafTable``); the
    leaf values are added tree by tree from the baseline, in scikit-learn's order."""

    kind = "trees"

    def __init__(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
        baseline: np.ndarray,
        depth: np.ndarray,
        missing_left: np.ndarray | None = None,
    ) -> None:
        self.feature = feature
        self.threshold = threshold
        self.left = left
        self.right = right
        self.value = value
        self.roots = roots
        self.baseline = baseline
        self.depth = depth
        # Where a split sends a missing value (NaN). Artifacts saved before it was kept
        # have none: NaN then goes right everywhere, as they were scored when saved.
        self.missing_left = missing_left
        self._table = LeafTable(
            feature, threshold, left, right, value, roots, float(baseline[0]), missing_left
        )
        self.columns = self._table.columns  # the columns some split reads
        # ``depth`` is kept in the saved arrays (the artifact format) but no longer walked.

    def score(self, features: np.ndarray) -> np.ndarray:
        return self._table.score(np.asarray(features, dtype=np.float64))

    def occlusion(self, reference: np.ndarray, blocks: np.ndarray) -> TreeOcclusion:
        """A scorer of a row with each block of columns set to ``reference`` (``blocks``: one
        boolean row per block, True on the block's columns)."""
        return TreeOcclusion(self, reference, blocks)

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "feature": self.feature,
            "threshold": self.threshold,
            "left": self.left,
            "right": self.right,
            "value": self.value,
            "roots": self.roots,
            "baseline": self.baseline,
            "depth": self.depth,
        } | ({} if self.missing_left is None else {"missing_left": self.missing_left})


class TreeOcclusion:
    """``TreeScorer.score`` of the k rows "x with block j's columns set to the reference",
    bit for bit (the reasons for a denial, one per block), without building those rows.

    A tree's exit leaf is the lowest bit of the AND of one leaf set per column, each a table
    row picked by the column's bin. Setting block j to the reference picks the reference's
    rows on block j's columns: one ``np.where`` over (k, columns) bin numbers, then a single
    ``take`` and AND for all k occlusions.
    """

    def __init__(self, scorer: TreeScorer, reference: np.ndarray, blocks: np.ndarray) -> None:
        self._table = scorer._table
        self._blocks = np.asarray(blocks, dtype=bool)[:, scorer.columns]  # (k, read columns)
        reference = np.asarray(reference, dtype=np.float64)[None, :]
        self._reference = self._table.bins(reference)[0]
        # Rows occluded at a time: each takes k x columns table rows (54 kB by default).
        per_row = max(1, self._blocks.size * self._table.row_bytes)
        self._step = max(1, CHUNK_BYTES // per_row)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(rows, k): row i's score with block j set to the reference."""
        features = np.asarray(features, dtype=np.float64)
        rows, k = len(features), len(self._blocks)
        out = np.empty((rows, k))
        step = self._step
        for first in range(0, rows, step):
            bins = self._table.bins(features[first : first + step])
            chosen = np.where(self._blocks, self._reference, bins[:, None, :])
            leaves = np.bitwise_and.reduce(self._table.masks(chosen), axis=2)
            out[first : first + step] = self._table.probability(leaves)
        return out


def save_scorer(scorer: Scorer, path: Path) -> None:
    np.savez(path, kind=np.array(scorer.kind), **scorer.arrays())


def load_scorer(path: Path) -> Scorer:
    with np.load(path, allow_pickle=False) as data:
        kind = str(data["kind"])
        arrays = {key: data[key] for key in data.files if key != "kind"}
    if kind == LogisticScorer.kind:
        return LogisticScorer(**arrays)
    if kind == TreeScorer.kind:
        return TreeScorer(**arrays)
    raise ValueError(f"{path}: unknown scorer kind {kind!r}")
