"""The TOML tables the draft writes for one column: its field, its protected entry, its feature.

Each table carries the comments a reviewer needs beside the entry they explain: what was seen,
why a column is not a feature (it restates the label, or numbers the rows), how its empty cells
are handled. Decisions here:

- constraints: codes are exactly the codes seen, numbers the widened bounds, categories the
  values seen, ids a pattern; a field with empty cells, or that applicants may never carry, is
  optional;
- a protected field is never filled in: its empty cells are the group ``NOT_GIVEN``; a numeric
  one is banded unless it is a few codes;
- a feature is a number as it is, or log1p when positive and skewed; a category one-hot; a
  protected field only as a ``sensitive`` feature (the naive model).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd
import tomlkit
from tomlkit.items import InlineTable, Table

from fairgate.contract import DEFAULT_ID_PATTERN
from training.draft_bands import bands
from training.draft_columns import DraftColumn
from training.draft_values import bounds, number_text

__all__ = [
    "EMPTY_CELLS",
    "ID_FIELD",
    "LEAK_TODO",
    "NOT_GIVEN",
    "ROW_NUMBER_ID",
    "ROW_NUMBER_TODO",
    "SKEW_FOR_LOG",
    "feature_table",
    "field_table",
    "generated_id_table",
    "protected_table",
]

SKEW_FOR_LOG: Final[float] = 1.0
ID_FIELD: Final[str] = "application_id"
NOT_GIVEN: Final[str] = "not given"

# What the draft writes beside a field; tests match them.
LEAK_TODO: Final[str] = (
    "TODO: restates the label (AUC {auc:.3f}): not a feature; "
    "delete this field if applicants never carry it"
)
ROW_NUMBER_TODO: Final[str] = (
    "TODO: numbers the rows (unique on every row): not a feature; "
    "delete this field if applicants never carry it"
)
ROW_NUMBER_ID: Final[str] = (
    'numbers the rows: the id, read as text ("1", "2", ...), never a feature'
)
EMPTY_CELLS: Final[str] = "{count} empty cells ({share:.1%}): {how}"


def _empty_how(column: DraftColumn) -> str:
    if column.missing == "median":
        return "filled with the training rows' median"
    if column.missing == "most_frequent":
        return "filled with the training rows' most frequent value"
    if column.protected:
        return f"never filled in (protected): those applicants are the group {NOT_GIVEN!r}"
    return "left empty (not a feature)"


def _field_notes(column: DraftColumn, series: pd.Series) -> list[str]:
    notes = []
    if column.numeric:
        notes.append(f"seen {number_text(series.min())} to {number_text(series.max())}")
    if column.leak_auc is not None:
        notes.append(LEAK_TODO.format(auc=column.leak_auc))
    if column.row_number:
        notes.append(ROW_NUMBER_TODO)
    if column.kind == "id" and pd.api.types.is_integer_dtype(series):
        notes.append(ROW_NUMBER_ID)
    if column.empty:
        share = column.empty / column.rows
        notes.append(EMPTY_CELLS.format(count=column.empty, share=share, how=_empty_how(column)))
    return notes


def _constraints(column: DraftColumn, series: pd.Series) -> InlineTable:
    constraints = tomlkit.inline_table()
    # Requests may leave out what has empty cells, and what applicants may never carry.
    if column.empty or column.foreign:
        constraints["required"] = False
    present = series.dropna()
    if column.codes:
        # Codes are exactly what was seen: a margin would allow a code that means nothing.
        codes = sorted({int(v) for v in present})
        constraints.update({"minimum": codes[0], "maximum": codes[-1], "enum": codes})
    elif column.row_number:
        pass  # next month's rows count on: no bounds to outgrow
    elif column.numeric:
        low, high = bounds(present, column.kind)
        constraints.update({"minimum": low, "maximum": high})
    elif column.kind == "category":
        constraints["enum"] = sorted({str(v) for v in present})
    else:
        ids = series.astype(str)
        pattern = DEFAULT_ID_PATTERN if ids.str.match(DEFAULT_ID_PATTERN).all() else r"^\S+$"
        constraints.update(
            {"minLength": 1, "maxLength": max(64, int(ids.str.len().max())), "pattern": pattern}
        )
    return constraints


def field_table(column: DraftColumn, series: pd.Series, example: Any) -> Table:
    """The ``[[fields]]`` entry of a book column, with its notes as comments."""
    table = tomlkit.table()
    table.add("name", column.name)
    table.add("type", column.kind)
    table.add("description", "")
    table["description"].comment("TODO: say what it is, and its unit")
    for note in _field_notes(column, series):
        table.add(tomlkit.comment(note))
    if column.missing is not None:
        table.add("missing", column.missing)
    # Its example would put a value applicants do not have into every sample request.
    if example is not None and not column.foreign:
        table.add("example", example)
    table.add("constraints", _constraints(column, series))
    return table


def generated_id_table() -> Table:
    """The ``[[fields]]`` entry of ``ID_FIELD``, for a book without an id column."""
    table = tomlkit.table()
    table.add(tomlkit.comment("Not in the file: training generates ids, requests send one."))
    table.add("name", ID_FIELD)
    table.add("type", "id")
    table.add("description", "Caller's id for the application.")
    table.add("example", "APP-000001")
    limits = tomlkit.inline_table()
    limits.update({"minLength": 1, "maxLength": 64, "pattern": DEFAULT_ID_PATTERN})
    table.add("constraints", limits)
    return table


def protected_table(column: DraftColumn, series: pd.Series, low: int | float) -> Table:
    """The ``[[protected]]`` entry of a protected column; ``low`` is where its first band starts."""
    table = tomlkit.table()
    banded = column.numeric and not column.codes
    table.add("name", f"{column.name}_band" if banded else column.name)
    table.add("field", column.name)
    if column.empty:
        table.add("missing", NOT_GIVEN)
        table["missing"].comment("the group of applicants who leave it out")
    if column.codes:
        table.add(tomlkit.comment("A few codes: one group per code, no bands."))
    elif banded:
        table.add(tomlkit.comment("Band i: edges[i-1] <= value < edges[i]; edit freely."))
        for key, values in bands(column.name, series.dropna(), column.kind, low).items():
            table.add(key, values)
    return table


def feature_table(column: DraftColumn, series: pd.Series) -> Table:
    """The ``[[features]]`` entry of a column the model learns from."""
    table = tomlkit.table()
    table.add("name", column.name)
    if column.kind == "category":
        table.add("transform", "one_hot")
        table.add("field", column.name)
    else:
        values = series.dropna().astype(np.float64)
        skew = float(values.skew()) if len(values) > 2 else 0.0
        # Codes stay codes: log1p of a 0/1 flag only renames its values.
        skewed = not column.codes and values.min() >= 0 and values.max() > 0 and skew > SKEW_FOR_LOG
        table.add("transform", "log1p" if skewed else "as_is")
        if skewed:
            table["transform"].comment(f"skewness {skew:.1f}: log1p evens it out")
        table.add("field", column.name)
        table.add("monotone", 0)
        table["monotone"].comment("+1/-1 if approval may only rise/fall with it")
    if column.protected:
        table.add(tomlkit.comment("Protected: only in the naive model (--include-sensitive)."))
        table.add("sensitive", True)
    return table
