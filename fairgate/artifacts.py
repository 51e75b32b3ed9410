"""Versioned artifacts in the BentoML model store, checksummed at save and verified at load.

Serving needs only ``scorer.npz`` (numpy arrays, read without pickle) and ``policy.json``.
The scikit-learn model is kept too (``sklearn_model.joblib``) for offline analysis; the
service never unpickles it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import bentoml
import joblib
from bentoml.exceptions import NotFound

from fairgate.features import FeatureSpec
from fairgate.policy import ThresholdPolicy
from fairgate.scorer import Scorer, load_scorer, save_scorer

DEFAULT_MODEL_NAME: Final[str] = "fairgate-loan"
POLICY_MODES: Final[tuple[str, ...]] = ("mitigated", "unmitigated")
SCORER_FILE: Final[str] = "scorer.npz"
POLICY_FILE: Final[str] = "policy.json"
METADATA_FILE: Final[str] = "metadata.json"
SKLEARN_FILE: Final[str] = "sklearn_model.joblib"
SERVING_FILES: Final[tuple[str, ...]] = (SCORER_FILE, POLICY_FILE, METADATA_FILE)
NO_MODEL: Final[str] = (
    "no model {tag!r} in the BentoML model store ({store}); train one with `fairgate train`"
)


class ArtifactError(RuntimeError):
    """Artifacts missing, corrupted or tampered with: the service must not start on them."""


class ModelNotFound(ArtifactError):
    """No such model in the store (the one case where training a fresh one is the fix)."""


@dataclass(frozen=True)
class ServingBundle:
    """Everything the online path needs, verified."""

    tag: str
    scorer: Scorer
    policy: ThresholdPolicy
    spec: FeatureSpec
    metadata: dict[str, Any]

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


def save_artifacts(
    *,
    name: str,
    scorer: Scorer,
    policy: ThresholdPolicy,
    spec: FeatureSpec,
    metadata: dict[str, Any],
    sklearn_model: Any,
) -> str:
    """Write one versioned model to the store; return its tag (``name:version``)."""
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        save_scorer(scorer, staging / SCORER_FILE)
        (staging / POLICY_FILE).write_text(json.dumps(policy.to_dict(), indent=2))
        body = metadata | {
            "include_sensitive": spec.include_sensitive,
            "feature_names": list(spec.names),
        }
        (staging / METADATA_FILE).write_text(json.dumps(body, indent=2, sort_keys=True))
        joblib.dump(sklearn_model, staging / SKLEARN_FILE)
        checksums = {f.name: sha256_file(f) for f in sorted(staging.iterdir())}
        labels = {
            "policy_version": policy.version,
            "scorer": scorer.kind,
            "constraint": policy.constraint,
        }
        with bentoml.models.create(name, labels=labels, metadata={"checksums": checksums}) as model:
            for file in staging.iterdir():
                shutil.copy2(file, model.path_of(file.name))
    return str(model.tag)


def load_serving_bundle(
    tag: str = f"{DEFAULT_MODEL_NAME}:latest", policy_mode: str = "mitigated"
) -> ServingBundle:
    """Load and verify a model for serving. Raises ``ArtifactError`` with an actionable message.

    ``policy_mode="unmitigated"`` serves the trained model with one 0.5 threshold instead of
    its group rules, so the bias the rules correct is visible on the same dashboards.
    """
    if policy_mode not in POLICY_MODES:
        raise ArtifactError(f"policy mode must be one of {POLICY_MODES}, got {policy_mode!r}")
    try:
        model = bentoml.models.get(tag)
    except NotFound as error:
        home = os.environ.get("BENTOML_HOME", "~/bentoml")
        raise ModelNotFound(NO_MODEL.format(tag=tag, store=home)) from error
    root = Path(model.path)
    checksums: dict[str, str] = (model.info.metadata or {}).get("checksums", {})
    missing = [file for file in SERVING_FILES if file not in checksums]
    if missing:
        raise ArtifactError(f"{model.tag}: no recorded checksum for {missing}; retrain the model")
    # Every file recorded at training is verified, the ones serving never opens included:
    # a swapped pickle next to the served arrays is tampering all the same.
    for file in sorted(checksums):
        path = root / file
        if not path.is_file():
            raise ArtifactError(f"{model.tag}: artifact file {file} is missing")
        if sha256_file(path) != checksums[file]:
            raise ArtifactError(
                f"{model.tag}: {file} does not match the checksum recorded at training "
                "(corrupted or tampered with); refusing to serve it"
            )
    try:
        metadata = json.loads((root / METADATA_FILE).read_text())
        policy = ThresholdPolicy.from_dict(json.loads((root / POLICY_FILE).read_text()))
        scorer = load_scorer(root / SCORER_FILE)
    except (ValueError, KeyError, OSError) as error:
        raise ArtifactError(f"{model.tag}: unreadable artifact: {error}") from error
    spec = FeatureSpec(include_sensitive=bool(metadata["include_sensitive"]))
    if list(spec.names) != metadata["feature_names"]:
        raise ArtifactError(f"{model.tag}: feature names differ from this code's feature builder")
    bundle = ServingBundle(
        tag=str(model.tag), scorer=scorer, policy=policy, spec=spec, metadata=metadata
    )
    return bundle.unmitigated() if policy_mode == "unmitigated" else bundle
