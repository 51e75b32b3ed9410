"""Request bodies generated before a load run starts, so the request loop only sends.

Bodies are synthesized from the target's own contract and recorded field summaries
(``GET /policy``: ``contract``, ``synthesis``), seeded, so a load test speaks whatever loan
book the service was trained on and no training row is ever sent. ``fairgate bench`` compares
endpoints on the default book: ``synthetic_pool`` summarises the synthetic generator instead.

A drift (``loadtests/drift.py``, ``FAIRGATE_DRIFT``) shifts the singles and batches, e.g.
women's incomes scaled by 0.8; ``drifted_applications`` gives such bodies without Locust.
"""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from fairgate.contract import Contract, contract_from_mapping
from fairgate.contract_synth import Synthesis, record_marginals, synthesize
from fairgate.contract_twins import attribute_values, twin
from fairgate.generator import generate_applicants
from fairgate.schema import SYNTHETIC_CONTRACT
from loadtests.drift import Drift, apply_drift, parse_drift

DEFAULT_SIZE = 5000


@dataclass(frozen=True)
class RequestPool:
    singles: list[dict[str, Any]]
    batches: list[dict[str, Any]]  # {"applications": [...]} bodies of ``batch_size``
    pairs: list[dict[str, Any]]  # {"applications": [twin a, twin b]} in the first attribute


def records(contract: Contract, columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Rows of a column table as JSON-ready dicts in contract field order."""
    names = contract.field_names
    rows = zip(*(columns[name].tolist() for name in names), strict=True)
    return [dict(zip(names, row, strict=True)) for row in rows]


def _applications(
    contract: Contract, synthesis: Synthesis, size: int, seed: int
) -> tuple[dict[str, np.ndarray], list[dict[str, Any]]]:
    columns = synthesize(contract, synthesis.population, size, seed=seed, id_prefix="LOAD")
    return columns, records(contract, columns)


def build_pool(
    contract: Contract,
    synthesis: Synthesis,
    size: int = DEFAULT_SIZE,
    *,
    batch_size: int = 100,
    seed: int = 2024,
    drift: Sequence[Drift] = (),
) -> RequestPool:
    """``size`` applicants like the book's (population marginals), their batches, and twin
    pairs in the prober's first attribute (its first two values). ``drift`` shifts the
    singles and the batches (``parse_drift``), never the pairs."""
    columns, applications = _applications(contract, synthesis, size, seed)
    singles = apply_drift(applications, drift, contract)
    batches = [
        {"applications": singles[start : start + batch_size]}
        for start in range(0, size - batch_size + 1, batch_size)
    ]
    # The pairs are twins from the undrifted columns: a probe pair differs in the attribute
    # and nothing else. A conditional drift (incomes of women only) would move one twin and
    # not the other, and the pair would measure the drift instead of the model's treatment.
    attribute = contract.groups.prober[0]
    a, b = attribute_values(contract, attribute, synthesis.population)[:2]
    first = records(contract, twin(contract, columns, attribute, a))
    second = records(contract, twin(contract, columns, attribute, b))
    pairs = [{"applications": [x, y]} for x, y in zip(first, second, strict=True)]
    return RequestPool(singles=singles, batches=batches, pairs=pairs)


def drifted_applications(
    contract: Contract,
    synthesis: Synthesis,
    size: int,
    drift: str | Sequence[Drift],
    seed: int = 2024,
) -> list[dict[str, Any]]:
    """``size`` request bodies as the load pool's singles (same ``seed``, same bodies), with
    ``drift`` (a spec such as ``"annual_income*0.8@gender=female"``, or parsed drifts)
    applied. Raises ``DriftError`` for a spec that does not fit ``contract``.

    >>> from fairgate.contract_synth import marginals_from_contract
    >>> from fairgate.schema import SYNTHETIC_CONTRACT as book
    >>> synthesis = Synthesis(marginals_from_contract(book))
    >>> bodies = drifted_applications(book, synthesis, 100, "age*1.1@gender=male", seed=1)
    >>> len(bodies)
    100
    """
    drifts = parse_drift(drift, contract) if isinstance(drift, str) else drift
    return apply_drift(_applications(contract, synthesis, size, seed)[1], drifts, contract)


def target_policy(host: str) -> tuple[Contract, Synthesis]:
    """The contract and recorded summaries of the service at ``host`` (``GET /policy``)."""
    # urllib, not httpx: inside Locust's gevent-patched process httpx's transport breaks.
    with urllib.request.urlopen(f"{host.rstrip('/')}/policy/", timeout=30) as response:
        body = json.load(response)
    return contract_from_mapping(body["contract"]), Synthesis.from_dict(body["synthesis"])


def target_pool(host: str, size: int, *, batch_size: int = 100, drift: str = "") -> RequestPool:
    """The pool for the service at ``host``, from its ``GET /policy``; ``drift`` is a spec
    checked against that contract (``DriftError`` if it does not fit)."""
    contract, synthesis = target_policy(host)
    drifts = parse_drift(drift, contract)
    return build_pool(contract, synthesis, size, batch_size=batch_size, drift=drifts)


def synthetic_pool(size: int, *, batch_size: int = 100) -> RequestPool:
    """The default book's pool without asking a service (the bench's floor endpoints have
    no ``/policy``): summaries of the synthetic generator's applicants."""
    source = generate_applicants(20_000, seed=7)
    synthesis = Synthesis(record_marginals(SYNTHETIC_CONTRACT, source))
    return build_pool(SYNTHETIC_CONTRACT, synthesis, size, batch_size=batch_size)


def _settings() -> tuple[int, int]:
    size = int(os.environ.get("FAIRGATE_LOAD_POOL", DEFAULT_SIZE))
    return size, int(os.environ.get("FAIRGATE_LOAD_BATCH", 100))


@cache
def pool_for(host: str, drift: str = "") -> RequestPool:
    """One pool per target per Locust process (``FAIRGATE_LOAD_POOL``/``_BATCH`` sizes),
    ``drift`` (the locustfile's ``FAIRGATE_DRIFT``) applied."""
    size, batch = _settings()
    return target_pool(host, size, batch_size=batch, drift=drift)


@cache
def synthetic_pool_from_env() -> RequestPool:
    size, batch = _settings()
    return synthetic_pool(size, batch_size=batch)
