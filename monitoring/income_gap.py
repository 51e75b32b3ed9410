"""The income gap: how much more one twin must earn than the other to be approved.

For each sampled applicant and each twin, a grid scan checks that approval is monotone in
income (denied ... denied, approved ... approved) and brackets the switch; bisection then
narrows the bracket to ``tolerance`` dollars. Twins whose decisions are not monotone, or
who are never approved within the range, are counted and left out of the gap rather than
given a wrong number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from monitoring.counterfactual import twin

Decide = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
MAX_INCOME: Final[float] = 2_000_000.0
_GRID: Final[np.ndarray] = np.concatenate([[0.0], np.geomspace(5_000, MAX_INCOME, 15)])


@dataclass(frozen=True)
class IncomeGap:
    attribute: str
    group_a: str
    group_b: str
    sampled: int
    measured: int
    non_monotone: int
    never_approved: int
    median_dollars: float  # median of (income needed by a) - (income needed by b)
    p90_dollars: float
    gaps: np.ndarray


def _with_income(columns: dict[str, np.ndarray], income: np.ndarray) -> dict[str, np.ndarray]:
    return dict(columns, annual_income=np.round(income, 2))


def _repeat(columns: dict[str, np.ndarray], times: int) -> dict[str, np.ndarray]:
    return {name: np.repeat(values, times) for name, values in columns.items()}


def lowest_approved_income(
    decide: Decide, columns: dict[str, np.ndarray], *, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per applicant: the lowest approved income (nan if none), and a monotonicity flag."""
    n, steps = len(columns["application_id"]), len(_GRID)
    grid_columns = _with_income(_repeat(columns, steps), np.tile(_GRID, n))
    approved = decide(grid_columns)[0].reshape(n, steps)
    # Monotone: once approved, approved at every higher income on the grid.
    monotone = np.all(np.diff(approved.astype(np.int8), axis=1) >= 0, axis=1)
    found = approved[:, -1] & monotone
    first = np.argmax(approved, axis=1)
    hi = np.where(found, _GRID[first], np.nan)
    lo = np.where(found & (first > 0), _GRID[np.maximum(first - 1, 0)], hi)
    active = found & (hi - lo > tolerance)
    while active.any():
        mid = (lo + hi) / 2
        result = decide(_with_income({k: v[active] for k, v in columns.items()}, mid[active]))[0]
        hi[np.flatnonzero(active)[result]] = mid[active][result]
        lo[np.flatnonzero(active)[~result]] = mid[active][~result]
        active = found & (hi - lo > tolerance)
    return hi, monotone


def income_gap(
    decide: Decide,
    base: dict[str, np.ndarray],
    *,
    attribute: str = "gender",
    group_a: str = "female",
    group_b: str = "male",
    tolerance: float = 1.0,
) -> IncomeGap:
    """The gap in dollars between the ``group_a`` and ``group_b`` twins of ``base``."""
    needed_a, monotone_a = lowest_approved_income(
        decide, twin(base, attribute, group_a), tolerance=tolerance
    )
    needed_b, monotone_b = lowest_approved_income(
        decide, twin(base, attribute, group_b), tolerance=tolerance
    )
    monotone = monotone_a & monotone_b
    both = monotone & np.isfinite(needed_a) & np.isfinite(needed_b)
    gaps = (needed_a - needed_b)[both]
    return IncomeGap(
        attribute=attribute,
        group_a=group_a,
        group_b=group_b,
        sampled=len(needed_a),
        measured=int(both.sum()),
        non_monotone=int((~monotone).sum()),
        never_approved=int((monotone & ~(np.isfinite(needed_a) & np.isfinite(needed_b))).sum()),
        median_dollars=float(np.median(gaps)) if gaps.size else float("nan"),
        p90_dollars=float(np.percentile(gaps, 90)) if gaps.size else float("nan"),
        gaps=gaps,
    )
