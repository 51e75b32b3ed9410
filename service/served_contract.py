"""The contract of the model a service process is about to serve, read at import.

BentoML reads an API's request type when the service class is declared, so the request
model (``fairgate.contract_request.request_model``) must exist at import. ``on_deployment``
pins ``FAIRGATE_MODEL`` to the concrete tag before any worker starts; each worker imports
this module afterwards and reads the contract of exactly the model it then loads (checked
again in the worker). This never raises: when no model can be read, the synthetic contract
stands in and the deployment check refuses to start, naming the real problem.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import bentoml

from fairgate.artifacts import CONTRACT_FILE, DEFAULT_MODEL_NAME
from fairgate.contract import Contract, builtin_contract, parse_contract


def served_contract(env: Mapping[str, str]) -> Contract:
    """The contract stored with ``FAIRGATE_MODEL`` (default ``fairgate-loan:latest``)."""
    tag = env.get("FAIRGATE_MODEL") or f"{DEFAULT_MODEL_NAME}:latest"
    try:
        text = (Path(bentoml.models.get(tag).path) / CONTRACT_FILE).read_text(encoding="utf-8")
        return parse_contract(text)
    except Exception:  # any failure is reported, with its reason, by the deployment check
        return builtin_contract()
