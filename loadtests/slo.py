"""Service-level objectives: parsed from a mapping, checked against Locust's stats CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any


class SloError(ValueError):
    """The SLO file is invalid; the message lists every bad entry."""


@dataclass(frozen=True)
class Slo:
    p95_ms: float = 50.0
    p99_ms: float = 100.0
    max_failure_ratio: float = 0.0
    min_rps: float = 100.0


@dataclass(frozen=True)
class RunStats:
    """Locust's "Aggregated" row (or one endpoint's row) of ``<prefix>_stats.csv``."""

    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def failure_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 1.0


def slo_from_mapping(raw: Mapping[str, Any]) -> Slo:
    known = {f.name for f in fields(Slo)}
    errors = [f"{key}: unknown objective" for key in raw if key not in known]
    values = {}
    for key in known & raw.keys():
        value = raw[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            errors.append(f"{key}: expected a number >= 0, got {value!r}")
        else:
            values[key] = float(value)
    if errors:
        raise SloError("invalid SLO file:\n  " + "\n  ".join(errors))
    return Slo(**values)


def _number(text: str) -> float:
    return float("nan") if text in ("", "N/A") else float(text)


def read_stats(path: Path) -> dict[str, RunStats]:
    """Every row of a Locust ``_stats.csv``, keyed by name ("Aggregated" for the total)."""
    with path.open(newline="") as handle:
        return {
            row["Name"]: RunStats(
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                rps=_number(row["Requests/s"]),
                p50_ms=_number(row["50%"]),
                p95_ms=_number(row["95%"]),
                p99_ms=_number(row["99%"]),
            )
            for row in csv.DictReader(handle)
        }


def violations(stats: RunStats, slo: Slo) -> list[str]:
    """One line per missed objective; empty when the run met them all."""
    missed = []
    if stats.requests == 0:
        return ["no requests completed"]
    if not stats.p95_ms <= slo.p95_ms:
        missed.append(f"p95 {stats.p95_ms:.0f} ms > {slo.p95_ms:.0f} ms")
    if not stats.p99_ms <= slo.p99_ms:
        missed.append(f"p99 {stats.p99_ms:.0f} ms > {slo.p99_ms:.0f} ms")
    if stats.failure_ratio > slo.max_failure_ratio:
        missed.append(
            f"failure ratio {stats.failure_ratio:.4f} > {slo.max_failure_ratio:.4f} "
            f"({stats.failures} of {stats.requests})"
        )
    if not stats.rps >= slo.min_rps:
        missed.append(f"throughput {stats.rps:.1f} req/s < {slo.min_rps:.1f} req/s")
    return missed
