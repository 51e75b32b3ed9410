"""Loan books: the embedded synthetic default (with injected historical bias) or a user's file.

The ground truth (``repaid``) never depends on gender. The label the model learns from is
the *historical decision*, which carries the configured bias, as real lending data would.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

import numpy as np
import pandas as pd
from pandas.api.types import is_numeric_dtype
from scipy.special import expit

from fairgate.contract import Contract
from fairgate.generator import generate_applicants
from fairgate.schema import APPLICANT_FIELDS
from training.book_check import check_book, read_book

BiasPreset = Literal["none", "income-bar", "proxy"]
BIAS_PRESETS: Final[tuple[str, ...]] = get_args(BiasPreset)
PART_TIME_HOURS: Final[float] = 30.0


@dataclass(frozen=True)
class BiasConfig:
    """How historical decisions were biased.

    ``income-bar``: men approved from ``base_income_bar``, women only from
    ``base_income_bar + gap``. ``proxy``: the higher bar hits part-time workers (mostly
    women), so dropping gender from the features does not remove the bias.
    """

    preset: BiasPreset = "income-bar"
    gap: float = 30_000.0
    base_income_bar: float = 20_000.0

    def __post_init__(self) -> None:
        if self.preset not in BIAS_PRESETS:
            raise ValueError(f"bias preset must be one of {BIAS_PRESETS}, got {self.preset!r}")
        if self.gap < 0 or self.base_income_bar < 0:
            raise ValueError("gap and base_income_bar must be non-negative")


@dataclass(frozen=True)
class LoanBook:
    """Applicant columns (the contract's fields) plus the label to learn (approved = 1)."""

    columns: dict[str, np.ndarray]
    label: np.ndarray
    repaid: np.ndarray | None = None
    source: str = "synthetic"
    fields: tuple[str, ...] = APPLICANT_FIELDS

    def __len__(self) -> int:
        return len(self.label)

    def fingerprint(self) -> str:
        """SHA-256 over every column and the label: the data identity recorded in artifacts."""
        digest = hashlib.sha256()
        for name in (*self.fields, "label"):
            values = self.label if name == "label" else self.columns[name]
            digest.update(name.encode())
            if values.dtype == object:
                digest.update("\x1f".join(map(str, values.tolist())).encode())
            else:
                digest.update(np.ascontiguousarray(values).tobytes())
        return digest.hexdigest()


def creditworthiness_logit(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """The synthetic world's true log-odds of repayment. Gender plays no part in it."""
    income = np.maximum(columns["annual_income"], 1000.0)
    dti = columns["monthly_debt_payments"] * 12 / income
    lti = columns["loan_amount"] / income
    return (
        1.3
        + 1.5 * (np.log(income) - np.log(45_000.0))
        - 3.0 * dti
        - 1.1 * lti
        - 0.9 * columns["delinquencies_2y"]
        + 0.035 * columns["credit_history_years"]
        + 0.03 * np.minimum(columns["employment_years"], 20)
    )


def synthetic_loan_book(n: int, *, seed: int, bias: BiasConfig | None = None) -> LoanBook:
    """The embedded default loan book: ``n`` applicants, outcomes and biased decisions."""
    bias = bias or BiasConfig()
    columns = generate_applicants(n, seed=seed)
    rng = np.random.default_rng([seed, 1])
    logit = creditworthiness_logit(columns)
    repaid = (rng.random(n) < expit(logit)).astype(np.int8)
    # Officers saw roughly the same risk picture, with noise of their own.
    officer_approves = logit + rng.normal(0.0, 0.6, n) > 0.4
    income = columns["annual_income"]
    bar = np.full(n, bias.base_income_bar)
    if bias.preset == "income-bar":
        bar[columns["gender"] == "female"] += bias.gap
    elif bias.preset == "proxy":
        bar[columns["weekly_hours"] < PART_TIME_HOURS] += bias.gap
    label = (officer_approves & (income >= bar)).astype(np.int8)
    return LoanBook(columns=columns, label=label, repaid=repaid, source=f"synthetic:{bias.preset}")


def _typed(contract: Contract, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The checked frame as the column table the feature builder reads (contract order)."""
    columns: dict[str, np.ndarray] = {}
    for spec in contract.fields:
        if spec.name not in frame.columns:
            continue
        series = frame[spec.name]
        if spec.type == "integer":
            numbers = series.to_numpy(dtype=np.float64)
            # A blank in an optional integer field stays NaN (float): casting it to int64
            # would invent -9.2e18.
            columns[spec.name] = numbers if np.isnan(numbers).any() else numbers.astype(np.int64)
        elif spec.type == "number":
            columns[spec.name] = series.to_numpy(dtype=np.float64)
        else:
            # An empty cell is None, as in a request that leaves the field out (pandas
            # reads it as NaN, which would otherwise pass for a text value).
            text = series.astype(object)
            columns[spec.name] = text.where(series.notna(), None).to_numpy(dtype=object)
    return columns


def book_from_frame(
    frame: pd.DataFrame, contract: Contract, *, source: str, id_prefix: str = "ROW"
) -> LoanBook:
    """Check a loan-book frame against ``contract`` (every failure at once, via pandera)
    and turn it into a ``LoanBook``; rows without an id column get ``<id_prefix>-<row>``."""
    check_book(frame, contract)
    columns = _typed(contract, frame)
    id_name = contract.id_field.name
    if id_name not in columns:
        width = max(6, len(str(len(frame))))
        columns[id_name] = np.array(
            [f"{id_prefix}-{i:0{width}d}" for i in range(len(frame))], dtype=object
        )
    columns = {name: columns[name] for name in contract.field_names}
    approved = {str(v) for v in contract.label.approved}
    label = frame[contract.label.column].astype(str).isin(approved).to_numpy(dtype=np.int8)
    return LoanBook(columns=columns, label=label, source=source, fields=contract.field_names)


def _csv_numbers(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """In a CSV every value is text, and one bad cell makes pandas keep a whole numeric
    column as text: read the cells that are numbers as numbers, so the check names only
    the bad ones ("lots"), not every row of the column."""
    frame = frame.copy()
    for spec in contract.fields:
        if spec.numeric and spec.name in frame and not is_numeric_dtype(frame[spec.name]):
            parsed = pd.to_numeric(frame[spec.name], errors="coerce")
            frame[spec.name] = parsed.astype(object).where(parsed.notna(), frame[spec.name])
    return frame


def load_loan_book(
    path: Path, contract: Contract, *, column_map: Mapping[str, str] | None = None
) -> LoanBook:
    """Read a CSV or Parquet loan book and check it against its contract.

    ``column_map`` renames file columns to contract fields first. Raises ``BookCheckError``
    listing every missing, unknown or invalid column and value at once.
    """
    # The contract's text fields (ids, categories) are read as text, so codes such as 1, 2, 3
    # or numeric ids are what the contract says they are, not integers.
    renamed = {target: source for source, target in (column_map or {}).items()}
    text = [renamed.get(f.name, f.name) for f in contract.fields if not f.numeric]
    frame = read_book(Path(path), text=text).rename(columns=dict(column_map or {}))
    if Path(path).suffix.lower() == ".csv":
        frame = _csv_numbers(frame, contract)
    return book_from_frame(frame, contract, source=str(path))
