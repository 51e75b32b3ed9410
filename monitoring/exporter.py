"""The prober's Prometheus metrics, on a registry passed in (tests give a fresh one).

A failed cycle clears every fairness gauge of its target and sets probe success to 0, so
an old value never looks fresh; the last-success timestamp lets alerts catch staleness.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitoring.client import ERROR_KINDS
from monitoring.prober import CycleResult


class ProberMetrics:
    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        pair = ["target", "attribute", "group_a", "group_b"]
        self.flip = gauge(
            "fairgate_probe_flip_ratio", "Share of twin pairs whose decisions differ.", pair
        )
        self.favoured = gauge(
            "fairgate_probe_favoured_ratio",
            "Share of pairs where only the 'favoured' twin is approved.",
            ["target", "attribute", "favoured", "other"],
        )
        self.score_mean = gauge(
            "fairgate_probe_score_difference_mean",
            "Mean score(group_a) - score(group_b) over pairs.",
            pair,
        )
        self.score_max = gauge(
            "fairgate_probe_score_difference_max_abs",
            "Largest |score difference| over pairs.",
            pair,
        )
        self.approval = gauge(
            "fairgate_probe_approval_ratio",
            "Approval rate of each group's twins (probe population).",
            ["target", "attribute", "group"],
        )
        self.four_fifths = gauge(
            "fairgate_probe_four_fifths_ratio",
            "Lowest group's probe approval rate over the highest's.",
            ["target", "attribute"],
        )
        self.gap = gauge(
            "fairgate_probe_gap",
            "How much more of the contract's gap field (in its unit) group_a's twin needs "
            "than group_b's to be approved (less, for a field where less helps).",
            ["target", "attribute", "group_a", "group_b", "quantile", "field", "unit"],
        )
        self.gap_ratio = gauge(
            "fairgate_probe_gap_ratio",
            "fairgate_probe_gap over the field's median in the book (unitless).",
            ["target", "attribute", "group_a", "group_b", "quantile", "field"],
        )
        self.gap_excluded = gauge(
            "fairgate_probe_gap_excluded",
            "Sampled applicants left out of the gap, by reason.",
            ["target", "reason"],
        )
        self.near_boundary = gauge(
            "fairgate_probe_near_boundary_ratio",
            "Share of the cycle's base applicants scored near their group's threshold.",
            ["target"],
        )
        self.control_flip = gauge(
            "fairgate_probe_control_flip_rate",
            "Share of identical applicants, sent twice, decided differently (0 if reproducible).",
            ["target"],
        )
        self.success = gauge("fairgate_probe_success", "1 if the last cycle succeeded.", ["target"])
        self.duration = gauge(
            "fairgate_probe_duration_seconds", "Duration of the last cycle.", ["target"]
        )
        self.last_success = gauge(
            "fairgate_probe_last_success_timestamp_seconds",
            "Unix time of the last successful cycle.",
            ["target"],
        )
        self.pairs = Counter(
            "fairgate_probe_pairs_sent_total",
            "Twin pairs sent.",
            ["target", "attribute"],
            registry=registry,
        )
        self.decisions_sent = Counter(
            "fairgate_probe_decisions_sent_total",
            "Decisions the prober asked the target for (twins, control, gap search).",
            ["target"],
            registry=registry,
        )
        self.errors = Counter(
            "fairgate_probe_errors_total",
            "Failed cycles by error kind.",
            ["target", "kind"],
            registry=registry,
        )
        self._fairness = [
            self.flip,
            self.favoured,
            self.score_mean,
            self.score_max,
            self.approval,
            self.four_fifths,
            self.gap,
            self.gap_ratio,
            self.gap_excluded,
            self.near_boundary,
            self.control_flip,
        ]

    def watch(self, target: str) -> None:
        """Create the target's error series at 0, so "no errors" is a value, not a gap."""
        for kind in ERROR_KINDS:
            self.errors.labels(target, kind)
        self.decisions_sent.labels(target)

    def record_sent(self, target: str, decisions: int) -> None:
        """Count decisions asked for, by failed cycles too: they reached the target."""
        self.decisions_sent.labels(target).inc(decisions)

    def _clear(self, target: str) -> None:
        for metric in self._fairness:
            for labels in list(metric._metrics):
                if labels[0] == target:
                    metric.remove(*labels)

    def record_success(self, result: CycleResult) -> None:
        target = result.target
        self._clear(target)
        for attribute in result.attributes:
            for group, rate in attribute.approval_rate.items():
                self.approval.labels(target, attribute.attribute, group).set(rate)
            self.four_fifths.labels(target, attribute.attribute).set(attribute.approval_ratio)
            for p in attribute.pairs:
                labels = (target, p.attribute, p.group_a, p.group_b)
                self.flip.labels(*labels).set(p.flip_rate)
                self.score_mean.labels(*labels).set(p.mean_score_difference)
                self.score_max.labels(*labels).set(p.max_abs_score_difference)
                self.favoured.labels(target, p.attribute, p.group_a, p.group_b).set(
                    p.favours_a_rate
                )
                self.favoured.labels(target, p.attribute, p.group_b, p.group_a).set(
                    p.favours_b_rate
                )
            self.pairs.labels(target, attribute.attribute).inc(len(attribute.rows))
        if result.gap is not None and result.gap.measured:
            gap = result.gap
            pair = (target, gap.attribute, gap.group_a, gap.group_b)
            for quantile, value in (("0.5", gap.median), ("0.9", gap.p90)):
                self.gap.labels(*pair, quantile, gap.field, gap.unit).set(value)
            if math.isfinite(gap.median_ratio):  # no recorded book: no ratio, not a guess
                self.gap_ratio.labels(*pair, "0.5", gap.field).set(gap.median_ratio)
        population = result.population
        if population is not None and population.near_boundary is not None and population.size:
            self.near_boundary.labels(target).set(population.near_boundary / population.size)
        if result.gap is not None:
            self.gap_excluded.labels(target, "non_monotone").set(result.gap.non_monotone)
            self.gap_excluded.labels(target, "never_approved").set(result.gap.never_approved)
        if result.control is not None:
            self.control_flip.labels(target).set(result.control.flip_rate)
        self.success.labels(target).set(1)
        self.duration.labels(target).set(result.duration_seconds)
        self.last_success.labels(target).set(self.clock())

    def record_failure(self, target: str, kind: str, duration_seconds: float) -> None:
        self._clear(target)
        self.success.labels(target).set(0)
        self.duration.labels(target).set(duration_seconds)
        self.errors.labels(target, kind).inc()
