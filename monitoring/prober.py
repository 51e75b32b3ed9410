"""One probe cycle: twins for every attribute, sent as probes, summarised; plus the gap."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from fairgate.contract_features import attribute_column
from fairgate.contract_twins import attribute_values, twin
from monitoring.client import DecisionClient
from monitoring.control import ControlResult, control
from monitoring.counterfactual import AttributeResult, attribute_result, probe_population
from monitoring.gap import Gap, measure_gap
from monitoring.target import ProbeTarget


@dataclass(frozen=True)
class ProbeSettings:
    pairs: int = 1000
    gap_sample: int = 100
    control_pairs: int = 200
    attributes: tuple[str, ...] = ()  # empty: the contract's groups.prober
    seed: int = 0
    boundary_share: float = 0.5


@dataclass(frozen=True)
class Population:
    """The cycle's base applicants, and how many were near a decision threshold."""

    size: int
    from_boundary: int
    # Base applicants whose own decision scored within the recorded boundary width of their
    # group's threshold; None when the prober knows no policy (a foreign endpoint) or the
    # book was too small to record a boundary population.
    near_boundary: int | None


@dataclass
class CycleResult:
    target: str
    cycle: int
    contract: str = ""
    attributes: list[AttributeResult] = field(default_factory=list)
    gap: Gap | None = None
    control: ControlResult | None = None
    population: Population | None = None
    # Why there is no gap, in words for the summary (None when the gap was measured).
    gap_skipped: str | None = None
    decisions_sent: int = 0
    duration_seconds: float = 0.0


def run_cycle(
    client: DecisionClient, target: ProbeTarget, settings: ProbeSettings, cycle: int
) -> CycleResult:
    """Raises ``ProbeError`` on any failed request: a cycle is all or nothing.

    ``decisions_sent`` is every decision the cycle asked the endpoint for (twins, control,
    gap search), as counted by the client.
    """
    started = time.perf_counter()
    sent_before = client.decisions_sent
    contract = target.contract
    client.fields = contract.field_names
    attributes = target.attributes(settings.attributes)
    # A fresh population every cycle, reproducible from (seed, cycle).
    base = probe_population(
        target,
        settings.pairs,
        seed=settings.seed * 1_000_003 + cycle,
        boundary_share=settings.boundary_share,
    )
    shown = (contract.id_field.name, *((contract.gap.field,) if contract.gap else ()))
    result = CycleResult(target=client.target, cycle=cycle, contract=contract.name)
    n = settings.pairs
    near: np.ndarray | None = None
    knows_boundary = target.policy is not None and np.isfinite(target.synthesis.boundary_width)
    for attribute in attributes:
        values = attribute_values(contract, attribute, target.synthesis.population)
        # All twins of an attribute in one table: fewer, larger requests.
        stacked = [twin(contract, base, attribute, value) for value in values]
        table = {k: np.concatenate([t[k] for t in stacked]) for k in base}
        approved, scores, groups = client.decide_groups(table)
        if knows_boundary and near is None:
            near = base_near_boundary(
                target, attribute_column(contract, attribute, base), values, scores, groups
            )
        outcomes = {
            v: (approved[i * n : (i + 1) * n], scores[i * n : (i + 1) * n])
            for i, v in enumerate(values)
        }
        result.attributes.append(attribute_result(attribute, base, outcomes, shown))
    boundary = target.synthesis.boundary is not None
    result.population = Population(
        size=n,
        from_boundary=round(n * settings.boundary_share) if boundary else 0,
        near_boundary=None if near is None else int(near.sum()),
    )
    # The first applicants of the base population, so the control covers the same mix.
    result.control = control(
        client.decide, {k: v[: settings.control_pairs] for k, v in base.items()}
    )
    result.gap_skipped = gap_skipped(target, settings, attributes)
    if result.gap_skipped is None:
        attribute = attributes[0]
        group_a, group_b = attribute_values(contract, attribute, target.synthesis.population)[:2]
        # Spread over both parts of the population: every k-th applicant.
        step = max(1, n // settings.gap_sample)
        sample = {k: v[::step][: settings.gap_sample] for k, v in base.items()}
        result.gap = measure_gap(
            client.decide, contract, target.synthesis.population, sample,
            attribute=attribute, group_a=group_a, group_b=group_b, recorded=target.recorded,
        )  # fmt: skip
    result.decisions_sent = client.decisions_sent - sent_before
    result.duration_seconds = time.perf_counter() - started
    return result


def base_near_boundary(
    target: ProbeTarget,
    own: np.ndarray,
    values: tuple[str, ...],
    scores: np.ndarray,
    groups: np.ndarray,
) -> np.ndarray:
    """Per base applicant: is its own decision within the boundary width of its group's
    threshold? ``scores``/``groups`` are one attribute's twins, ``values`` blocks of them.

    Among an applicant's twins, the one with its own value of the attribute is the applicant
    itself (a category twin set to the value it has; a banded twin left in its band), so the
    base decisions are read off the twins without sending anything more.
    """
    assert target.policy is not None
    n = len(own)
    index = {value: i for i, value in enumerate(values)}
    block = np.array([index.get(value, -1) for value in own], dtype=np.int64)
    # A value no twin took (not in the recorded book) has no base decision: not near.
    rows = np.maximum(block, 0) * n + np.arange(n)
    distance = target.policy.boundary_distance(scores[rows], np.asarray(groups)[rows])
    return (block >= 0) & (distance <= target.synthesis.boundary_width)


def gap_skipped(
    target: ProbeTarget, settings: ProbeSettings, attributes: tuple[str, ...]
) -> str | None:
    """Why this cycle measures no gap, or None when it does."""
    contract = target.contract
    if contract.gap is None:
        return f"no gap: contract {contract.name!r} names no gap field"
    if settings.gap_sample <= 0:
        return "no gap: gap sample is 0"
    if not attributes:
        return "no gap: no protected attribute to compare"
    if len(attribute_values(contract, attributes[0], target.synthesis.population)) < 2:
        return f"no gap: {attributes[0]} has fewer than two values in the book"
    return None
