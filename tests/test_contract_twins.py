"""Twins under a contract: only the attribute's field changes, and only where it must."""

import numpy as np
import pytest

from fairgate.contract import builtin_contract
from fairgate.contract_synth import Marginals
from fairgate.contract_twins import attribute_values, twin

CONTRACT = builtin_contract()
COLUMNS = {
    "application_id": np.array(["a", "b", "c"], dtype=object),
    "gender": np.array(["male", "female", "nonbinary"], dtype=object),
    "age": np.array([22, 41, 70]),
    "annual_income": np.array([1.0, 2.0, 3.0]),
}


def test_category_twin_sets_the_value_and_nothing_else():
    out = twin(CONTRACT, COLUMNS, "gender", "female")
    assert out["gender"].tolist() == ["female"] * 3
    for name in ("application_id", "age", "annual_income"):
        assert out[name] is COLUMNS[name]
    assert COLUMNS["gender"].tolist() == ["male", "female", "nonbinary"]  # not mutated


def test_band_twin_moves_only_those_outside_the_band():
    # Bands 18-29 / 30-49 / 50-64 / 65+, representatives 25 / 40 / 57 / 70 (synthetic.toml).
    out = twin(CONTRACT, COLUMNS, "age_band", "30-49")
    assert out["age"].tolist() == [40, 41, 40]
    assert out["age"].dtype.kind == "i"
    assert twin(CONTRACT, COLUMNS, "age_band", "18-29")["age"].tolist() == [22, 25, 25]


def test_values_follow_the_recorded_book():
    assert attribute_values(CONTRACT, "age_band") == ("18-29", "30-49", "50-64", "65+")
    assert attribute_values(CONTRACT, "gender") == ("female", "male", "nonbinary", "undisclosed")
    seen = Marginals({}, {"gender": {"female": 0.5, "male": 0.5}}, [])
    assert attribute_values(CONTRACT, "gender", seen) == ("female", "male")


def test_unknown_values_are_refused():
    with pytest.raises(ValueError, match="not a value of gender"):
        twin(CONTRACT, COLUMNS, "gender", "robot")
    with pytest.raises(ValueError, match="not a band of age_band"):
        twin(CONTRACT, COLUMNS, "age_band", "12-17")
