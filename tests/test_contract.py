"""The contract loader: the shipped synthetic contract, and every bad entry reported at once."""

import copy
import tomllib
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fairgate import contract_rules as rules
from fairgate.contract import (
    BAND_LABELS_COUNT,
    EDGES_NOT_INCREASING,
    ENUM_REQUIRED,
    ContractError,
    builtin_contract,
    contract_from_mapping,
    parse_contract,
)
from tests.synthetic_oracle import (
    AGE_BAND_EDGES,
    AGE_BAND_REPRESENTATIVE,
    AGE_BANDS,
    APPLICANT_FIELDS,
    GROUP_SEPARATOR,
    SENSITIVE_ATTRIBUTES,
)

RAW = tomllib.loads(resources.files("fairgate.contracts").joinpath("synthetic.toml").read_text())


def raw():
    return copy.deepcopy(RAW)


def problems_of(document):
    with pytest.raises(ContractError) as error:
        contract_from_mapping(document)
    return error.value.problems


def test_synthetic_contract_matches_the_schema_module():
    contract = builtin_contract()
    assert contract.field_names == APPLICANT_FIELDS
    assert contract.id_field.name == "application_id"
    assert tuple(p.name for p in contract.protected) == SENSITIVE_ATTRIBUTES
    band = contract.attribute("age_band")
    assert band.edges == AGE_BAND_EDGES
    assert band.labels == AGE_BANDS
    assert band.representatives == tuple(AGE_BAND_REPRESENTATIVE[b] for b in AGE_BANDS)
    assert contract.groups.policy == ("gender",)
    assert contract.groups.audit == contract.groups.prober == ("gender", "age_band")
    assert contract.groups.separator == GROUP_SEPARATOR
    assert (contract.gap.field, contract.gap.direction) == ("annual_income", 1)
    assert (contract.label.column, contract.label.approved) == ("approved", (1,))


def test_every_bad_entry_is_reported_at_once():
    document = raw()
    document["fields"][6]["constraints"] = {"minimum": 100, "maximum": 0}  # bounds swapped
    document["fields"][6].pop("example")
    document["fields"][4]["constraints"] = {}  # employment_type: no categories
    document["protected"][1]["edges"] = [50, 30, 65]  # band edges out of order
    document["features"][3]["field"] = "tenure"  # unknown field
    document["features"][9]["sensitive"] = False  # gender used without opt-in
    document["groups"]["audit"] = ["gender", "religion"]  # unknown attribute
    problems = problems_of(document)
    expected = [
        "fields.6: minimum 100.0 is above maximum 0.0",
        "fields.4: " + ENUM_REQUIRED,
        "protected.1: " + EDGES_NOT_INCREASING.format(edges=[50.0, 30.0, 65.0]),
        "features.3: unknown field 'tenure'",
        "features.9: reads protected field 'gender'",
        "groups.audit: unknown protected attribute 'religion'",
    ]
    for start in expected:
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)
    assert len(problems) == len(expected), problems


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["fields"].append(dict(d["fields"][1])), "fields: 'annual_income' is defined"),
        (lambda d: d["fields"][0].update(type="category"), "fields.0: " + ENUM_REQUIRED),
        (lambda d: d["fields"][1].update(example=-5.0), "fields.1: example -5.0 is outside"),
        (lambda d: d["fields"][2].update(example=30.5), "fields.2: example 30.5 is not a valid"),
        (lambda d: d["label"].update(column="age"), "label.column: 'age' is also a field"),
        (lambda d: d["protected"][0].update(field="zip"), "protected.0.field: unknown field 'zip'"),
        (lambda d: d["protected"][0].update(field="age"), "protected.0.field: 'age' is numeric"),
        (
            lambda d: d["protected"][1].update(labels=["a", "b"]),
            "protected.1: " + BAND_LABELS_COUNT.format(edges=3, bands=4, labels=2),
        ),
        (
            lambda d: d["protected"][1].update(representatives=[25, 40, 57, 60]),
            "protected.1: representative 60.0 of band '65+' is outside the band",
        ),
        (
            lambda d: d["protected"][1].update(edges=[10, 50, 65]),
            "protected.1.edges: edge 10 is outside 'age''s bounds",
        ),
        (lambda d: d["groups"].update(policy=[]), "groups.policy: Tuple should have at least 1"),
        (lambda d: d["groups"].update(policy=["gender", "gender"]), "groups.policy: 'gender' is"),
        (lambda d: d["features"][0].update(field="gender"), "features.0: log1p needs a number"),
        (lambda d: d["features"][8].update(field="age"), "features.8: one_hot needs a category"),
        (lambda d: d["features"][2].pop("floor"), "features.2: denominator 'annual_income' can"),
        (lambda d: d["features"][8].update(monotone=1), "features.8: a one_hot feature cannot"),
        (lambda d: d["features"][9].update(values=["woman"]), "features.9: ['woman'] are not"),
        (lambda d: d["features"][3].update(sensitive=True), "features.3: sensitive = true but"),
        (lambda d: d["features"][4].update(name="age"), "features: 'age' is defined more than"),
        (lambda d: d["features"][3].update(monotone=2), "features.3.monotone: Input should be"),
        (lambda d: d["gap"].update(field="gender"), "gap.field: gap needs a number or integer"),
        (lambda d: d["gap"].update(field="age"), "gap.field: 'age' is protected"),
        (lambda d: d["fields"][1].update(type="string"), "fields.1.type: Input should be"),
        (lambda d: d.update(colour="red"), "colour: Extra inputs are not permitted"),
        (lambda d: d["fields"][2].update(example="34"), "fields.2: example '34' is not a valid"),
    ],
)
def test_bad_entries_are_named(edit, message):
    document = raw()
    edit(document)
    problems = problems_of(document)
    assert any(p.startswith(message) for p in problems), problems


def test_id_field_is_required_exactly_once():
    document = raw()
    document["fields"][0]["type"] = "number"
    document["fields"][0].pop("constraints")
    document["fields"][0].pop("example")
    assert rules.ID_FIELD_COUNT.format(count=0) in problems_of(document)


def test_strings_are_not_numbers_in_the_contract():
    document = raw()
    document["fields"][1]["constraints"]["maximum"] = "10000000"
    assert any(p.startswith("fields.1.constraints.maximum") for p in problems_of(document))


def test_toml_syntax_error_is_a_contract_error():
    with pytest.raises(ContractError, match="not valid TOML"):
        parse_contract("name = ")


# -- robustness: any edit of the document is a contract or a ContractError, never a crash --

_LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 100),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.sampled_from(["age", "gender", "number", "category", "id", "one_hot", "ratio"]),
)
_KEYS = st.sampled_from(["name", "type", "field", "edges", "labels", "enum", "minimum", "values"])
_VALUE = st.recursive(
    _LEAF,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=3)),
    max_leaves=8,
)


def _paths(node, prefix=()):
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in items:
        yield (*prefix, key)
        if isinstance(value, dict | list):
            yield from _paths(value, (*prefix, key))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(list(_paths(RAW))), _VALUE), min_size=1, max_size=4))
def test_any_edit_is_a_contract_or_a_contract_error(edits):
    document = raw()
    for path, value in edits:
        node = document
        try:
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier edit replaced this path's parent
    try:
        contract_from_mapping(document)
    except ContractError as error:
        assert error.problems


def test_a_feature_cannot_read_an_optional_field_without_saying_how_it_is_filled():
    """A missing value with no fill would reach the model as NaN: the contract must say."""
    document = raw()
    document["fields"][6]["constraints"]["required"] = False  # weekly_hours, a feature
    assert problems_of(document) == [
        "features.4: reads 'weekly_hours', which is optional (constraints.required = false) "
        "but says no missing = median | most_frequent | constant | model: say how a missing "
        "value is filled, or make the field required"
    ]
    document["fields"][6]["missing"] = "median"
    assert contract_from_mapping(document).field("weekly_hours").missing == "median"
