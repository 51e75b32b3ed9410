"""Server-side latency from BentoML's request-duration histogram on ``/metrics``.

Locust's figures include the load generator's own scheduling; on a machine it shares with
the server that dominates the tail. The histogram is what the server itself measured.
"""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

HISTOGRAM = "bentoml_service_request_duration_seconds_bucket"


def bucket_counts(url: str, endpoint: str) -> dict[float, float]:
    """Cumulative count per upper bound for ``endpoint``, summed over status codes."""
    counts: dict[float, float] = {}
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == HISTOGRAM and sample.labels.get("endpoint") == endpoint:
                bound = float(sample.labels["le"])
                counts[bound] = counts.get(bound, 0.0) + sample.value
    return counts


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile in seconds of requests between two snapshots (Prometheus-style
    linear interpolation inside the bucket)."""
    bounds = sorted(after)
    delta = [after[b] - before.get(b, 0.0) for b in bounds]
    total = delta[-1]
    if total <= 0:
        return float("nan")
    rank = q * total
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in zip(bounds, delta, strict=True):
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return bounds[-2]
