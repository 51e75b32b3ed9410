"""The search for a less discriminatory alternative (LDA) to the trained logistic model.

Every candidate is one logistic model and one global cut-off, "approve iff score > t" for
everyone: no group threshold, and no protected attribute read at decision time. The
models see only the columns they are given (the contract's non-sensitive features); the
protected attributes enter the *search* alone, through fairlearn's reductions at fit
(``sensitive_features=``) and the figures each candidate is judged on. The families
below are the "searched family" a refutation speaks for (Gillis, Meursault & Ustun,
FAccT 2024):

- ``baseline``: the trainer's own model (``training.model.build_model("logistic")``);
- ``drop-one``: each feature block (a contract feature; a one_hot one is one block) left
  out alone, refitted;
- ``greedy-drop``: blocks left out one after another, each time the one whose drop most
  raises the policy attribute's four-fifths ratio at the baseline's approval rate among
  drops keeping the AUC within the selection's margin (training split), while one still
  raises it, up to ``greedy_steps`` (``training.lda_fits.BlockDrops.greedy``);
- ``regularisation``: the baseline refitted at a few inverse strengths ``C``;
- ``demographic-parity`` / ``equalized-odds``: every deterministic predictor of
  fairlearn's ``GridSearch`` over that constraint on the policy attribute (``predictors_``);
- for each model, the cut-off 0.5 and those giving the baseline's training approval rate
  shifted by each of ``rate_offsets``: the one global threshold is searched too, since
  moving it changes who is approved in every group at once. The selection rule
  (``training.lda_select``) then picks model and cut-off together, fairness first.

A dropped block is a coefficient of 0 on its columns (mean 0, scale 1): the served model
still takes the full feature vector, so every candidate is an ordinary
``LogisticScorer(mean, scale, coef, intercept)`` and its artifact needs no new format.

Example::

    candidates = search(x_train, y_train, x_val, y_val, groups_train={"gender": g_tr},
                        groups_val={"gender": g_va, "age_band": a_va},
                        blocks=feature_blocks(spec), seed=42)
    selection = select([c.figures for c in candidates], baseline=candidates[0].name)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, get_args

import numpy as np

from fairgate.contract_features import ContractFeatures, feature_columns
from fairgate.scorer import LogisticScorer
from training.compile_model import compile_model
from training.fairness import MIN_GROUP_SIZE
from training.lda_figures import Figures, ValidationAudit
from training.lda_fits import (
    Block,
    BlockDrops,
    Family,
    FittedModel,
    LogisticFits,
    Reduction,
    reduction_models,
)
from training.lda_select import AUC_MARGIN
from training.model import build_model

__all__ = ["FAMILIES", "REDUCTIONS", "Block", "Candidate", "feature_blocks", "search"]

FAMILIES: Final[tuple[str, ...]] = get_args(Family)
REDUCTIONS: Final[tuple[str, ...]] = get_args(Reduction)
BASELINE_THRESHOLD: Final[float] = 0.5
# Approval-rate shifts tried for each model: inside lda_select's +-5 point band, so a
# cut-off set on the training split does not leave it on validation by noise alone.
RATE_OFFSETS: Final[tuple[float, ...]] = (-0.04, -0.02, 0.0, 0.02, 0.04)
# With 10^4-10^5 rows a logistic model hardly moves until C is well below 1.
C_VALUES: Final[tuple[float, ...]] = (1e-4, 1e-3, 1e-2)

UNKNOWN_POLICY_ATTRIBUTE: Final[str] = "policy attribute {name!r} is not in groups_train ({known})"
BAD_BLOCKS: Final[str] = "blocks must cover each of the {width} columns once; got columns {got}"
UNKNOWN_REDUCTION: Final[str] = "reductions must be among {known}, got {got}"


@dataclass(frozen=True)
class Candidate:
    """One searched decision rule: a compiled scorer and the one cut-off for everyone."""

    name: str
    family: Family
    dropped: tuple[str, ...]
    c: float
    threshold: float
    scorer: LogisticScorer
    figures: Figures
    note: str = ""


def feature_blocks(features: ContractFeatures) -> list[Block]:
    """(feature name, its model columns) per contract feature, in column order.

    >>> from fairgate.schema import synthetic_features
    >>> feature_blocks(synthetic_features())[-1]
    ('employment', (8, 9, 10, 11, 12))
    """
    blocks, start = [], 0
    for feature in features.features:
        width = len(feature_columns(features.contract, feature))
        blocks.append((feature.name, tuple(range(start, start + width))))
        start += width
    return blocks


def _models(
    features_train: np.ndarray,
    y_train: np.ndarray,
    policy_groups: np.ndarray,
    blocks: Sequence[Block],
    *,
    seed: int,
    greedy_steps: int,
    auc_margin: float,
    c_values: Sequence[float],
    reductions: Sequence[Reduction],
    grid_size: int,
    grid_limit: float,
    min_group_size: int,
) -> tuple[list[FittedModel], float]:
    """Every model of the family, baseline first; and the baseline's training approval rate."""
    width = features_train.shape[1]
    # The baseline is the trainer's own pipeline; the others reuse its scaler.
    pipeline = build_model("logistic", monotonic=[0] * width, seed=seed)
    pipeline.fit(features_train, y_train)
    baseline = compile_model(pipeline)
    assert isinstance(baseline, LogisticScorer)
    scaler = pipeline.named_steps["scale"]
    fits = LogisticFits(
        scaled=scaler.transform(features_train),
        labels=y_train,
        mean=scaler.mean_,
        scale=scaler.scale_,
        seed=seed,
    )
    rate = float(np.mean(baseline.score(features_train) > BASELINE_THRESHOLD))
    drops = BlockDrops(fits, blocks, policy_groups, rate=rate, min_group_size=min_group_size)
    greedy = drops.greedy(steps=greedy_steps, auc_margin=auc_margin)
    why = dict(greedy)
    models = [FittedModel("baseline", "baseline", (), 1.0, baseline, "the trainer's model")]
    for name, _ in blocks:
        dropped = (name,)
        scorer = drops.model(frozenset(dropped))
        models.append(
            FittedModel(f"drop:{name}", "drop-one", dropped, 1.0, scorer, why.get(dropped, ""))
        )
    for dropped, reason in greedy[1:]:  # its first step is a drop-one model, listed above
        scorer = drops.model(frozenset(dropped))
        name = "drop:" + "+".join(dropped)
        models.append(FittedModel(name, "greedy-drop", dropped, 1.0, scorer, reason))
    every = np.arange(width)
    for c in c_values:
        models.append(FittedModel(f"C={c:g}", "regularisation", (), c, fits.fit(every, c=c)))
    for reduction in reductions:
        models += reduction_models(
            fits, policy_groups, reduction=reduction, grid_size=grid_size, grid_limit=grid_limit
        )
    return models, rate


def search(
    features_train: np.ndarray,
    y_train: np.ndarray,
    features_val: np.ndarray,
    y_val: np.ndarray,
    *,
    groups_train: Mapping[str, np.ndarray],
    groups_val: Mapping[str, np.ndarray],
    blocks: Sequence[Block],
    seed: int,
    repaid_val: np.ndarray | None = None,
    policy_attribute: str | None = None,
    greedy_steps: int = 3,
    auc_margin: float = AUC_MARGIN,
    c_values: Sequence[float] = C_VALUES,
    reductions: Sequence[Reduction] = ("demographic-parity",),
    grid_size: int = 21,
    grid_limit: float = 1.0,
    rate_offsets: Sequence[float] = RATE_OFFSETS,
    n_boot: int = 200,
    min_group_size: int = MIN_GROUP_SIZE,
) -> list[Candidate]:
    """Every candidate of the searched family with its validation figures.

    Parameters
    ----------
    features_train, features_val : (rows, columns) model columns, none of them protected.
    y_train, y_val : 0/1 labels (the historical decisions the model learns).
    groups_train : protected attribute -> group per training row; ``policy_attribute``
        (default: the first key) is the one the reductions and the greedy drops target.
    groups_val : attribute -> group per validation row; every one is audited.
    blocks : (name, column indices) covering every column once (``feature_blocks``).
    seed : fixes every fit and the bootstrap; the same inputs give the same candidates.
    repaid_val : the sandbox's ground truth, for ``Figures.accuracy_repaid``.
    auc_margin : the greedy drops stay within it (the selection's own bound by default).
    grid_size, grid_limit : fairlearn's ``GridSearch`` grid; 21 points within +-1 put
        the multipliers 0.1 apart, where the default 10 within +-2 leave gaps of 0.44
        in which the useful models lie.

    Returns
    -------
    Candidates named ``model@cut-off``: the baseline at 0.5 first, then its other
    cut-offs, then the other models in ``FAMILIES`` order, each at 0.5 then its shifted
    cut-offs (rounded to 4 decimals: the value a policy file holds).
    """
    policy_attribute = policy_attribute or next(iter(groups_train))
    if policy_attribute not in groups_train:
        known = ", ".join(groups_train)
        raise ValueError(UNKNOWN_POLICY_ATTRIBUTE.format(name=policy_attribute, known=known))
    if not set(reductions) <= set(REDUCTIONS):
        raise ValueError(UNKNOWN_REDUCTION.format(known=REDUCTIONS, got=tuple(reductions)))
    width = features_train.shape[1]
    covered = sorted(i for _, columns in blocks for i in columns)
    if covered != list(range(width)):
        raise ValueError(BAD_BLOCKS.format(width=width, got=covered))

    models, rate = _models(
        features_train,
        np.asarray(y_train),
        np.asarray(groups_train[policy_attribute]),
        blocks,
        seed=seed,
        greedy_steps=greedy_steps,
        auc_margin=auc_margin,
        c_values=c_values,
        reductions=reductions,
        grid_size=grid_size,
        grid_limit=grid_limit,
        min_group_size=min_group_size,
    )
    audit = ValidationAudit(
        labels=y_val,
        groups=groups_val,
        repaid=repaid_val,
        n_boot=n_boot,
        seed=seed,
        min_group_size=min_group_size,
    )
    candidates = []
    for model in models:
        train_scores = model.scorer.score(features_train)
        scores = model.scorer.score(features_val)
        auc = audit.auc(scores)
        # Cut-offs from the training scores, so the validation figures judge them fairly.
        thresholds = [BASELINE_THRESHOLD] + [
            round(float(np.quantile(train_scores, 1.0 - np.clip(rate + shift, 0.0, 1.0))), 4)
            for shift in rate_offsets
        ]
        for threshold in dict.fromkeys(thresholds):  # two shifts on one value: one candidate
            name = f"{model.name}@{threshold:.4f}"
            figures = audit.figures(name, scores, threshold=threshold, auc=auc, family=model.family)
            candidates.append(
                Candidate(
                    name=name,
                    family=model.family,
                    dropped=model.dropped,
                    c=model.c,
                    threshold=threshold,
                    scorer=model.scorer,
                    figures=figures,
                    note=model.note,
                )
            )
    return candidates
