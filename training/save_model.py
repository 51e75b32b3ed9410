"""Write one trained model to the BentoML model store (training time; loading is
``fairgate/artifacts.py``, which never imports joblib or scikit-learn)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import bentoml
import joblib
import numpy as np

from fairgate.artifacts import (
    CONTRACT_FILE,
    LDA_POLICY_FILE,
    LDA_REASONS_FILE,
    LDA_SCORER_FILE,
    METADATA_FILE,
    POLICY_FILE,
    RANDOMIZED_POLICY_FILE,
    REASONS_FILE,
    SCORER_FILE,
    SKLEARN_FILE,
    SYNTHESIS_FILE,
    sha256_file,
    sign_checksums,
)
from fairgate.contract_features import ContractFeatures
from fairgate.policy import ThresholdPolicy
from fairgate.scorer import Scorer, save_scorer
from training.lda_stage import LdaOutcome


def save_artifacts(
    *,
    name: str,
    scorer: Scorer,
    policy: ThresholdPolicy,
    randomized: ThresholdPolicy,
    features: ContractFeatures,
    contract_text: str,
    synthesis: dict[str, Any],
    reference: np.ndarray,
    metadata: dict[str, Any],
    sklearn_model: Any,
    artifact_key: bytes | None = None,
    lda: LdaOutcome | None = None,
) -> str:
    """Save both policies, the scorer, the contract (as given), the synthesis summaries and
    the model; with ``lda``, the less discriminatory alternative's scorer, policy and
    reasons' reference beside them. Return the tag (``name:version``).

    Every file is checksummed; with ``artifact_key`` the checksum table is signed too.
    """
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        save_scorer(scorer, staging / SCORER_FILE)
        (staging / POLICY_FILE).write_text(json.dumps(policy.to_dict(), indent=2))
        (staging / RANDOMIZED_POLICY_FILE).write_text(json.dumps(randomized.to_dict(), indent=2))
        (staging / CONTRACT_FILE).write_text(contract_text, encoding="utf-8")
        (staging / SYNTHESIS_FILE).write_text(json.dumps(synthesis, indent=1))
        reasons = {"feature_names": list(features.names), "reference": reference.tolist()}
        (staging / REASONS_FILE).write_text(json.dumps(reasons, indent=1))
        if lda is not None:
            save_scorer(lda.scorer, staging / LDA_SCORER_FILE)
            (staging / LDA_POLICY_FILE).write_text(json.dumps(lda.policy.to_dict(), indent=2))
            lda_reasons = {
                "feature_names": list(lda.features.names),
                "reference": lda.reference.tolist(),
            }
            (staging / LDA_REASONS_FILE).write_text(json.dumps(lda_reasons, indent=1))
        body = metadata | {
            "include_sensitive": features.include_sensitive,
            "feature_names": list(features.names),
        }
        (staging / METADATA_FILE).write_text(json.dumps(body, indent=2, sort_keys=True))
        joblib.dump(sklearn_model, staging / SKLEARN_FILE)
        checksums = {f.name: sha256_file(f) for f in sorted(staging.iterdir())}
        recorded: dict[str, Any] = {"checksums": checksums}
        if artifact_key is not None:
            recorded["signature"] = sign_checksums(checksums, artifact_key)
        labels = {
            "policy_version": policy.version,
            "randomized_policy_version": randomized.version,
            "scorer": scorer.kind,
            "constraint": policy.constraint,
            "contract": features.contract.name,
        }
        if lda is not None:
            labels["lda_policy_version"] = lda.policy.version
        with bentoml.models.create(name, labels=labels, metadata=recorded) as model:
            for file in staging.iterdir():
                shutil.copy2(file, model.path_of(file.name))
    return str(model.tag)
