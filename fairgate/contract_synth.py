"""Applicants synthesized from recorded marginals, so probes look real without real rows.

At training time ``record_marginals`` keeps, per field, quantiles (numbers) or frequencies
(categories) and the rank (Spearman) correlations between numeric fields: a fixed-size
summary with no training row in it. ``synthesize`` draws applicants from it with a
Gaussian copula: correlated standard normals (Cholesky factor of the latent correlation
``2 sin(pi * rho_s / 6)``, the Gaussian copula's map from Spearman's rho) are turned into
uniforms by the normal CDF and then into values by each field's quantile function.
Categories are drawn independently by their frequencies, by Mimesis' seeded random
source, which also seeds the numpy generator of the numeric draws: the same
``(marginals, n, seed)`` always gives the same applicants.

``record_synthesis`` keeps two such summaries: the whole book's, and the applicants' nearest
their group's threshold (the "boundary" population), so probes can be put where decisions
are made on any book without knowing its fields. Vectorised throughout (the benchmark:
``python -m fairgate.contract_synth``, a 20-field contract on one core).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import numpy as np
from mimesis.random import Random as MimesisRandom
from scipy.special import ndtr
from threadpoolctl import ThreadpoolController

from fairgate.contract import Contract, FieldSpec
from fairgate.contract_missing import missing_mask

QUANTILE_LEVELS: Final[int] = 201  # every 0.5 percentile, min and max included
BOUNDARY_SHARE: Final[float] = 0.2
MIN_BOUNDARY_ROWS: Final[int] = 50
# Rank correlations from at most this many rows (every k-th): the estimate's error at 200,000
# rows (~0.002) is far below what the copula reproduces, and ranking every row of a large book
# per field would dominate record_marginals' time in training.
CORRELATION_ROWS: Final[int] = 200_000


@dataclass(frozen=True)
class Marginals:
    """Per-field summaries and rank correlations of one book (JSON-ready via ``to_dict``)."""

    quantiles: dict[str, list[float]]
    frequencies: dict[str, dict[str, float]]
    rank_correlation: list[list[float]]  # over ``quantiles``' fields, in their order

    def to_dict(self) -> dict[str, Any]:
        return {
            "quantiles": self.quantiles,
            "frequencies": self.frequencies,
            "rank_correlation": self.rank_correlation,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Marginals:
        return cls(
            quantiles={k: [float(v) for v in vs] for k, vs in raw["quantiles"].items()},
            frequencies={k: dict(v) for k, v in raw["frequencies"].items()},
            rank_correlation=[[float(v) for v in row] for row in raw["rank_correlation"]],
        )


@dataclass(frozen=True)
class Synthesis:
    """What probes and load are synthesized from: the book's marginals, and the marginals of
    the ``boundary_rows`` applicants nearest their group's threshold (``None`` when too few
    rows), all of whom are within ``boundary_width`` of it in score."""

    population: Marginals
    boundary: Marginals | None = None
    boundary_rows: int = 0
    boundary_width: float = math.inf

    def to_dict(self) -> dict[str, Any]:
        return {
            "population": self.population.to_dict(),
            "boundary": None if self.boundary is None else self.boundary.to_dict(),
            "boundary_rows": self.boundary_rows,
            # JSON has no infinity; no boundary set means no width.
            "boundary_width": None if math.isinf(self.boundary_width) else self.boundary_width,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Synthesis:
        boundary = raw.get("boundary")
        width = raw.get("boundary_width")
        return cls(
            population=Marginals.from_dict(raw["population"]),
            boundary=None if boundary is None else Marginals.from_dict(boundary),
            boundary_rows=int(raw.get("boundary_rows", 0)),
            boundary_width=math.inf if width is None else float(width),
        )


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (1-based; ties share their mean rank, Spearman's definition), so the
    row order never matters. An empty cell takes the mean rank: it neither adds to nor
    takes from any correlation. numpy, not scipy.stats.rankdata: importing scipy.stats
    would delay every Locust process's first request noticeably."""
    present = ~np.isnan(values)
    _, inverse, counts = np.unique(values[present], return_inverse=True, return_counts=True)
    mean_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = np.full(len(values), (np.count_nonzero(present) + 1) / 2.0)
    ranks[present] = mean_rank[inverse]
    return ranks


def record_marginals(contract: Contract, columns: Mapping[str, np.ndarray]) -> Marginals:
    """Summarise a book's numeric and category fields (the id is never recorded)."""
    levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
    quantiles: dict[str, list[float]] = {}
    frequencies: dict[str, dict[str, float]] = {}
    for spec in contract.fields:
        if spec.type == "id":
            continue
        values = np.asarray(columns[spec.name])
        if spec.numeric and spec.codes is None:
            numbers = values.astype(np.float64)
            numbers = numbers[np.isfinite(numbers)]
            quantiles[spec.name] = np.quantile(numbers, levels).tolist()
        else:
            # Categories, and integer codes (0/1) drawn as the codes they are: quantiles
            # would interpolate between codes. An empty cell is no value ("nan" is none).
            present = values[~missing_mask(values)]
            if spec.codes is not None:
                present = present.astype(np.float64).astype(np.int64)
            kinds, counts = np.unique(present.astype(str), return_counts=True)
            frequencies[spec.name] = {
                str(k): float(c) / float(counts.sum()) for k, c in zip(kinds, counts, strict=True)
            }
    names = list(quantiles)
    if len(names) > 1:
        rows = len(np.asarray(columns[names[0]]))
        every = slice(None, None, max(1, math.ceil(rows / CORRELATION_ROWS)))
        ranks = np.column_stack(
            [_ranks(np.asarray(columns[name], dtype=np.float64)[every]) for name in names]
        )
        # A field with one value on every row (a book's constant column) has no rank
        # correlation with anything: 0, not NaN and a division warning.
        with np.errstate(invalid="ignore", divide="ignore"):
            correlation = np.corrcoef(ranks, rowvar=False)
        correlation = np.nan_to_num(correlation, nan=0.0)
        np.fill_diagonal(correlation, 1.0)
    else:
        correlation = np.ones((len(names), len(names)))
    return Marginals(quantiles, frequencies, np.round(correlation, 6).tolist())


def record_synthesis(
    contract: Contract,
    columns: Mapping[str, np.ndarray],
    distance: np.ndarray,
    *,
    share: float = BOUNDARY_SHARE,
) -> Synthesis:
    """Marginals of ``columns`` and of the ``share`` of rows with the smallest ``distance``
    (each row's score distance to its group's threshold, ``ThresholdPolicy.boundary_distance``).

    Rows that no threshold can decide (infinite distance) never count as near.
    """
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], got {share}")
    population = record_marginals(contract, columns)
    distance = np.asarray(distance, dtype=np.float64)
    finite = np.flatnonzero(np.isfinite(distance))
    count = min(len(finite), math.ceil(share * len(distance)))
    if count < MIN_BOUNDARY_ROWS:
        return Synthesis(population)
    nearest = finite[np.argsort(distance[finite], kind="stable")[:count]]
    boundary = record_marginals(contract, {k: np.asarray(v)[nearest] for k, v in columns.items()})
    return Synthesis(population, boundary, count, float(distance[nearest].max()))


def marginals_from_contract(contract: Contract) -> Marginals:
    """Marginals from the contract alone, for auditing an endpoint whose book is unknown.

    Less realistic than recorded ones: numbers spread evenly between the bounds (evenly in
    log scale when the range spans more than two decades from >= 0), categories uniform,
    fields independent. A field without both bounds spreads around its example.
    """
    levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
    quantiles: dict[str, list[float]] = {}
    frequencies: dict[str, dict[str, float]] = {}
    for spec in contract.fields:
        c = spec.constraints
        if spec.codes is not None:
            frequencies[spec.name] = {str(v): 1.0 / len(spec.codes) for v in spec.codes}
        elif spec.numeric:
            example = float(spec.example) if isinstance(spec.example, int | float) else 1.0
            low = c.minimum if c.minimum is not None else min(0.0, example)
            high = c.maximum if c.maximum is not None else max(2.0 * abs(example), low + 1.0)
            if low >= 0 and high > 100 * max(low, 1.0):
                spread = np.expm1(np.linspace(np.log1p(low), np.log1p(high), QUANTILE_LEVELS))
            else:
                spread = low + levels * (high - low)
            quantiles[spec.name] = np.clip(spread, low, high).tolist()
        elif spec.type == "category":
            values = c.enum or ()
            frequencies[spec.name] = {v: 1.0 / len(values) for v in values}
    identity = np.eye(len(quantiles)).tolist()
    return Marginals(quantiles, frequencies, identity)


def _latent_factor(rank_correlation: list[list[float]]) -> np.ndarray:
    """Cholesky factor of the normal correlation reproducing the recorded Spearman rho."""
    rho = np.asarray(rank_correlation, dtype=np.float64)
    if rho.size == 0:
        return rho.reshape(0, 0)
    latent = 2.0 * np.sin(math.pi * np.nan_to_num(rho) / 6.0)
    np.fill_diagonal(latent, 1.0)
    # Mapped pairwise, the matrix may be slightly indefinite: clip its spectrum.
    values, vectors = np.linalg.eigh(latent)
    latent = (vectors * np.maximum(values, 1e-6)) @ vectors.T
    scale = np.sqrt(np.diag(latent))
    return np.linalg.cholesky(latent / np.outer(scale, scale))


def _quantile_function(quantiles: list[float], uniforms: np.ndarray) -> np.ndarray:
    """Linear interpolation between recorded quantiles at evenly spaced levels.

    The levels are ``i / (L - 1)``, so a uniform's segment is computed, not searched:
    ``np.interp`` would binary-search every value, the bulk of the synthesis time.
    """
    points = np.asarray(quantiles, dtype=np.float64)
    steps = len(points) - 1
    if steps < 1:
        return np.full(len(uniforms), points[0] if len(points) else np.nan)
    position = uniforms * steps
    index = np.minimum(position.astype(np.intp), steps - 1)  # u == 1 -> last segment's end
    low = points[index]
    return low + (position - index) * (points[index + 1] - low)


def _numeric(spec: FieldSpec, quantiles: list[float], uniforms: np.ndarray) -> np.ndarray:
    values = _quantile_function(quantiles, uniforms)
    low, high = spec.constraints.minimum, spec.constraints.maximum
    if spec.type == "integer":
        values = np.rint(values)
    if low is not None or high is not None:
        values = np.clip(values, low, high)
    return values.astype(np.int64) if spec.type == "integer" else values


@cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def synthesize(
    contract: Contract, marginals: Marginals, n: int, *, seed: int, id_prefix: str = "SYN"
) -> dict[str, np.ndarray]:
    """``n`` applicants as a column table in contract field order, valid under the contract.

    The same ``(marginals, n, seed, id_prefix)`` always gives the same table.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    source = MimesisRandom(seed)
    rng = np.random.default_rng(source.getrandbits(64))
    names = list(marginals.quantiles)
    factor = _latent_factor(marginals.rank_correlation)
    # One BLAS thread: the product is small, and with other processes on the cores OpenBLAS'
    # threads wait for each other far longer than they compute (the prober runs beside the
    # service's workers).
    with _blas().limit(limits=1, user_api="blas"):
        latent = rng.standard_normal((n, len(names))) @ factor.T
    uniforms = ndtr(latent)
    table: dict[str, np.ndarray] = {}
    for spec in contract.fields:
        if spec.type == "id":
            width = max(8, len(str(max(n - 1, 0))))
            make_id = f"{id_prefix}-{seed}-{{:0{width}d}}".format
            table[spec.name] = np.array(list(map(make_id, range(n))), dtype=object)
        elif spec.name in marginals.quantiles:
            column = uniforms[:, names.index(spec.name)]
            table[spec.name] = _numeric(spec, marginals.quantiles[spec.name], column)
        else:
            frequencies = marginals.frequencies[spec.name]
            kinds, weights = list(frequencies), list(frequencies.values())
            drawn = np.array(source.choices(kinds, weights=weights, k=n), dtype=object)
            table[spec.name] = drawn.astype(np.int64) if spec.numeric else drawn
    return table


def _bench_contract(numeric: int = 15, categories: int = 4) -> Contract:
    from fairgate.contract import contract_from_mapping

    fields: list[dict[str, Any]] = [{"name": "app_id", "type": "id"}]
    fields += [
        {
            "name": f"x{i}",
            "type": "integer" if i % 3 == 0 else "number",
            "constraints": {"minimum": 0, "maximum": 1e6},
        }
        for i in range(numeric)
    ]
    fields += [
        {"name": f"c{i}", "type": "category", "constraints": {"enum": ["a", "b", "c", "d"]}}
        for i in range(categories)
    ]
    return contract_from_mapping(
        {
            "name": "bench",
            "fields": fields,
            "label": {"column": "y", "approved": [1], "denied": [0]},
            "protected": [{"name": "c0", "field": "c0"}],
            "groups": {"policy": ["c0"], "audit": ["c0"], "prober": ["c0"]},
            "features": [{"name": "x1", "transform": "as_is", "field": "x1"}],
        }
    )


def main() -> None:
    """Benchmark: applicants per second for a 20-field contract (1 id, 15 numeric, 4 categories)."""
    contract = _bench_contract()
    rng = np.random.default_rng(0)
    source_rows = 20_000
    base = rng.lognormal(10, 1, source_rows)
    columns: dict[str, np.ndarray] = {"app_id": np.arange(source_rows).astype(str)}
    for i in range(15):
        noisy = base * rng.lognormal(0, 0.5 + i / 30, source_rows)
        columns[f"x{i}"] = np.minimum(np.rint(noisy) if i % 3 == 0 else noisy, 1e6)
    for i in range(4):
        columns[f"c{i}"] = rng.choice(np.array(["a", "b", "c", "d"], dtype=object), source_rows)
    marginals = record_marginals(contract, columns)
    for n in (10_000, 100_000, 1_000_000):
        best = math.inf
        for _ in range(3):
            start = time.perf_counter()
            synthesize(contract, marginals, n, seed=1)
            best = min(best, time.perf_counter() - start)
        print(f"{n:>9,} applicants x 20 fields: {best * 1e3:8.1f} ms  {n / best:12,.0f} /s")


if __name__ == "__main__":
    main()
