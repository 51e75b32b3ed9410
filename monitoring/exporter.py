"""The prober's Prometheus metrics, on a registry passed in (tests give a fresh one).

The fairness figures are the last cycle's (``last_cycle.LastCycle``, a collector): a failed
cycle leaves its target none, and sets probe success to 0, so an old value never looks
fresh; the last-success timestamp lets alerts catch staleness. Counters count across cycles.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from monitoring.client import ERROR_KINDS
from monitoring.last_cycle import LastCycle
from monitoring.prober import CycleResult


class ProberMetrics:
    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock

        def gauge(name: str, doc: str, labels: list[str]) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        self.last_cycle = LastCycle()
        registry.register(self.last_cycle)
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

    def watch(self, target: str) -> None:
        """Create the target's error series at 0, so "no errors" is a value, not a gap."""
        for kind in ERROR_KINDS:
            self.errors.labels(target, kind)
        self.decisions_sent.labels(target)

    def record_sent(self, target: str, decisions: int) -> None:
        """Count decisions asked for, by failed cycles too: they reached the target."""
        self.decisions_sent.labels(target).inc(decisions)

    def record_success(self, result: CycleResult) -> None:
        target = result.target
        self.last_cycle.record(result)
        for attribute in result.attributes:
            self.pairs.labels(target, attribute.attribute).inc(len(attribute.rows))
        self.success.labels(target).set(1)
        self.duration.labels(target).set(result.duration_seconds)
        self.last_success.labels(target).set(self.clock())

    def record_failure(self, target: str, kind: str, duration_seconds: float) -> None:
        self.last_cycle.forget(target)
        self.success.labels(target).set(0)
        self.duration.labels(target).set(duration_seconds)
        self.errors.labels(target, kind).inc()
