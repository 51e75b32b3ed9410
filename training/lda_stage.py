"""The training run's less-discriminatory-alternative (LDA) stage: search, select, re-measure.

The LDA is a model of its own, whatever the main model is (naive, blind or gbm): a logistic
regression on the contract's non-protected features (``ContractFeatures(contract,
include_sensitive=False)``) with one cut-off for everyone, searched over the family of
``training.lda_search`` on the training split, chosen by ``training.lda_select`` on the
validation split, then measured once more on the test split, which took no part in the
choice. Its policy is ``ThresholdPolicy.single_threshold(mode="lda")``: every group, and
the unseen rule, gets the same threshold, so the served decision reads no protected field.

``LdaOutcome.metrics`` is what ``metrics.json`` holds under ``"lda"``::

    {"selection": Selection.to_dict(),
     "candidates": [Figures.to_dict(), ...],           # every candidate, validation
     "test": {"baseline": Figures.to_dict(), "chosen": Figures.to_dict()},
     "policies": {"unmitigated" | "mitigated" | "randomized": Figures.to_dict()},
     "seconds": float}                                  # search and selection

``policies`` are the main model's served modes measured on the same validation rows in the
same terms, so a plot can place them among the candidates (their ``threshold`` is ``None``
where the rule is one threshold per group; ``auc`` is the main model's).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

import numpy as np

from fairgate.contract import Contract
from fairgate.contract_features import ContractFeatures, group_keys
from fairgate.policy import ThresholdPolicy
from fairgate.reasons import reference_applicant
from fairgate.scorer import LogisticScorer
from training.lda_figures import Figures, ValidationAudit
from training.lda_search import Candidate, feature_blocks, search
from training.lda_select import Selection, select

__all__ = ["LDA_NEEDS_FILLS", "LdaOutcome", "check_lda_features", "lda_groupings", "run_lda"]

LDA_NEEDS_FILLS: Final[str] = (
    "field {name!r} says missing = 'model', but the less discriminatory alternative is a "
    "logistic model, which cannot take a missing number as it is: fill the field in the "
    "contract (median, most_frequent or constant), or train with --mitigation thresholds"
)


@dataclass(frozen=True)
class LdaOutcome:
    """The chosen alternative as served, and the figures the report reads."""

    selection: Selection
    chosen: Candidate
    baseline: Candidate
    scorer: LogisticScorer
    policy: ThresholdPolicy
    features: ContractFeatures  # blind: the contract's non-protected features
    reference: np.ndarray  # the reasons' reference applicant, in the blind columns
    metrics: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """What ``GET /policy`` shows of it (the model's metadata, under ``"lda"``)."""
        chosen = self.chosen
        return {
            "outcome": self.selection.outcome,
            "summary": self.selection.summary,
            "chosen": {
                "name": chosen.name,
                "family": chosen.family,
                "threshold": chosen.threshold,
                "dropped": list(chosen.dropped),
                "note": chosen.note,
            },
            "baseline": self.baseline.name,
            "policy_version": self.policy.version,
            "include_sensitive": self.features.include_sensitive,
            "feature_names": list(self.features.names),
            "test": self.metrics["test"],
        }


def check_lda_features(contract: Contract) -> None:
    """A logistic model would score a missing number NaN, and NaN is never approved."""
    for name in ContractFeatures(contract, include_sensitive=False).input_fields:
        spec = contract.field(name)
        if spec.missing == "model" and spec.numeric:
            raise ValueError(LDA_NEEDS_FILLS.format(name=name))


def lda_groupings(
    contract: Contract,
    columns: Mapping[str, np.ndarray],
    attributes: Sequence[str],
    audit: Sequence[str],
) -> dict[str, np.ndarray]:
    """Every audited attribute alone, then the policy attribute (joined when intersectional):
    the groupings each candidate is judged on, the policy's the one the search targets."""
    result = {name: group_keys(contract, columns, (name,)) for name in audit}
    result[contract.groups.separator.join(attributes)] = group_keys(
        contract, columns, tuple(attributes)
    )
    return result


def _take(columns: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in columns.items()}


def _rows(values: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if values is None else np.asarray(values)[rows]


def _policy_figures(
    audit: ValidationAudit,
    policies: Mapping[str, np.ndarray],
    scores: np.ndarray,
) -> dict[str, dict[str, Any]]:
    """The main model's modes on the validation rows: ``unmitigated`` is its scores at 0.5,
    the others their 0/1 decisions (a decision is read as a score, cut at 0.5)."""
    auc = audit.auc(scores)
    result = {"unmitigated": audit.figures("unmitigated", scores, threshold=0.5, auc=auc)}
    for name, decisions in policies.items():
        decided = np.asarray(decisions, dtype=np.float64)
        result[name] = replace(audit.figures(name, decided, threshold=0.5, auc=auc), threshold=None)
    return {name: figures.to_dict() for name, figures in result.items()}


SEARCH_TRAIN_ROWS: Final[int] = 200_000
SEARCH_VALIDATION_ROWS: Final[int] = 100_000


def _sample(rows: int, limit: int, seed: int) -> np.ndarray:
    """Positions of at most ``limit`` of ``rows``, seeded, in order (all when fewer)."""
    if rows <= limit:
        return np.arange(rows)
    return np.sort(np.random.default_rng([seed, 23]).choice(rows, size=limit, replace=False))


def run_lda(
    contract: Contract,
    columns: Mapping[str, np.ndarray],
    labels: np.ndarray,
    *,
    train: np.ndarray,
    validation: np.ndarray,
    test: np.ndarray,
    attributes: Sequence[str],
    audit: Sequence[str],
    rule_groups: Sequence[str],
    main_scores: np.ndarray,
    main_policies: Mapping[str, np.ndarray],
    repaid: np.ndarray | None,
    seed: int,
    n_boot: int,
) -> LdaOutcome:
    """Search, select and re-measure the LDA of one training run.

    Parameters
    ----------
    columns, labels : the whole book (contract fields; 0/1 historical decisions).
    train, validation, test : row indices of the run's split.
    attributes, audit : the policy's and the audit's protected attributes.
    rule_groups : the policy groups the served rules are named after (the other modes').
    main_scores, main_policies : the main model's validation scores, and the validation
        decisions of its ``mitigated`` and ``randomized`` modes, for ``policies``.
    repaid : the sandbox's ground truth (None on a real book).
    """
    check_lda_features(contract)
    features = ContractFeatures(contract, include_sensitive=False)
    matrix = features.build(columns)
    labels = np.asarray(labels)
    # A large book is searched on a seeded sample of its split: ~200 logistic fits on
    # 200,000 rows already pin the coefficients down; on a million rows the search alone
    # took longer than the rest of training. The test split is measured whole.
    kept = _sample(len(validation), SEARCH_VALIDATION_ROWS, seed)
    train = train[_sample(len(train), SEARCH_TRAIN_ROWS, seed)]
    validation = validation[kept]
    main_scores = np.asarray(main_scores)[kept]
    main_policies = {mode: np.asarray(d)[kept] for mode, d in main_policies.items()}
    parts = {"train": train, "validation": validation, "test": test}
    groups = {
        part: lda_groupings(contract, _take(columns, rows), attributes, audit)
        for part, rows in parts.items()
    }
    policy_attribute = contract.groups.separator.join(attributes)

    started = time.perf_counter()
    candidates = search(
        matrix[train],
        labels[train],
        matrix[validation],
        labels[validation],
        groups_train=groups["train"],
        groups_val=groups["validation"],
        blocks=feature_blocks(features),
        seed=seed,
        repaid_val=_rows(repaid, validation),
        policy_attribute=policy_attribute,
        n_boot=n_boot,
    )
    selection = select([c.figures for c in candidates], baseline=candidates[0].name)
    seconds = time.perf_counter() - started

    by_name = {c.name: c for c in candidates}
    chosen, baseline = by_name[selection.chosen.name], by_name[selection.baseline.name]
    on_test = ValidationAudit(
        labels=labels[test],
        groups=groups["test"],
        repaid=_rows(repaid, test),
        n_boot=n_boot,
        seed=seed,
    )
    test_figures: dict[str, Figures] = {
        role: on_test.figures(
            candidate.name,
            candidate.scorer.score(matrix[test]),
            threshold=candidate.threshold,
            family=candidate.family,
        )
        for role, candidate in (("baseline", baseline), ("chosen", chosen))
    }
    on_validation = ValidationAudit(
        labels=labels[validation],
        groups=groups["validation"],
        repaid=_rows(repaid, validation),
        n_boot=n_boot,
        seed=seed,
    )
    policy = ThresholdPolicy.single_threshold(
        attributes=attributes, groups=rule_groups, threshold=chosen.threshold, mode="lda"
    )
    return LdaOutcome(
        selection=selection,
        chosen=chosen,
        baseline=baseline,
        scorer=chosen.scorer,
        policy=policy,
        features=features,
        reference=reference_applicant(matrix[train], labels[train] == 1),
        metrics={
            "selection": selection.to_dict(),
            "candidates": [c.figures.to_dict() for c in candidates],
            "test": {role: figures.to_dict() for role, figures in test_figures.items()},
            "policies": _policy_figures(on_validation, main_policies, main_scores),
            "seconds": seconds,
        },
    )
