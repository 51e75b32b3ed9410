"""The feature builder and group keys derived from the synthetic contract equal the
hand-written originals (frozen in tests/synthetic_oracle.py)."""

import numpy as np
import pytest

from fairgate.contract import builtin_contract, contract_from_mapping
from fairgate.contract_features import ContractFeatures, attribute_column, group_keys
from fairgate.generator import generate_applicants
from tests.synthetic_oracle import FeatureSpec, age_band
from tests.synthetic_oracle import group_keys as schema_group_keys

CONTRACT = builtin_contract()


@pytest.fixture(scope="module")
def columns():
    table = generate_applicants(20_000, seed=7)
    # Edge values the generator rarely draws: zero and sub-floor incomes, the bounds.
    table["annual_income"][:4] = [0.0, 999.99, 1000.0, 10_000_000.0]
    table["gender"][:4] = ["nonbinary", "undisclosed", "female", "male"]
    return table


@pytest.mark.parametrize("include_sensitive", [False, True])
def test_matrix_equals_featurespec_bit_for_bit(columns, include_sensitive):
    ours = ContractFeatures(CONTRACT, include_sensitive=include_sensitive)
    theirs = FeatureSpec(include_sensitive=include_sensitive)
    assert ours.names == theirs.names
    assert ours.monotonic_constraints == theirs.monotonic_constraints
    built, expected = ours.build(columns), theirs.build(columns)
    assert built.dtype == expected.dtype == np.float64
    assert built.shape == expected.shape
    assert built.tobytes() == expected.tobytes()


def test_one_row_equals_featurespec(columns):
    row = {name: values[:1] for name, values in columns.items()}
    assert ContractFeatures(CONTRACT).build(row).tobytes() == FeatureSpec().build(row).tobytes()


def test_hand_computed_row():
    row = {
        "annual_income": np.array([500.0]),
        "monthly_debt_payments": np.array([100.0]),
        "loan_amount": np.array([2000.0]),
        "employment_years": np.array([1.5]),
        "weekly_hours": np.array([20.0]),
        "credit_history_years": np.array([3.0]),
        "delinquencies_2y": np.array([2]),
        "loan_term_months": np.array([12]),
        "employment_type": np.array(["contract"], dtype=object),
        "gender": np.array(["female"], dtype=object),
        "age": np.array([44]),
    }
    built = ContractFeatures(CONTRACT, include_sensitive=True).build(row)[0]
    # income 500 is below the 1,000 floor: ratios divide by 1,000.
    expected = [np.log1p(500.0), 1.2, 2.0, 1.5, 20.0, 3.0, 2.0, 12.0, 0, 0, 1, 0, 0, 1.0, 44.0]
    assert built.tolist() == pytest.approx(expected, abs=0, rel=1e-15)


def test_sensitive_features_read_no_protected_field_by_default():
    assert ContractFeatures(CONTRACT).input_fields == (
        "annual_income",
        "employment_type",
        "employment_years",
        "weekly_hours",
        "loan_amount",
        "loan_term_months",
        "monthly_debt_payments",
        "credit_history_years",
        "delinquencies_2y",
    )
    assert {"gender", "age"} <= set(ContractFeatures(CONTRACT, include_sensitive=True).input_fields)


@pytest.mark.parametrize(
    "attributes", [("gender",), ("age_band",), ("gender", "age_band"), ("age_band", "gender")]
)
def test_group_keys_equal_the_schema_module(columns, attributes):
    ours = group_keys(CONTRACT, columns, attributes)
    assert ours.tolist() == schema_group_keys(columns, attributes).tolist()


@pytest.mark.parametrize(
    ("age", "band"), [(18, "18-29"), (29, "18-29"), (30, "30-49"), (64, "50-64"), (65, "65+")]
)
def test_band_edges(age, band):
    assert attribute_column(CONTRACT, "age_band", {"age": np.array([age])})[0] == band
    assert age_band(np.array([age]))[0] == band


def test_unknown_attribute_is_refused(columns):
    with pytest.raises(ValueError, match="unknown protected attribute"):
        group_keys(CONTRACT, columns, ("religion",))


def test_one_hot_defaults_to_every_category_and_field_prefix():
    raw = CONTRACT.model_dump(by_alias=True, exclude_none=True)
    raw["features"][8].pop("prefix")
    features = ContractFeatures(contract_from_mapping(raw))
    assert features.names[8:] == (
        "employment_type_salaried",
        "employment_type_self_employed",
        "employment_type_contract",
        "employment_type_unemployed",
        "employment_type_retired",
    )
