"""The service's own Prometheus metrics, beside BentoML's request metrics on /metrics.

Created lazily inside the worker: BentoML sets PROMETHEUS_MULTIPROC_DIR after importing
the service module, and metrics made before that are invisible in multiprocess mode.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

SCORE_BUCKETS = (*tuple(i / 20 for i in range(1, 20)), 1.0)
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
    0.1, 0.2, 0.3, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


@dataclass(frozen=True)
class ServiceMetrics:
    decisions: Counter
    probe_decisions: Counter
    unseen_groups: Counter
    probe_refused: Counter
    score: Histogram
    info: Gauge
    policy_info: Gauge
    policy_changes: Counter


def create_metrics() -> ServiceMetrics:
    return ServiceMetrics(
        decisions=Counter(
            "fairgate_decisions_total",
            "Live-traffic decisions by policy group and outcome (probes excluded).",
            ["attribute", "group", "outcome"],
        ),
        probe_decisions=Counter(
            "fairgate_probe_decisions_total",
            "Decisions on requests marked as probes.",
            ["attribute", "group", "outcome"],
        ),
        unseen_groups=Counter(
            "fairgate_unseen_group_decisions_total",
            "Decisions for groups unseen at training, decided by the fallback rule.",
            ["attribute", "group", "traffic"],
        ),
        probe_refused=Counter(
            "fairgate_probe_refused_total",
            "Requests that claimed to be probes without the right token (403, not decided).",
            ["reason"],
        ),
        score=Histogram(
            "fairgate_score",
            "Model score (before the policy), live traffic.",
            buckets=SCORE_BUCKETS,
        ),
        # "max" keeps one series across workers instead of one per pid.
        info=Gauge(
            "fairgate_model_info",
            "Model and policy being served (value 1).",
            ["model_version", "policy_version", "policy_mode", "scorer", "constraint"],
            multiprocess_mode="max",
        ),
        policy_info=Gauge(
            "fairgate_policy_info",
            "The policy version deciding now (1; 0 once replaced), per worker the highest.",
            ["version", "mode"],
            # Live workers only: a worker that died before a switch must not keep its old
            # version at 1 beside the new one.
            multiprocess_mode="livemax",
        ),
        policy_changes=Counter(
            "fairgate_policy_changes_total",
            "Switches of a worker to another policy version (promote, rollback, automatic); "
            "each worker counts its own switch.",
        ),
    )


def observe_many(histogram: Histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every v of a batch's scores.

    prometheus_client has no public call that adds many observations at once, so each value
    is observed on its own, a locked write per value in multiprocess mode. One increment per
    bucket would need the histogram's private fields, which change between releases without
    notice.
    """
    observe = histogram.observe
    for value in values.tolist():
        observe(value)
