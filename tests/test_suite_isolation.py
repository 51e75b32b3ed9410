"""The suite never touches the user's BentoML home, even when BENTOML_HOME is exported."""

import os
import subprocess
import sys

import pytest

from service.launch import REPO


@pytest.mark.integration
def test_session_fixtures_leave_an_exported_home_untouched(tmp_path):
    sentinel = tmp_path / "user-bentoml-home"
    (sentinel / "models").mkdir(parents=True)
    marker = sentinel / "models" / "keep.txt"
    marker.write_text("the user's store")
    before = sorted(p.relative_to(sentinel) for p in sentinel.rglob("*"))
    # One test that trains and saves through the session fixture, in its own pytest run.
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_training.py::test_reports_and_artifacts_are_written"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env=os.environ | {"BENTOML_HOME": str(sentinel), "FAIRGATE_MODEL": "user-model:v1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "1 passed" in result.stdout
    assert sorted(p.relative_to(sentinel) for p in sentinel.rglob("*")) == before
    assert marker.read_text() == "the user's store"
