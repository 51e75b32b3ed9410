"""Post-processing mitigation with fairlearn's ThresholdOptimizer, compiled to a policy."""

from __future__ import annotations

from typing import Any, Final, Literal, get_args

import numpy as np
from fairlearn.postprocessing import ThresholdOptimizer

from fairgate.policy import ThresholdPolicy, UnseenRule

Constraint = Literal[
    "demographic_parity",
    "equalized_odds",
    "true_positive_rate_parity",
    "false_positive_rate_parity",
    "true_negative_rate_parity",
    "false_negative_rate_parity",
]
CONSTRAINTS: Final[tuple[str, ...]] = get_args(Constraint)
Objective = Literal[
    "accuracy_score",
    "balanced_accuracy_score",
    "selection_rate",
    "true_positive_rate",
    "true_negative_rate",
]
OBJECTIVES: Final[tuple[str, ...]] = get_args(Objective)


def fit_threshold_optimizer(
    model: Any,
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    constraint: Constraint,
    objective: Objective,
) -> ThresholdOptimizer:
    """Fit on the validation split (never the test split) with the prefit model's scores."""
    optimizer = ThresholdOptimizer(
        estimator=model,
        constraints=constraint,
        objective=objective,
        prefit=True,
        predict_method="predict_proba",
    )
    return optimizer.fit(features, labels, sensitive_features=groups)


def compile_policy(
    optimizer: ThresholdOptimizer,
    *,
    attributes: tuple[str, ...],
    scores: np.ndarray,
    groups: np.ndarray,
    unseen_rule: UnseenRule,
) -> ThresholdPolicy:
    return ThresholdPolicy.from_threshold_optimizer(
        optimizer, attributes=attributes, scores=scores, groups=groups, unseen_rule=unseen_rule
    )
