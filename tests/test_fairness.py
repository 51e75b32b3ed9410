"""Bootstrap intervals: coverage on a known distribution, and small groups handled."""

import numpy as np
import pytest

from training.fairness import _bootstrap_selection


def test_selection_rate_intervals_cover_the_true_rate_about_95_percent_of_the_time():
    """Two groups with known approval probabilities 0.3 (n=300) and 0.7 (n=150); 400 seeded
    samples. A correct 95% interval covers p in ~95% of them (binomial standard error of the
    coverage 1.1 points); the accepted band 91-98.5% rejects a 90% or a 99% interval."""
    truth = {"a": 0.3, "b": 0.7}
    sizes = {"a": 300, "b": 150}
    groups = np.array(["a"] * sizes["a"] + ["b"] * sizes["b"])
    rng = np.random.default_rng(2024)
    covered = {"a": 0, "b": 0}
    repetitions = 400
    for repetition in range(repetitions):
        y_pred = np.concatenate([rng.binomial(1, truth[g], sizes[g]) for g in ("a", "b")]).astype(
            float
        )
        intervals = _bootstrap_selection(y_pred, groups, n_boot=400, seed=repetition)
        for g in ("a", "b"):
            low, high = intervals["selection_rate"][g]
            covered[g] += low <= truth[g] <= high
    for g in ("a", "b"):
        assert 0.91 <= covered[g] / repetitions <= 0.985, (g, covered[g])


def test_interval_width_matches_the_binomial_standard_error():
    # p=0.5, n=400: standard error 0.025, so a 95% interval is about 0.098 wide.
    y_pred = np.tile([0.0, 1.0], 200)
    low, high = _bootstrap_selection(y_pred, np.zeros(400), n_boot=2000, seed=1)["selection_rate"][
        "0.0"
    ]
    assert high - low == pytest.approx(2 * 1.96 * 0.025, rel=0.1)
    assert low < 0.5 < high


def test_a_one_row_group_keeps_its_own_rate():
    # A plain row bootstrap often drops the single "b" row; its rate must not read 0 then.
    y_pred = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    groups = np.array(list("aaaaab"))
    result = _bootstrap_selection(y_pred, groups, n_boot=200, seed=0)
    assert result["selection_rate"]["b"] == [1.0, 1.0]


def test_non_binary_decisions_are_refused():
    with pytest.raises(ValueError, match="0/1 decisions"):
        _bootstrap_selection(np.array([0.5, 1.0]), np.array(["a", "a"]), n_boot=10, seed=0)


def test_all_zero_decisions_give_no_ratio_and_no_warning():
    # Every resample has every rate 0: the ratio is undefined, reported as NaN, and no
    # numpy warning is raised (the suite turns warnings into errors).
    result = _bootstrap_selection(np.zeros(60), np.array(["a", "b"] * 30), n_boot=50, seed=0)
    assert result["selection_rate"] == {"a": [0.0, 0.0], "b": [0.0, 0.0]}
    assert np.isnan(result["demographic_parity_ratio"]).all()
    assert result["demographic_parity_difference"] == [0.0, 0.0]
