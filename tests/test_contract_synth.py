"""Probe synthesis from recorded marginals: seeded, valid, faithful to marginals and ranks."""

import json
from pathlib import Path

import numpy as np
import pytest

from fairgate.contract import builtin_contract, parse_contract
from fairgate.contract_request import request_model
from fairgate.contract_synth import (
    Marginals,
    Synthesis,
    marginals_from_contract,
    record_marginals,
    record_synthesis,
    synthesize,
)
from fairgate.generator import generate_applicants, to_records

CONTRACT = builtin_contract()
GERMAN = Path(__file__).parent / "fixtures" / "germancredit" / "germancredit.csv"


def to_records_of(contract, table):
    names = contract.field_names
    rows = zip(*(table[n].tolist() for n in names), strict=True)
    return [dict(zip(names, row, strict=True)) for row in rows]


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


# -- the boundary population and contract-only marginals --------------------------------


def test_boundary_population_is_the_rows_nearest_a_threshold(source):
    # Hand-made distances: the applicants with the 3,000 lowest incomes are "near" (distance
    # 0.01), everyone else far (0.5), one row undecidable (inf). The boundary set must be
    # exactly the near rows, so its income quantiles stay below the population's 10%.
    income = source["annual_income"]
    order = np.argsort(income, kind="stable")
    distance = np.full(len(income), 0.5)
    distance[order[:3000]] = 0.01
    distance[order[0]] = np.inf
    synthesis = record_synthesis(CONTRACT, source, distance, share=0.1)
    assert synthesis.boundary_rows == 3000
    assert synthesis.boundary_width == 0.5  # 2,999 near rows + the nearest far one
    near = synthesis.boundary.quantiles["annual_income"]
    assert near[-1] <= np.quantile(income, 0.1) + 1e-9 or near[-2] <= np.quantile(income, 0.1)
    assert synthesis.population == record_marginals(CONTRACT, source)
    again = Synthesis.from_dict(json.loads(json.dumps(synthesis.to_dict())))
    assert again == synthesis


def test_too_few_rows_for_a_boundary_population(source):
    small = {k: v[:100] for k, v in source.items()}
    synthesis = record_synthesis(CONTRACT, small, np.zeros(100), share=0.2)  # 20 < 50 rows
    assert synthesis.boundary is None and synthesis.boundary_rows == 0
    assert Synthesis.from_dict(json.loads(json.dumps(synthesis.to_dict()))) == synthesis


def test_contract_only_marginals_give_valid_applicants_over_the_whole_range():
    marginals = marginals_from_contract(CONTRACT)
    table = synthesize(CONTRACT, marginals, 5000, seed=4)
    Model = request_model(CONTRACT)
    for record in to_records(table)[:500]:
        Model.model_validate(record)
    # Income bounds 0..10,000,000 span decades: spread in log scale, so half the applicants
    # earn under sqrt(10^7) ~ 3,162 (log1p midpoint), not under 5,000,000.
    assert 1_000 < np.median(table["annual_income"]) < 10_000
    assert set(table["gender"]) == {"female", "male", "nonbinary", "undisclosed"}
    # Age 18..100 does not span decades: spread evenly, median near 59.
    assert 55 <= np.median(table["age"]) <= 63


def test_same_seed_same_table_through_mimesis(marginals):
    a = synthesize(CONTRACT, marginals, 1000, seed=3)
    b = synthesize(CONTRACT, marginals, 1000, seed=3)
    c = synthesize(CONTRACT, marginals, 1000, seed=4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["gender"], c["gender"])
    assert not np.array_equal(a["annual_income"], c["annual_income"])


def test_german_synthesis_holds_no_training_row():
    from training.book_check import read_book
    from training.draft_contract import draft_contract

    frame = read_book(GERMAN)
    contract = parse_contract(
        draft_contract(
            frame, label="creditability", approved=["good"],
            protected=["age_in_years", "personal_status_and_sex"], name="german",
        )
    )  # fmt: skip
    columns = {c: frame[c].to_numpy() for c in frame.columns if c != "creditability"}
    distance = np.abs(np.linspace(-1, 1, len(frame)))
    small = json.dumps(record_synthesis(contract, columns, distance).to_dict())
    doubled = {k: np.concatenate([v, v]) for k, v in columns.items()}
    twice = np.concatenate([distance, distance])
    large = json.dumps(record_synthesis(contract, doubled, twice).to_dict())
    # A fixed-size summary: twice the rows, about the same size (numbers differ in digits).
    assert abs(len(large) - len(small)) < 0.05 * len(small)
    # No row's text cells appear together: every row has a purpose and a credit history
    # text, and each is stored once as a frequency key, never as a row.
    summary = json.loads(small)
    assert set(summary["population"]) == {"quantiles", "frequencies", "rank_correlation"}
    assert all(isinstance(v, float) for f in summary["population"]["frequencies"].values()
               for v in f.values())  # fmt: skip
    table = synthesize(contract, Synthesis.from_dict(summary).population, 2000, seed=1)
    Model = request_model(contract)
    for record in to_records_of(contract, table)[:300]:
        Model.model_validate(record)
