"""The gap: how much more (or less) of the contract's gap field one twin needs than the
other to be approved (for the default book: income, in dollars).

``Gap`` keeps the signed figures (group a minus group b, what the exporter's gauges carry);
``reading`` turns them round for people: the group that needs more is named first.

For each sampled applicant and each twin, a grid scan over the field checks that approval is
monotone in it (denied ... denied, approved ... approved, in the field's ``direction``) and
brackets the switch; bisection then narrows the bracket to ``tolerance``. Twins whose
decisions are not monotone, or who are never approved within the range, are counted and left
out of the gap rather than given a wrong number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

from fairgate.contract import Contract, GapField
from fairgate.contract_synth import Marginals
from fairgate.contract_twins import twin

Decide = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]
GRID_STEPS: Final[int] = 16


@dataclass(frozen=True)
class Gap:
    attribute: str
    group_a: str
    group_b: str
    field: str
    unit: str
    direction: int
    sampled: int
    measured: int
    non_monotone: int
    never_approved: int
    median: float  # median of (needed by a - needed by b) x direction, in the field's unit
    p90: float
    # The median over the field's median in the recorded book (unitless); nan when no book
    # was recorded (a contract-only audit), rather than a ratio to a made-up median.
    median_ratio: float
    gaps: np.ndarray
    # Last, with a default: callers build a Gap positionally.
    p10: float = float("nan")


@dataclass(frozen=True)
class GapReading:
    """The gap the way a sentence says it: ``first`` needs a more favourable value than
    ``second``, by ``median`` (and ``p90`` at the 90th percentile), both in the field's unit
    and >= 0 for a positive median; ``share`` is the median over the book's median field.

    ``Gap.median`` is signed (group a minus group b); a negative one means group b needs
    more, and must never be printed as "-$8,170 more needed by a".
    """

    first: str
    second: str
    median: float
    p90: float
    share: float


def reading(gap: Gap) -> GapReading:
    """``gap`` with its groups in the order its median says.

    >>> r = reading(Gap("gender", "female", "male", "income", "dollars", 1, 10, 10, 0, 0,
    ...                 -8170.0, -2000.0, -0.1, np.zeros(0), p10=-9000.0))
    >>> (r.first, r.second, r.median, r.p90)
    ('male', 'female', 8170.0, 9000.0)
    """
    if gap.median < 0:
        return GapReading(gap.group_b, gap.group_a, -gap.median, -gap.p10, -gap.median_ratio)
    return GapReading(gap.group_a, gap.group_b, gap.median, gap.p90, gap.median_ratio)


def search_grid(contract: Contract, gap: GapField, marginals: Marginals) -> np.ndarray:
    """Values of the gap field to scan, from least to most favourable.

    From the field's lower bound (or the book's minimum) to twice the book's maximum, capped
    by the upper bound; log-spaced when that range spans more than two decades.
    """
    spec = contract.field(gap.field)
    quantiles = marginals.quantiles[gap.field]
    low = spec.constraints.minimum if spec.constraints.minimum is not None else quantiles[0]
    high = 2.0 * quantiles[-1] if quantiles[-1] > 0 else quantiles[-1] + 1.0
    if spec.constraints.maximum is not None:
        high = min(high, spec.constraints.maximum)
    start = max(quantiles[len(quantiles) // 100], low)  # ~ the book's 0.5th percentile
    if low >= 0 and start > 0 and high > 100 * start:
        grid = np.concatenate([[low], np.geomspace(start, high, GRID_STEPS - 1)])
    else:
        grid = np.linspace(low, high, GRID_STEPS)
    if spec.type == "integer":
        grid = np.unique(np.rint(grid))
    grid = np.unique(grid)
    return grid if gap.direction > 0 else grid[::-1]


def _with(
    columns: dict[str, np.ndarray], field: str, values: np.ndarray, integer: bool
) -> dict[str, np.ndarray]:
    return dict(columns, **{field: np.rint(values).astype(np.int64) if integer else values})


def _repeat(columns: dict[str, np.ndarray], times: int) -> dict[str, np.ndarray]:
    return {name: np.repeat(values, times) for name, values in columns.items()}


def needed_value(
    decide: Decide,
    columns: dict[str, np.ndarray],
    field: str,
    grid: np.ndarray,
    *,
    integer: bool,
    tolerance: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per applicant: the least favourable value still approved (nan if none) and a
    monotonicity flag; ``grid`` runs from least to most favourable."""
    n, steps = len(next(iter(columns.values()))), len(grid)
    scanned = _with(_repeat(columns, steps), field, np.tile(grid, n), integer)
    approved = decide(scanned)[0].reshape(n, steps)
    # Monotone: once approved, approved at every more favourable value on the grid.
    monotone = np.all(np.diff(approved.astype(np.int8), axis=1) >= 0, axis=1)
    found = approved[:, -1] & monotone
    first = np.argmax(approved, axis=1)
    # "good" is approved, "bad" the last denied value before it (or itself at the grid start).
    good = np.where(found, grid[first], np.nan)
    bad = np.where(found & (first > 0), grid[np.maximum(first - 1, 0)], good)
    active = found & (np.abs(good - bad) > tolerance)
    while active.any():
        mid = (good + bad) / 2
        if integer:
            mid = np.floor(mid) if grid[-1] > grid[0] else np.ceil(mid)
        rows = np.flatnonzero(active)
        subset = {k: v[active] for k, v in columns.items()}
        result = decide(_with(subset, field, mid[active], integer))[0]
        good[rows[result]] = mid[active][result]
        bad[rows[~result]] = mid[active][~result]
        active = found & (np.abs(good - bad) > tolerance)
        if integer:
            # Adjacent integers cannot be split further.
            active &= np.abs(good - bad) > 1
    return good, monotone


def measure_gap(
    decide: Decide,
    contract: Contract,
    marginals: Marginals,
    base: dict[str, np.ndarray],
    *,
    attribute: str,
    group_a: str,
    group_b: str,
    recorded: bool = True,
) -> Gap:
    """The gap between the ``group_a`` and ``group_b`` twins of ``base`` in the contract's
    gap field: positive when group a needs a more favourable value than group b.

    ``recorded``: ``marginals`` summarise a real book, so its median can scale the gap."""
    gap = contract.gap
    if gap is None:
        raise ValueError(f"contract {contract.name!r} has no gap field")
    spec = contract.field(gap.field)
    integer = spec.type == "integer"
    grid = search_grid(contract, gap, marginals)
    span = float(abs(grid[-1] - grid[0]))
    tolerance = 1.0 if integer else max(span * 1e-6, 1e-9)
    needed_a, monotone_a = needed_value(
        decide, twin(contract, base, attribute, group_a), gap.field, grid,
        integer=integer, tolerance=tolerance,
    )  # fmt: skip
    needed_b, monotone_b = needed_value(
        decide, twin(contract, base, attribute, group_b), gap.field, grid,
        integer=integer, tolerance=tolerance,
    )  # fmt: skip
    monotone = monotone_a & monotone_b
    both = monotone & np.isfinite(needed_a) & np.isfinite(needed_b)
    gaps = ((needed_a - needed_b) * gap.direction)[both]
    median = float(np.median(gaps)) if gaps.size else float("nan")
    typical = marginals.quantiles[gap.field][len(marginals.quantiles[gap.field]) // 2]
    return Gap(
        attribute=attribute,
        group_a=group_a,
        group_b=group_b,
        field=gap.field,
        unit=gap.unit or spec.unit,
        direction=gap.direction,
        sampled=len(needed_a),
        measured=int(both.sum()),
        non_monotone=int((~monotone).sum()),
        never_approved=int((monotone & ~(np.isfinite(needed_a) & np.isfinite(needed_b))).sum()),
        median=median,
        p90=float(np.percentile(gaps, 90)) if gaps.size else float("nan"),
        median_ratio=median / abs(typical) if typical and recorded else float("nan"),
        gaps=gaps,
        # b's 90th percentile when b is the group needing more (``reading``).
        p10=float(np.percentile(gaps, 10)) if gaps.size else float("nan"),
    )
