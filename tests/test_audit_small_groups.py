"""The audits say what they cannot judge, in the contract's own words.

Training audit: a group of fewer than ``MIN_GROUP_SIZE`` applicants is marked too small
and left out of the ratio (one person denied made it 0.00, with a 0%-0% interval); a
grouping with fewer than two groups large enough has no ratio at all. Prober: a gap that
favours the other group names that group as the one needing more, never "-$8,170 more".
Expected figures are counted by hand from the literal fixtures.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from rich.console import Console

from fairgate.contract import builtin_contract
from fairgate.contract_synth import record_marginals, synthesize
from monitoring.audit import as_dict, markdown, print_audit, to_json
from monitoring.gap import Gap, measure_gap
from monitoring.prober import CycleResult
from training.fairness import MIN_GROUP_SIZE, group_fairness
from training.loan_book import synthetic_loan_book
from training.report import headline, policy_grouping


def _book(sizes: dict[str, tuple[int, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows per group: (approved, denied) decisions; labels equal the decisions."""
    groups, decided = [], []
    for group, (approved, denied) in sizes.items():
        groups += [group] * (approved + denied)
        decided += [1] * approved + [0] * denied
    y = np.array(decided)
    return y, y.copy(), np.array(groups, dtype=object)


def test_a_group_of_one_is_too_small_and_left_out_of_the_ratio():
    # a: 20 of 40 approved (0.50); b: 30 of 40 (0.75); c: one applicant, denied.
    y_true, y_pred, groups = _book({"a": (20, 20), "b": (30, 10), "c": (0, 1)})
    result = group_fairness(y_true, y_pred, groups, n_boot=100, seed=0)
    assert result["too_small"] == {"c": 1}
    assert [result["by_group"][g]["too_small"] for g in "abc"] == [False, False, True]
    assert result["by_group"]["c"]["count"] == 1  # still shown, with its count
    assert result["demographic_parity_ratio"] == pytest.approx(0.50 / 0.75)
    assert result["demographic_parity_difference"] == pytest.approx(0.25)
    intervals = result["bootstrap_95"]
    assert intervals["selection_rate"]["c"] is None
    low, high = intervals["demographic_parity_ratio"]
    assert 0 < low <= 2 / 3 <= high < 1  # over a and b only: c's 0% would pin it at 0


@pytest.mark.parametrize(
    "sizes",
    [
        {"a": (20, 20), "c": (0, 1)},  # one group large enough
        {"c": (0, 1), "d": (5, 5)},  # none
        {"a": (20, 20)},  # a single group, however large
    ],
)
def test_fewer_than_two_groups_large_enough_give_no_ratio(sizes):
    y_true, y_pred, groups = _book(sizes)
    result = group_fairness(y_true, y_pred, groups, n_boot=50, seed=0)
    for name in ("demographic_parity_ratio", "demographic_parity_difference",
                 "equalized_odds_difference"):  # fmt: skip
        assert result[name] is None
        if name in result["bootstrap_95"]:
            assert result["bootstrap_95"][name] is None
    # null in metrics.json, not 0.00, 1.00 or NaN.
    assert json.loads(json.dumps(result))["demographic_parity_ratio"] is None


def test_the_minimum_is_thirty_applicants():
    y_true, y_pred, groups = _book({"a": (15, 15), "b": (10, 19), "c": (20, 20)})
    result = group_fairness(y_true, y_pred, groups, n_boot=20, seed=0)
    assert MIN_GROUP_SIZE == 30 and result["too_small"] == {"b": 29}


def test_the_headline_names_the_groups_too_small_and_keeps_the_contracts_names():
    y_true, y_pred, groups = _book({"18-24": (20, 20), "50-64": (30, 10), "65+": (0, 1)})
    fairness = group_fairness(y_true, y_pred, groups, n_boot=20, seed=0)
    text = headline("Age_band", fairness)
    assert text == (
        "Applicants with Age_band 18-24 were approved at 50% against 75% for applicants "
        "with Age_band 50-64; ratio 0.67, below the four-fifths line. Too small to judge "
        "(fewer than 30 applicants): Age_band 65+ (1)."
    )
    alone = group_fairness(*_book({"18-24": (20, 20), "65+": (0, 1)}), n_boot=20, seed=0)
    assert headline("Age_band", alone) == (
        "No approval ratio by Age_band: fewer than two groups have 30 applicants or more. "
        "Too small to judge (fewer than 30 applicants): Age_band 65+ (1)."
    )


def test_the_policy_grouping_is_found_with_the_contracts_separator():
    metrics = {
        "config": {"attributes": ["Sex", "Age_band"]},
        "baseline": {"groups": {"Sex": {}, "Age_band": {}, "Sex|Age_band": {}}},
    }
    assert policy_grouping(metrics) == "Sex|Age_band"


BAR, GAP = 50_000.0, 8_170.0


@pytest.fixture(scope="module")
def favouring_women() -> CycleResult:
    """A rule where women are approved from income BAR and men from BAR + GAP: the
    female-minus-male gap is negative, men need the GAP more."""
    contract = builtin_contract()
    marginals = record_marginals(contract, synthetic_loan_book(3_000, seed=1).columns)
    base = synthesize(contract, marginals, 40, seed=2)

    def decide(columns: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        bar = np.where(columns["gender"] == "female", BAR, BAR + GAP)
        approved = columns["annual_income"] >= bar
        return approved, approved.astype(float)

    gap = measure_gap(
        decide, contract, marginals, base, attribute="gender", group_a="female", group_b="male"
    )
    assert gap.median == pytest.approx(-GAP, abs=5.0)  # the premise: signed, a minus b
    return CycleResult("http://127.0.0.1:1", 0, "synthetic", [], gap, decisions_sent=1)


def _dollars(text: str, before: str) -> float:
    (found,) = re.findall(re.escape(before) + r" (-?)\$([\d,]+)", text)
    sign, digits = found
    return float(sign + digits.replace(",", ""))


def test_a_negative_gap_names_the_group_that_needs_more(favouring_women):
    console = Console(record=True, width=80)
    print_audit(favouring_women, console)
    printed = console.export_text()
    page = markdown(favouring_women)
    reads = json.loads(to_json(favouring_women))["gap"]["reads"]
    for text in (printed, page, reads):
        assert "more needed by male than by female" in text, text
        assert "more needed by female" not in text and "-$" not in text
        assert _dollars(text, "median") == pytest.approx(GAP, abs=5.0)
    assert "Annual_income gap (more needed by male than by female): median $8," in page
    # The machine-readable figures stay signed: female minus male.
    assert as_dict(favouring_women)["gap"]["median"] == pytest.approx(-GAP, abs=5.0)


def test_a_negative_gap_in_a_less_is_better_field_reads_the_other_way():
    # Fewer months help (direction -1); south's longest approved term minus north's, times
    # -1, is -4: north must ask 4 months less than south, 6 at the 90th percentile (the
    # 10th percentile of south minus north is -6).
    gap = Gap("region", "south", "north", "months", "months", -1, 30, 30, 0, 0,
              -4.0, -2.0, float("nan"), np.full(30, -4.0), p10=-6.0)  # fmt: skip
    result = CycleResult("http://127.0.0.1:1", 0, "rental", [], gap)
    page = markdown(result)
    expected = (
        "Months gap (less needed by north than by south): median 4.00 months, p90 6.00 months"
    )
    assert expected in page


def test_no_gap_names_no_group_as_needing_more():
    # A blind model: every twin pair needs the same income (all differences 0).
    gap = Gap("gender", "female", "male", "annual_income", "dollars", 1, 100, 100, 0, 0,
              0.0, 0.0, 0.0, np.zeros(100), p10=0.0)  # fmt: skip
    page = markdown(CycleResult("http://127.0.0.1:1", 0, "synthetic", [], gap))
    assert "Annual_income gap (none: female and male need the same)" in page
    assert "more needed by" not in page
