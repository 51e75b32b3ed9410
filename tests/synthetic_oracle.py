"""The synthetic applicant and feature builder as they were hand-written before the data
contract (fairgate 0.x ``fairgate/schema.py`` and ``fairgate/features.py``), frozen here as an
independent oracle: the contract-derived request model, feature builder and group keys must
behave exactly like them on the built-in synthetic contract. Not imported by any deployable.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Annotated, Final, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Gender = Literal["female", "male", "nonbinary", "undisclosed"]
EmploymentType = Literal["salaried", "self_employed", "contract", "unemployed", "retired"]

GENDERS: Final[tuple[str, ...]] = get_args(Gender)
EMPLOYMENT_TYPES: Final[tuple[str, ...]] = get_args(EmploymentType)

# Upper edges (exclusive) of the age bands; the last band is open-ended.
AGE_BAND_EDGES: Final[tuple[int, ...]] = (30, 50, 65)
AGE_BANDS: Final[tuple[str, ...]] = ("18-29", "30-49", "50-64", "65+")
# A representative age inside each band, used when the prober flips an applicant's band.
AGE_BAND_REPRESENTATIVE: Final[dict[str, int]] = {
    "18-29": 25,
    "30-49": 40,
    "50-64": 57,
    "65+": 70,
}

# Protected attributes an applicant can be grouped by. Adding one means adding a
# column function here; policy, audit and prober pick it up by name.
SENSITIVE_ATTRIBUTES: Final[tuple[str, ...]] = ("gender", "age_band")
# The raw applicant fields those attributes are read from (age_band comes from age).
PROTECTED_FIELDS: Final[tuple[str, ...]] = ("gender", "age")
GROUP_SEPARATOR: Final[str] = "&"
MAX_BATCH: Final[int] = 1000

ApplicationId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"),
]


class Applicant(BaseModel):
    """One loan application as a loan officer would read it."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        # "example" (singular): BentoML's OpenAPI 3.0 Schema rejects "examples".
        json_schema_extra={
            "example": {
                "application_id": "APP-000001",
                "annual_income": 52000.0,
                "age": 34,
                "gender": "female",
                "employment_type": "salaried",
                "employment_years": 6.0,
                "weekly_hours": 38.0,
                "loan_amount": 15000.0,
                "loan_term_months": 36,
                "monthly_debt_payments": 450.0,
                "credit_history_years": 9.0,
                "delinquencies_2y": 0,
            }
        },
    )

    application_id: ApplicationId = Field(
        description="Caller's id for the application; the same id always gets the same decision."
    )
    annual_income: float = Field(ge=0, le=10_000_000, description="Gross annual income, dollars.")
    age: int = Field(ge=18, le=100, description="Age in whole years.")
    gender: Gender = Field(description="Protected attribute; not a model feature by default.")
    employment_type: EmploymentType
    employment_years: float = Field(ge=0, le=60, description="Years with the current employer.")
    weekly_hours: float = Field(ge=0, le=100, description="Usual hours worked per week.")
    # ge=1, not gt=0: BentoML publishes OpenAPI 3.0, where a numeric exclusiveMinimum is invalid.
    loan_amount: float = Field(ge=1, le=5_000_000, description="Requested principal, dollars.")
    loan_term_months: int = Field(ge=6, le=480)
    monthly_debt_payments: float = Field(ge=0, le=1_000_000, description="Existing debt service.")
    credit_history_years: float = Field(ge=0, le=80)
    delinquencies_2y: int = Field(ge=0, le=100, description="Delinquencies in the last 2 years.")


# Field order of the raw record; generator tables and CSV loaders use the same names.
APPLICANT_FIELDS: Final[tuple[str, ...]] = tuple(Applicant.model_fields)
NUMERIC_FIELDS: Final[tuple[str, ...]] = tuple(
    name for name, info in Applicant.model_fields.items() if info.annotation in (int, float)
)


def age_band(age: np.ndarray) -> np.ndarray:
    """Map ages to band labels, e.g. ``age_band(np.array([25, 70]))`` -> ``['18-29', '65+']``."""
    index = np.searchsorted(np.asarray(AGE_BAND_EDGES), np.asarray(age), side="right")
    return np.asarray(AGE_BANDS, dtype=object)[index]


# How each protected attribute is read off an applicant table; adding an attribute is
# adding an entry here and to SENSITIVE_ATTRIBUTES.
_ATTRIBUTE_COLUMN: Final[dict[str, Callable[[Mapping[str, np.ndarray]], np.ndarray]]] = {
    "gender": lambda columns: np.asarray(columns["gender"], dtype=object),
    "age_band": lambda columns: age_band(columns["age"]),
}


def group_keys(columns: Mapping[str, np.ndarray], attributes: tuple[str, ...]) -> np.ndarray:
    """One group label per applicant, joining several attributes for intersectional groups.

    >>> group_keys({"gender": np.array(["female"]), "age": np.array([40])}, ("gender", "age_band"))
    array(['female&30-49'], dtype=object)
    """
    unknown = [a for a in attributes if a not in SENSITIVE_ATTRIBUTES]
    if unknown:
        raise ValueError(f"unknown sensitive attribute(s) {unknown}; known: {SENSITIVE_ATTRIBUTES}")
    keys = _ATTRIBUTE_COLUMN[attributes[0]](columns)
    for name in attributes[1:]:
        keys = keys + GROUP_SEPARATOR + _ATTRIBUTE_COLUMN[name](columns)
    return np.asarray(keys, dtype=object)


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
    # One 2-D object table sliced into columns: a getattr per field per applicant would
    # dominate the batch path.
    table = np.array([_ROW(a.__dict__) for a in applicants], dtype=object).reshape(
        len(applicants), len(APPLICANT_FIELDS)
    )
    return {
        name: table[:, i].astype(np.float64) if i in _NUMERIC_AT else table[:, i]
        for i, name in enumerate(APPLICANT_FIELDS)
    }
