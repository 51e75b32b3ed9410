"""The one feature builder: raw applicant columns -> the model's numeric matrix.

Training calls it on whole generated or loaded tables; the service calls it on the
validated requests of one call. Same function, same column order, so training/serving
skew cannot creep in through a second implementation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Final

import numpy as np

from fairgate.schema import APPLICANT_FIELDS, EMPLOYMENT_TYPES, NUMERIC_FIELDS, Applicant

BASE_FEATURES: Final[tuple[str, ...]] = (
    "log_income",
    "debt_to_income",
    "loan_to_income",
    "employment_years",
    "weekly_hours",
    "credit_history_years",
    "delinquencies_2y",
    "loan_term_months",
    *(f"employment_{kind}" for kind in EMPLOYMENT_TYPES),
)
SENSITIVE_FEATURES: Final[tuple[str, ...]] = ("is_female", "age")

# Income floor for the ratios, so a zero income gives a large finite ratio, not inf.
_INCOME_FLOOR: Final[float] = 1000.0

# +1: approval may only rise with the feature; -1: only fall. Income enters through
# log_income (+) and the two ratios (-), so these together make the model monotone in
# income, which the prober's income-gap bisection relies on.
_MONOTONE: Final[dict[str, int]] = {"log_income": 1, "debt_to_income": -1, "loan_to_income": -1}


@dataclass(frozen=True)
class FeatureSpec:
    """Which features the model sees. ``include_sensitive`` reproduces a naive model."""

    include_sensitive: bool = False

    @property
    def names(self) -> tuple[str, ...]:
        return BASE_FEATURES + (SENSITIVE_FEATURES if self.include_sensitive else ())

    @property
    def monotonic_constraints(self) -> list[int]:
        return [_MONOTONE.get(name, 0) for name in self.names]

    def build(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """Build the float64 matrix, one row per applicant, columns in ``names`` order."""
        income = np.asarray(columns["annual_income"], dtype=np.float64)
        floored = np.maximum(income, _INCOME_FLOOR)
        employment = np.asarray(columns["employment_type"], dtype=object)
        parts = [
            np.log1p(income),
            np.asarray(columns["monthly_debt_payments"], dtype=np.float64) * 12.0 / floored,
            np.asarray(columns["loan_amount"], dtype=np.float64) / floored,
            np.asarray(columns["employment_years"], dtype=np.float64),
            np.asarray(columns["weekly_hours"], dtype=np.float64),
            np.asarray(columns["credit_history_years"], dtype=np.float64),
            np.asarray(columns["delinquencies_2y"], dtype=np.float64),
            np.asarray(columns["loan_term_months"], dtype=np.float64),
            *((employment == kind).astype(np.float64) for kind in EMPLOYMENT_TYPES),
        ]
        if self.include_sensitive:
            parts.append(
                (np.asarray(columns["gender"], dtype=object) == "female").astype(np.float64)
            )
            parts.append(np.asarray(columns["age"], dtype=np.float64))
        return np.column_stack(parts)


_ROW = itemgetter(*APPLICANT_FIELDS)
_NUMERIC_AT: Final[frozenset[int]] = frozenset(
    i for i, name in enumerate(APPLICANT_FIELDS) if name in NUMERIC_FIELDS
)


def columns_from_applicants(applicants: Sequence[Applicant]) -> dict[str, np.ndarray]:
    """Turn validated requests into the column mapping ``FeatureSpec.build`` takes."""
    # One 2-D object table sliced into columns: a getattr per field per applicant cost
    # ~6x more and dominated the batch path (see docs/benchmarks.md).
    table = np.array([_ROW(a.__dict__) for a in applicants], dtype=object).reshape(
        len(applicants), len(APPLICANT_FIELDS)
    )
    return {
        name: table[:, i].astype(np.float64) if i in _NUMERIC_AT else table[:, i]
        for i, name in enumerate(APPLICANT_FIELDS)
    }
