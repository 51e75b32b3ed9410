"""Compiled scorers: the trained scikit-learn model as plain numpy arrays (numpy only here;
compiling from scikit-learn happens at training, in ``training/compile_model.py``).

The service scores with these, not with scikit-learn: no pickle is loaded at serving time
(arrays are stored in ``.npz`` read with ``allow_pickle=False``) and a single application
costs microseconds instead of the ~0.3-1.6 ms of a scikit-learn ``predict_proba`` call.
Scores equal ``predict_proba(X)[:, 1]`` within 1e-12 (tested on held-out data; the tree
scorer is bit-exact, the logistic one differs in the last ulp because it reduces row by
row), and a row's score never depends on the other rows of its batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
from scipy.special import expit


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
    """A HistGradientBoosting ensemble flattened into node arrays and walked level by level.

    Leaves point to themselves, so every (row, tree) walk can run ``depth`` steps with no
    branching; the leaf values are then accumulated tree by tree from the baseline, the
    same order scikit-learn adds them in.
    """

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
    ) -> None:
        self.feature = feature
        self.threshold = threshold
        self.left = left
        self.right = right
        self.value = value
        self.roots = roots
        self.baseline = baseline
        self.depth = depth
        self._steps = int(depth[0])
        # Both children of node i at 2i (right) and 2i + 1 (left): one step is then
        # ``next = children[2 * node + (x <= threshold)]``, flat ``take``s only (a third
        # fewer array operations than gathering left and right and choosing with np.where).
        self._children = np.empty(2 * len(left), dtype=np.intp)
        self._children[0::2], self._children[1::2] = right, left
        self._feature = np.asarray(feature, dtype=np.intp)

    def score(self, features: np.ndarray) -> np.ndarray:
        n, width = features.shape
        trees = self.roots.size
        flat = np.ascontiguousarray(features, dtype=np.float64).ravel()
        # (row, tree) walks laid out row by row; ``offset`` is each walk's row start in flat.
        node = np.tile(self.roots, n)
        offset = np.repeat(np.arange(0, n * width, width), trees)
        for _ in range(self._steps):
            # NaN compares False, so it goes right, as it did with np.where(x <= t, ...).
            left = flat.take(self._feature.take(node) + offset) <= self.threshold.take(node)
            node = self._children.take(2 * node + left)
        leaf_values = self.value.take(node).reshape(n, trees)
        raw = np.empty((n, leaf_values.shape[1] + 1))
        raw[:, 0] = self.baseline[0]
        raw[:, 1:] = leaf_values
        return expit(np.cumsum(raw, axis=1)[:, -1])

    def occlusion(self, reference: np.ndarray, blocks: np.ndarray) -> TreeOcclusion:
        """A walker for ``score`` of a row with each block of columns set to ``reference``
        (``blocks``: one boolean row per block, True on the block's columns)."""
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
        }


class TreeOcclusion:
    """``TreeScorer.score`` of the k rows "x with block j's columns set to the reference",
    bit for bit, in a third fewer array operations (the reasons for a denial, one per block).

    Only x's own tests (``x <= threshold`` at every node) depend on the applicant; a node that
    reads a column of block j always goes the reference's way in block j's walk. Both are
    folded into one table built here, ``next[j, node, x goes left]``, so a step of all
    (block, tree) walks is two ``take``s and two additions, whatever the block.
    """

    def __init__(self, scorer: TreeScorer, reference: np.ndarray, blocks: np.ndarray) -> None:
        nodes, trees = len(scorer.left), scorer.roots.size
        k = blocks.shape[0]
        feature = scorer._feature
        reference_left = np.asarray(reference, dtype=np.float64).take(feature) <= scorer.threshold
        fixed = np.asarray(blocks, dtype=bool)[:, feature]  # (k, nodes): reads block j
        children = scorer._children.reshape(nodes, 2)  # (right, left)
        table = np.empty((k, nodes, 2), dtype=np.intp)
        for goes_left in (0, 1):
            way = np.where(fixed, reference_left, bool(goes_left)).astype(np.intp)
            table[:, :, goes_left] = children[np.arange(nodes), way]
        # Node ids are kept doubled (2 * node), so ``2 * node + goes_left`` is one addition;
        # block j's rows of the table start at 2 * nodes * j.
        self._next = (2 * table).ravel()
        self._block_start = np.repeat(2 * nodes * np.arange(k), trees)
        self._roots = np.tile(2 * scorer.roots, k)
        # x's tests laid out at the doubled ids: position 2 * node holds node's.
        self._feature = np.repeat(feature, 2)
        self._threshold = np.repeat(scorer.threshold, 2)
        self._value = np.repeat(scorer.value, 2)
        self._scorer, self._blocks, self._width = scorer, k, 2 * nodes

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(rows, k): row i's score with block j set to the reference."""
        rows = features.shape[0]
        k, trees = self._blocks, self._scorer.roots.size
        flat = np.ascontiguousarray(features, dtype=np.float64)
        # (rows, 2 * nodes): 1 where row i goes left at a node (int8, to add to an id).
        goes_left = (flat.take(self._feature, axis=1) <= self._threshold).view(np.int8).ravel()
        if rows == 1:  # a single denial, the common case: no row offsets to add
            node, start = self._roots, self._block_start
            for _ in range(self._scorer._steps):
                node = self._next.take(node + start + goes_left.take(node))
        else:
            node = np.tile(self._roots, rows)
            start = np.tile(self._block_start, rows)
            row_start = np.repeat(np.arange(rows) * self._width, k * trees)
            for _ in range(self._scorer._steps):
                node = self._next.take(node + start + goes_left.take(node + row_start))
        leaf_values = self._value.take(node).reshape(rows * k, trees)
        raw = np.empty((rows * k, trees + 1))
        raw[:, 0] = self._scorer.baseline[0]
        raw[:, 1:] = leaf_values
        return expit(np.cumsum(raw, axis=1)[:, -1]).reshape(rows, k)


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
