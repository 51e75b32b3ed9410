"""A tree ensemble's exit leaves looked up column by column instead of walked level by level.

QuickScorer (Lucchese et al., SIGIR 2015) finds a tree's exit leaf without walking the tree:
number its leaves left to right and give every internal node a bit mask that clears the leaves
of its left subtree; the exit leaf is the lowest bit left once the masks of the nodes that send
x right are ANDed. Here that AND is precomputed. A column's thresholds cut its axis into bins,
and within one bin the same nodes on that column send x right, so one table row per (column,
bin) holds, for every tree, the AND of their masks. Scoring a row is then a bin count per
column, one ``take`` of table rows and an AND across columns: about a dozen numpy calls,
whatever the depth, where a level-by-level walk needs four per level (numpy's per-call cost,
not the arithmetic, is what a single application pays for).

A leaf set fits one uint64, so a tree may have at most 64 leaves (``max_depth=6``); trees of at
most 32 leaves use uint32. The table takes (thresholds + 2 per column) x trees x 4 or 8 bytes:
0.35 MB for the default gradient boosting (100 trees of at most 31 leaves).
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

FULL = np.uint64(0xFFFF_FFFF_FFFF_FFFF)
MAX_LEAVES = 64
TOO_MANY_LEAVES = (
    f"a tree has more than {MAX_LEAVES} leaves (train it with max_depth <= 6 or "
    f"max_leaf_nodes <= {MAX_LEAVES})"
)
# Rows scored (or occluded) per numpy call: bounds the temporary arrays of a large batch (the
# training book is scored whole) and keeps them in cache. Bytes, not rows: models differ.
CHUNK_BYTES = 16 * 2**20


def leaf_masks(
    left: np.ndarray, right: np.ndarray, roots: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(mask, rank) per node: a leaf's rank among its tree's leaves, left to right; an internal
    node's mask has 0 on the leaves of its left subtree (a leaf's mask is FULL). Leaves point
    to themselves in ``left``."""
    masks = np.full(len(left), FULL)
    rank = np.full(len(left), -1, dtype=np.intp)
    for root in roots.tolist():
        count = 0

        def span(node: int, depth: int) -> tuple[int, int]:
            nonlocal count
            if depth > MAX_LEAVES:  # a path this long means more leaves than that, and
                raise ValueError(TOO_MANY_LEAVES)  # Python's recursion limit is near
            if left[node] == node:
                if count == MAX_LEAVES:
                    raise ValueError(TOO_MANY_LEAVES)
                rank[node] = count
                count += 1
                return count - 1, count
            low, middle = span(int(left[node]), depth + 1)
            _, high = span(int(right[node]), depth + 1)
            masks[node] = ~np.uint64(((1 << (middle - low)) - 1) << low)
            return low, high

        span(root, 0)
    return masks, rank


class LeafTable:
    """Exit leaves and scores of an ensemble (the ``TreeScorer`` arrays) for rows of features.

    ``columns``: the feature columns some split reads (column 0 alone, always full, when no
    tree splits), one block of table rows each. ``masks(bins(x))`` gives one leaf set per
    (column, tree): the leaves that x's value on that column leaves possible. A tree's exit
    leaf is the lowest bit of their AND.
    """

    def __init__(
        self,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
        baseline: float,
        missing_left: np.ndarray | None = None,
    ) -> None:
        nodes, trees = len(left), roots.size
        masks, rank = leaf_masks(left, right, roots)
        # Trees of at most 32 leaves (HistGradientBoosting's default is 31) fit half-size sets:
        # half the memory every lookup and AND moves. The low 32 bits of a mask are its own.
        small = rank.max() < 32
        unsigned, self._signed = (np.uint32, np.int32) if small else (np.uint64, np.int64)
        masks = masks.astype(unsigned)
        tree_of = np.repeat(np.arange(trees), np.diff(np.append(roots, nodes)))
        internal = np.flatnonzero(left != np.arange(nodes))
        self.columns = np.unique(feature[internal]) if internal.size else np.array([0])
        if missing_left is None:  # scored before the direction was kept: NaN goes right
            missing_left = np.zeros(nodes, dtype=bool)
        blocks, cuts, cut_columns, last_rows = [], [], [], []
        rows = 0
        for column in self.columns.tolist():
            reading = internal[feature[internal] == column]
            # A NaN threshold (scikit-learn can learn one from a book holding infinities)
            # sends every number right: it is no cut, its mask is in every number's row.
            unordered = np.isnan(threshold[reading])
            # The +inf cut keeps every column's bin count non-empty. No value but NaN passes
            # it (NaN <= t is False everywhere), so the last row is NaN's own: there a node
            # sends x the way it learnt for missing values, as scikit-learn does.
            column_cuts = np.unique(np.append(threshold[reading[~unordered]], np.inf))
            nan_row = len(column_cuts)
            block = np.full((nan_row + 1, trees), np.iinfo(unsigned).max, dtype=unsigned)
            at_cut = np.where(unordered, -1, np.searchsorted(column_cuts, threshold[reading]))
            for node, at in zip(reading.tolist(), at_cut.tolist(), strict=True):
                # x goes right at the node when more than ``at`` cuts are below x.
                block[at + 1 : nan_row, tree_of[node]] &= masks[node]
                if not missing_left[node]:
                    block[nan_row, tree_of[node]] &= masks[node]
            blocks.append(block)
            cuts.append(column_cuts)
            cut_columns.append(np.full(len(column_cuts), column, dtype=np.intp))
            rows += len(block)
            last_rows.append(rows - 1)
        self._table = np.concatenate(blocks)
        self._cuts = np.concatenate(cuts)
        self._cut_columns = np.concatenate(cut_columns)
        self._cut_starts = np.cumsum([0] + [len(c) for c in cuts[:-1]])
        self._last_rows = np.asarray(last_rows, dtype=np.intp)
        # Leaf values by (tree, rank), the first tree's already added to the baseline: the
        # running sum is then the exact sequence of additions scikit-learn makes.
        leaves = np.flatnonzero(rank >= 0)
        self._values = np.zeros(trees * MAX_LEAVES)
        self._values[tree_of[leaves] * MAX_LEAVES + rank[leaves]] = value[leaves]
        self._values[:MAX_LEAVES] += baseline
        self._leaf_start = np.arange(trees) * MAX_LEAVES - 1  # frexp's exponent is rank + 1
        self.row_bytes = trees * self._table.itemsize  # one table row: a leaf set per tree
        # Per row scored: the cut comparisons (float64 and bool) and a table row per column.
        per_row = 9 * len(self._cuts) + len(self.columns) * self.row_bytes
        self.chunk_rows = max(1, CHUNK_BYTES // per_row)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Scores of rows of float64 features, ``chunk_rows`` at a time."""
        step = self.chunk_rows
        if len(features) <= step:
            return self._score(features)
        return np.concatenate([self._score(features[i : i + step])
                               for i in range(0, len(features), step)])  # fmt: skip

    def _score(self, features: np.ndarray) -> np.ndarray:
        return self.probability(np.bitwise_and.reduce(self.masks(self.bins(features)), axis=1))

    def bins(self, features: np.ndarray) -> np.ndarray:
        """(rows, columns): the table row of each row's bin in each column."""
        below = features.take(self._cut_columns, axis=1) <= self._cuts
        # A row's bin in a column counts the cuts below x: those x is not <= of.
        return self._last_rows - np.add.reduceat(below, self._cut_starts, axis=1, dtype=np.intp)

    def masks(self, bins: np.ndarray) -> np.ndarray:
        """(..., trees) leaf sets (uint32 or uint64) of table rows ``bins``."""
        return self._table.take(bins, axis=0)

    def probability(self, leaves: np.ndarray) -> np.ndarray:
        """The score from (..., trees) leaf sets: each tree's lowest bit is its exit leaf."""
        bits = leaves.view(self._signed)
        _, exponent = np.frexp(bits & -bits)
        values = self._values.take(exponent + self._leaf_start).reshape(-1, bits.shape[-1])
        # A running sum, not np.sum (pairwise): scikit-learn adds the trees one after another.
        total = np.add.accumulate(values, axis=1)[:, -1]
        return expit(total).reshape(bits.shape[:-1])
