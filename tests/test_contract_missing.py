"""Missing values in the contract: declared, learnt from the training rows, filled alike in
training and serving, never a reason for a denial; 0/1 codes and a group for those who
leave a protected field out."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from pydantic import ValidationError

from fairgate.contract import (
    FILL_NEEDED,
    MISSING_REQUIRED,
    ContractError,
    contract_from_mapping,
    contract_to_mapping,
    parse_contract,
)
from fairgate.contract_features import ContractFeatures, RequestColumns, group_keys
from fairgate.contract_missing import NOT_LEARNT, learn_fills
from fairgate.contract_request import request_model
from fairgate.contract_rules import OPTIONAL_INPUT, PROTECTED_FILLED, PROTECTED_OPTIONAL
from fairgate.contract_synth import record_marginals, synthesize
from fairgate.contract_twins import attribute_values, twin
from fairgate.reasons import Explainer
from fairgate.scorer import LogisticScorer
from training.contract_fills import with_learnt_fills
from training.pipeline import TrainConfig, _check_missing_for_model

TEXT = """
name = "gaps"
[[fields]]
name = "rid"
type = "id"
[[fields]]
name = "income"
type = "number"
missing = "median"
constraints = { required = false, minimum = 0, maximum = 1000 }
[[fields]]
name = "children"
type = "integer"
missing = "most_frequent"
constraints = { required = false, minimum = 0, maximum = 9 }
[[fields]]
name = "home"
type = "category"
missing = "constant"
fill = "other"
constraints = { required = false, enum = ["own", "rent", "other"] }
[[fields]]
name = "age"
type = "integer"
constraints = { required = false, minimum = 18, maximum = 99 }
[[fields]]
name = "black"
type = "integer"
constraints = { enum = [0, 1], minimum = 0, maximum = 1 }
[label]
column = "y"
approved = [1]
denied = [0]
[[protected]]
name = "black"
field = "black"
[[protected]]
name = "age_band"
field = "age"
edges = [40]
labels = ["18-39", "40+"]
representatives = [30, 50]
missing = "not given"
[groups]
policy = ["black"]
audit = ["black", "age_band"]
prober = ["black", "age_band"]
[[features]]
name = "income"
transform = "as_is"
field = "income"
[[features]]
name = "children"
transform = "as_is"
field = "children"
[[features]]
name = "home"
transform = "one_hot"
field = "home"
"""

NAN = float("nan")
BOOK = {
    "rid": np.array(["a", "b", "c", "d", "e"], dtype=object),
    "income": np.array([10.0, NAN, 40.0, 25.0, NAN]),
    "children": np.array([2.0, 2.0, NAN, 0.0, 1.0]),
    "home": np.array(["own", None, "rent", None, "own"], dtype=object),
    "age": np.array([30.0, 45.0, NAN, 60.0, 22.0]),
    "black": np.array([0, 1, 0, 1, 1]),
}


def with_fills(contract, fills):
    """The contract with ``fills`` set, built from its mapping (not from its TOML text, as
    training/contract_fills.py writes the model's copy): the two must agree."""
    raw = contract_to_mapping(contract)
    for field in raw["fields"]:
        if field["name"] in fills:
            field["fill"] = fills[field["name"]]
    return contract_from_mapping(raw)


def trained_contract():
    contract = parse_contract(TEXT)
    return with_fills(contract, learn_fills(contract, BOOK))


def test_fills_are_the_training_rows_median_and_most_frequent():
    fills = learn_fills(parse_contract(TEXT), BOOK)
    # statistics, not numpy: the oracle is not the code under test.
    assert fills == {"income": statistics.median([10.0, 40.0, 25.0]), "children": 2}
    # An integer field's median is a whole number a request could carry.
    even = BOOK | {"income": np.array([10.0, 15.0, NAN, NAN, NAN])}
    assert learn_fills(parse_contract(TEXT), even)["income"] == 12.5
    integer = BOOK | {"children": np.array([1.0, 2.0, NAN, NAN, NAN])}
    contract = parse_contract(TEXT.replace('missing = "most_frequent"', 'missing = "median"'))
    assert learn_fills(contract, integer)["children"] == 2  # 1.5 rounds half up


def test_an_untrained_contract_says_its_fills_are_not_learnt():
    features = ContractFeatures(parse_contract(TEXT))
    with pytest.raises(ValueError) as error:
        features.build(BOOK)
    assert str(error.value) == NOT_LEARNT.format(name="income", missing="median")


def test_serving_fills_exactly_as_training_did():
    contract = trained_contract()
    features = ContractFeatures(contract)
    from_book = features.build(BOOK)
    # The same applicants as requests that leave the empty cells out.
    model = request_model(contract)
    requests = []
    for i in range(5):
        body = {name: values[i] for name, values in BOOK.items()}
        body = {k: v for k, v in body.items() if not (v is None or v != v)}
        body = {k: int(v) if k in ("children", "age", "black") else v for k, v in body.items()}
        requests.append(model.model_validate(body))
    from_requests = features.build(RequestColumns(contract)(requests))
    assert from_requests.tobytes() == from_book.tobytes()
    # And as the same applicants with the fills sent explicitly (the fills by hand: the
    # median 25 of 10, 40, 25; the most frequent 2 of 2, 2, 0, 1; the constant "other").
    explicit = dict(BOOK)
    explicit["income"] = np.array([10.0, 25.0, 40.0, 25.0, 25.0])
    explicit["children"] = np.array([2.0, 2.0, 2.0, 0.0, 1.0])
    explicit["home"] = np.array(["own", "other", "rent", "other", "own"], dtype=object)
    assert features.build(explicit).tobytes() == from_book.tobytes()


def test_the_models_copy_of_the_contract_carries_the_fills():
    text = with_learnt_fills(TEXT, {"income": 25.0, "children": 2}, rows=3)
    stored = parse_contract(text)
    assert stored.field("income").fill == 25.0 and stored.field("children").fill == 2
    assert stored == trained_contract()
    assert "learnt at training: the median of 3 rows" in text
    assert with_learnt_fills(TEXT, {}, rows=3) == TEXT


def test_a_contract_says_how_every_optional_input_is_filled():
    def problems(text):
        with pytest.raises(ContractError) as error:
            parse_contract(text)
        return error.value.problems

    unfilled = TEXT.replace('missing = "median"\n', "")
    assert problems(unfilled) == [OPTIONAL_INPUT.format(where="features.0", name="income")]
    required = TEXT.replace("required = false, minimum = 0, maximum = 1000", "minimum = 0")
    assert problems(required) == [f"fields.1: {MISSING_REQUIRED.format(missing='median')}"]
    constant = TEXT.replace('fill = "other"\n', "")
    assert problems(constant) == [f"fields.3: {FILL_NEEDED}"]
    outside = TEXT.replace('fill = "other"', 'fill = "castle"')
    assert "fill 'castle' is not a valid value" in problems(outside)[0]
    filled_protected = TEXT.replace(
        "constraints = { required = false, minimum = 18",
        'missing = "median"\nconstraints = { required = false, minimum = 18',
    )
    assert problems(filled_protected) == [
        PROTECTED_FILLED.format(where="protected.1.field", name="age", missing="median")
    ]
    unlabelled = TEXT.replace('missing = "not given"\n', "")
    assert problems(unlabelled) == [PROTECTED_OPTIONAL.format(where="protected.1.missing",
                                                              name="age")]  # fmt: skip


def test_codes_and_the_group_of_those_who_leave_a_protected_field_out():
    contract = trained_contract()
    keys = group_keys(contract, BOOK, ("black", "age_band"))
    # By hand: black 0/1 as text; age 30 -> 18-39, 45 -> 40+, empty -> not given.
    assert keys.tolist() == ["0&18-39", "1&40+", "0&not given", "1&40+", "1&18-39"]
    assert attribute_values(contract, "black") == ("0", "1")
    moved = twin(contract, BOOK, "black", "1")
    assert moved["black"].tolist() == [1] * 5 and moved["black"].dtype.kind == "i"


def test_codes_are_whole_numbers_of_the_field_nothing_else():
    model = request_model(trained_contract())
    base = {"rid": "x", "black": 1}
    assert model.model_validate(base).black == 1
    for bad in (True, 1.0, 2, -1, "1"):
        with pytest.raises(ValidationError) as error:
            model.model_validate(base | {"black": bad})
        assert [e["loc"] for e in error.value.errors()] == [("black",)], bad
    assert model.model_json_schema()["properties"]["black"]["enum"] == [0, 1]


def test_summaries_and_synthesis_have_no_nan_category_and_only_real_codes():
    contract = trained_contract()
    marginals = record_marginals(contract, BOOK)
    assert marginals.frequencies["home"] == {"own": 2 / 3, "rent": 1 / 3}  # and 2 empty
    assert marginals.frequencies["black"] == {"0": 0.4, "1": 0.6}
    drawn = synthesize(contract, marginals, 500, seed=3)
    assert set(drawn["black"].tolist()) == {0, 1}
    assert set(drawn["home"].tolist()) <= {"own", "rent"}


def test_a_value_the_applicant_left_out_is_never_a_reason():
    contract = trained_contract()
    features = ContractFeatures(contract)
    width = len(features.names)  # income, children, home_own, home_rent, home_other
    # Every column counts for approval; the reference is a rich applicant.
    scorer = LogisticScorer(np.zeros(width), np.ones(width), np.ones((1, width)), np.zeros(1))
    reference = np.array([1000.0, 9.0, 1.0, 1.0, 1.0])
    explainer = Explainer(features, scorer, reference)
    poor = {
        "rid": np.array(["p", "q"], dtype=object),
        "income": np.array([5.0, NAN]),
        "children": np.array([0.0, 0.0]),
        "home": np.array(["own", "own"], dtype=object),
        "age": np.array([30.0, 30.0]),
        "black": np.array([0, 0]),
    }
    reasons = explainer.explain(features.build(poor), poor)
    given, left_out = ({r.code for r in row} for row in reasons)
    assert "R-INCOME" in given
    assert "R-INCOME" not in left_out and "R-CHILDREN" in left_out


def test_only_gradient_boosting_takes_a_missing_number_as_it_is():
    contract = parse_contract(TEXT.replace('missing = "median"', 'missing = "model"'))
    with pytest.raises(ValueError, match="train with --model gbm"):
        _check_missing_for_model(contract, TrainConfig(model="logistic"))
    _check_missing_for_model(contract, TrainConfig(model="gbm"))


def test_an_integer_enum_holds_whole_numbers_only():
    raw = {
        "name": "x",
        "fields": [
            {"name": "rid", "type": "id"},
            {"name": "male", "type": "integer", "constraints": {"enum": ["0", "1"]}},
            {"name": "k", "type": "number", "constraints": {"enum": [1, 2]}},
        ],
        "label": {"column": "y", "approved": [1], "denied": [0]},
        "protected": [{"name": "male", "field": "male"}],
        "groups": {"policy": ["male"], "audit": ["male"], "prober": ["male"]},
        "features": [{"name": "k", "transform": "as_is", "field": "k"}],
    }
    with pytest.raises(ContractError) as error:
        contract_from_mapping(raw)
    text = "\n".join(error.value.problems)
    assert "enum of a integer field lists whole numbers" in text
    assert "fields.2: constraints.enum only applies to category and integer fields" in text
