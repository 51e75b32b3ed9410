"""Check a loan-book file against its contract before training, listing every failure at once.

pandera does the checking (``lazy=True`` collects every failing column and value instead
of stopping at the first); this module turns a contract into a ``DataFrameSchema`` and the
failure cases into a short report a person can act on:

    column 'age': 2 rows fail in_range(18, 100), e.g. 17, 130
    column 'zip': not in the contract

Types are checked value by value (a "52,000" among numbers is named, not coerced); a file
may lack the id column, every other field and the label must be there.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pandera.pandas as pa

from fairgate.contract import Contract, FieldSpec

MAX_EXAMPLES: Final[int] = 5
NOT_A_NUMBER: Final[str] = "type number"
NOT_AN_INTEGER: Final[str] = "type integer"
NOT_TEXT: Final[str] = "type string"


class BookCheckError(ValueError):
    """A loan book that does not fit its contract; ``problems`` has one line per failure."""

    def __init__(self, problems: list[str], failure_cases: pd.DataFrame | None = None) -> None:
        self.problems = problems
        self.failure_cases = failure_cases
        super().__init__(
            "the loan book does not fit its contract:\n" + "\n".join(f"- {p}" for p in problems)
        )


def read_book(path: Path, text: Sequence[str] = ()) -> pd.DataFrame:
    """Read a CSV or Parquet loan book as it is (no type coercion beyond the file's own).

    ``text``: CSV columns to read as text (a contract's ids and categories: "1", "2", "3"
    codes stay text); a blank stays empty, not "nan".
    """
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() == ".csv":
        header = pd.read_csv(path, nrows=0).columns
        dtype = {name: object for name in text if name in header}
        return pd.read_csv(path, dtype=dtype, keep_default_na=True)
    raise BookCheckError([f"{path}: expected a .csv or .parquet file"])


def _is_number(value: object) -> bool:
    if isinstance(value, bool | np.bool_):
        return False
    return isinstance(value, int | float | np.integer | np.floating) and math.isfinite(value)


def _number_check(series: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(series):
        return pd.Series(False, index=series.index)
    if pd.api.types.is_numeric_dtype(series):
        return pd.Series(np.isfinite(series.to_numpy(dtype=np.float64)), index=series.index)
    return series.map(_is_number)


def _integer_check(series: pd.Series) -> pd.Series:
    # A whole number stored as float (a Parquet float column, a CSV column with blanks) is
    # an integer's value exactly; 30.5 is not.
    numbers = pd.to_numeric(series.where(_number_check(series)), errors="coerce")
    return numbers.notna() & (numbers == np.floor(numbers))


def _range_check(low: float | None, high: float | None) -> pa.Check:
    # Non-numbers pass here: the type check names them, once.
    def within(series: pd.Series) -> pd.Series:
        numbers = pd.to_numeric(series.where(_number_check(series)), errors="coerce")
        inside = numbers.between(
            -math.inf if low is None else low, math.inf if high is None else high
        )
        return inside | numbers.isna()

    return pa.Check(within, name=f"in_range({_plain(low)}, {_plain(high)})")


def _plain(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else str(value)


def _text_check(name: str, test: Callable[[str], bool]) -> pa.Check:
    # Non-text values pass here: the type check names them, once (pandera's own string
    # checks fail on them with an accessor error instead).
    return pa.Check(lambda s: s.map(lambda v: not isinstance(v, str) or test(v)), name=name)


def _id_checks(pattern: str | None, low: int, high: int | None) -> list[pa.Check]:
    checks = []
    if pattern:
        matcher = re.compile(pattern)
        checks.append(
            _text_check(f"str_matches({pattern!r})", lambda v: matcher.match(v) is not None)
        )
    top = high if high is not None else float("inf")
    checks.append(_text_check(f"str_length({low}, {high})", lambda v: low <= len(v) <= top))
    return checks


def _column(spec: FieldSpec, *, required: bool) -> pa.Column:
    c = spec.constraints
    checks: list[pa.Check] = []
    if spec.type == "number":
        checks.append(pa.Check(_number_check, name=NOT_A_NUMBER))
    elif spec.type == "integer":
        checks.append(pa.Check(_integer_check, name=NOT_AN_INTEGER))
    else:
        checks.append(pa.Check(lambda s: s.map(lambda v: isinstance(v, str)), name=NOT_TEXT))
    if spec.numeric and (c.minimum is not None or c.maximum is not None):
        checks.append(_range_check(c.minimum, c.maximum))
    if spec.type == "category" or spec.codes is not None:
        checks.append(pa.Check.isin(list(c.enum or ())))
    if spec.type == "id":
        checks += _id_checks(c.pattern, c.min_length or 1, c.max_length)
    return pa.Column(
        None,
        checks=checks,
        nullable=not c.required,
        required=required,
        unique=spec.type == "id",
        name=spec.name,
    )


def book_schema(contract: Contract) -> pa.DataFrameSchema:
    """The pandera schema of a training file under ``contract`` (id column optional)."""
    columns = {spec.name: _column(spec, required=spec.type != "id") for spec in contract.fields}
    label = contract.label
    allowed = [*label.approved, *label.denied]
    # Compared as text, as training maps them: a CSV's 1 is the contract's "1" and 1.
    texts = sorted({str(v) for v in allowed})
    label_check = pa.Check(lambda s: s.astype(str).isin(texts), name=f"isin({list(allowed)})")
    columns[label.column] = pa.Column(None, checks=[label_check], nullable=False, name=label.column)
    return pa.DataFrameSchema(columns, strict=True, name=contract.name)


def _problem(column: object, check: str, cases: pd.DataFrame) -> str:
    if check == "column_in_schema":
        return f"column {cases['failure_case'].iloc[0]!r}: not in the contract"
    if check == "column_in_dataframe":
        return f"column {cases['failure_case'].iloc[0]!r}: missing from the file"
    rows = int(cases["index"].notna().sum())
    values = list(dict.fromkeys(map(repr, cases["failure_case"].tolist())))
    shown = ", ".join(values[:MAX_EXAMPLES]) + (", ..." if len(values) > MAX_EXAMPLES else "")
    what = {"not_nullable": "are empty", "field_uniqueness": "repeat an id"}.get(check)
    if what is not None:
        return f"column {column!r}: {rows} rows {what}" + (
            f", e.g. {shown}" if check == "field_uniqueness" else ""
        )
    return f"column {column!r}: {rows} rows fail {check}, e.g. {shown}"


def check_book(frame: pd.DataFrame, contract: Contract) -> None:
    """Raise ``BookCheckError`` listing every failing column and value, or return quietly."""
    try:
        book_schema(contract).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as error:
        cases = error.failure_cases
        problems = [
            _problem(column, str(check), group)
            for (column, check), group in cases.groupby(
                [cases["column"].fillna(""), cases["check"]], sort=False
            )
        ]
        raise BookCheckError(problems, cases) from error
