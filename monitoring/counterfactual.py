"""Counterfactual twins: identical applicants that differ only in one protected attribute.

Twins keep every other field, the application id included (``fairgate.contract_twins``), so
a service whose randomized draw is keyed on the applicant gives both twins the same draw
and any difference in decision is the attribute's doing.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from fairgate.contract_synth import synthesize
from monitoring.target import ProbeTarget


def probe_population(
    target: ProbeTarget, n: int, *, seed: int, boundary_share: float = 0.5
) -> dict[str, np.ndarray]:
    """``n`` synthetic applicants: ``boundary_share`` of them from the summaries of the book's
    applicants nearest their group's threshold, the rest like the whole book.

    Random applicants are mostly far from any threshold, where no attribute can flip them;
    the boundary summaries put probes where decisions are made, on any book. Without them
    (a foreign endpoint, or a book too small) every probe comes from the population.
    """
    synthesis, contract = target.synthesis, target.contract
    near = round(n * boundary_share) if synthesis.boundary is not None else 0
    parts = [synthesize(contract, synthesis.population, n - near, seed=seed, id_prefix="PROBE")]
    if near:
        boundary = synthesis.boundary
        assert boundary is not None
        parts.append(synthesize(contract, boundary, near, seed=seed + 1, id_prefix="PROBE-B"))
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


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
    attribute: str,
    base: dict[str, np.ndarray],
    outcomes: dict[str, tuple[np.ndarray, np.ndarray]],
    shown: tuple[str, ...],
) -> AttributeResult:
    """Summarise one attribute's twins; ``outcomes[value] = (approved, score)``; each row of
    the audit shows the fields in ``shown`` (the id, and the gap field if there is one)."""
    rates = {value: float(np.mean(approved)) for value, (approved, _) in outcomes.items()}
    top = max(rates.values())
    ratio = min(rates.values()) / top if top > 0 else 1.0
    pairs = [
        pair_stats(attribute, a, b, outcomes[a][0], outcomes[b][0], outcomes[a][1], outcomes[b][1])
        for a, b in combinations(outcomes, 2)
    ]
    n = len(base[shown[0]])
    rows = [
        {
            **{name: base[name][i].item() if hasattr(base[name][i], "item") else base[name][i]
               for name in shown},
            **{value: bool(outcomes[value][0][i]) for value in outcomes},
        }
        for i in range(n)
    ]  # fmt: skip
    return AttributeResult(
        attribute=attribute, approval_rate=rates, approval_ratio=ratio, pairs=pairs, rows=rows
    )
