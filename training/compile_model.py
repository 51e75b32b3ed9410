"""Compile a fitted scikit-learn model into a numpy scorer (training time only).

Kept out of ``fairgate/scorer.py`` so the serving path never imports scikit-learn.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fairgate.scorer import LogisticScorer, Scorer, TreeScorer


def _compile_trees(model: HistGradientBoostingClassifier) -> TreeScorer:
    feature, threshold, left, right, value, roots, missing_left = [], [], [], [], [], [], []
    offset, max_depth = 0, 0
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        if nodes["is_categorical"].any():
            raise ValueError("categorical splits are not supported by the compiled scorer")
        own = np.arange(len(nodes))
        leaf = nodes["is_leaf"].astype(bool)
        feature.append(np.where(leaf, 0, nodes["feature_idx"]))
        threshold.append(np.where(leaf, np.inf, nodes["num_threshold"]))
        left.append(np.where(leaf, own, nodes["left"]) + offset)
        right.append(np.where(leaf, own, nodes["right"]) + offset)
        value.append(nodes["value"])
        missing_left.append(~leaf & nodes["missing_go_to_left"].astype(bool))
        roots.append(offset)
        max_depth = max(max_depth, int(nodes["depth"].max()))
        offset += len(nodes)
    return TreeScorer(
        feature=np.concatenate(feature).astype(np.intp),
        threshold=np.concatenate(threshold).astype(np.float64),
        left=np.concatenate(left).astype(np.intp),
        right=np.concatenate(right).astype(np.intp),
        value=np.concatenate(value).astype(np.float64),
        roots=np.asarray(roots, dtype=np.intp),
        baseline=np.asarray(model._baseline_prediction, dtype=np.float64).ravel(),
        depth=np.asarray([max_depth], dtype=np.intp),
        missing_left=np.concatenate(missing_left),
    )


def compile_model(model: Any) -> Scorer:
    """Compile a fitted model from ``training.model.build_model`` into a numpy scorer."""
    if isinstance(model, HistGradientBoostingClassifier):
        return _compile_trees(model)
    if isinstance(model, Pipeline):
        scaler, classifier = model.named_steps["scale"], model.named_steps["classify"]
        if isinstance(scaler, StandardScaler) and isinstance(classifier, LogisticRegression):
            return LogisticScorer(
                mean=scaler.mean_.copy(),
                scale=scaler.scale_.copy(),
                coef=classifier.coef_.copy(),
                intercept=classifier.intercept_.copy(),
            )
    raise TypeError(f"no compiled scorer for {type(model).__name__}")
