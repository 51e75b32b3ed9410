"""What the prober knows about the endpoint it audits: its contract, the field summaries to
synthesize applicants from, and (for a fairgate service) the policy.

A fairgate service publishes all three on ``GET /policy``; they are read every cycle, so a
redeployed model with another contract is probed in its own terms. An endpoint that is not
fairgate is audited with ``--contract FILE``: applicants then come from the contract alone
(``fairgate.contract_synth.marginals_from_contract``) and no probe can be placed relative to
a threshold the prober does not know.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from fairgate.contract import Contract, ContractError, contract_from_mapping, load_contract
from fairgate.contract_synth import Synthesis, marginals_from_contract
from fairgate.policy import ThresholdPolicy
from monitoring.client import ProbeError


class TargetError(ProbeError):
    """The target's contract or summaries cannot be read; ``kind`` labels the errors metric."""


@dataclass(frozen=True)
class ProbeTarget:
    contract: Contract
    synthesis: Synthesis
    policy: ThresholdPolicy | None = None
    source: str = ""
    # False when the summaries come from the contract alone: there is no book, so no
    # book median to scale the gap by.
    recorded: bool = True

    def attributes(self, wanted: tuple[str, ...]) -> tuple[str, ...]:
        """``wanted`` (or, when empty, the contract's ``groups.prober``), each checked."""
        names = wanted or self.contract.groups.prober
        known = tuple(p.name for p in self.contract.protected)
        unknown = [n for n in names if n not in known]
        if unknown:
            raise TargetError(
                "contract",
                f"{self.source}: attribute(s) {unknown} not in contract "
                f"{self.contract.name!r}; it has {known}",
            )
        return names


def target_from_policy(payload: dict[str, Any], source: str) -> ProbeTarget:
    """The target described by a fairgate ``GET /policy`` body."""
    try:
        contract = contract_from_mapping(payload["contract"])
        synthesis = Synthesis.from_dict(payload["synthesis"])
        policy = ThresholdPolicy.from_dict(payload["policy"])
    except (KeyError, TypeError, ValueError, ContractError) as error:
        raise TargetError(
            "contract", f"{source}: GET /policy has no readable contract/synthesis: {error}"
        ) from error
    return ProbeTarget(contract, synthesis, policy, source)


def fetch_target(client: httpx.Client, url: str) -> ProbeTarget:
    """Read the target from ``{url}/policy/`` (raises ``TargetError`` with an error kind)."""
    try:
        response = client.get(f"{url}/policy/")
    except httpx.TimeoutException as error:
        raise TargetError("timeout", f"{url}/policy/: timed out") from error
    except httpx.HTTPError as error:
        raise TargetError("connection", f"{url}/policy/: {error}") from error
    if response.status_code >= 400:
        kind = "http_5xx" if response.status_code >= 500 else "http_4xx"
        raise TargetError(
            kind,
            f"{url}/policy/: HTTP {response.status_code}; not a fairgate service? "
            "give its contract with --contract FILE",
        )
    try:
        payload = response.json()
    except ValueError as error:
        raise TargetError("bad_response", f"{url}/policy/: not JSON") from error
    return target_from_policy(payload, url)


def target_from_contract(path: Path, source: str) -> ProbeTarget:
    """A foreign endpoint described only by a contract file."""
    contract = load_contract(path)
    synthesis = Synthesis(marginals_from_contract(contract))
    return ProbeTarget(contract, synthesis, None, source, recorded=False)
