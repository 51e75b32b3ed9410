"""Values the draft writes: bounds with a margin, examples, and cells as TOML takes them.

Bounds are the observed range widened by ``MARGIN`` on each side (never below zero for a field
that never was), so the next month's book does not fail on a new maximum; integers and large
values round outward to whole numbers, small fractions to 4 decimals. A field's example comes
from the first complete row, so a sample request is one real applicant.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from training.draft_columns import DraftColumn

__all__ = [
    "MARGIN",
    "bounds",
    "cell_value",
    "field_examples",
    "number_text",
    "outward",
    "python_scalar",
]

MARGIN: Final[float] = 0.1  # of the observed range, added on each side of the bounds


def outward(value: float, kind: str, down: bool) -> int | float:
    """``value`` rounded away from the data: down for a lower bound, up for an upper one."""
    # Integers and large values round to whole numbers; small fractions keep 4 decimals.
    if kind == "integer" or abs(value) >= 10:
        return int(math.floor(value) if down else math.ceil(value))
    scaled = value * 1e4
    return (math.floor(scaled) if down else math.ceil(scaled)) / 1e4


def bounds(series: pd.Series, kind: str) -> tuple[int | float, int | float]:
    """The (minimum, maximum) a contract allows for the non-empty values in ``series``."""
    low, high = float(series.min()), float(series.max())
    margin = MARGIN * (high - low) if high > low else max(abs(high) * MARGIN, 1.0)
    floor = low - margin if low < 0 else max(0.0, low - margin)
    return outward(floor, kind, True), outward(high + margin, kind, False)


def cell_value(value: Any, kind: str) -> Any:
    """A cell as the contract writes it (None for an empty one)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if kind == "integer":
        return int(value)
    if kind == "number":
        return float(value)
    return str(value)


def number_text(value: float) -> str:
    """A number as a comment or band label shows it: ``25``, not ``25.0``."""
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def python_scalar(value: Any) -> Any:
    """A numpy scalar as the Python value tomlkit can write (anything else unchanged)."""
    return value.item() if isinstance(value, np.generic) else value


def field_examples(inputs: pd.DataFrame, columns: dict[str, DraftColumn]) -> dict[str, Any]:
    """Each field's example: the first complete row, else each column's first value."""
    complete = inputs.notna().all(axis=1).to_numpy()
    found = {}
    for name, column in columns.items():
        series = inputs[name]
        present = series.dropna()
        if complete.any():
            cell = series.iloc[int(np.argmax(complete))]
        else:
            cell = present.iloc[0] if len(present) else None
        found[name] = cell_value(cell, column.kind)
    return found
