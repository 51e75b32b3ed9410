"""Faults: corrupted or mis-signed artifacts and bad configuration refuse to serve; no pickle
is loaded at serving."""

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import bentoml
import joblib
import numpy as np
import pytest
import yaml

from fairgate.artifacts import (
    LDA_POLICY_FILE,
    LDA_REASONS_FILE,
    LDA_SCORER_FILE,
    POLICY_FILE,
    RANDOMIZED_POLICY_FILE,
    SCORER_FILE,
    SKLEARN_FILE,
    ArtifactError,
    load_serving_bundle,
    sha256_file,
)
from service.launch import REPO
from service.server_process import free_port
from training.save_model import save_artifacts

KEY = b"artifact-key-0123456789abcdef"


def _save(trained, key: bytes | None = None) -> tuple[str, Path]:
    tag = save_artifacts(
        name="fairgate-fault",
        scorer=trained.scorer,
        policy=trained.policy,
        randomized=trained.randomized,
        features=trained.feature_builder,
        contract_text=trained.contract_text,
        synthesis=trained.synthesis,
        reference=trained.reference,
        metadata={"purpose": "fault test"},
        sklearn_model=trained.model,
        artifact_key=key,
        lda=trained.lda,
    )
    return tag, Path(bentoml.models.get(tag).path)


@pytest.fixture
def fresh_model(trained):
    """A private copy of the session's model, free to damage."""
    return _save(trained)


@pytest.fixture
def signed_model(trained):
    return _save(trained, KEY)


def _record_checksum(root: Path, file: str) -> None:
    """What an attacker with write access to the whole store would also do."""
    info = yaml.safe_load((root / "model.yaml").read_text())
    info["metadata"]["checksums"][file] = sha256_file(root / file)
    (root / "model.yaml").write_text(yaml.safe_dump(info))


def test_intact_copy_loads(fresh_model):
    tag, _ = fresh_model
    assert load_serving_bundle(tag).tag == tag


@pytest.mark.parametrize(
    "file",
    [SCORER_FILE, POLICY_FILE, RANDOMIZED_POLICY_FILE, SKLEARN_FILE,
     LDA_SCORER_FILE, LDA_POLICY_FILE, LDA_REASONS_FILE],
)  # fmt: skip
def test_corrupted_file_refuses_to_load(fresh_model, file):
    tag, root = fresh_model
    data = (root / file).read_bytes()
    (root / file).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=rf"{file} does not match the checksum.*\(corrupted\)"):
        load_serving_bundle(tag)


def test_signed_model_loads_with_its_key_and_without_one(signed_model):
    tag, _ = signed_model
    assert load_serving_bundle(tag, artifact_key=KEY).tag == tag
    assert load_serving_bundle(tag).tag == tag  # no key: checksums only, as unsigned


def test_unsigned_model_is_refused_when_a_key_is_set(fresh_model):
    tag, _ = fresh_model
    with pytest.raises(ArtifactError, match="not signed, but FAIRGATE_ARTIFACT_KEY is set"):
        load_serving_bundle(tag, artifact_key=KEY)


def test_rewritten_checksum_of_a_signed_model_is_refused(signed_model):
    tag, root = signed_model
    text = (root / POLICY_FILE).read_text()
    (root / POLICY_FILE).write_text(text.replace('"objective"', '"objective" ', 1))
    _record_checksum(root, POLICY_FILE)
    with pytest.raises(ArtifactError, match="signature does not match"):
        load_serving_bundle(tag, artifact_key=KEY)


def test_a_model_signed_with_another_key_is_refused(signed_model):
    tag, _ = signed_model
    with pytest.raises(ArtifactError, match="signature does not match"):
        load_serving_bundle(tag, artifact_key=KEY[::-1])


@pytest.mark.parametrize(("mode", "file"), [("mitigated", POLICY_FILE), ("lda", LDA_POLICY_FILE)])
def test_tampered_threshold_refuses_to_load(fresh_model, mode, file):
    tag, root = fresh_model
    text = (root / file).read_text()
    (root / file).write_text(text.replace('"threshold0": 0.', '"threshold0": 0.0', 1))
    with pytest.raises(ArtifactError, match=rf"{file} does not match the checksum"):
        load_serving_bundle(tag, mode)
    # Even with the checksum rewritten, the policy's content hash no longer matches its version.
    _record_checksum(root, file)
    with pytest.raises(ArtifactError, match="does not match its version hash"):
        load_serving_bundle(tag, mode)


def test_missing_file_refuses_to_load(fresh_model):
    tag, root = fresh_model
    (root / SCORER_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"scorer\.npz is missing"):
        load_serving_bundle(tag)


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch /tmp/fairgate-pwned",))


@pytest.mark.parametrize(("mode", "file"), [("mitigated", SCORER_FILE), ("lda", LDA_SCORER_FILE)])
def test_a_pickle_inside_the_scorer_is_never_unpickled(fresh_model, mode, file):
    tag, root = fresh_model
    with np.load(root / file, allow_pickle=False) as data:
        arrays = dict(data)
    arrays["coef"] = np.array([_Payload()], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    (root / file).write_bytes(buffer.getvalue())
    _record_checksum(root, file)
    with pytest.raises(ArtifactError, match="unreadable artifact"):
        load_serving_bundle(tag, mode)
    assert not Path("/tmp/fairgate-pwned").exists()


@pytest.mark.parametrize("mode", ["lda", "mitigated"])
def test_serving_loads_no_pickle_at_all(fresh_model, monkeypatch, mode):
    tag, _ = fresh_model

    def refuse(*_args, **_kwargs):
        raise AssertionError("serving tried to unpickle")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(joblib, "load", refuse)
    assert load_serving_bundle(tag, mode).scorer is not None


@pytest.mark.integration
def test_bentoml_serve_refuses_a_tampered_model_with_a_clear_message(fresh_model):
    tag, root = fresh_model
    (root / SCORER_FILE).write_bytes(b"\x00" * 100)
    port = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service.service:DecisionService",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=os.environ | {"FAIRGATE_MODEL": tag}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "scorer.npz does not match the checksum recorded at training" in log
    assert "refusing to serve it" in log


@pytest.mark.integration
def test_bentoml_serve_lists_every_configuration_error_and_exits(fresh_model):
    tag, _ = fresh_model
    port = free_port()
    bad = {
        "FAIRGATE_MODEL": tag,
        "FAIRGATE_POLICY": "randomized",  # without FAIRGATE_DRAW_KEY
        "FAIRGATE_GC": "aggressive",
        "FAIRGATE_MAX_BODY_BYTES": "2MB",
    }
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service.service:DecisionService",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=os.environ | bad, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "fairgate: refusing to start: invalid configuration" in log
    for name in ("FAIRGATE_DRAW_KEY", "FAIRGATE_GC='aggressive'", "FAIRGATE_MAX_BODY_BYTES='2MB'"):
        assert name in log
    # Stopped before any worker: no worker ever logged a start-up.
    assert "Started server process" not in log


@pytest.mark.integration
def test_plain_bentoml_serve_refuses_a_worker_count_it_would_not_apply(fresh_model):
    tag, _ = fresh_model
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "serve", "service.service:DecisionService",
         "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=REPO, env=os.environ | {"FAIRGATE_MODEL": tag, "FAIRGATE_WORKERS": "2"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    log = result.stdout + result.stderr
    assert "FAIRGATE_WORKERS=2 but BentoML is configured for 1 worker(s)" in log
