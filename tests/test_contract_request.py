"""The request model derived from the synthetic contract behaves exactly like the
hand-written applicant it replaced (frozen in tests/synthetic_oracle.py)."""

import math

import pytest
from pydantic import ValidationError

from fairgate.contract import builtin_contract
from fairgate.contract_request import request_model
from tests.synthetic_oracle import Applicant

CONTRACT = builtin_contract()
Derived = request_model(CONTRACT)
EXAMPLE = Applicant.model_json_schema()["example"]

# The bad values of tests/test_schema.py and docs/reliability.md, plus the type edges
# strict mode decides (bool for a number, 30.0 for an integer, None, containers).
CHANGES = [
    ("annual_income", "52000"),
    ("annual_income", -1.0),
    ("annual_income", math.nan),
    ("annual_income", math.inf),
    ("annual_income", -math.inf),
    ("annual_income", 1e12),
    ("annual_income", 10_000_000),
    ("annual_income", 0),
    ("annual_income", True),
    ("annual_income", [52000.0]),
    ("age", 17),
    ("age", 18),
    ("age", 100),
    ("age", 101),
    ("age", 30.5),
    ("age", 30.0),
    ("age", "30"),
    ("gender", "Other"),
    ("gender", "nonbinary"),
    ("gender", "FEMALE"),
    ("gender", 1),
    ("employment_type", "astronaut"),
    ("employment_type", "retired"),
    ("loan_amount", 0),
    ("loan_amount", 1),
    ("loan_amount", 0.5),
    ("loan_term_months", 5),
    ("loan_term_months", 480),
    ("delinquencies_2y", True),
    ("delinquencies_2y", -1),
    ("weekly_hours", 100.5),
    ("application_id", ""),
    ("application_id", "x" * 64),
    ("application_id", "x" * 65),
    ("application_id", "bad id\n"),
    ("application_id", "-starts-with-dash"),
    ("application_id", "APP:2024.01_x-9"),
    ("application_id", 12345),
]


def outcome(model, body):
    try:
        model.model_validate(body)
    except ValidationError as error:
        return sorted((e["loc"], e["type"]) for e in error.errors())
    return "accepted"


@pytest.mark.parametrize(("field", "value"), CHANGES)
def test_same_verdict_and_errors_as_the_schema(field, value):
    body = EXAMPLE | {field: value}
    assert outcome(Derived, body) == outcome(Applicant, body)


def test_a_null_in_a_required_field_is_reported_as_missing():
    """The hand-written applicant said "Input should be a valid number" for a null; the
    caller left the value out, so it is "required", like a field not sent at all."""
    null = outcome(Derived, EXAMPLE | {"annual_income": None})
    absent = outcome(Derived, {k: v for k, v in EXAMPLE.items() if k != "annual_income"})
    assert null == absent == [(("annual_income",), "missing")]
    assert outcome(Applicant, EXAMPLE | {"annual_income": None}) == [
        (("annual_income",), "float_type")
    ]
    with pytest.raises(ValidationError) as error:
        Derived.model_validate(EXAMPLE | {"annual_income": None})
    assert error.value.errors()[0]["msg"] == "Field required"
    assert error.value.title == "application"


@pytest.mark.parametrize(
    "body",
    [
        {k: v for k, v in EXAMPLE.items() if k != "age"} | {"zip": "1"},
        {k: v for k, v in EXAMPLE.items() if k != "application_id"},
        {},
        EXAMPLE | {"extra": None},
    ],
)
def test_unknown_and_missing_fields_as_the_schema(body):
    assert outcome(Derived, body) == outcome(Applicant, body)
    assert outcome(Derived, body) != "accepted"


def test_verdicts_cover_both_outcomes():
    # Guard against a table that only ever exercises one side.
    verdicts = [outcome(Derived, EXAMPLE | {f: v}) == "accepted" for f, v in CHANGES]
    assert 8 <= sum(verdicts) < len(verdicts)


def test_instances_are_frozen():
    applicant = Derived.model_validate(EXAMPLE)
    with pytest.raises(ValidationError):
        applicant.age = 40


def test_json_schema_properties_match_apart_from_added_descriptions():
    ours, theirs = Derived.model_json_schema(), Applicant.model_json_schema()
    assert ours["example"] == theirs["example"] == CONTRACT.example
    assert ours["required"] == theirs["required"]
    assert ours["additionalProperties"] is theirs["additionalProperties"] is False
    assert list(ours["properties"]) == list(theirs["properties"])
    for name, prop in theirs["properties"].items():
        mine = dict(ours["properties"][name])
        # The contract documents every field; the schema module left three undocumented.
        description = mine.pop("description")
        assert description == prop.get("description", description), name
        assert mine == {k: v for k, v in prop.items() if k != "description"}, name


def test_optional_field_may_be_left_out():
    from fairgate.contract import contract_from_mapping

    raw = CONTRACT.model_dump(by_alias=True, exclude_none=True)
    raw["fields"][6]["constraints"]["required"] = False
    # An optional field cannot feed a feature (the builder does not impute): drop its feature.
    raw["features"] = [f for f in raw["features"] if f.get("field") != "weekly_hours"]
    Model = request_model(contract_from_mapping(raw))
    body = {k: v for k, v in EXAMPLE.items() if k != "weekly_hours"}
    assert Model.model_validate(body).weekly_hours is None
    with pytest.raises(ValidationError):
        request_model(CONTRACT).model_validate(body)
