"""Bands of a numeric protected field: edges, labels and a representative of each band.

Ages band at 25/35/50/65, other fields at their quartiles; the contract's rule is that band i
holds ``edges[i-1] <= value < edges[i]``. A band thinner than ``MIN_BAND_ROWS`` rows gives rates
too noisy to set a threshold on or audit, so thin bands merge into a neighbour until each is
thick enough (a tiny book is asked for a quarter of its rows at most). When merging leaves no
edge, the field splits in two where the smaller side is largest. Labels read as a person writes
bands (``25-34``, ``65+``); each representative is a value someone in the band really has.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from training.draft_checks import DraftError
from training.draft_values import cell_value, number_text, outward, python_scalar

__all__ = ["AGE_EDGES", "MIN_BAND_ROWS", "bands"]

AGE_EDGES: Final[tuple[int, ...]] = (25, 35, 50, 65)
# A band thinner than this gives rates too noisy to set a threshold on or audit.
MIN_BAND_ROWS: Final[int] = 50


def _band_edges(name: str, series: pd.Series, kind: str) -> list[int | float]:
    low, high = float(series.min()), float(series.max())
    if "age" in name.lower():
        edges: list[float] = [float(e) for e in AGE_EDGES if low < e <= high]
    else:
        quartiles = series.quantile([0.25, 0.5, 0.75]).tolist()
        edges = sorted({float(outward(q, kind, False)) for q in quartiles if low < q <= high})
    if not edges:
        edges = [float(outward((low + high) / 2, kind, False))]
    return [int(e) if kind == "integer" or e.is_integer() else e for e in edges]


def _band_of(edges: Sequence[float], values: pd.Series) -> np.ndarray:
    # The contract's own rule: band i holds edges[i-1] <= value < edges[i].
    return np.searchsorted(np.asarray(edges, dtype=np.float64), values.to_numpy(), side="right")


def _merge_thin(edges: list[int | float], values: pd.Series, least: int) -> list[int | float]:
    """Drop edges until every band holds ``least`` rows: the thinnest band joins its thinner
    neighbour first, so the bands left stay as even as the data allows."""
    edges = list(edges)
    while edges:
        counts = np.bincount(_band_of(edges, values), minlength=len(edges) + 1)
        if counts.min() >= least:
            break
        thin = int(np.argmin(counts))
        if thin == 0:
            del edges[0]
        elif thin == len(counts) - 1 or counts[thin - 1] <= counts[thin + 1]:
            del edges[thin - 1]
        else:
            del edges[thin]
    return edges


def _split_in_two(name: str, values: pd.Series) -> list[int | float]:
    """The one edge that leaves the most rows on its smaller side (no split is thick enough)."""
    distinct, counts = np.unique(values.to_numpy(), return_counts=True)
    if len(distinct) < 2:
        raise DraftError(f"protected field {name!r} has one value only; there are no groups")
    below = np.cumsum(counts)[:-1]
    best = int(np.argmax(np.minimum(below, len(values) - below)))
    return [python_scalar(distinct[best + 1])]


def bands(name: str, seen: pd.Series, kind: str, low: int | float) -> dict[str, list[Any]]:
    """Edges, labels and representatives of a numeric protected field.

    The first label starts at the field's minimum (what a request may send), the last is
    open (``65+``); each representative is a value applicants in the band really have.
    """
    # A tiny book cannot give every band 50 rows: never ask more than a quarter of it.
    least = max(1, min(MIN_BAND_ROWS, len(seen) // 4))
    edges = _merge_thin(_band_edges(name, seen, kind), seen, least) or _split_in_two(name, seen)
    band = _band_of(edges, seen)
    labels, representatives = [], []
    for i, start in enumerate([low, *edges]):
        if i == len(edges):
            labels.append(f"{number_text(start)}+")
        elif kind == "integer":
            labels.append(f"{number_text(start)}-{number_text(edges[i] - 1)}")
        else:
            labels.append(f"{number_text(start)}-<{number_text(edges[i])}")
        inside = np.sort(seen.to_numpy()[band == i])
        # The lower median: a value someone in the band has (a midpoint may be nobody's).
        representatives.append(cell_value(inside[(len(inside) - 1) // 2], kind))
    return {"edges": edges, "labels": labels, "representatives": representatives}
