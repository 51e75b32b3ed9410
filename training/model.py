"""Model families the trainer can fit, each with a compiled serving scorer."""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

ModelKind = Literal["logistic", "gbm"]
MODEL_KINDS: Final[tuple[str, ...]] = get_args(ModelKind)


def build_model(kind: ModelKind, *, monotonic: list[int], seed: int) -> Any:
    """An unfitted estimator. GBM keeps the contract's monotone directions (``monotonic``,
    one per model column), so the prober's gap bisection is sound."""
    if kind == "logistic":
        return Pipeline(
            [
                ("scale", StandardScaler()),
                ("classify", LogisticRegression(max_iter=1000, random_state=seed)),
            ]
        )
    if kind == "gbm":
        # Depth 6 keeps a tree's leaves within one 64-bit set, as the compiled scorer needs
        # (fairgate/tree_table.py); the default max_leaf_nodes=31 makes them fit 32 bits.
        return HistGradientBoostingClassifier(
            max_iter=100,
            max_depth=6,
            learning_rate=0.1,
            early_stopping=False,
            monotonic_cst=monotonic,
            random_state=seed,
        )
    raise ValueError(f"model must be one of {MODEL_KINDS}, got {kind!r}")
