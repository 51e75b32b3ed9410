"""The LDA selection rule on hand-built candidate tables; each winner worked out by hand.

Ratios are gender and age_band four-fifths ratios; without intervals the rule judges the
point estimates (the lower bound needs one). Baseline throughout unless a test says
otherwise: AUC 0.90, agreement 0.85, approval 0.50, gender 0.70, age_band 0.60, so the
bounds are AUC >= 0.88, agreement >= 0.82, approval 0.45-0.55, gender >= 0.69,
age_band >= 0.59, and its disparity is (0 attributes at or above 0.80, shortfall 0.30).
"""

from __future__ import annotations

import pytest

from training.lda_figures import Figures
from training.lda_select import (
    AGREEMENT_BELOW,
    APPROVAL_OUTSIDE,
    AUC_BELOW,
    DISCOVERY,
    HARMS,
    NOT_MEASURED,
    REFUTATION,
    select,
)


def row(
    name,
    *,
    auc=0.90,
    agreement=0.85,
    approval=0.50,
    gender=0.70,
    age=0.60,
    intervals=None,
    repaid=None,
):
    return Figures(
        name=name,
        auc=auc,
        agreement=agreement,
        approval_rate=approval,
        ratios={"gender": gender, "age_band": age},
        ratio_intervals=intervals or {},
        accuracy_repaid=repaid,
    )


BASE = row("base")


def test_most_attributes_passing_first_then_the_smallest_shortfall():
    # a: gender passes, age 0.60 -> (1, 0.20). b: neither passes but both close ->
    # (0, 0.02). c: gender passes, age 0.65 -> (1, 0.15). One attribute over the line
    # outranks any closeness below it, so b loses despite the least total shortfall;
    # between a and c the shortfall decides, though c agrees less with history.
    table = [
        BASE,
        row("a", gender=0.82, agreement=0.85),
        row("b", gender=0.79, age=0.79, agreement=0.85),
        row("c", gender=0.81, age=0.65, agreement=0.83),
    ]
    selection = select(table, baseline="base")
    assert selection.outcome == DISCOVERY
    assert selection.chosen.name == "c"
    assert selection.ranking == ("c", "a", "b", "base")
    assert selection.reasons["a"][0].startswith("admissible; ranked below c: 1 at or above")
    assert "gender 0.700 -> 0.810, age_band 0.600 -> 0.650" in selection.summary
    assert "agreement -2.0 pts" in selection.summary
    assert "c" not in selection.reasons


def test_equal_disparity_goes_to_agreement_then_auc_then_table_order():
    same = {"gender": 0.81, "age": 0.70}  # (1, 0.10) for each of them
    table = [
        BASE,
        row("first", agreement=0.84, auc=0.89, **same),
        row("second", agreement=0.84, auc=0.89, **same),
        row("better-auc", agreement=0.84, auc=0.90, **same),
        row("better-agreement", agreement=0.85, auc=0.88, **same),
    ]
    selection = select(table, baseline="base")
    assert selection.ranking[:4] == ("better-agreement", "better-auc", "first", "second")
    # Without the two better rows, the earlier of two identical rows wins.
    assert select(table[:3], baseline="base").chosen.name == "first"


def test_shortfalls_equal_in_decimals_tie_instead_of_differing_in_the_last_ulp():
    # 0.20 + 0.11 and 0.19 + 0.12 are both 0.31, but not in binary floating point:
    assert (0.8 - 0.60) + (0.8 - 0.69) != (0.8 - 0.61) + (0.8 - 0.68)
    table = [
        row("base", gender=0.60, age=0.68),  # (0, 0.32)
        row("more-agreement", gender=0.60, age=0.69, agreement=0.85),
        row("less-agreement", gender=0.61, age=0.68, agreement=0.84),
    ]
    assert select(table, baseline="base").chosen.name == "more-agreement"


def test_everything_rejected_is_a_refutation_and_every_reason_is_listed():
    table = [
        BASE,
        row("weak", auc=0.87, gender=0.90),
        row("disagrees", agreement=0.81, gender=0.90),
        row("approves-more", approval=0.56, gender=0.90),
        row("everything", auc=0.80, agreement=0.70, approval=0.40, gender=0.90, age=0.50),
    ]
    selection = select(table, baseline="base")
    assert selection.outcome == REFUTATION
    assert selection.chosen is BASE
    assert selection.ranking == ("base",)
    auc = AUC_BELOW.format(value=0.87, floor=0.88, base=0.90, margin=0.02)
    assert selection.reasons["weak"] == (auc,)
    assert selection.reasons["disagrees"] == (
        AGREEMENT_BELOW.format(value=0.81, floor=0.82, base=0.85, margin=0.03),
    )
    assert selection.reasons["approves-more"] == (
        APPROVAL_OUTSIDE.format(value=0.56, low=0.45, high=0.55, base=0.50, band=0.05),
    )
    assert len(selection.reasons["everything"]) == 4  # three bounds and age's harm
    assert selection.summary.startswith(f"{REFUTATION}: none of 5 candidates (1 meeting")


def test_admissible_without_less_disparity_keeps_the_baseline():
    # Same ratios, better agreement and AUC: better business, not less discriminatory.
    table = [BASE, row("same-disparity", agreement=0.86, auc=0.91)]
    selection = select(table, baseline="base")
    assert selection.outcome == REFUTATION
    assert selection.chosen.name == "base"
    assert selection.reasons["same-disparity"][0].startswith(
        "admissible, but no less disparity than the baseline"
    )


def test_a_candidate_failing_only_do_no_harm():
    # gender passes by far, every bound holds, but age falls 0.02 below the baseline's.
    table = [BASE, row("harms-age", gender=0.95, age=0.58)]
    selection = select(table, baseline="base")
    assert selection.reasons["harms-age"] == (
        HARMS.format(attribute="age_band", value=0.58, base=0.60, tolerance=0.01),
    )
    assert selection.outcome == REFUTATION


def test_better_gender_but_worse_age_within_and_beyond_the_tolerance():
    # "within": age 0.595 is 0.005 below the baseline's, inside the 0.01 tolerance;
    # (1, 0.205). "beyond": better gender still, age 0.55 -> rejected. "at-edge": age
    # exactly 0.59, the tolerance is inclusive; gender 0.80 exactly passes -> (1, 0.21).
    table = [
        BASE,
        row("beyond", gender=0.90, age=0.55),
        row("within", gender=0.83, age=0.595),
        row("at-edge", gender=0.80, age=0.59),
    ]
    selection = select(table, baseline="base")
    assert selection.chosen.name == "within"
    assert selection.ranking == ("within", "at-edge", "base")
    assert selection.reasons["beyond"] == (
        HARMS.format(attribute="age_band", value=0.55, base=0.60, tolerance=0.01),
    )


@pytest.mark.parametrize(
    ("change", "admissible"),
    [
        ({"auc": 0.88}, True),  # the floor itself: bounds are inclusive
        ({"auc": 0.8799}, False),
        ({"agreement": 0.82}, True),
        ({"agreement": 0.8199}, False),
        ({"approval": 0.55}, True),
        ({"approval": 0.45}, True),
        ({"approval": 0.5501}, False),
        ({"approval": 0.4499}, False),
    ],
)
def test_business_necessity_bounds(change, admissible):
    table = [BASE, row("x", gender=0.85, **change)]
    assert (select(table, baseline="base").chosen.name == "x") is admissible


def test_margins_are_arguments():
    table = [BASE, row("x", gender=0.85, auc=0.85)]
    assert select(table, baseline="base").outcome == REFUTATION
    assert select(table, baseline="base", auc_margin=0.05).chosen.name == "x"


def test_the_lower_bound_counts_only_a_ratio_noise_would_not_have_put_over_the_line():
    # "lucky": 0.81 but its interval reaches down to 0.78; "sure": 0.805, lower bound
    # 0.801. On lower bounds sure passes and lucky does not; on point estimates both
    # pass with the same age, and lucky's agreement wins.
    age = (0.58, 0.62)
    table = [
        row("base", intervals={"gender": (0.68, 0.72), "age_band": age}),
        row(
            "lucky",
            gender=0.81,
            agreement=0.85,
            intervals={"gender": (0.78, 0.84), "age_band": age},
        ),
        row(
            "sure",
            gender=0.805,
            agreement=0.84,
            intervals={"gender": (0.801, 0.81), "age_band": age},
        ),
    ]
    assert select(table, baseline="base").chosen.name == "sure"
    assert select(table, baseline="base", judge_on="point").chosen.name == "lucky"


def test_an_attribute_the_baseline_cannot_measure_is_left_out_and_named():
    base = row("base", age=None)
    table = [base, row("x", gender=0.81, age=None)]
    selection = select(table, baseline="base")
    assert selection.outcome == DISCOVERY
    assert selection.rule["attributes"] == ["gender"]
    assert selection.summary.endswith("not judged (baseline ratio not measured): age_band")


def test_a_candidate_that_cannot_measure_an_audited_attribute_is_rejected():
    selection = select([BASE, row("x", gender=0.90, age=None)], baseline="base")
    assert selection.reasons["x"] == (NOT_MEASURED.format(attribute="age_band", base=0.60),)


def test_the_cost_names_accuracy_against_repayment_when_both_rows_have_it():
    table = [row("base", repaid=0.69), row("x", gender=0.85, repaid=0.705)]
    assert "accuracy vs repaid +1.5 pts (sandbox)" in select(table, baseline="base").summary


@pytest.mark.parametrize(
    ("table", "baseline", "message"),
    [
        ([BASE], "missing", "baseline 'missing' is not in the table"),
        ([BASE, row("x"), row("x")], "base", "candidate names must be unique; repeated: x"),
    ],
)
def test_table_errors(table, baseline, message):
    with pytest.raises(ValueError, match=message):
        select(table, baseline=baseline)


def test_to_dict_is_plain_data():
    data = select([BASE, row("x", gender=0.85)], baseline="base").to_dict()
    assert data["outcome"] == DISCOVERY
    assert data["chosen"] == "x"
    assert data["reasons"] == {"base": [data["reasons"]["base"][0]]}
    assert data["rule"]["four_fifths"] == 0.80
