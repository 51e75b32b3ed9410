"""One probe cycle: twins for every attribute, sent as probes, summarised; plus the gap."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from monitoring.client import DecisionClient
from monitoring.control import ControlResult, control
from monitoring.counterfactual import (
    ATTRIBUTE_VALUES,
    AttributeResult,
    attribute_result,
    base_population,
    twin,
)
from monitoring.income_gap import IncomeGap, income_gap


@dataclass(frozen=True)
class ProbeSettings:
    pairs: int = 1000
    gap_sample: int = 100
    control_pairs: int = 200
    attributes: tuple[str, ...] = ("gender", "age_band")
    seed: int = 0


@dataclass
class CycleResult:
    target: str
    cycle: int
    attributes: list[AttributeResult] = field(default_factory=list)
    gap: IncomeGap | None = None
    control: ControlResult | None = None
    decisions_sent: int = 0
    duration_seconds: float = 0.0


def run_cycle(client: DecisionClient, settings: ProbeSettings, cycle: int) -> CycleResult:
    """Raises ``ProbeError`` on any failed request: a cycle is all or nothing.

    ``decisions_sent`` is every decision the cycle asked the endpoint for (twins, control,
    gap search), as counted by the client.
    """
    started = time.perf_counter()
    sent_before = client.decisions_sent
    # A fresh population every cycle, reproducible from (seed, cycle).
    base = base_population(settings.pairs, seed=settings.seed * 1_000_003 + cycle)
    result = CycleResult(target=client.target, cycle=cycle)
    for attribute in settings.attributes:
        values = ATTRIBUTE_VALUES[attribute]
        # All twins of an attribute in one table: fewer, larger requests.
        stacked = [twin(base, attribute, value) for value in values]
        table = {k: np.concatenate([t[k] for t in stacked]) for k in base}
        approved, scores = client.decide(table)
        n = settings.pairs
        outcomes = {
            v: (approved[i * n : (i + 1) * n], scores[i * n : (i + 1) * n])
            for i, v in enumerate(values)
        }
        result.attributes.append(attribute_result(attribute, base, outcomes))
    # The first applicants of the base population, so the control covers the same
    # boundary-heavy mix the twins are drawn from.
    result.control = control(
        client.decide, {k: v[: settings.control_pairs] for k, v in base.items()}
    )
    if settings.gap_sample > 0 and "gender" in settings.attributes:
        sample = {k: v[: settings.gap_sample] for k, v in base.items()}
        result.gap = income_gap(client.decide, sample)
    result.decisions_sent = client.decisions_sent - sent_before
    result.duration_seconds = time.perf_counter() - started
    return result
