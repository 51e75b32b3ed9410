"""The model a service process serves, looked up at import: the stored contract or a reason,
never the built-in contract in its place (``service/served_contract.py``)."""

import os
import subprocess
import sys
from pathlib import Path

import bentoml
import pytest
from bentoml.exceptions import BentoMLException

from fairgate.artifacts import CONTRACT_FILE, load_serving_bundle
from service.launch import REPO
from service.served_contract import (
    NOT_THE_BENTO_S_MODEL,
    ServedModelError,
    names_model,
    served_model,
)
from training.save_model import save_artifacts

NAME = "fairgate-served"


@pytest.fixture(scope="module")
def saved(trained) -> tuple[str, Path]:
    """A copy of the session's model under a name of its own: (tag, its directory)."""
    tag = save_artifacts(
        name=NAME, scorer=trained.scorer, policy=trained.policy, randomized=trained.randomized,
        features=trained.feature_builder, contract_text=trained.contract_text,
        synthesis=trained.synthesis, reference=trained.reference, metadata={},
        sklearn_model=trained.model, lda=trained.lda,
    )  # fmt: skip
    return tag, Path(bentoml.models.get(tag).path)


def test_the_tag_is_resolved_and_the_contract_is_the_model_s(saved):
    tag, _ = saved
    served = served_model({"FAIRGATE_MODEL": NAME})
    assert served.tag == tag
    assert served.contract == load_serving_bundle(tag).contract


def test_no_model_is_an_error_that_says_how_to_get_one():
    with pytest.raises(ServedModelError, match="no model 'nosuch-model:latest'") as raised:
        served_model({"FAIRGATE_MODEL": "nosuch-model:latest"})
    assert "train one with `fairgate train`" in str(raised.value)
    # BentoML's CLI prints a BentoMLException as its one-line error, not a traceback.
    assert isinstance(raised.value, BentoMLException)


def test_a_malformed_tag_names_the_setting():
    with pytest.raises(ServedModelError, match=r"^FAIRGATE_MODEL='a:b:c': not a model tag"):
        served_model({"FAIRGATE_MODEL": "a:b:c"})


def test_an_unreadable_contract_is_reported_never_replaced(trained):
    tag = save_artifacts(
        name="fairgate-served-broken", scorer=trained.scorer, policy=trained.policy,
        randomized=trained.randomized, features=trained.feature_builder,
        contract_text=trained.contract_text, synthesis=trained.synthesis,
        reference=trained.reference, metadata={}, sklearn_model=trained.model, lda=trained.lda,
    )  # fmt: skip
    (Path(bentoml.models.get(tag).path) / CONTRACT_FILE).write_text("[fields\nnot toml")
    with pytest.raises(ServedModelError, match=rf"^{tag}: cannot read its contract \(contract"):
        served_model({"FAIRGATE_MODEL": tag})


def test_from_a_bento_its_model_is_served(saved):
    tag, _ = saved
    assert served_model({}, packed=tag).tag == tag
    assert served_model({"FAIRGATE_MODEL": f"{NAME}:latest"}, packed=tag).tag == tag
    with pytest.raises(ServedModelError) as raised:
        served_model({"FAIRGATE_MODEL": "german-loan:latest"}, packed=tag)
    assert str(raised.value) == NOT_THE_BENTO_S_MODEL.format(
        requested="german-loan:latest", packed=tag
    )


@pytest.mark.parametrize(
    ("requested", "concrete", "names"),
    [
        ("x", "x:1", True),
        ("x:latest", "x:1", True),
        ("x:1", "x:1", True),
        ("x:2", "x:1", False),
        ("y:latest", "x:1", False),
        ("x-y", "x:1", False),
    ],
)
def test_names_model(requested, concrete, names):
    assert names_model(requested, concrete) is names


@pytest.mark.integration
@pytest.mark.parametrize("command", [["serve", "service.service:DecisionService"], ["build"]])
def test_plain_bentoml_without_a_model_says_so_in_one_line(command, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", *command], cwd=REPO,
        # The default model, as a user who set nothing: the suite may have FAIRGATE_MODEL.
        env={k: v for k, v in os.environ.items() if k != "FAIRGATE_MODEL"}
        | {"BENTOML_HOME": str(tmp_path)}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    log = " ".join((result.stdout + result.stderr).split())
    assert "no model 'fairgate-loan:latest' in the BentoML model store" in log
    assert "train one with `fairgate train`" in log
    assert "Traceback" not in log
