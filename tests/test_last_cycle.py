"""The prober's fairness figures come from a collector holding each target's last cycle:
exported through public prometheus_client API only, read whole by a scrape, gone for a
target whose last cycle failed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitoring.control import ControlResult
from monitoring.counterfactual import AttributeResult, PairStats
from monitoring.exporter import ProberMetrics
from monitoring.gap import Gap
from monitoring.last_cycle import FAMILIES, LastCycle, cycle_samples
from monitoring.prober import CycleResult, Population

A, B = "http://a:3000", "http://b:3000"


def cycle(target: str, flip: float = 0.25, median_ratio: float = 0.1) -> CycleResult:
    pair = PairStats("gender", "female", "male", pairs=100, flip_rate=flip,
                     favours_a_rate=0.05, favours_b_rate=0.2, mean_score_difference=-0.03,
                     max_abs_score_difference=0.2)  # fmt: skip
    attribute = AttributeResult("gender", {"female": 0.4, "male": 0.5}, 0.8, [pair], [{}] * 100)
    gap = Gap("gender", "female", "male", "annual_income", "USD", 1, sampled=20, measured=18,
              non_monotone=1, never_approved=1, median=5000.0, p90=9000.0,
              median_ratio=median_ratio, gaps=np.zeros(18))  # fmt: skip
    population = Population(size=1000, from_boundary=500, near_boundary=250)
    control = ControlResult(pairs=200, flips=0)
    return CycleResult(target=target, cycle=0, attributes=[attribute], gap=gap,
                       control=control, population=population)  # fmt: skip


def test_a_cycle_s_samples_by_hand():
    samples = cycle_samples(cycle(A))
    pair = (A, "gender", "female", "male")
    assert samples["fairgate_probe_flip_ratio"] == {pair: 0.25}
    assert samples["fairgate_probe_favoured_ratio"] == {
        pair: 0.05, (A, "gender", "male", "female"): 0.2,
    }  # fmt: skip
    assert samples["fairgate_probe_approval_ratio"] == {
        (A, "gender", "female"): 0.4, (A, "gender", "male"): 0.5,
    }  # fmt: skip
    assert samples["fairgate_probe_four_fifths_ratio"] == {(A, "gender"): 0.8}
    assert samples["fairgate_probe_gap"] == {
        (*pair, "0.5", "annual_income", "USD"): 5000.0,
        (*pair, "0.9", "annual_income", "USD"): 9000.0,
    }
    assert samples["fairgate_probe_gap_ratio"] == {(*pair, "0.5", "annual_income"): 0.1}
    assert samples["fairgate_probe_gap_excluded"] == {
        (A, "non_monotone"): 1.0, (A, "never_approved"): 1.0,
    }  # fmt: skip
    assert samples["fairgate_probe_near_boundary_ratio"] == {(A,): 0.25}
    assert samples["fairgate_probe_control_flip_rate"] == {(A,): 0.0}
    assert set(samples) == set(FAMILIES)
    # Without a recorded book there is no ratio, rather than a made-up one.
    assert "fairgate_probe_gap_ratio" not in cycle_samples(cycle(A, median_ratio=math.nan))


def test_a_failed_cycle_removes_only_its_target_s_figures():
    registry = CollectorRegistry()
    last = LastCycle()
    registry.register(last)
    last.record(cycle(A, flip=0.25))
    last.record(cycle(B, flip=0.5))
    flip = {"attribute": "gender", "group_a": "female", "group_b": "male"}
    assert registry.get_sample_value("fairgate_probe_flip_ratio", {"target": A, **flip}) == 0.25
    last.forget(A)
    assert registry.get_sample_value("fairgate_probe_flip_ratio", {"target": A, **flip}) is None
    assert registry.get_sample_value("fairgate_probe_flip_ratio", {"target": B, **flip}) == 0.5
    last.record(cycle(A, flip=0.0))  # the next success replaces, never adds
    assert registry.get_sample_value("fairgate_probe_flip_ratio", {"target": A, **flip}) == 0.0


def test_the_families_are_described_and_exported_as_gauges():
    registry = CollectorRegistry()
    metrics = ProberMetrics(registry)
    metrics.record_success(cycle(A))
    text = generate_latest(registry).decode()
    for name in FAMILIES:
        assert f"# TYPE {name} gauge" in text
    assert registry.get_sample_value("fairgate_probe_pairs_sent_total",
                                     {"target": A, "attribute": "gender"}) == 100  # fmt: skip
    # Described: a second collector of the same families is refused by the registry.
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        registry.register(LastCycle())
