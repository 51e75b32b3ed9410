"""Request bodies generated before a load run starts, so the request loop only sends.

Every body comes from the one generator and schema (``fairgate.generator``), seeded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from fairgate.generator import generate_applicants, to_records
from monitoring.counterfactual import twin

DEFAULT_SIZE = 5000


@dataclass(frozen=True)
class RequestPool:
    singles: list[dict[str, Any]]
    batches: list[dict[str, Any]]  # {"applications": [...]} bodies of ``batch_size``
    pairs: list[dict[str, Any]]  # {"applications": [female twin, male twin]}


def build_pool(size: int = DEFAULT_SIZE, *, batch_size: int = 100, seed: int = 2024) -> RequestPool:
    columns = generate_applicants(size, seed=seed, id_prefix="LOAD")
    singles = to_records(columns)
    batches = [
        {"applications": singles[start : start + batch_size]}
        for start in range(0, size - batch_size + 1, batch_size)
    ]
    female = to_records(twin(columns, "gender", "female"))
    male = to_records(twin(columns, "gender", "male"))
    pairs = [{"applications": [f, m]} for f, m in zip(female, male, strict=True)]
    return RequestPool(singles=singles, batches=batches, pairs=pairs)


def pool_from_env() -> RequestPool:
    """Pool settings from ``FAIRGATE_LOAD_POOL`` / ``FAIRGATE_LOAD_BATCH`` (locustfiles)."""
    return build_pool(
        int(os.environ.get("FAIRGATE_LOAD_POOL", DEFAULT_SIZE)),
        batch_size=int(os.environ.get("FAIRGATE_LOAD_BATCH", 100)),
    )
