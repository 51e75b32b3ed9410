"""Draft a contract from a loan-book file: the TFX workflow's "infer", for a person to review.

``draft_contract(frame, label=..., approved=[...], protected=[...])`` returns commented TOML
(written with tomlkit, which keeps comments and layout) that ``fairgate.contract`` loads and
``training.book_check`` accepts for the same file:

- kinds from the column types (text unique on every row is the id; other text a category);
- bounds widened by a margin, so the next month's book does not fail on a new maximum;
- categories as seen, examples from the first complete row;
- bands for numeric protected fields (ages: 25/35/50/65, else quartiles);
- every other field a feature: numbers as they are, or log1p when positive and skewed;
  categories one-hot; protected fields only as ``sensitive`` features (the naive model).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
import tomlkit
from tomlkit.items import Table

from fairgate.contract import DEFAULT_ID_PATTERN

MARGIN: Final[float] = 0.1  # of the observed range, added on each side of the bounds
SKEW_FOR_LOG: Final[float] = 1.0
AGE_EDGES: Final[tuple[int, ...]] = (25, 35, 50, 65)
ID_FIELD: Final[str] = "application_id"
_NAME_CHARS: Final[str] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


class DraftError(ValueError):
    """The file cannot be drafted as given (a bad column name, an unknown label value...)."""


def _kind(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "category"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "number"
    return "category"


def _outward(value: float, kind: str, down: bool) -> int | float:
    # Integers and large values round to whole numbers; small fractions keep 4 decimals.
    if kind == "integer" or abs(value) >= 10:
        return int(math.floor(value) if down else math.ceil(value))
    scaled = value * 1e4
    return (math.floor(scaled) if down else math.ceil(scaled)) / 1e4


def _bounds(series: pd.Series, kind: str) -> tuple[int | float, int | float]:
    low, high = float(series.min()), float(series.max())
    margin = MARGIN * (high - low) if high > low else max(abs(high) * MARGIN, 1.0)
    floor = low - margin if low < 0 else max(0.0, low - margin)
    return _outward(floor, kind, True), _outward(high + margin, kind, False)


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _band_edges(name: str, series: pd.Series, kind: str) -> list[int | float]:
    low, high = float(series.min()), float(series.max())
    if "age" in name.lower():
        edges: list[float] = [float(e) for e in AGE_EDGES if low < e <= high]
    else:
        quartiles = series.quantile([0.25, 0.5, 0.75]).tolist()
        edges = sorted({float(_outward(q, kind, False)) for q in quartiles if low < q <= high})
    if not edges:
        edges = [float(_outward((low + high) / 2, kind, False))]
    return [int(e) if kind == "integer" or e.is_integer() else e for e in edges]


def _bands(
    name: str, series: pd.Series, kind: str, bounds: tuple[float, float]
) -> dict[str, list[Any]]:
    edges = _band_edges(name, series, kind)
    starts = [bounds[0], *edges]
    ends = [*edges, bounds[1]]
    labels, representatives = [], []
    for start, end, last in zip(starts, ends, [False] * len(edges) + [True], strict=True):
        whole = kind == "integer"
        labels.append(f"{start}+" if last else f"{start}-{end - 1}" if whole else f"{start}-<{end}")
        middle = (start + end) / 2
        representatives.append(math.floor(middle) if whole else middle)
    return {"edges": edges, "labels": labels, "representatives": representatives}


def _check_names(frame: pd.DataFrame) -> None:
    bad = [
        str(c)
        for c in frame.columns
        if not str(c) or str(c)[0].isdigit() or any(ch not in _NAME_CHARS for ch in str(c))
    ]
    if bad:
        raise DraftError(
            f"column names must be letters, digits and _ (not starting with a digit): {bad}; "
            "rename them in the file first"
        )


def _label_values(series: pd.Series, approved: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    seen = [_scalar(v) for v in pd.unique(series.dropna())]
    by_text = {str(v): v for v in seen}
    missing = [a for a in approved if str(a) not in by_text]
    if missing:
        raise DraftError(f"approved value(s) {missing} never occur in the label; seen: {seen}")
    chosen = [by_text[str(a)] for a in approved]
    denied = [v for v in seen if v not in chosen]
    if not denied:
        raise DraftError(f"every label value means approved ({seen}); nothing to learn")
    return sorted(chosen, key=str), sorted(denied, key=str)


def _field_table(name: str, series: pd.Series, kind: str, example: Any) -> Table:
    table = tomlkit.table()
    table.add("name", name)
    table.add("type", kind)
    table.add("description", "")
    table["description"].comment("TODO: say what it is, and its unit")
    constraints = tomlkit.inline_table()
    if series.isna().any():
        constraints["required"] = False
    if kind in ("number", "integer"):
        low, high = _bounds(series.dropna(), kind)
        constraints.update({"minimum": low, "maximum": high})
        table.add(tomlkit.comment(f"seen {_scalar(series.min())} to {_scalar(series.max())}"))
    elif kind == "category":
        constraints["enum"] = sorted(str(v) for v in pd.unique(series.dropna()))
    else:
        ids = series.astype(str)
        pattern = DEFAULT_ID_PATTERN if ids.str.match(DEFAULT_ID_PATTERN).all() else r"^\S+$"
        constraints.update(
            {"minLength": 1, "maxLength": max(64, int(ids.str.len().max())), "pattern": pattern}
        )
    if example is not None:
        table.add("example", str(example) if kind in ("category", "id") else example)
    table.add("constraints", constraints)
    return table


def _id_column(frame: pd.DataFrame, protected: Sequence[str]) -> str | None:
    for name in frame.columns:
        series = frame[name]
        if (
            name not in protected
            and _kind(series) == "category"
            and series.notna().all()
            and series.is_unique
            and len(series) > 1
        ):
            return str(name)
    return None


def _feature_table(name: str, series: pd.Series, kind: str, *, sensitive: bool) -> Table:
    table = tomlkit.table()
    table.add("name", name)
    if kind == "category":
        table.add("transform", "one_hot")
        table.add("field", name)
    else:
        values = series.dropna().astype(np.float64)
        skewed = values.min() >= 0 and values.max() > 0 and float(values.skew()) > SKEW_FOR_LOG
        table.add("transform", "log1p" if skewed else "as_is")
        if skewed:
            table["transform"].comment(f"skewness {float(values.skew()):.1f}: log1p evens it out")
        table.add("field", name)
        table.add("monotone", 0)
        table["monotone"].comment("+1/-1 if approval may only rise/fall with it")
    if sensitive:
        table.add(tomlkit.comment("Protected: only in the naive model (--include-sensitive)."))
        table.add("sensitive", True)
    return table


def draft_contract(
    frame: pd.DataFrame,
    *,
    label: str,
    approved: Sequence[Any],
    protected: Sequence[str],
    name: str = "my_loan_book",
) -> str:
    """Commented TOML of a contract for ``frame``; review it, then train with it."""
    _check_names(frame)
    unknown = [p for p in (label, *protected) if p not in frame.columns]
    if unknown:
        raise DraftError(f"column(s) {unknown} not in the file; columns: {list(frame.columns)}")
    if not protected:
        raise DraftError("name at least one protected attribute (e.g. --protected sex)")
    booleans = [str(c) for c in frame.columns if pd.api.types.is_bool_dtype(frame[c])]
    if booleans:
        raise DraftError(f"true/false column(s) {booleans}: store them as text or 0/1")
    approved_values, denied_values = _label_values(frame[label], approved)
    inputs = frame.drop(columns=[label])
    id_name = _id_column(inputs, protected)
    complete = inputs.dropna()
    first = complete.iloc[0] if len(complete) else None

    doc = tomlkit.document()
    doc.add(tomlkit.comment(f"Draft contract for {len(frame):,} rows, written by fairgate."))
    doc.add(tomlkit.comment("Review every TODO; docs/contract.md explains each entry."))
    doc.add("name", name)
    doc.add("version", 1)
    doc.add("description", "")

    fields = tomlkit.aot()
    if id_name is None:
        id_table = tomlkit.table()
        id_table.add(tomlkit.comment("Not in the file: training generates ids, requests send one."))
        id_table.add("name", ID_FIELD)
        id_table.add("type", "id")
        id_table.add("description", "Caller's id for the application.")
        id_table.add("example", "APP-000001")
        limits = tomlkit.inline_table()
        limits.update({"minLength": 1, "maxLength": 64, "pattern": DEFAULT_ID_PATTERN})
        id_table.add("constraints", limits)
        fields.append(id_table)
    kinds = {}
    for column in inputs.columns:
        kind = "id" if column == id_name else _kind(inputs[column])
        kinds[column] = kind
        example = None if first is None else _scalar(first[column])
        fields.append(_field_table(str(column), inputs[column], kind, example))
    doc.add(tomlkit.nl())
    doc.add("fields", fields)

    label_table = tomlkit.table()
    label_table.add("column", label)
    label_table.add("approved", approved_values)
    label_table.add("denied", denied_values)
    doc.add(tomlkit.nl())
    doc.add("label", label_table)

    attributes = tomlkit.aot()
    for field in protected:
        table = tomlkit.table()
        numeric = kinds[field] in ("number", "integer")
        table.add("name", f"{field}_band" if numeric else field)
        table.add("field", field)
        if numeric:
            table.add(tomlkit.comment("Band i: edges[i-1] <= value < edges[i]; edit freely."))
            seen = inputs[field].dropna()
            # Labels and representatives from the values seen, not the widened bounds.
            span = (
                _outward(float(seen.min()), kinds[field], True),
                _outward(float(seen.max()), kinds[field], False),
            )
            for key, values in _bands(field, seen, kinds[field], span).items():
                table.add(key, values)
        attributes.append(table)
    doc.add(tomlkit.nl())
    doc.add("protected", attributes)

    names = [str(t["name"]) for t in attributes]
    groups = tomlkit.table()
    groups.add(tomlkit.comment("policy: one threshold per group of these (two = intersection)"))
    groups.add("policy", names[:1])
    groups.add("audit", names)
    groups.add("prober", names)
    groups.add("separator", "&")
    doc.add(tomlkit.nl())
    doc.add("groups", groups)

    features = tomlkit.aot()
    # The feature builder has no imputation: a field with empty cells would give NaN inputs.
    incomplete = [str(c) for c in inputs.columns if inputs[c].isna().any()]
    for column in inputs.columns:
        if kinds[column] == "id" or column in incomplete:
            continue
        sensitive = column in protected
        features.append(
            _feature_table(str(column), inputs[column], kinds[column], sensitive=sensitive)
        )
    doc.add(tomlkit.nl())
    doc.add(tomlkit.comment("Features in model-column order. Add a [gap] table (field,"))
    doc.add(tomlkit.comment("direction, unit) for a numeric field the decision is monotone in."))
    if incomplete:
        doc.add(tomlkit.comment(f"Not features, they have empty cells: {incomplete}"))
    doc.add("features", features)
    return tomlkit.dumps(doc)
