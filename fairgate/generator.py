"""Seeded synthetic applicants of the built-in synthetic contract: the rows of the default
loan book (``training/loan_book.py`` adds the label and its biases) and the tests' traffic.

Mimesis supplies the seeded categorical draws (who the applicant is: gender, employment
type); numpy draws the correlated numeric fields in vectorised form, because a per-row
provider loop is too slow for the million-row books training is benchmarked on. Both are
seeded from the one ``seed``. (The prober does not use this: it synthesizes applicants of any
contract from the served model's recorded marginals, ``fairgate.contract_synth``.)
"""

from __future__ import annotations

from typing import Final

import numpy as np
from mimesis.random import Random as MimesisRandom

from fairgate.schema import Applicant

# Share of part-time work (under 30 h/week) by gender: the realistic asymmetry that the
# ``proxy`` bias preset turns into a gender proxy.
_PART_TIME_SHARE: Final[dict[str, float]] = {"female": 0.38, "male": 0.10}
_EMPLOYMENT_WEIGHTS: Final[dict[str, float]] = {
    "salaried": 0.62,
    "self_employed": 0.12,
    "contract": 0.14,
    "unemployed": 0.05,
    "retired": 0.07,
}
_INCOME_MEDIAN: Final[dict[str, float]] = {
    "salaried": 56_000.0,
    "self_employed": 60_000.0,
    "contract": 48_000.0,
    "unemployed": 14_000.0,
    "retired": 30_000.0,
}
_TERMS: Final[np.ndarray] = np.array([12, 24, 36, 48, 60, 120, 240, 360])
_TERM_WEIGHTS: Final[np.ndarray] = np.array([0.08, 0.14, 0.26, 0.14, 0.2, 0.08, 0.05, 0.05])


def generate_applicants(
    n: int, *, seed: int, id_prefix: str = "APP", female_share: float = 0.5
) -> dict[str, np.ndarray]:
    """Generate ``n`` applicants as a column table whose keys are the schema's fields.

    The same ``(n, seed, id_prefix)`` always gives the same table.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    mimesis = MimesisRandom(seed)
    rng = np.random.default_rng(seed)
    gender = np.array(
        mimesis.choices(["female", "male"], weights=[female_share, 1 - female_share], k=n),
        dtype=object,
    )
    employment = np.array(
        mimesis.choices(list(_EMPLOYMENT_WEIGHTS), weights=list(_EMPLOYMENT_WEIGHTS.values()), k=n),
        dtype=object,
    )
    age = np.clip(np.round(18 + rng.gamma(4.0, 6.5, n)), 18, 90).astype(np.int64)
    # Retirement follows age rather than the draw above for people past 66.
    employment[age >= 67] = "retired"
    employment[(employment == "retired") & (age < 55)] = "salaried"

    part_time = rng.random(n) < np.where(
        gender == "female", _PART_TIME_SHARE["female"], _PART_TIME_SHARE["male"]
    )
    hours = np.where(part_time, rng.uniform(12, 30, n), rng.normal(40, 4, n))
    hours = np.where(np.isin(employment, ["unemployed", "retired"]), 0.0, hours)
    hours = np.clip(np.round(hours, 1), 0, 80)

    max_tenure = np.maximum(age - 18, 0).astype(np.float64)
    employment_years = np.round(np.minimum(rng.gamma(2.0, 3.5, n), max_tenure), 1)
    employment_years = np.where(employment == "unemployed", 0.0, employment_years)

    median = np.vectorize(_INCOME_MEDIAN.__getitem__, otypes=[np.float64])(employment)
    hours_factor = np.where(hours > 0, np.clip(hours / 40.0, 0.3, 1.3), 1.0)
    experience = 1.0 + 0.015 * np.minimum(employment_years, 25)
    income = median * hours_factor * experience * rng.lognormal(0.0, 0.45, n)
    income = np.round(np.clip(income, 0, 2_000_000), 2)

    loan_amount = np.round(np.clip(income * rng.lognormal(-1.2, 0.7, n), 1000, 1_500_000), 2)
    term = rng.choice(_TERMS, size=n, p=_TERM_WEIGHTS / _TERM_WEIGHTS.sum())
    debt = np.round(income / 12 * rng.beta(2.0, 9.0, n) * 0.8, 2)
    history = np.round(np.minimum(rng.gamma(3.0, 4.0, n), max_tenure + 0.5), 1)
    delinquencies = rng.poisson(np.clip(0.35 - 0.01 * history, 0.05, None)).astype(np.int64)

    width = max(8, len(str(max(n - 1, 0))))
    ids = np.array([f"{id_prefix}-{seed}-{i:0{width}d}" for i in range(n)], dtype=object)
    return {
        "application_id": ids,
        "annual_income": income,
        "age": age,
        "gender": gender,
        "employment_type": employment,
        "employment_years": employment_years,
        "weekly_hours": hours,
        "loan_amount": loan_amount,
        "loan_term_months": term.astype(np.int64),
        "monthly_debt_payments": debt,
        "credit_history_years": history,
        "delinquencies_2y": delinquencies,
    }


def to_applicants(columns: dict[str, np.ndarray]) -> list[Applicant]:
    """Rows of a column table as validated ``Applicant`` objects (the schema is the judge)."""
    names = list(Applicant.model_fields)
    rows = zip(*(columns[name].tolist() for name in names), strict=True)
    return [Applicant.model_validate(dict(zip(names, row, strict=True))) for row in rows]


def to_records(columns: dict[str, np.ndarray]) -> list[dict[str, object]]:
    """Rows of a column table as JSON-ready dicts (plain Python scalars)."""
    names = list(Applicant.model_fields)
    rows = zip(*(columns[name].tolist() for name in names), strict=True)
    return [dict(zip(names, row, strict=True)) for row in rows]
