"""What the draft refuses to guess: a file it cannot draft a contract for, as given.

``check_frame`` stops before any drafting, with a ``DraftError`` a person can act on, when a
column name is not a plain identifier, a named column is missing, no protected attribute is
given, a column is true/false or empty on every row, or an empty cell is written as text
(``"nan"``, ``""``: it would become a category the model learns). ``label_values`` splits the
label's values into approved and denied, as the book spells them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import pandas as pd

from training.draft_columns import column_kind
from training.draft_values import python_scalar

__all__ = [
    "EMPTY_TEXT",
    "TEXT_FOR_EMPTY",
    "DraftError",
    "check_frame",
    "label_values",
]

# What str() makes of an empty cell (None, NaN, pd.NA, NaT), or blank text: never a category.
# A book's own "none" (no guarantor, no telephone) is a real value and stays one.
EMPTY_TEXT: Final[frozenset[str]] = frozenset({"", "nan", "NaN", "None", "<NA>", "NaT"})
_NAME_CHARS: Final[str] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"

# What ``fairgate init`` prints; tests match it.
TEXT_FOR_EMPTY: Final[str] = (
    "column {column!r}: {count} cells hold {values} as text; write them as empty cells"
)


class DraftError(ValueError):
    """The file cannot be drafted as given (a bad column name, an unknown label value...)."""


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


def _check_empty_text(frame: pd.DataFrame) -> None:
    # "nan" or "" as a value is an empty cell written as text (e.g. by astype(str)): it
    # would become a category the model learns, so the person fixes the file instead.
    problems = []
    for name in frame.columns:
        series = frame[name].dropna()
        if column_kind(series) != "category" or pd.api.types.is_bool_dtype(series):
            continue
        text = series[series.map(lambda v: isinstance(v, str))]
        bad = text[text.str.strip().isin(EMPTY_TEXT)]
        if len(bad):
            values = sorted(set(bad))
            problems.append(TEXT_FOR_EMPTY.format(column=name, count=len(bad), values=values))
    if problems:
        raise DraftError("; ".join(problems))


def label_values(series: pd.Series, approved: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The label's (approved, denied) values, each sorted as text.

    ``approved`` may be given as text (``"1"`` from the command line for a label of 1s): each
    is matched to the book's own value by its text, so the contract writes the book's type.
    """
    seen = [python_scalar(v) for v in pd.unique(series.dropna())]
    by_text = {str(v): v for v in seen}
    missing = [a for a in approved if str(a) not in by_text]
    if missing:
        raise DraftError(f"approved value(s) {missing} never occur in the label; seen: {seen}")
    chosen = [by_text[str(a)] for a in approved]
    denied = [v for v in seen if v not in chosen]
    if not denied:
        raise DraftError(f"every label value means approved ({seen}); nothing to learn")
    return sorted(chosen, key=str), sorted(denied, key=str)


def check_frame(frame: pd.DataFrame, label: str, protected: Sequence[str]) -> None:
    """Raise ``DraftError`` if ``frame`` cannot be drafted with this label and protected list."""
    _check_names(frame)
    unknown = [p for p in (label, *protected) if p not in frame.columns]
    if unknown:
        raise DraftError(f"column(s) {unknown} not in the file; columns: {list(frame.columns)}")
    if not protected:
        raise DraftError("name at least one protected attribute (e.g. --protected sex)")
    booleans = [str(c) for c in frame.columns if pd.api.types.is_bool_dtype(frame[c])]
    if booleans:
        raise DraftError(f"true/false column(s) {booleans}: store them as text or 0/1")
    empty = [str(c) for c in frame.columns if frame[c].isna().all()]
    if empty:
        raise DraftError(f"column(s) {empty} are empty on every row: drop them from the file")
    _check_empty_text(frame)
