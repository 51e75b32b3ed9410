"""docs/tradeoff.md: sentences say only what its figures support; no hand edits."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.test_docs import script

tradeoff = script("tradeoff")


def row(**changes: Any) -> dict[str, Any]:
    values = {
        "test_approval": {"female": 0.5, "male": 0.5},
        "test_dp_ratio": 1.0,
        "accuracy": 0.8,
        "accuracy_cost": -0.074,
        "probe_approval": {"female": 0.5, "male": 0.5},
        "probe_four_fifths": 1.0,
        "pairs": 1000,
        "flip_rate": 0.225,
        "favours_man": 0.225,
        "favours_woman": 0.0,
        "twin_score_difference": -0.2,
        "gap_median": 13_000.0,
        "gap_p90": 19_000.0,
        "gap_ratio": 0.25,
        "control_flip_rate": 0.0,
        "control_pairs": 200,
        "decisions_sent": 12_000,
        "alerts": {
            "FairgateCounterfactualFlips": True,
            "FairgateGap": True,
            "FairgateProbeFourFifthsBreach": False,
        },
    }
    return values | changes


def bullets(mitigated: dict[str, Any]) -> str:
    data = {
        "modes": {"unmitigated": row(), "mitigated": mitigated, "randomized": row()},
        "thresholds": {"female": 0.21, "male": 0.9},
    }
    return "\n".join(tradeoff.bullets(data))


@pytest.mark.parametrize(
    ("flips", "expected"),
    [
        ({"flip_rate": 0.225, "favours_man": 0.225, "favours_woman": 0.0},
         "22.5%, all favouring the man"),
        ({"flip_rate": 0.11, "favours_man": 0.0, "favours_woman": 0.11},
         "11.0%, all favouring the woman"),
        ({"flip_rate": 0.031, "favours_man": 0.02, "favours_woman": 0.011},
         "3.1% (2.0% favouring the man, 1.1% the woman)"),
        ({"flip_rate": 0.0, "favours_man": 0.0, "favours_woman": 0.0}, "0.0%"),
    ],
)  # fmt: skip
def test_flip_cells_name_the_direction(flips, expected):
    assert tradeoff._flips(row(**flips)) == expected


def test_flips_that_fall_and_turn_say_so():
    text = bullets(row(flip_rate=0.11, favours_man=0.0, favours_woman=0.11, gap_median=-6_485.0))
    assert "fall from 22.5% to 11.0% and change direction (all favouring the woman" in text
    assert "goes from +$13,000 to -$6,485: she now needs less than her twin" in text


def test_flips_that_rise_in_the_same_direction_claim_no_turn():
    text = bullets(row(flip_rate=0.3, favours_man=0.3, favours_woman=0.0, gap_median=2_000.0))
    assert "the flips rise from 22.5% to 30.0%," in text
    assert "change direction" not in text
    assert "goes from +$13,000 to +$2,000." in text


def test_accuracy_cost_reads_in_points():
    assert "at 7.4 points of accuracy" in bullets(row())


def test_the_committed_doc_is_what_its_own_figures_render():
    # A hand edit of docs/tradeoff.md (or a stale render after a script change) shows here.
    text = tradeoff.PATH.read_text()
    data = json.loads(re.search(r"## Data\n\n```json\n(.*?)\n```", text, re.S).group(1))
    assert tradeoff.render(data) == text


def test_flips_are_called_the_attribute_s_doing_only_when_the_control_is_zero():
    assert "the attribute's doing" in bullets(row())
    noisy = bullets(row(control_flip_rate=0.01))
    assert "the attribute's doing" not in noisy
    assert "may be noise" in noisy
