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

import annotated_types
import numpy as np
import pandas as pd
from scipy.special import expit

from fairgate.generator import generate_applicants
from fairgate.schema import APPLICANT_FIELDS, Applicant

BiasPreset = Literal["none", "income-bar", "proxy"]
BIAS_PRESETS: Final[tuple[str, ...]] = get_args(BiasPreset)
PART_TIME_HOURS: Final[float] = 30.0


class LoanBookError(ValueError):
    """A loan book file that does not fit the applicant schema."""


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
    """Applicant columns plus the label to learn (historical approval, 0/1)."""

    columns: dict[str, np.ndarray]
    label: np.ndarray
    repaid: np.ndarray | None = None
    source: str = "synthetic"

    def __len__(self) -> int:
        return len(self.label)

    def fingerprint(self) -> str:
        """SHA-256 over every column and the label: the data identity recorded in artifacts."""
        digest = hashlib.sha256()
        for name in (*APPLICANT_FIELDS, "label"):
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


def _bounds(name: str) -> list[tuple[str, float]]:
    checks = []
    for item in Applicant.model_fields[name].metadata:
        for attr, op in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(item, getattr(annotated_types, attr.capitalize())):
                checks.append((op, float(getattr(item, attr))))
    return checks


def _check_column(name: str, series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Coerce one column to the schema's type; return the values and every problem found."""
    field = Applicant.model_fields[name]
    annotation = field.annotation
    if name == "application_id":
        values = series.astype(str).to_numpy(dtype=object)
        return values, ([] if series.notna().all() else [f"{name}: has missing values"])
    choices = get_args(annotation)
    if choices:
        values = series.astype(str).to_numpy(dtype=object)
        bad = sorted(set(values.tolist()) - set(choices))
        return values, (
            [f"{name}: unexpected values {bad[:5]}; expected one of {choices}"] if bad else []
        )
    numeric = pd.to_numeric(series, errors="coerce")
    problems = []
    if numeric.isna().any():
        first = series[numeric.isna()].iloc[0]
        problems.append(f"{name}: expected a number, found {first!r}")
        return numeric.to_numpy(dtype=np.float64), problems
    values = numeric.to_numpy(dtype=np.float64)
    if annotation is int:
        if not np.all(values == np.round(values)):
            problems.append(f"{name}: expected whole numbers")
        values = values.astype(np.int64)
    for op, limit in _bounds(name):
        ok = {
            ">=": values >= limit,
            ">": values > limit,
            "<=": values <= limit,
            "<": values < limit,
        }[op]
        if not ok.all():
            problems.append(f"{name}: expected {op} {limit:g}, found {values[~ok][0]!r}")
    return values, problems


def load_loan_book(
    path: Path, *, label_column: str, column_map: Mapping[str, str] | None = None
) -> LoanBook:
    """Load a CSV or Parquet loan book. ``column_map`` maps file columns to schema fields.

    Every missing or invalid column is reported at once, by name.
    """
    if path.suffix.lower() in {".parquet", ".pq"}:
        frame = pd.read_parquet(path)
    elif path.suffix.lower() == ".csv":
        frame = pd.read_csv(path)
    else:
        raise LoanBookError(f"{path}: expected a .csv or .parquet file")
    frame = frame.rename(columns=dict(column_map or {}))
    missing = [name for name in (*APPLICANT_FIELDS, label_column) if name not in frame.columns]
    if missing:
        raise LoanBookError(
            f"{path}: missing column(s) {missing} (map yours with --map FILE=FIELD)"
        )
    columns, problems = {}, []
    for name in APPLICANT_FIELDS:
        columns[name], found = _check_column(name, frame[name])
        problems.extend(found)
    label = pd.to_numeric(frame[label_column], errors="coerce")
    if not label.isin([0, 1]).all():
        problems.append(f"{label_column}: expected 0/1 labels")
    if problems:
        raise LoanBookError(f"{path}: invalid column(s):\n  " + "\n  ".join(problems))
    return LoanBook(columns=columns, label=label.to_numpy(dtype=np.int8), source=str(path))
