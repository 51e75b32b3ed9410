"""Request -> features -> score -> policy decision, with numpy only (no pandas, no sklearn)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fairgate.artifacts import ServingBundle
from fairgate.contract_features import RequestColumns, group_keys
from fairgate.draw import DrawKey, draw_fields


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
        self.contract = bundle.contract
        self.policy = bundle.policy
        self.columns = RequestColumns(bundle.contract)
        self.draw_fields = draw_fields(bundle.contract)
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
        scores = self.bundle.scorer.score(self.bundle.features.build(columns))
        groups = group_keys(self.contract, columns, self.policy.attributes)
        draws = None if self.draw_key is None else self.draw_key.draws(columns, self.draw_fields)
        approved, probability, index = self.policy.decide(scores, groups, draws)
        return Decisions(
            approved=approved,
            score=scores,
            probability=probability,
            group=groups,
            rule_index=index,
            unseen=self.policy.is_unseen(index),
        )
