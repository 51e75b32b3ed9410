"""Request -> features -> score -> policy decision, with numpy only (no pandas, no sklearn)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairgate.artifacts import ServingBundle
from fairgate.contract_features import RequestColumns, group_keys
from fairgate.draw import DrawKey, draw_fields
from fairgate.reasons import Explainer, Reason

_NOBODY = np.zeros(0, dtype=np.intp)
_FIRST = np.zeros(1, dtype=np.intp)
_NOBODY.flags.writeable = _FIRST.flags.writeable = False


def _denied(approved: np.ndarray) -> np.ndarray:
    """Row numbers of the denials; one application's without a numpy call (two would cost
    a single decision more than its policy step)."""
    if len(approved) == 1:
        return _NOBODY if approved[0] else _FIRST
    return np.flatnonzero(~approved)


@dataclass(frozen=True)
class Decisions:
    """Column-wise results for one call, in request order."""

    approved: np.ndarray
    score: np.ndarray
    probability: np.ndarray
    group: np.ndarray
    rule_index: np.ndarray
    unseen: np.ndarray
    # The uniform draw that realised a randomized rule (the decision record keeps it);
    # None under a deterministic policy, which draws nothing.
    draw: np.ndarray | None
    # Per application: up to four reasons if denied (empty when approved).
    reasons: list[list[Reason]]


class Decider:
    """The online decision path; ``decide`` is what ``/decide`` and ``/decide_batch`` run."""

    def __init__(self, bundle: ServingBundle, draw_key: DrawKey | None = None) -> None:
        if bundle.policy.randomized and draw_key is None:
            raise ValueError("the randomized policy needs a draw key (FAIRGATE_DRAW_KEY)")
        self.bundle = bundle
        self.contract = bundle.contract
        self.policy = bundle.policy
        self.columns = RequestColumns(bundle.contract)
        self.draw_fields = draw_fields(bundle.contract)
        self.explainer = (
            None
            if bundle.reference is None
            else Explainer(bundle.features, bundle.scorer, bundle.reference)
        )
        # Only a randomized policy draws; a deterministic one never computes a MAC.
        self.draw_key = draw_key if bundle.policy.randomized else None
        self.rule_names = [self.policy.rule_name(i) for i in range(len(self.policy.rules) + 1)]
        described = [r.describe() for r in self.policy.rules.values()] + [
            self.policy.unseen.describe()
        ]
        self.rule_texts = described

    def decide(self, applicants: Sequence[Any]) -> Decisions:
        """Decide validated requests (instances of ``request_model(bundle.contract)``)."""
        columns = self.columns(applicants)
        matrix = self.bundle.features.build(columns)
        scores = self.bundle.scorer.score(matrix)
        groups = group_keys(self.contract, columns, self.policy.attributes)
        draws = None if self.draw_key is None else self.draw_key.draws(columns, self.draw_fields)
        approved, probability, index = self.policy.decide(scores, groups, draws)
        reasons: list[list[Reason]] = [[] for _ in range(len(scores))]
        if self.explainer is not None:
            denied = _denied(approved)
            if len(denied):
                explained = self.explainer.explain(matrix, columns, denied, scores)
                for row, found in zip(denied.tolist(), explained, strict=True):
                    reasons[row] = found
        return Decisions(
            approved=approved,
            score=scores,
            probability=probability,
            group=groups,
            rule_index=index,
            unseen=self.policy.is_unseen(index),
            draw=draws,
            reasons=reasons,
        )
