"""Applicants synthesized from recorded marginals, so probes look real without real rows.

At training time ``record_marginals`` keeps, per field, quantiles (numbers) or frequencies
(categories) and the rank (Spearman) correlations between numeric fields: a fixed-size
summary with no training row in it. ``synthesize`` draws applicants from it with a
Gaussian copula: correlated standard normals (Cholesky factor of the latent correlation
``2 sin(pi * rho_s / 6)``, the Gaussian copula's map from Spearman's rho) are turned into
uniforms by the normal CDF and then into values by each field's quantile function.
Categories are drawn independently by their frequencies. Every draw comes from one
``numpy`` generator seeded by ``seed``: the same ``(marginals, n, seed)`` always gives the
same applicants. Vectorised throughout: about 500,000 applicants a second for a 20-field
contract on one core (``python -m fairgate.contract_synth``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from scipy.special import ndtr

from fairgate.contract import Contract, FieldSpec

QUANTILE_LEVELS: Final[int] = 201  # every 0.5 percentile, min and max included


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


def _ranks(values: np.ndarray) -> np.ndarray:
    # Ordinal ranks; ties broken by position, which moves rho by O(ties / n^2) only.
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[np.argsort(values, kind="stable")] = np.arange(len(values), dtype=np.float64)
    return ranks


def record_marginals(contract: Contract, columns: Mapping[str, np.ndarray]) -> Marginals:
    """Summarise a book's numeric and category fields (the id is never recorded)."""
    levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
    quantiles: dict[str, list[float]] = {}
    frequencies: dict[str, dict[str, float]] = {}
    for spec in contract.fields:
        values = np.asarray(columns[spec.name])
        if spec.numeric:
            numbers = values.astype(np.float64)
            numbers = numbers[np.isfinite(numbers)]
            quantiles[spec.name] = np.quantile(numbers, levels).tolist()
        elif spec.type == "category":
            kinds, counts = np.unique(values[values != None].astype(str), return_counts=True)  # noqa: E711
            frequencies[spec.name] = {
                str(k): float(c) / float(counts.sum()) for k, c in zip(kinds, counts, strict=True)
            }
    names = list(quantiles)
    if len(names) > 1:
        ranks = np.column_stack(
            [_ranks(np.asarray(columns[name], dtype=np.float64)) for name in names]
        )
        correlation = np.corrcoef(ranks, rowvar=False)
    else:
        correlation = np.ones((len(names), len(names)))
    return Marginals(quantiles, frequencies, np.round(correlation, 6).tolist())


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


def _numeric(spec: FieldSpec, quantiles: list[float], uniforms: np.ndarray) -> np.ndarray:
    levels = np.linspace(0.0, 1.0, len(quantiles))
    values = np.interp(uniforms, levels, quantiles)
    low, high = spec.constraints.minimum, spec.constraints.maximum
    if spec.type == "integer":
        values = np.rint(values)
    if low is not None or high is not None:
        values = np.clip(values, low, high)
    return values.astype(np.int64) if spec.type == "integer" else values


def synthesize(
    contract: Contract, marginals: Marginals, n: int, *, seed: int, id_prefix: str = "SYN"
) -> dict[str, np.ndarray]:
    """``n`` applicants as a column table in contract field order, valid under the contract.

    The same ``(marginals, n, seed, id_prefix)`` always gives the same table.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    rng = np.random.default_rng(seed)
    names = list(marginals.quantiles)
    factor = _latent_factor(marginals.rank_correlation)
    latent = rng.standard_normal((n, len(names))) @ factor.T
    uniforms = ndtr(latent)
    table: dict[str, np.ndarray] = {}
    for spec in contract.fields:
        if spec.type == "id":
            width = max(8, len(str(max(n - 1, 0))))
            table[spec.name] = np.array(
                [f"{id_prefix}-{seed}-{i:0{width}d}" for i in range(n)], dtype=object
            )
        elif spec.numeric:
            column = uniforms[:, names.index(spec.name)]
            table[spec.name] = _numeric(spec, marginals.quantiles[spec.name], column)
        else:
            frequencies = marginals.frequencies[spec.name]
            kinds = np.asarray(list(frequencies), dtype=object)
            cumulative = np.cumsum(list(frequencies.values()))
            picks = np.searchsorted(cumulative / cumulative[-1], rng.random(n), side="right")
            table[spec.name] = kinds[np.minimum(picks, len(kinds) - 1)]
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
