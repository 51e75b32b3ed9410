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
    # Chosen by hand: the 2,999 near rows, and of the equally far rows the first by position.
    far = np.setdiff1d(np.arange(len(income)), order[:3000])
    chosen = np.concatenate([order[1:3000], far[:1]])
    want = record_marginals(CONTRACT, {k: v[chosen] for k, v in source.items()})
    assert synthesis.boundary.quantiles == want.quantiles
    assert synthesis.boundary.frequencies == want.frequencies
    assert np.allclose(synthesis.boundary.rank_correlation, want.rank_correlation, atol=2e-6)
    assert synthesis.boundary.quantiles["annual_income"][-2] < np.quantile(income, 0.1)
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


@pytest.fixture(scope="module")
def german():
    """The German credit book under its drafted contract, rows given ids as training does."""
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
    columns["application_id"] = np.array([f"GC-{i:04d}" for i in range(len(frame))], dtype=object)
    return contract, columns


def _json_objects(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _json_objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _json_objects(value)


def test_german_synthesis_json_holds_no_training_row(german):
    contract, columns = german
    distance = np.abs(np.linspace(-1, 1, len(columns["application_id"])))
    text = json.dumps(record_synthesis(contract, columns, distance).to_dict())
    names = [n for n in contract.field_names if n != "application_id"]
    rows = list(zip(*(columns[n].tolist() for n in names), strict=True))
    # No id, and no row's values in a run (as a stored list would hold them) ...
    assert not any(i in text for i in columns["application_id"])
    for row in rows:
        assert json.dumps(list(row))[1:-1] not in text
        assert json.dumps(list(row[:3]))[1:-1] not in text
    # ... nor any object keyed by two or more fields holding scalars (a stored record).
    for node in _json_objects(json.loads(text)):
        scalars = [k for k, v in node.items() if k in names and not isinstance(v, dict | list)]
        assert len(scalars) < 2, scalars


def test_german_synthesis_is_a_fixed_size_summary(german):
    # 500 rows and all 1,000 (both with a boundary set of >= 50): the same JSON structure,
    # the same number of stored values, about the same size.
    contract, columns = german

    def summary(rows):
        part = {k: v[:rows] for k, v in columns.items()}
        return record_synthesis(contract, part, np.abs(np.linspace(-1, 1, rows))).to_dict()

    def shape(node):
        if isinstance(node, dict):
            return {k: shape(v) for k, v in node.items()}
        return len(node) if isinstance(node, list) else type(node).__name__

    half, whole = summary(500), summary(1000)
    assert half["boundary_rows"] == 100 and whole["boundary_rows"] == 200
    # Category keys may differ (a value absent from the first 500 rows); numbers do not.
    for part in ("population", "boundary"):
        assert shape(half[part]["quantiles"]) == shape(whole[part]["quantiles"])
        assert shape(half[part]["rank_correlation"]) == shape(whole[part]["rank_correlation"])
    assert abs(len(json.dumps(whole)) - len(json.dumps(half))) < 0.05 * len(json.dumps(half))


def test_german_synthesis_gives_valid_requests(german):
    contract, columns = german
    Model = request_model(contract)
    synthesis = record_synthesis(contract, columns, np.abs(np.linspace(-1, 1, 1000)))
    for marginals in (synthesis.population, synthesis.boundary, marginals_from_contract(contract)):
        table = synthesize(contract, marginals, 1000, seed=1)
        records = to_records_of(contract, table)
        assert [Model.model_validate(r).application_id for r in records] == list(
            table["application_id"]
        )
    # The book's rank dependence survives: duration and amount (Spearman ~0.6 in the book).
    want = spearman(columns["duration_in_month"], columns["credit_amount"])
    table = synthesize(contract, synthesis.population, 20_000, seed=3)
    got = spearman(table["duration_in_month"], table["credit_amount"])
    assert want > 0.5 and got == pytest.approx(want, abs=0.06)


def test_same_table_in_a_fresh_process(marginals):
    """Bit for bit across processes (another hash seed, another BLAS start-up)."""
    import hashlib
    import subprocess
    import sys

    code = (
        "import hashlib, json, sys\n"
        "from fairgate.contract import builtin_contract\n"
        "from fairgate.contract_synth import Marginals, synthesize\n"
        "m = Marginals.from_dict(json.load(sys.stdin))\n"
        "t = synthesize(builtin_contract(), m, 3000, seed=11)\n"
        "h = hashlib.sha256()\n"
        "for k in sorted(t): h.update(k.encode()); h.update(repr(t[k].tolist()).encode())\n"
        "print(h.hexdigest())\n"
    )
    table = synthesize(CONTRACT, marginals, 3000, seed=11)
    digest = hashlib.sha256()
    for k in sorted(table):
        digest.update(k.encode())
        digest.update(repr(table[k].tolist()).encode())
    env = {**__import__("os").environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(marginals.to_dict()), env=env,
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    assert out.stdout.strip() == digest.hexdigest()


def test_quantile_function_matches_numpy_interp(marginals):
    # Oracle: np.interp over the recorded levels (what the computed segment replaces).
    from fairgate.contract_synth import _quantile_function

    uniforms = np.concatenate([np.random.default_rng(0).random(10_000), [0.0, 1.0, 0.5]])
    for name, quantiles in marginals.quantiles.items():
        levels = np.linspace(0.0, 1.0, len(quantiles))
        want = np.interp(uniforms, levels, quantiles)
        assert np.allclose(_quantile_function(quantiles, uniforms), want, rtol=1e-12), name


def test_ranks_ignore_row_order_and_empty_cells(source):
    # Spearman (average ranks) as scipy computes it over the complete rows; shuffling the
    # rows changes nothing; an empty cell leaves the JSON strict and the correlation finite.
    rows = {k: v[:5000] for k, v in source.items()}
    names = list(record_marginals(CONTRACT, rows).quantiles)
    a, b = names.index("annual_income"), names.index("weekly_hours")
    got = record_marginals(CONTRACT, rows).rank_correlation[a][b]
    assert got == pytest.approx(spearman(rows["annual_income"], rows["weekly_hours"]), abs=1e-6)
    shuffled = np.random.default_rng(1).permutation(5000)
    again = record_marginals(CONTRACT, {k: v[shuffled] for k, v in rows.items()})
    assert np.allclose(again.rank_correlation, record_marginals(CONTRACT, rows).rank_correlation,
                       atol=2e-6)  # fmt: skip
    holes = dict(rows, weekly_hours=np.where(np.arange(5000) % 10 == 0, np.nan,
                                             rows["weekly_hours"]))  # fmt: skip
    text = json.dumps(record_marginals(CONTRACT, holes).to_dict(), allow_nan=False)
    with_holes = json.loads(text)["rank_correlation"][a][b]
    assert abs(with_holes) > 0.2 and with_holes == pytest.approx(got, abs=0.05)


def test_average_ranks_match_scipy():
    from scipy.stats import rankdata

    from fairgate.contract_synth import _ranks

    values = np.array([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0, 5.0, 3.0, 5.0])
    assert _ranks(values).tolist() == rankdata(values).tolist()
    assert _ranks(np.array([3.0, np.nan, 1.0, 1.0])).tolist() == [3.0, 2.0, 1.5, 1.5]


def test_rank_correlations_of_a_large_book_from_a_sample():
    # 450,000 rows: recorded from every 3rd row; scipy over all rows is the oracle.
    big = generate_applicants(450_000, seed=8)
    recorded = record_marginals(CONTRACT, big)
    names = list(recorded.quantiles)
    for a, b in (("annual_income", "monthly_debt_payments"), ("annual_income", "weekly_hours")):
        want = spearman(big[a], big[b])
        assert recorded.rank_correlation[names.index(a)][names.index(b)] == pytest.approx(
            want, abs=0.01
        )
