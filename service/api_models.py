"""Response models. Pydantic models, not dicts: a ``-> dict`` return makes BentoML 1.4
rebuild a JSON schema on every response."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from fairgate.policy import PolicyMode


class Reason(BaseModel):
    code: str = Field(description="Stable code: R- and the feature's name in capitals.")
    text: str = Field(description="In the contract's terms, e.g. 'debt-to-income ratio too high'.")


class Decision(BaseModel):
    application_id: str
    decision: Literal["approve", "deny"]
    approved: bool
    score: float = Field(description="Model probability of approval before the fairness policy.")
    approval_probability: float = Field(description="P(approve) under the group's rule.")
    group: str = Field(description="The applicant's group under the policy's attributes.")
    rule: str = Field(description="Which rule was applied: the group, or unseen:<fallback>.")
    rule_text: str
    policy_version: str
    policy_mode: PolicyMode
    model_version: str = Field(description="The concrete model tag, resolved once per deployment.")
    probe: bool
    reasons: list[Reason] = Field(
        description="A denial's principal reasons, most important first (at most four); "
        "empty when approved. A protected attribute is never a reason."
    )


class BatchDecision(BaseModel):
    count: int
    decisions: list[Decision]


class PolicyView(BaseModel):
    """``GET /policy``: what this deployment serves and how it was trained."""

    model_version: str
    policy_mode: PolicyMode
    policy_version: str = Field(description="The version deciding now (the active one).")
    trained_policy_version: str = Field(description="The version the model was trained with.")
    policy: dict[str, Any] = Field(description="The active version's rules.")
    history: list[dict[str, Any]] = Field(
        description="This model and mode's entries in the policy store, newest first: "
        "versions (parent, author, reason, window, expected effect) and promotions or rollbacks."
    )
    policy_poll_seconds: float = Field(
        description="How often each worker looks for a new active version (0: never)."
    )
    training: dict[str, Any]
    contract: dict[str, Any] = Field(
        description="The loan book's data contract (fields, label, protected attributes, "
        "features); fairgate.contract.contract_from_mapping rebuilds it."
    )
    contract_toml: str = Field(description="The contract file as given to training.")
    synthesis: dict[str, Any] = Field(
        description="Per-field summaries (quantiles, frequencies, rank correlations) the "
        "prober and load tests synthesize applicants from; no training row."
    )
