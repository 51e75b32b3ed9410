"""``observe_many`` against prometheus-client's own ``observe`` on the same samples, through
its public API only."""

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram

from service.metrics import SCORE_BUCKETS, observe_many


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if not sample.name.endswith("_created")
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_observe_many_equals_one_observe_per_value(seed):
    # Uniform scores plus every bucket edge exactly (le is inclusive) and the extremes.
    values = np.concatenate(
        [np.random.default_rng(seed).random(997), np.array(SCORE_BUCKETS), [0.0, 1.0, 0.05]]
    )
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    batch = Histogram("score", "s", buckets=SCORE_BUCKETS, registry=ours)
    single = Histogram("score", "s", buckets=SCORE_BUCKETS, registry=theirs)
    observe_many(batch, values)
    for value in values.tolist():
        single.observe(value)
    expected = _samples(theirs)
    actual = _samples(ours)
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-12), key
    assert theirs.get_sample_value("score_count") == len(values)
    assert ours.get_sample_value("score_bucket", {"le": "0.05"}) == theirs.get_sample_value(
        "score_bucket", {"le": "0.05"}
    )


def test_observe_many_of_nothing_changes_nothing():
    registry = CollectorRegistry()
    histogram = Histogram("score", "s", buckets=SCORE_BUCKETS, registry=registry)
    observe_many(histogram, np.array([]))
    assert registry.get_sample_value("score_count") == 0
    assert registry.get_sample_value("score_sum") == 0


class _PublicOnly:
    """A histogram with nothing but prometheus_client's public ``observe``."""

    def __init__(self) -> None:
        self.observed: list[float] = []

    def observe(self, amount: float) -> None:
        self.observed.append(amount)


def test_observe_many_uses_only_the_public_observe():
    histogram = _PublicOnly()
    observe_many(histogram, np.array([0.1, 0.5, 0.5, 1.0]))  # type: ignore[arg-type]
    assert histogram.observed == [0.1, 0.5, 0.5, 1.0]
