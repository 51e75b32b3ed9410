import math

import numpy as np
import pytest
from pydantic import ValidationError

from fairgate.schema import Applicant, age_band, group_keys

EXAMPLE = Applicant.model_json_schema()["example"]


def test_example_is_valid():
    assert Applicant.model_validate(EXAMPLE).application_id == "APP-000001"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("annual_income", "52000"),
        ("annual_income", -1.0),
        ("annual_income", math.nan),
        ("annual_income", math.inf),
        ("annual_income", 1e12),
        ("age", 17),
        ("age", 30.5),
        ("age", "30"),
        ("gender", "Other"),
        ("employment_type", "astronaut"),
        ("loan_amount", 0),
        ("delinquencies_2y", True),
        ("application_id", ""),
        ("application_id", "x" * 65),
        ("application_id", "bad id\n"),
    ],
)
def test_bad_values_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValidationError) as error:
        Applicant.model_validate(EXAMPLE | {field: value})
    assert error.value.errors()[0]["loc"] == (field,)


def test_unknown_and_missing_fields_are_rejected():
    with pytest.raises(ValidationError) as error:
        Applicant.model_validate({k: v for k, v in EXAMPLE.items() if k != "age"} | {"zip": "1"})
    locs = {e["loc"][0] for e in error.value.errors()}
    assert locs == {"age", "zip"}


@pytest.mark.parametrize(
    ("age", "band"), [(18, "18-29"), (29, "18-29"), (30, "30-49"), (64, "50-64"), (65, "65+")]
)
def test_age_band_edges(age, band):
    assert age_band(np.array([age]))[0] == band


def test_group_keys_join_attributes_for_intersections():
    columns = {"gender": np.array(["female", "male"], dtype=object), "age": np.array([25, 70])}
    assert group_keys(columns, ("gender",)).tolist() == ["female", "male"]
    assert group_keys(columns, ("gender", "age_band")).tolist() == ["female&18-29", "male&65+"]
    with pytest.raises(ValueError, match="unknown protected attribute"):
        group_keys(columns, ("religion",))
