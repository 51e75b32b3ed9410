"""Label-free recalibration and replay on seeded score arrays. Every oracle is computed here
with plain numpy or a Python loop: approval rates as ``mean(score > cut)``, the single
cut-off's choices by brute force over a fine grid, the bootstrap shortcut against resampling
rows, replay counts rule by rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fairgate.policy import GroupRule, ThresholdPolicy
from fairgate.recalibrate import (
    RecalibrationError,
    Target,
    Window,
    recalibrate,
    trained_target,
)
from fairgate.replay import replay

TARGET_RATE = 0.48


def window_of(
    scores: dict[str, np.ndarray],
    approved: dict[str, np.ndarray] | None = None,
    draws: dict[str, np.ndarray] | None = None,
) -> Window:
    """A window with the groups' rows interleaved (the record's order is not by group)."""
    names = list(scores)
    codes = np.concatenate([np.full(len(scores[g]), i) for i, g in enumerate(names)])
    order = np.random.default_rng(99).permutation(len(codes))

    def column(values: dict[str, np.ndarray] | None, fill: float) -> np.ndarray:
        parts = [values[g] if values else np.full(len(scores[g]), fill) for g in names]
        return np.concatenate(parts)[order]

    return Window(
        scores=np.concatenate([scores[g] for g in names])[order],
        codes=codes[order],
        names=names,
        approved=column(approved, 0.0).astype(bool),
        draws=column(draws, math.nan),
    )


def expected_rate(rule: GroupRule, scores: np.ndarray) -> float:
    """A rule's approval probability averaged over scores, written out from its definition."""

    def term(operator: str, threshold: float) -> np.ndarray:
        return scores > threshold if operator == ">" else scores < threshold

    mixed = rule.p0 * term(rule.operator0, rule.threshold0) + rule.p1 * term(
        rule.operator1, rule.threshold1
    )
    return float(np.mean(rule.p_ignore * rule.constant + (1 - rule.p_ignore) * mixed))


# --- equal selection rates (mitigated, randomized) ----------------------------------------


def drifted_groups(seed: int) -> dict[str, np.ndarray]:
    """Two large groups, ``b`` drifted down; ``c`` too small to judge; ``zz`` unknown."""
    rng = np.random.default_rng(seed)
    return {
        "a": rng.beta(5, 3, 1_200),
        "b": rng.beta(5, 3, 900) - 0.1,
        "c": rng.beta(5, 3, 150),
        "zz": rng.beta(5, 3, 40),
    }


def group_policy(mode: str) -> ThresholdPolicy:
    if mode == "mitigated":
        rules = {g: GroupRule.threshold(t) for g, t in (("a", 0.55), ("b", 0.5), ("c", 0.52))}
    else:  # fairlearn's shape: two thresholds, half the weight on each
        rules = {
            g: GroupRule(p0=0.5, operator0=">", threshold0=low, p1=0.5, operator1=">",
                         threshold1=high)
            for g, low, high in (("a", 0.5, 0.6), ("b", 0.45, 0.55), ("c", 0.4, 0.7))
        }  # fmt: skip
    return ThresholdPolicy(
        attributes=("g",),
        rules=rules,
        unseen=rules["c"],
        unseen_rule="most-lenient",
        constraint="demographic_parity",
        objective="accuracy_score",
        mode=mode,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("mode", ["mitigated", "randomized"])
def test_equal_rates_brings_every_judged_group_to_the_trained_rate(mode, seed):
    groups = drifted_groups(seed)
    active = group_policy(mode)
    found = recalibrate(active, window_of(groups), Target("equal-rates", TARGET_RATE), n_boot=200)
    candidate = found.policy
    after = {}
    for g in ("a", "b"):
        cut = candidate.rules[g].threshold0
        assert candidate.rules[g] == GroupRule.threshold(cut)  # one deterministic cut-off
        after[g] = float(np.mean(groups[g] > cut))
        assert abs(after[g] - TARGET_RATE) <= 1 / len(groups[g])
        assert found.groups[g].recalibrated
        assert found.groups[g].rate_after == pytest.approx(after[g], abs=1e-12)
        assert found.groups[g].cut_after == cut
    assert found.ratio_after == pytest.approx(min(after.values()) / max(after.values()))
    assert found.ratio_after > 0.99
    # What the active policy approves (in expectation, for the randomized one) on these scores.
    before = {g: expected_rate(active.rules[g], groups[g]) for g in ("a", "b", "c")}
    for g, rate in before.items():
        assert found.groups[g].rate_before == pytest.approx(rate, abs=1e-12)
    assert found.ratio_before == pytest.approx(min(before["a"], before["b"])
                                               / max(before["a"], before["b"]))  # fmt: skip
    assert found.ratio_before < 0.9  # the drift this recalibration undoes
    judged = sum(len(groups[g]) for g in ("a", "b", "c"))
    assert found.decisions == judged
    assert found.rate_before == pytest.approx(
        sum(before[g] * len(groups[g]) for g in before) / judged
    )


@pytest.mark.parametrize("mode", ["mitigated", "randomized"])
def test_small_and_unknown_groups_keep_their_rules_with_a_note(mode):
    groups = drifted_groups(3)
    active = group_policy(mode)
    found = recalibrate(active, window_of(groups), Target("equal-rates", TARGET_RATE), n_boot=50)
    candidate = found.policy
    assert candidate.rules["c"] == active.rules["c"]
    # The unseen rule is chosen again, as at training: the most lenient of the candidate's
    # rules on the live scores of the recalibrated groups.
    pooled = np.concatenate([groups["a"], groups["b"]])
    lenient = max(("a", "b", "c"), key=lambda g: expected_rate(candidate.rules[g], pooled))
    assert candidate.unseen == candidate.rules[lenient]
    assert candidate.unseen_rule == active.unseen_rule == "most-lenient"
    assert list(candidate.rules) == ["a", "b", "c"] and candidate.mode == mode
    assert not found.groups["c"].recalibrated and found.groups["c"].cut_interval is None
    assert "zz" not in found.groups
    assert found.notes == [
        "group zz: not a group of the policy (unseen rule), left as it is",
        "group c: 150 live decisions, fewer than 200: its rule is left as it is",
    ]
    # The small group's rate under the candidate is its old rule's, in expectation.
    assert found.groups["c"].rate_after == pytest.approx(
        expected_rate(active.rules["c"], groups["c"]), abs=1e-12
    )


def test_a_policy_group_without_live_decisions_is_left_alone():
    groups = drifted_groups(4)
    window = window_of({"a": groups["a"], "b": groups["b"]})
    # "c" is named (a code-to-name table made beforehand) but has no row.
    window = Window(window.scores, window.codes, ["a", "b", "c"], window.approved, window.draws)
    active = group_policy("mitigated")
    found = recalibrate(active, window, Target("equal-rates", TARGET_RATE), n_boot=50)
    assert found.policy.rules["c"] == active.rules["c"]
    assert set(found.groups) == {"a", "b"}


@pytest.mark.parametrize(
    ("scores", "least", "message"),
    [
        ({}, 200, "no live decisions in the window"),
        ({"a": np.linspace(0, 1, 150), "b": np.linspace(0, 1, 199)}, 200,
         "no group has 200 live decisions"),
        ({"zz": np.linspace(0, 1, 500)}, 200, "no group has 200 live decisions"),
    ],
    ids=["empty", "all-too-few", "only-unseen"],
)  # fmt: skip
def test_nothing_to_recalibrate_from_is_an_error(scores, least, message):
    window = window_of(scores) if scores else Window(
        np.zeros(0), np.zeros(0, dtype=np.intp), [], np.zeros(0, bool), np.zeros(0)
    )  # fmt: skip
    with pytest.raises(RecalibrationError, match=message):
        recalibrate(group_policy("mitigated"), window, Target("equal-rates", 0.5),
                    min_decisions=least)  # fmt: skip


# --- one cut-off for everyone (lda, unmitigated) ----------------------------------------

BAND = Target("band", 0.5)  # band 0.05, floor 0.80
GRID = np.linspace(0.0, 1.0, 100_001)  # cut-offs 1e-5 apart, finer than the scores' gaps


def one_cut_groups(shift: float, seed: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "a": rng.beta(5, 3, 1_500),
        "b": rng.beta(5, 3, 1_000) - shift,
        "c": rng.beta(2, 5, 100),  # too few: left out of the ratio, but gets the cut-off
    }


def lda_policy(threshold: float, mode: str = "lda") -> ThresholdPolicy:
    return ThresholdPolicy.single_threshold(
        attributes=["g"],
        groups=["a", "b", "c"],
        threshold=threshold,
        mode=mode,  # type: ignore[arg-type]
    )


def rate_and_ratio(groups: dict[str, np.ndarray], cuts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Overall approval rate and four-fifths ratio of ``a`` and ``b`` at each cut-off."""
    rates = [1 - np.searchsorted(np.sort(groups[g]), cuts, side="right") / len(groups[g])
             for g in ("a", "b")]  # fmt: skip
    pooled = np.sort(np.concatenate([groups["a"], groups["b"]]))
    overall = 1 - np.searchsorted(pooled, cuts, side="right") / len(pooled)
    top = np.maximum(rates[0], rates[1])
    ratio = np.where(top > 0, np.minimum(rates[0], rates[1]) / np.where(top > 0, top, 1), 0.0)
    return overall, ratio


def in_band(overall: np.ndarray, target: Target) -> np.ndarray:
    # 0.55 - 0.5 is 0.05000000000000004 in doubles: the band's edge is in the band.
    return np.abs(overall - target.approval_rate) <= target.band + 1e-9


def half_gap(groups: dict[str, np.ndarray], cut: float) -> float:
    """Half the gap between the judged scores around ``cut``: cut-offs in that gap decide
    alike, so two equally good choices can differ by this much."""
    pooled = np.sort(np.concatenate([groups["a"], groups["b"]]))
    i = np.searchsorted(pooled, cut, side="right")
    low = pooled[i - 1] if i > 0 else cut
    high = pooled[i] if i < len(pooled) else cut
    return float(high - low) / 2


@pytest.mark.parametrize("mode", ["lda", "unmitigated"])
def test_a_cut_off_meeting_band_and_floor_is_kept(mode):
    groups = one_cut_groups(0.0)
    active = lda_policy(0.6, mode)
    overall, ratio = rate_and_ratio(groups, np.array([0.6]))
    target = Target("band", 0.6)
    assert in_band(overall, target)[0] and ratio[0] >= 0.8  # the premise
    found = recalibrate(active, window_of(groups), target, n_boot=50)
    assert found.policy.version == active.version
    assert found.policy == active
    assert found.notes == [
        "group c: 100 live decisions, fewer than 200: left out of the four-fifths ratio "
        "(the one cut-off applies to every group)"
    ]


@pytest.mark.parametrize(
    ("shift", "current"),
    [(0.06, 0.64), (0.05, 0.6), (0.0, 0.6), (0.06, 0.68), (0.065, 0.56)],
    ids=["floor-missed", "rate-over-band", "no-drift", "both-missed", "feasible-off-a-coarse-grid"],
)
def test_the_nearest_cut_off_meeting_band_and_floor_is_chosen(shift, current):
    groups = one_cut_groups(shift)
    active = lda_policy(current)
    overall, ratio = rate_and_ratio(groups, np.array([current]))
    assert not (in_band(overall, BAND)[0] and ratio[0] >= BAND.floor)  # the premise
    found = recalibrate(active, window_of(groups), BAND, n_boot=50)
    chosen = found.policy.unseen.threshold0
    assert found.policy == lda_policy(chosen)  # still one cut-off, the small group's too
    (rate,), (chosen_ratio,) = rate_and_ratio(groups, np.array([chosen]))
    assert in_band(np.array([rate]), BAND)[0] and chosen_ratio >= BAND.floor
    assert found.ratio_after == pytest.approx(chosen_ratio)
    overall, ratio = rate_and_ratio(groups, GRID)
    feasible = GRID[in_band(overall, BAND) & (ratio >= BAND.floor)]
    nearest = np.abs(feasible - current).min()
    assert abs(chosen - current) <= nearest + half_gap(groups, chosen) + 1e-5
    assert not [note for note in found.notes if note.startswith("no single cut-off")]


@pytest.mark.parametrize("shift", [0.08, 0.12, 0.2])
def test_out_of_reach_floor_takes_the_best_ratio_in_the_band(shift):
    groups = one_cut_groups(shift)
    found = recalibrate(lda_policy(0.6), window_of(groups), BAND, n_boot=50)
    chosen = found.policy.unseen.threshold0
    overall, ratio = rate_and_ratio(groups, GRID)
    assert ratio[in_band(overall, BAND)].max() < BAND.floor  # the premise
    (rate,), (chosen_ratio,) = rate_and_ratio(groups, np.array([chosen]))
    assert in_band(np.array([rate]), BAND)[0]
    assert chosen_ratio >= ratio[in_band(overall, BAND)].max() - 1e-12
    assert (
        "no single cut-off with an approval rate within 5% of 50.0% reaches the four-fifths "
        "floor 0.80; the best ratio in the band is chosen"
    ) in found.notes


# --- the bootstrap shortcut against resampling rows ------------------------------------


@pytest.mark.parametrize("n", [300, 3_000])
def test_bootstrap_intervals_match_resampling_rows(n):
    rng = np.random.default_rng(n)
    groups = {"small": rng.beta(5, 3, n), "other": rng.beta(4, 4, 2_000)}
    boots = 4_000
    rule = GroupRule.threshold(0.5)
    active = ThresholdPolicy(("g",), {"small": rule, "other": rule}, rule, "most-lenient",
                             "demographic_parity", "accuracy_score", mode="mitigated")  # fmt: skip
    found = recalibrate(active, window_of(groups), Target("equal-rates", 0.4), n_boot=boots,
                        seed=5)  # fmt: skip
    change = found.groups["small"]
    ascending = np.sort(groups["small"])
    k = round(0.4 * n)  # the approvals the recalibrated cut-off gives this group
    # The same statistics on real resamples of the group's rows.
    rows = np.random.default_rng(7).choice(n, size=(boots, n), replace=True)
    resampled = ascending[rows]
    kth_largest = -np.partition(-resampled, k - 1, axis=1)[:, k - 1]
    approved = (resampled > change.cut_after).mean(axis=1)
    # Each endpoint is a 2.5% (97.5%) percentile of 4,000 draws: its Monte Carlo standard
    # error is sqrt(.025 * .975 / 4000) / phi(1.96) = 0.042 standard deviations of the
    # statistic, which is sqrt(.4 * .6 * n) ranks (for the rate: that many 1/n steps). Two
    # independent estimates: 5 standard errors of their difference, plus one rank for
    # percentile interpolation between discrete values (3.5 ranks at n=300, 9 at n=3000,
    # against interval half-widths of 17 and 53 ranks).
    tolerance = 1 + 5 * math.sqrt(2) * 0.042 * math.sqrt(0.4 * 0.6 * n)
    low, high = np.percentile(kth_largest, [2.5, 97.5])
    rank = lambda value: np.interp(value, ascending, np.arange(n))  # noqa: E731
    assert change.cut_interval is not None
    assert abs(rank(change.cut_interval[0]) - rank(low)) <= tolerance
    assert abs(rank(change.cut_interval[1]) - rank(high)) <= tolerance
    low, high = np.percentile(approved, [2.5, 97.5])
    assert abs(change.rate_interval[0] - low) <= tolerance / n
    assert abs(change.rate_interval[1] - high) <= tolerance / n
    # The interval is wide as the sample is small: about 4 standard errors of a rate.
    assert change.rate_interval[1] - change.rate_interval[0] == pytest.approx(
        2 * 1.96 * math.sqrt(0.4 * 0.6 / n), rel=0.15
    )


# --- replay ------------------------------------------------------------------------------


def replay_oracle(
    candidate: ThresholdPolicy, window: Window, group: str
) -> tuple[int, int, int, int, int]:
    """(rows, approved then, approved now, to approve, to deny), one row at a time."""
    counts = [0, 0, 0, 0, 0]
    for score, code, was, draw in zip(window.scores, window.codes, window.approved,
                                      window.draws, strict=True):  # fmt: skip
        if window.names[code] != group:
            continue
        rule = candidate.rules.get(group, candidate.unseen)
        p = expected_rate(rule, np.array([score]))
        now = p >= 1.0 if math.isnan(draw) else draw < p
        counts[0] += 1
        counts[1] += bool(was)
        counts[2] += bool(now)
        counts[3] += bool(now and not was)
        counts[4] += bool(was and not now)
    return tuple(counts)  # type: ignore[return-value]


def test_replay_counts_what_the_candidate_changes():
    rng = np.random.default_rng(11)
    scores = {"a": rng.beta(5, 3, 400), "b": rng.beta(4, 4, 300), "c": rng.beta(4, 4, 50),
              "zz": rng.beta(4, 4, 30)}  # fmt: skip
    # Recorded by an older version than the active one: "before" is what was recorded.
    recorded = {g: s > 0.57 for g, s in scores.items()}
    window = window_of(scores, approved=recorded)
    active = group_policy("mitigated")
    rules = {"a": GroupRule.threshold(0.6), "b": GroupRule.threshold(0.45),
             "c": active.rules["c"]}  # fmt: skip
    candidate = ThresholdPolicy(("g",), rules, GroupRule.threshold(0.3), "most-lenient",
                                "x", "y", mode="mitigated")  # fmt: skip
    found = replay(active, candidate, window, min_decisions=200)
    assert found.decisions == 780
    changed = 0
    rates = {}
    for g in scores:
        rows, then, now, to_approve, to_deny = replay_oracle(candidate, window, g)
        result = found.groups[g]
        assert (result.decisions, result.to_approve, result.to_deny) == (rows, to_approve, to_deny)
        assert (result.rate_before, result.rate_after) == (then / rows, now / rows)
        rates[g] = (then / rows, now / rows)
        changed += to_approve + to_deny
    assert found.changed == changed > 0
    # Only groups with 200 decisions are judged for the ratio.
    assert found.ratio_before == min(rates["a"][0], rates["b"][0]) / max(
        rates["a"][0], rates["b"][0]
    )
    assert found.ratio_after == min(rates["a"][1], rates["b"][1]) / max(
        rates["a"][1], rates["b"][1]
    )
    # Cut-offs move from the active version's (not the recorded one's).
    moves = {g: found.groups[g].move for g in scores}
    assert moves == pytest.approx({"a": 0.6 - 0.55, "b": 0.45 - 0.5, "c": 0.0, "zz": 0.3 - 0.52})
    assert found.largest_move == pytest.approx(0.22)
    assert found.as_dict()["groups"]["a"]["to_deny"] == found.groups["a"].to_deny


def test_replay_of_a_randomized_policy_uses_the_recorded_draws():
    rng = np.random.default_rng(12)
    scores = {"a": rng.beta(5, 3, 500), "b": rng.beta(4, 4, 400)}
    draws = {g: rng.random(len(s)) for g, s in scores.items()}
    active = group_policy("randomized")
    probabilities = {g: np.array([expected_rate(active.rules[g], np.array([s])) for s in v])
                     for g, v in scores.items()}  # fmt: skip
    # What the service recorded: the draw under the rule's approval probability.
    recorded = {g: draws[g] < probabilities[g] for g in scores}
    assert any(((p > 0) & (p < 1)).any() for p in probabilities.values())  # truly randomized
    window = window_of(scores, approved=recorded, draws=draws)
    same = replay(active, active, window)
    assert same.changed == 0  # the same draws give the same decisions
    rules = dict(active.rules) | {
        "a": GroupRule(p0=0.5, operator0=">", threshold0=0.55, p1=0.5, operator1=">",
                       threshold1=0.65)
    }  # fmt: skip
    candidate = ThresholdPolicy(("g",), rules, active.unseen, "most-lenient", "x", "y",
                                mode="randomized")  # fmt: skip
    found = replay(active, candidate, window, min_decisions=1)
    for g in scores:
        rows, _, now, to_approve, to_deny = replay_oracle(candidate, window, g)
        assert (found.groups[g].to_approve, found.groups[g].to_deny) == (to_approve, to_deny)
        assert found.groups[g].rate_after == now / rows
    assert found.groups["a"].to_deny > 0 and found.groups["b"].to_deny == 0
    assert found.groups["a"].move == pytest.approx(0.6 - 0.55)


def test_replay_of_records_without_draws_under_a_partly_randomized_candidate():
    """Records from a deterministic version carry no draw; a candidate whose rule for their
    group is deterministic decides them without one, even if another of its rules draws."""
    rng = np.random.default_rng(13)
    scores = {"a": rng.beta(5, 3, 300), "b": rng.beta(4, 4, 300)}
    window = window_of(scores, approved={g: s > 0.5 for g, s in scores.items()})
    active = lda_policy(0.5)
    rules = {"a": GroupRule.threshold(0.55),
             "b": GroupRule(p0=0.5, operator0=">", threshold0=0.4, p1=0.5, operator1=">",
                            threshold1=0.6)}  # fmt: skip
    candidate = ThresholdPolicy(("g",), rules, rules["b"], "most-lenient", "x", "y",
                                mode="randomized")  # fmt: skip
    found = replay(active, candidate, window, min_decisions=1)
    assert found.groups["a"].rate_after == float(np.mean(scores["a"] > 0.55))
    assert found.groups["a"].to_deny == int(np.sum((scores["a"] > 0.5) & (scores["a"] <= 0.55)))


# --- the target of each mode ------------------------------------------------------------

METADATA = {
    "fairness": {
        "baseline": {"overall": {"selection_rate": 0.61, "accuracy": 0.9},
                     "by_group": {"f": {"selection_rate": 0.01}}},
        "mitigated": {"overall": {"selection_rate": 0.52, "accuracy": 0.8}},
        "randomized": {"overall": {"selection_rate": 0.53, "accuracy": 0.7}},
    },
    "lda": {"test": {"chosen": {"approval_rate": 0.57, "threshold": 0.44},
                     "baseline": {"approval_rate": 0.99}}},
}  # fmt: skip


@pytest.mark.parametrize(
    ("mode", "kind", "rate"),
    [("mitigated", "equal-rates", 0.52), ("randomized", "equal-rates", 0.53),
     ("unmitigated", "band", 0.61), ("lda", "band", 0.57)],
)  # fmt: skip
def test_trained_target_reads_the_mode_s_own_rate(mode, kind, rate):
    assert trained_target(METADATA, mode) == Target(kind, rate, band=0.05, floor=0.8)


@pytest.mark.parametrize("n", [1, 2, 5, 50])
def test_the_band_s_cut_offs_at_once_equal_one_at_a_time(n):
    """``_betweens`` (the whole band in one numpy call) against ``_between``, whose cut-offs
    the tests above check against plain ``mean(score > cut)``; ties included."""
    from fairgate.recalibrate import _between, _betweens

    descending = np.sort(np.round(np.random.default_rng(n).random(n), 2))[::-1]
    ks = np.arange(-1, n + 2)
    assert np.array_equal(_betweens(descending, ks),
                          np.array([_between(descending, int(k)) for k in ks]))  # fmt: skip
