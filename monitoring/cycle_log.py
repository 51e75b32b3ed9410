"""What the prober's log says: one line per cycle, one per failure, requests only at debug.

A line reads on its own: ``probe cycle 3 ok target=http://svc:3000 decisions_sent=7400
duration=1.23s worst_four_fifths=0.795 (gender) max_flip_rate=22.5% (gender female/male)
control_flip_rate=0.0% median_gap=$13,143 (annual_income) near_boundary=512/1000``.
Figures are rounded toward their alert line (``monitoring.figures``), so a line never reads
as passing when the alert fires.
"""

from __future__ import annotations

import logging
from typing import Final

from monitoring.client import ProbeError
from monitoring.figures import amount, rate, ratio
from monitoring.prober import CycleResult

LOG_LEVELS: Final[tuple[str, ...]] = ("debug", "info", "warning", "error")
# One line per HTTP request (httpx logs each at INFO) buries the cycle lines.
CHATTY_LOGGERS: Final[tuple[str, ...]] = ("httpx", "httpcore")


def configure_logging(level: str) -> None:
    """Root logging at ``level``; httpx/httpcore request lines only when it is ``debug``."""
    if level not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {LOG_LEVELS}, got {level!r}")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def cycle_line(result: CycleResult) -> str:
    parts = [
        f"probe cycle {result.cycle} ok",
        f"target={result.target}",
        f"decisions_sent={result.decisions_sent}",
        f"duration={result.duration_seconds:.2f}s",
    ]
    if result.attributes:
        worst = min(result.attributes, key=lambda a: a.approval_ratio)
        parts.append(f"worst_four_fifths={ratio(worst.approval_ratio)} ({worst.attribute})")
    pairs = [p for a in result.attributes for p in a.pairs]
    if pairs:
        top = max(pairs, key=lambda p: p.flip_rate)
        parts.append(
            f"max_flip_rate={rate(top.flip_rate)} ({top.attribute} {top.group_a}/{top.group_b})"
        )
    if result.control is not None:
        parts.append(f"control_flip_rate={rate(result.control.flip_rate)}")
    if result.gap is not None:
        gap = result.gap
        parts.append(f"median_gap={amount(gap.median, gap.unit).replace(' ', '_')} ({gap.field})")
    population = result.population
    if population is not None and population.near_boundary is not None:
        parts.append(f"near_boundary={population.near_boundary}/{population.size}")
    if result.control is not None and not result.control.reproducible:
        parts.append("NOT REPRODUCIBLE: the flip rates and the gap are not evidence of bias")
    return " ".join(parts)


def cycle_failed_line(
    target: str, cycle: int, error: ProbeError, decisions_sent: int, duration_seconds: float
) -> str:
    return (
        f"probe cycle {cycle} failed kind={error.kind} target={target} "
        f"decisions_sent={decisions_sent} duration={duration_seconds:.2f}s: {error}"
    )
