"""The fairness figures of each target's last probe cycle, as a Prometheus collector.

A scrape reads the last cycle whole: ``LastCycle.collect`` builds the families from the
cycles it holds at that moment (a mapping replaced, never changed in place), so a scrape
during a cycle's export never sees it half written; and a failed cycle (``forget``) leaves
its target no fairness series at all, so an old value never looks fresh. The cycle's own
health (success, duration, last success) stays in ordinary gauges (``exporter.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring.prober import CycleResult

Labels = tuple[str, ...]
# A family's samples: label values -> value.
Samples = dict[Labels, float]

PAIR: Final[Labels] = ("target", "attribute", "group_a", "group_b")
# name -> (help, label names)
FAMILIES: Final[Mapping[str, tuple[str, Labels]]] = {
    "fairgate_probe_flip_ratio": ("Share of twin pairs whose decisions differ.", PAIR),
    "fairgate_probe_favoured_ratio": (
        "Share of pairs where only the 'favoured' twin is approved.",
        ("target", "attribute", "favoured", "other"),
    ),
    "fairgate_probe_score_difference_mean": (
        "Mean score(group_a) - score(group_b) over pairs.",
        PAIR,
    ),
    "fairgate_probe_score_difference_max_abs": ("Largest |score difference| over pairs.", PAIR),
    "fairgate_probe_approval_ratio": (
        "Approval rate of each group's twins (probe population).",
        ("target", "attribute", "group"),
    ),
    "fairgate_probe_four_fifths_ratio": (
        "Lowest group's probe approval rate over the highest's.",
        ("target", "attribute"),
    ),
    "fairgate_probe_gap": (
        "How much more of the contract's gap field (in its unit) group_a's twin needs "
        "than group_b's to be approved (less, for a field where less helps).",
        (*PAIR, "quantile", "field", "unit"),
    ),
    "fairgate_probe_gap_ratio": (
        "fairgate_probe_gap over the field's median in the book (unitless).",
        (*PAIR, "quantile", "field"),
    ),
    "fairgate_probe_gap_excluded": (
        "Sampled applicants left out of the gap, by reason.",
        ("target", "reason"),
    ),
    "fairgate_probe_near_boundary_ratio": (
        "Share of the cycle's base applicants scored near their group's threshold.",
        ("target",),
    ),
    "fairgate_probe_control_flip_rate": (
        "Share of identical applicants, sent twice, decided differently (0 if reproducible).",
        ("target",),
    ),
}


def cycle_samples(result: CycleResult) -> dict[str, Samples]:
    """Every fairness family's samples for one successful cycle (families it measured
    nothing for are absent). Label values as text; a later value for the same labels wins."""
    out: dict[str, Samples] = {}

    def put(name: str, labels: tuple[object, ...], value: float) -> None:
        out.setdefault(name, {})[tuple(str(label) for label in labels)] = float(value)

    target = result.target
    for attribute in result.attributes:
        for group, rate in attribute.approval_rate.items():
            put("fairgate_probe_approval_ratio", (target, attribute.attribute, group), rate)
        ratio = attribute.approval_ratio
        put("fairgate_probe_four_fifths_ratio", (target, attribute.attribute), ratio)
        for p in attribute.pairs:
            pair = (target, p.attribute, p.group_a, p.group_b)
            put("fairgate_probe_flip_ratio", pair, p.flip_rate)
            put("fairgate_probe_score_difference_mean", pair, p.mean_score_difference)
            put("fairgate_probe_score_difference_max_abs", pair, p.max_abs_score_difference)
            put("fairgate_probe_favoured_ratio", pair, p.favours_a_rate)
            reverse = (target, p.attribute, p.group_b, p.group_a)
            put("fairgate_probe_favoured_ratio", reverse, p.favours_b_rate)
    gap = result.gap
    if gap is not None and gap.measured:
        pair = (target, gap.attribute, gap.group_a, gap.group_b)
        for quantile, value in (("0.5", gap.median), ("0.9", gap.p90)):
            put("fairgate_probe_gap", (*pair, quantile, gap.field, gap.unit), value)
        if math.isfinite(gap.median_ratio):  # no recorded book: no ratio, not a guess
            put("fairgate_probe_gap_ratio", (*pair, "0.5", gap.field), gap.median_ratio)
    if gap is not None:
        put("fairgate_probe_gap_excluded", (target, "non_monotone"), gap.non_monotone)
        put("fairgate_probe_gap_excluded", (target, "never_approved"), gap.never_approved)
    population = result.population
    if population is not None and population.near_boundary is not None and population.size:
        share = population.near_boundary / population.size
        put("fairgate_probe_near_boundary_ratio", (target,), share)
    if result.control is not None:
        put("fairgate_probe_control_flip_rate", (target,), result.control.flip_rate)
    return out


class LastCycle(Collector):
    """Per target, the fairness families of its last cycle; none after a failed one."""

    def __init__(self) -> None:
        self._cycles: dict[str, dict[str, Samples]] = {}

    def record(self, result: CycleResult) -> None:
        """A successful cycle replaces its target's figures."""
        self._cycles = self._cycles | {result.target: cycle_samples(result)}

    def forget(self, target: str) -> None:
        """A failed cycle: its target's figures are gone until the next success."""
        self._cycles = {name: cycle for name, cycle in self._cycles.items() if name != target}

    def describe(self) -> Iterator[Metric]:
        """The families' names and help, for the registry's duplicate check."""
        for name, (documentation, labels) in FAMILIES.items():
            yield GaugeMetricFamily(name, documentation, labels=labels)

    def collect(self) -> Iterator[Metric]:
        cycles = self._cycles  # one snapshot for the whole scrape
        for name, (documentation, labels) in FAMILIES.items():
            family = GaugeMetricFamily(name, documentation, labels=labels)
            for samples in cycles.values():
                for values, value in samples.get(name, {}).items():
                    family.add_metric(values, value)
            yield family
