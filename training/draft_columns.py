"""Read a loan book column by column: what the draft makes of each input column.

``read_columns(inputs, positive, protected)`` gives one ``DraftColumn`` per column, the record
the rest of the draft (values, bands, tables, the document) works from:

- the kind, from the column type: a float column of whole numbers with empty cells (or a few
  0/1 codes) is an integer, since pandas made it float for the blanks; other text a category;
- the id: text unique on every row, or an integer unique on every row that counts the rows
  (strictly increasing, or named ``rownames``, ``row_id``, ``*_id``...). Other such integers
  are row numbers: never a feature;
- a leak: a column that alone separates the label (univariate AUC above ``LEAK_AUC``) is the
  decision written down again, so it is left out of the features;
- how empty cells are handled: a feature keeps its predictor (``missing = "median"`` or
  ``"most_frequent"``, learnt at training); a protected value is never filled in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

__all__ = [
    "ID_NAMES",
    "LEAK_AUC",
    "MAX_CODES",
    "DraftColumn",
    "column_kind",
    "read_columns",
]

# Above this univariate AUC (either direction) a column alone separates the label: it is
# the decision written down again (or its consequence), not something an applicant brings.
LEAK_AUC: Final[float] = 0.98
# A numeric protected field with at most this many integer values is a code (0/1), not bands.
MAX_CODES: Final[int] = 10
# Names a person gives a row number or an id column (compared in lower case; and *_id).
ID_NAMES: Final[frozenset[str]] = frozenset(
    {"rownames", "row", "row_id", "index", "id", "unnamed: 0"}
)
_EMPTY_KEY: Final[str] = "\x00empty"


@dataclass(frozen=True)
class DraftColumn:
    """What the draft makes of one input column."""

    name: str
    kind: str
    empty: int
    rows: int
    protected: bool = False
    codes: bool = False  # a protected field of a few integer codes: its groups are the codes
    row_number: bool = False  # unique on every row but not the id: never a feature
    leak_auc: float | None = None

    @property
    def numeric(self) -> bool:
        return self.kind in ("number", "integer")

    @property
    def foreign(self) -> bool:
        """Something applicants may never carry: the decision again, or a row number."""
        return self.row_number or self.leak_auc is not None

    @property
    def feature(self) -> bool:
        # A protected value is never filled in, so with empty cells it cannot be scored.
        unfillable = self.protected and self.empty > 0
        return self.kind != "id" and not self.foreign and not unfillable

    @property
    def missing(self) -> str | None:
        """How a feature's empty cells are filled (learnt from the training rows)."""
        if not self.empty or not self.feature:
            return None
        return "median" if self.numeric else "most_frequent"


# -- kinds ------------------------------------------------------------------------------


def _whole(series: pd.Series) -> bool:
    values = series.dropna().to_numpy(dtype=np.float64)
    return len(values) > 0 and bool(np.all(np.isfinite(values) & (values == np.floor(values))))


def column_kind(series: pd.Series) -> str:
    """The contract type a column's values read as: ``integer``, ``number`` or ``category``."""
    if pd.api.types.is_bool_dtype(series):
        return "category"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        # pandas stores whole numbers as float when a cell is empty (or a 0/1 flag in Parquet).
        few = series.nunique() <= MAX_CODES
        return "integer" if _whole(series) and (series.isna().any() or few) else "number"
    return "category"


# -- ids and row numbers -----------------------------------------------------------------


def _named_like_id(name: str) -> bool:
    lower = name.lower()
    return lower in ID_NAMES or lower.endswith("_id")


def _id_like(name: str, series: pd.Series) -> bool:
    if len(series) < 2 or series.isna().any() or not series.is_unique:
        return False
    if column_kind(series) == "category":
        return not pd.api.types.is_bool_dtype(series)
    if not pd.api.types.is_integer_dtype(series):
        return False
    # A unique integer is an id only if it counts the rows or says it is one: a unique
    # amount in a small book is still an amount.
    return series.is_monotonic_increasing or _named_like_id(name)


def _id_columns(inputs: pd.DataFrame, protected: Sequence[str]) -> tuple[str | None, list[str]]:
    """The id column (text ids first: the caller's own) and the other row numbers."""
    found = [str(c) for c in inputs.columns if c not in protected and _id_like(str(c), inputs[c])]
    text = [c for c in found if column_kind(inputs[c]) == "category"]
    chosen = (text or found or [None])[0]
    numbers = [c for c in found if c != chosen and c not in text]
    return chosen, numbers


# -- leaks -------------------------------------------------------------------------------


def _auc(score: pd.Series, positive: pd.Series) -> float:
    """Univariate AUC in either direction, max(auc, 1 - auc); 0.5 without both classes."""
    positives = int(positive.sum())
    negatives = len(positive) - positives
    if not positives or not negatives:
        return 0.5
    # Average ranks: a tie counts half, as roc_auc_score counts it.
    ranks = score.rank()
    auc = (float(ranks[positive].sum()) - positives * (positives + 1) / 2) / (positives * negatives)
    return max(auc, 1.0 - auc)


def _by_value_auc(series: pd.Series, positive: pd.Series) -> float:
    # Each value scores its rows' approval rate: a column that maps to the label value by
    # value (in any order) scores 1. Empty cells are a value of their own.
    keys = series.astype(str).where(series.notna(), _EMPTY_KEY)
    return _auc(positive.astype(np.float64).groupby(keys).transform("mean"), positive)


def _separation(series: pd.Series, kind: str, positive: pd.Series) -> float:
    """How well the column alone separates approved from denied (AUC, either direction)."""
    few = kind == "category" or series.nunique() <= MAX_CODES
    by_value = _by_value_auc(series, positive) if few else 0.5
    if kind == "category":
        return by_value
    present = series.notna()
    return max(by_value, _auc(series[present].astype(np.float64), positive[present]))


# -- the per-column record ---------------------------------------------------------------


def read_columns(
    inputs: pd.DataFrame, positive: pd.Series, protected: Sequence[str]
) -> tuple[dict[str, DraftColumn], str | None]:
    """Each input column (the label dropped) as the draft reads it, and the id column's name.

    ``positive`` is True on the approved rows; ``protected`` names the protected fields, which
    are never an id, a row number or a leak (they stay groups, whatever they predict).
    """
    id_name, row_numbers = _id_columns(inputs, protected)
    columns = {}
    for name in map(str, inputs.columns):
        series = inputs[name]
        kind = "id" if name == id_name else column_kind(series)
        plain = kind != "id" and name not in row_numbers and name not in protected
        auc = _separation(series, kind, positive) if plain else 0.0
        columns[name] = DraftColumn(
            name=name,
            kind=kind,
            empty=int(series.isna().sum()),
            rows=len(series),
            protected=name in protected,
            codes=name in protected and kind == "integer" and series.nunique() <= MAX_CODES,
            row_number=name in row_numbers,
            leak_auc=auc if auc > LEAK_AUC else None,
        )
    return columns, id_name
