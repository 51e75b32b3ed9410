"""Post-processing mitigation with fairlearn's ThresholdOptimizer, compiled to a policy.

Groups without both outcomes. fairlearn places each group's threshold between its approved
and denied validation applicants, and refuses a group that has only one kind ("Degenerate
labels for sensitive feature value ..."); a real book's thin band often has no denied
applicant in the validation split (the Spanish book's 65+ band: 23 applicants, 2 denied).
Such a group is left out of the fit and gets no rule of its own: the policy decides it with
its unseen-group rule (``unseen_rule``: the most lenient fitted group's rule, or the pooled
one), as it would an applicant from a band the book never had. The service counts those
decisions as unseen, and ``deterministic_policy`` records why for the audit report,
``metrics.json`` and ``/policy`` (``UNFITTED_ONE_LABEL``). fairlearn's own ``predict``,
which would approve nobody in a group it holds no rule for, is routed to the same rule, so
the report's randomized column is what the randomized policy serves.

A group with both outcomes keeps its own rule however few its applicants: the split has
already refused a group too thin to reach validation (``training.pipeline``), and the
audit marks the ones too small to judge (``training.fairness.MIN_GROUP_SIZE``).

Example::

    optimizer = fit_threshold_optimizer(model, x, y, groups, constraint="demographic_parity",
                                        objective="accuracy_score")
    optimizer.unfitted_groups_  # {'65+': 'only approved applicants (5) in the validation ...'}
"""

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

UNFITTED_ONE_LABEL: Final[str] = (
    "only {outcome} applicants ({count}) in the validation split: no threshold can be placed "
    "between approved and denied ones, so the policy's unseen-group rule decides this group"
)
NO_GROUP_TO_FIT: Final[str] = (
    "no policy group has both approved and denied applicants in the validation split "
    "({groups}); the book is too small or too one-sided to fit group thresholds"
)


def unfittable_groups(labels: np.ndarray, groups: np.ndarray) -> dict[str, str]:
    """Groups fairlearn cannot fit a threshold for, each with the reason, in group order.

    >>> list(unfittable_groups(np.array([1, 0, 1, 1]), np.array(["a", "a", "b", "b"])))
    ['b']
    """
    labels = np.asarray(labels)
    keys = np.asarray(groups).astype(str)
    reasons = {}
    for group in np.unique(keys):
        mine = labels[keys == group]
        if np.unique(mine).size < 2:
            outcome = "approved" if mine[0] == 1 else "denied"
            reasons[str(group)] = UNFITTED_ONE_LABEL.format(outcome=outcome, count=mine.size)
    return reasons


def _soft_scores(estimator: Any, x: Any, method: str) -> np.ndarray:
    # The scores fairlearn thresholds: predict_proba's positive column, or the method's output.
    if method in ("auto", "predict_proba") and hasattr(estimator, "predict_proba"):
        return np.asarray(estimator.predict_proba(x))[:, 1]
    if method in ("auto", "decision_function") and hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(x))
    return np.asarray(estimator.predict(x))


class GroupThresholdOptimizer(ThresholdOptimizer):
    """fairlearn's ``ThresholdOptimizer`` fitted on the groups it can place a threshold for.

    Parameters are fairlearn's, plus ``unseen_rule``: whose rule the groups left out get in
    ``predict`` (the compiled policy's own choice, ``ThresholdPolicy.with_unseen_rule``).

    Learned, beyond fairlearn's: ``unfitted_groups_`` (group -> why it has no rule) and
    ``unseen_group_`` (the fitted group whose rule the others, and unseen groups, get).
    """

    def __init__(
        self,
        *,
        estimator: Any = None,
        constraints: Constraint = "demographic_parity",
        objective: Objective = "accuracy_score",
        grid_size: int = 1000,
        flip: bool = False,
        prefit: bool = False,
        predict_method: Literal["auto", "predict_proba", "decision_function", "predict"] = "auto",
        tol: float | None = None,
        unseen_rule: UnseenRule = "most-lenient",
    ) -> None:
        super().__init__(
            estimator=estimator,
            constraints=constraints,
            objective=objective,
            grid_size=grid_size,
            flip=flip,
            prefit=prefit,
            predict_method=predict_method,
            tol=tol,
        )
        self.unseen_rule = unseen_rule

    def fit(
        self, X: Any, y: Any, *, sensitive_features: Any, **kwargs: Any
    ) -> GroupThresholdOptimizer:
        labels = np.asarray(y).astype(int)
        groups = np.asarray(sensitive_features).astype(str).astype(object)
        self.unfitted_groups_ = unfittable_groups(labels, groups)
        fitted = ~np.isin(groups, list(self.unfitted_groups_))
        if not fitted.any():
            raise ValueError(NO_GROUP_TO_FIT.format(groups=", ".join(self.unfitted_groups_)))
        x = np.asarray(X)[fitted]
        super().fit(x, labels[fitted], sensitive_features=groups[fitted], **kwargs)
        # The same choice the compiled policy makes, on the same rows.
        policy = ThresholdPolicy.from_threshold_optimizer(
            self,
            attributes=("group",),
            scores=_soft_scores(self.estimator_, x, self.predict_method),
            groups=groups[fitted],
            unseen_rule=self.unseen_rule,
        )
        self.unseen_group_ = next(g for g, rule in policy.rules.items() if rule == policy.unseen)
        return self

    def _routed(self, sensitive_features: Any) -> np.ndarray:
        groups = np.asarray(sensitive_features).astype(str).astype(object)
        fitted = list(self.interpolated_thresholder_.interpolation_dict)
        return np.where(np.isin(groups, fitted), groups, self.unseen_group_)

    def predict(self, X: Any, *, sensitive_features: Any, random_state: Any = None) -> Any:
        """fairlearn's seeded randomized predict; groups without a rule get the unseen one."""
        return super().predict(
            X, sensitive_features=self._routed(sensitive_features), random_state=random_state
        )

    def _pmf_predict(self, X: Any, *, sensitive_features: Any) -> Any:
        return super()._pmf_predict(X, sensitive_features=self._routed(sensitive_features))


def fit_threshold_optimizer(
    model: Any,
    features: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    constraint: Constraint,
    objective: Objective,
    unseen_rule: UnseenRule = "most-lenient",
) -> GroupThresholdOptimizer:
    """Fit on the validation split (never the test split) with the prefit model's scores.

    ``unseen_rule`` should be the one ``compile_policy`` is given: fairlearn's own predict
    then routes groups left out of the fit exactly as the compiled policy decides them.
    """
    optimizer = GroupThresholdOptimizer(
        estimator=model,
        constraints=constraint,
        objective=objective,
        prefit=True,
        predict_method="predict_proba",
        unseen_rule=unseen_rule,
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
    """The randomized policy; groups left out of the fit get ``unseen_rule``'s rule, chosen
    over the fitted groups' rows only (a thin group's rows say nothing about the others)."""
    rules = [str(g) for g in optimizer.interpolated_thresholder_.interpolation_dict]
    fitted = np.isin(np.asarray(groups).astype(str), rules)
    return ThresholdPolicy.from_threshold_optimizer(
        optimizer,
        attributes=attributes,
        scores=scores[fitted],
        groups=groups[fitted],
        unseen_rule=unseen_rule,
    )
