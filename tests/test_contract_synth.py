"""Probe synthesis from recorded marginals: seeded, valid, faithful to marginals and ranks."""

import json

import numpy as np
import pytest

from fairgate.contract import builtin_contract
from fairgate.contract_request import request_model
from fairgate.contract_synth import Marginals, record_marginals, synthesize
from fairgate.generator import generate_applicants, to_records

CONTRACT = builtin_contract()


def spearman(a, b):
    # Independent oracle: scipy's rank correlation (average ranks for ties).
    from scipy.stats import spearmanr

    return spearmanr(a, b).statistic


@pytest.fixture(scope="module")
def source():
    return generate_applicants(30_000, seed=5)


@pytest.fixture(scope="module")
def marginals(source):
    return record_marginals(CONTRACT, source)


@pytest.fixture(scope="module")
def synthetic(marginals):
    return synthesize(CONTRACT, marginals, 60_000, seed=9)


def test_same_seed_same_applicants(marginals):
    a = synthesize(CONTRACT, marginals, 500, seed=3)
    b = synthesize(CONTRACT, marginals, 500, seed=3)
    c = synthesize(CONTRACT, marginals, 500, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["annual_income"], c["annual_income"])


def test_every_applicant_is_a_valid_request(marginals):
    table = synthesize(CONTRACT, marginals, 2000, seed=1)
    Model = request_model(CONTRACT)
    records = to_records(table)
    assert [Model.model_validate(r).application_id for r in records] == list(
        table["application_id"]
    )


@pytest.mark.parametrize(
    "name", ["annual_income", "age", "loan_amount", "monthly_debt_payments", "weekly_hours"]
)
def test_numeric_marginals_are_reproduced(source, synthetic, name):
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        want, got = np.quantile(source[name], q), np.quantile(synthetic[name], q)
        assert got == pytest.approx(want, rel=0.05, abs=1.0), (name, q)


def test_category_frequencies_are_reproduced(source, synthetic):
    for name in ("gender", "employment_type"):
        for value in set(source[name]):
            want = np.mean(source[name] == value)
            assert np.mean(synthetic[name] == value) == pytest.approx(want, abs=0.01)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("annual_income", "monthly_debt_payments"),
        ("annual_income", "loan_amount"),
        ("annual_income", "weekly_hours"),
        ("weekly_hours", "monthly_debt_payments"),
    ],
)
def test_rank_correlations_are_reproduced(source, synthetic, a, b):
    want = spearman(source[a], source[b])
    assert abs(want) > 0.2  # a real dependence, so the check can fail
    assert spearman(synthetic[a], synthetic[b]) == pytest.approx(want, abs=0.06)


def test_marginals_hold_no_training_row(source, marginals):
    stored = json.dumps(marginals.to_dict())
    assert "APP-" not in stored  # no application id
    # A fixed-size summary: 201 quantiles per numeric field, whatever the book's size.
    assert {len(v) for v in marginals.quantiles.values()} == {201}
    again = Marginals.from_dict(json.loads(stored))
    assert again == marginals
    # No source row reappears: a row's full numeric tuple is not among the synthetic ones.
    numeric = [n for n in marginals.quantiles]
    rows = set(zip(*(source[n][:2000].tolist() for n in numeric), strict=True))
    table = synthesize(CONTRACT, again, 20_000, seed=2)
    made = set(zip(*(table[n].tolist() for n in numeric), strict=True))
    assert not rows & made
