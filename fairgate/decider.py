"""Request -> features -> score -> policy decision, with numpy only (no pandas, no sklearn)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fairgate.artifacts import ServingBundle
from fairgate.draw import DrawKey
from fairgate.features import columns_from_applicants
from fairgate.schema import Applicant, group_keys


@dataclass(frozen=True)
class Decisions:
    """Column-wise results for one call, in request order."""

    approved: np.ndarray
    score: np.ndarray
    probability: np.ndarray
    group: np.ndarray
    rule_index: np.ndarray
    unseen: np.ndarray


class Decider:
    """The online decision path; ``decide`` is what ``/decide`` and ``/decide_batch`` run."""

    def __init__(self, bundle: ServingBundle, draw_key: DrawKey | None = None) -> None:
        if bundle.policy.randomized and draw_key is None:
            raise ValueError("the randomized policy needs a draw key (FAIRGATE_DRAW_KEY)")
        self.bundle = bundle
        self.policy = bundle.policy
        # Only a randomized policy draws; a deterministic one never computes a MAC.
        self.draw_key = draw_key if bundle.policy.randomized else None
        self.rule_names = [self.policy.rule_name(i) for i in range(len(self.policy.rules) + 1)]
        described = [r.describe() for r in self.policy.rules.values()] + [
            self.policy.unseen.describe()
        ]
        self.rule_texts = described

    def decide(self, applicants: Sequence[Applicant]) -> Decisions:
        columns = columns_from_applicants(applicants)
        scores = self.bundle.scorer.score(self.bundle.spec.build(columns))
        groups = group_keys(columns, self.policy.attributes)
        draws = None if self.draw_key is None else self.draw_key.draws(columns)
        approved, probability, index = self.policy.decide(scores, groups, draws)
        return Decisions(
            approved=approved,
            score=scores,
            probability=probability,
            group=groups,
            rule_index=index,
            unseen=self.policy.is_unseen(index),
        )
