"""Versioned artifacts in the BentoML model store, verified at load (saving is training's:
``training/save_model.py``).

Serving needs only ``scorer.npz`` (numpy arrays, read without pickle), one policy file:
``policy.json`` (the deterministic ``mitigated`` policy) or ``policy_randomized.json``, the
loan book's contract (``contract.toml``, from which the request model, the features and the
group keys are derived) and ``synthesis.json`` (field summaries the prober and the load tests
synthesize applicants from; no training row). The ``lda`` mode (the default) reads its own
three files instead of the scorer, the policy and the reasons: ``lda_scorer.npz`` (the less
discriminatory alternative, a logistic model of the non-protected features),
``lda_policy.json`` (its one cut-off for everyone) and ``lda_reasons.json``; a model trained
with ``--mitigation thresholds`` has none of them. The
scikit-learn model is kept too (``sklearn_model.joblib``) for offline analysis; the service
never unpickles it.

SHA-256 checksums recorded beside the files detect corruption, not tampering: whoever can
rewrite a file can rewrite its checksum. With ``FAIRGATE_ARTIFACT_KEY`` set at training and
serving, the checksum table is signed (HMAC-SHA256) and a model whose signature is missing or
wrong is refused: then an edit without the key is detected.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

import bentoml
import numpy as np
from bentoml.exceptions import NotFound

from fairgate.contract import Contract, ContractError, parse_contract
from fairgate.contract_features import ContractFeatures
from fairgate.policy import DEFAULT_POLICY_MODE, POLICY_MODES, ThresholdPolicy
from fairgate.scorer import Scorer, load_scorer

DEFAULT_MODEL_NAME: Final[str] = "fairgate-loan"
# The tag served, probed and load-tested when none is given: the newest default model.
DEFAULT_MODEL: Final[str] = f"{DEFAULT_MODEL_NAME}:latest"
SCORER_FILE: Final[str] = "scorer.npz"
POLICY_FILE: Final[str] = "policy.json"
RANDOMIZED_POLICY_FILE: Final[str] = "policy_randomized.json"
METADATA_FILE: Final[str] = "metadata.json"
SKLEARN_FILE: Final[str] = "sklearn_model.joblib"
CONTRACT_FILE: Final[str] = "contract.toml"
SYNTHESIS_FILE: Final[str] = "synthesis.json"
REASONS_FILE: Final[str] = "reasons.json"
LDA_SCORER_FILE: Final[str] = "lda_scorer.npz"
LDA_POLICY_FILE: Final[str] = "lda_policy.json"
LDA_REASONS_FILE: Final[str] = "lda_reasons.json"
# The less discriminatory alternative's files: present unless trained with
# ``--mitigation thresholds``, and then checksummed like the others.
LDA_FILES: Final[tuple[str, ...]] = (LDA_SCORER_FILE, LDA_POLICY_FILE, LDA_REASONS_FILE)
SERVING_FILES: Final[tuple[str, ...]] = (
    SCORER_FILE,
    POLICY_FILE,
    RANDOMIZED_POLICY_FILE,
    METADATA_FILE,
    CONTRACT_FILE,
    SYNTHESIS_FILE,
    REASONS_FILE,
)
NO_MODEL: Final[str] = (
    "no model {tag!r} in the BentoML model store ({store}); train one with `fairgate train`"
)
NO_LDA: Final[str] = (
    "{tag}: policy 'lda' needs the less discriminatory alternative, but this model was "
    "trained with --mitigation thresholds (no {files}); serve another policy "
    "(FAIRGATE_POLICY=mitigated, or fairgate serve --policy mitigated), or retrain with "
    "`fairgate train --mitigation lda` (the default)"
)
LDA_NOT_BLIND: Final[str] = (
    "{tag}: the lda model's features ({names}) are not its contract's non-protected features"
)


class ArtifactError(RuntimeError):
    """Artifacts missing, corrupted or mis-signed: the service must not start on them."""


class ModelNotFound(ArtifactError):
    """No such model in the store (the one case where training a fresh one is the fix)."""


@dataclass(frozen=True)
class ServingBundle:
    """Everything the online path needs, verified."""

    tag: str
    scorer: Scorer
    policy: ThresholdPolicy
    features: ContractFeatures  # its ``contract`` is the served loan book's
    metadata: dict[str, Any] = field(default_factory=dict)
    synthesis: dict[str, Any] = field(default_factory=dict)
    contract_text: str = ""
    # The reasons' reference applicant (model columns); None: denials carry no reasons.
    reference: np.ndarray | None = None

    @property
    def contract(self) -> Contract:
        return self.features.contract

    def unmitigated(self) -> ServingBundle:
        """The same model with one 0.5 threshold for all groups (the pre-mitigation baseline)."""
        policy = ThresholdPolicy.single_threshold(
            attributes=self.policy.attributes, groups=list(self.policy.rules)
        )
        return replace(self, policy=policy)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sign_checksums(checksums: dict[str, str], key: bytes) -> str:
    """HMAC-SHA256 of the checksum table in a canonical JSON form."""
    body = json.dumps(checksums, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def resolve_tag(tag: str) -> str:
    """The concrete ``name:version`` a tag such as ``DEFAULT_MODEL`` means right now."""
    try:
        return str(bentoml.models.get(tag).tag)
    except NotFound as error:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise ModelNotFound(NO_MODEL.format(tag=tag, store=home)) from error


def load_serving_bundle(
    tag: str = DEFAULT_MODEL,
    policy_mode: str = DEFAULT_POLICY_MODE,
    *,
    artifact_key: bytes | None = None,
) -> ServingBundle:
    """Load and verify a model for serving. Raises ``ArtifactError`` with an actionable message.

    ``policy_mode``: ``lda`` (the less discriminatory alternative: its own attribute-blind
    model, one cut-off for everyone), ``mitigated`` (deterministic group thresholds),
    ``randomized`` (fairlearn's rule) or ``unmitigated`` (the trained model with one 0.5
    threshold, so the bias the rules correct is visible on the same dashboards). With
    ``artifact_key`` the checksum table must carry a valid signature.
    """
    if policy_mode not in POLICY_MODES:
        raise ArtifactError(f"policy mode must be one of {POLICY_MODES}, got {policy_mode!r}")
    try:
        model = bentoml.models.get(tag)
    except NotFound as error:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise ModelNotFound(NO_MODEL.format(tag=tag, store=home)) from error
    root = Path(model.path)
    recorded = model.info.metadata or {}
    checksums: dict[str, str] = recorded.get("checksums", {})
    if artifact_key is not None:
        signature = recorded.get("signature")
        if not isinstance(signature, str):
            raise ArtifactError(
                f"{model.tag}: not signed, but FAIRGATE_ARTIFACT_KEY is set; "
                "retrain with the key to sign it"
            )
        if not hmac.compare_digest(signature, sign_checksums(checksums, artifact_key)):
            raise ArtifactError(
                f"{model.tag}: signature does not match FAIRGATE_ARTIFACT_KEY "
                "(tampered with, or signed with another key); refusing to serve it"
            )
    missing = [file for file in SERVING_FILES if file not in checksums]
    if missing:
        raise ArtifactError(f"{model.tag}: no recorded checksum for {missing}; retrain the model")
    if policy_mode == "lda" and not all(file in checksums for file in LDA_FILES):
        raise ArtifactError(NO_LDA.format(tag=model.tag, files=", ".join(LDA_FILES)))
    # Every file recorded at training is verified, the ones serving never opens included:
    # a damaged pickle next to the served arrays means the model is not what was trained.
    for file in sorted(checksums):
        path = root / file
        if not path.is_file():
            raise ArtifactError(f"{model.tag}: artifact file {file} is missing")
        if sha256_file(path) != checksums[file]:
            raise ArtifactError(
                f"{model.tag}: {file} does not match the checksum recorded at training "
                "(corrupted); refusing to serve it"
            )
    lda = policy_mode == "lda"
    policy_file = {"randomized": RANDOMIZED_POLICY_FILE, "lda": LDA_POLICY_FILE}.get(
        policy_mode, POLICY_FILE
    )
    try:
        metadata = json.loads((root / METADATA_FILE).read_text())
        policy = ThresholdPolicy.from_dict(json.loads((root / policy_file).read_text()))
        scorer = load_scorer(root / (LDA_SCORER_FILE if lda else SCORER_FILE))
        contract_text = (root / CONTRACT_FILE).read_text(encoding="utf-8")
        contract = parse_contract(contract_text)
        synthesis = json.loads((root / SYNTHESIS_FILE).read_text())
        reasons = json.loads((root / (LDA_REASONS_FILE if lda else REASONS_FILE)).read_text())
    except ContractError as error:
        raise ArtifactError(f"{model.tag}: its contract no longer loads: {error}") from error
    except (ValueError, KeyError, OSError) as error:
        raise ArtifactError(f"{model.tag}: unreadable artifact: {error}") from error
    if lda:
        # Its own model, blind by construction: whatever the main model reads, this one is
        # built on the contract's non-protected features only.
        features = ContractFeatures(contract, include_sensitive=False)
        if reasons["feature_names"] != list(features.names):
            names = ", ".join(reasons["feature_names"])
            raise ArtifactError(LDA_NOT_BLIND.format(tag=model.tag, names=names))
        if policy.mode != "lda" or policy.randomized:
            raise ArtifactError(f"{model.tag}: {LDA_POLICY_FILE} is not an lda policy")
        metadata = _lda_metadata(metadata, features)
    else:
        features = ContractFeatures(contract, include_sensitive=bool(metadata["include_sensitive"]))
        names = list(features.names)
        if names != metadata["feature_names"] or reasons["feature_names"] != names:
            raise ArtifactError(f"{model.tag}: feature names differ from its contract's features")
    bundle = ServingBundle(
        tag=str(model.tag),
        scorer=scorer,
        policy=policy,
        features=features,
        metadata=metadata,
        synthesis=synthesis,
        contract_text=contract_text,
        reference=np.asarray(reasons["reference"], dtype=np.float64),
    )
    return bundle.unmitigated() if policy_mode == "unmitigated" else bundle


def _lda_metadata(metadata: dict[str, Any], features: ContractFeatures) -> dict[str, Any]:
    """The training metadata as the lda bundle shows it: the served model's features (blind),
    with the main model's kept under ``main_model`` for the reader comparing the two."""
    return metadata | {
        "include_sensitive": False,
        "feature_names": list(features.names),
        "main_model": {
            "include_sensitive": metadata.get("include_sensitive"),
            "feature_names": metadata.get("feature_names"),
        },
    }
