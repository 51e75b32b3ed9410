"""Counterfactual twins: identical applicants that differ only in one protected attribute.

Twins keep every other field, the application id included, so a service that keys its
random draw on the id gives both twins the same draw and any difference in decision is
the attribute's doing.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Final

import numpy as np

from fairgate.generator import generate_applicants
from fairgate.schema import AGE_BAND_REPRESENTATIVE, AGE_BANDS, age_band

# Values each attribute is flipped across. Gender uses the two groups the policy has
# thresholds for; age band moves age to a representative age of each band.
ATTRIBUTE_VALUES: Final[dict[str, tuple[str, ...]]] = {
    "gender": ("female", "male"),
    "age_band": AGE_BANDS,
}


def base_population(n: int, *, seed: int, boundary_share: float = 0.5) -> dict[str, np.ndarray]:
    """``n`` applicants, ``boundary_share`` of them pulled toward the typical decision zone.

    Random applicants are mostly far from any threshold, where no attribute can flip them;
    scaling loan size toward moderate income multiples concentrates probes where decisions
    are actually made, so a cycle's flip rate is informative.
    """
    columns = generate_applicants(n, seed=seed, id_prefix="PROBE")
    rng = np.random.default_rng([seed, 2])
    near = rng.random(n) < boundary_share
    income = columns["annual_income"]
    columns["annual_income"] = np.where(near, np.round(rng.uniform(15_000, 90_000, n), 2), income)
    columns["loan_amount"] = np.where(
        near,
        np.round(columns["annual_income"] * rng.uniform(0.1, 0.5, n) + 1000, 2),
        columns["loan_amount"],
    )
    return columns


def twin(columns: dict[str, np.ndarray], attribute: str, value: str) -> dict[str, np.ndarray]:
    """A copy of ``columns`` with ``attribute`` set to ``value`` for every applicant."""
    copy = dict(columns)
    if attribute == "gender":
        copy["gender"] = np.full(len(columns["gender"]), value, dtype=object)
    elif attribute == "age_band":
        # Keep age when already in the band, so the twin differs only where it must.
        keep = age_band(columns["age"]) == value
        copy["age"] = np.where(keep, columns["age"], AGE_BAND_REPRESENTATIVE[value])
    else:
        raise ValueError(f"cannot flip unknown attribute {attribute!r}")
    return copy


@dataclass(frozen=True)
class PairStats:
    attribute: str
    group_a: str
    group_b: str
    pairs: int
    flip_rate: float
    favours_a_rate: float  # a approved, b denied
    favours_b_rate: float
    mean_score_difference: float  # mean(score_a - score_b)
    max_abs_score_difference: float


def pair_stats(
    attribute: str,
    a: str,
    b: str,
    approved_a: np.ndarray,
    approved_b: np.ndarray,
    score_a: np.ndarray,
    score_b: np.ndarray,
) -> PairStats:
    favours_a = float(np.mean(approved_a & ~approved_b))
    favours_b = float(np.mean(approved_b & ~approved_a))
    difference = score_a - score_b
    return PairStats(
        attribute=attribute,
        group_a=a,
        group_b=b,
        pairs=len(approved_a),
        flip_rate=favours_a + favours_b,
        favours_a_rate=favours_a,
        favours_b_rate=favours_b,
        mean_score_difference=float(np.mean(difference)),
        max_abs_score_difference=float(np.max(np.abs(difference))),
    )


@dataclass(frozen=True)
class AttributeResult:
    attribute: str
    approval_rate: dict[str, float]
    approval_ratio: float  # lowest group's rate over the highest's (four-fifths test)
    pairs: list[PairStats]
    rows: list[dict[str, Any]]  # per application id: each twin's decision, for the audit


def attribute_result(
    attribute: str, base: dict[str, np.ndarray], outcomes: dict[str, tuple[np.ndarray, np.ndarray]]
) -> AttributeResult:
    """Summarise one attribute's twins; ``outcomes[value] = (approved, score)``."""
    rates = {value: float(np.mean(approved)) for value, (approved, _) in outcomes.items()}
    top = max(rates.values())
    ratio = min(rates.values()) / top if top > 0 else 1.0
    pairs = [
        pair_stats(attribute, a, b, outcomes[a][0], outcomes[b][0], outcomes[a][1], outcomes[b][1])
        for a, b in combinations(outcomes, 2)
    ]
    rows = [
        {
            "application_id": base["application_id"][i],
            "annual_income": float(base["annual_income"][i]),
            **{value: bool(outcomes[value][0][i]) for value in outcomes},
        }
        for i in range(len(base["application_id"]))
    ]
    return AttributeResult(
        attribute=attribute, approval_rate=rates, approval_ratio=ratio, pairs=pairs, rows=rows
    )
