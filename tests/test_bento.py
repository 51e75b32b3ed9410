"""The Bento as shipped: ``bentoml build`` from this checkout packs the model and only the
serving code, and ``bentoml serve`` runs it from an empty directory; its Python packages are
pyproject.toml's (``scripts/bentofile.py``).

The build runs in a BentoML home of its own (the suite's model imported into it), so its
Bento store, model store and Prometheus files are this module's alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import bentoml
import httpx
import pytest

from fairgate.artifacts import load_serving_bundle
from scripts.bentofile import (
    NOT_LISTED,
    NOT_SHIPPED,
    bento_packages,
    dependencies,
    render,
)
from service.launch import REPO
from service.server_process import ServerProcess, free_port, temporary_log

# The top-level folders of the Bento's source: what serving needs, nothing else.
SHIPPED = {"fairgate", "record", "service"}


def run(command: list[str], home: Path, cwd: Path = REPO, **env: str) -> str:
    result = subprocess.run(
        command, cwd=cwd, env=os.environ | {"BENTOML_HOME": str(home)} | env,
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def bentoml_cli(*args: str, home: Path, cwd: Path = REPO, **env: str) -> str:
    return run([sys.executable, "-m", "bentoml", *args], home, cwd, **env)


@dataclass(frozen=True)
class Built:
    home: Path  # its BentoML home
    info: dict  # `bentoml get fairgate:latest -o json`
    path: Path  # the Bento's directory
    newer: str  # fairgate-loan:latest in that home, trained after the build


@pytest.fixture(scope="module")
def bento(trained, tmp_path_factory) -> Built:
    """``bentoml build`` of the checkout with the session's model, then a newer
    ``fairgate-loan`` trained into the same store (the Bento must not follow it)."""
    work = tmp_path_factory.mktemp("bento")
    home = work / "bentoml"
    exported = bentoml.models.export_model(trained.tag, str(work / "model.bentomodel"))
    bentoml_cli("models", "import", exported, home=home)
    bentoml_cli("build", home=home, FAIRGATE_MODEL=trained.tag)
    info = json.loads(bentoml_cli("get", "fairgate:latest", "-o", "json", home=home))
    path = Path(bentoml_cli("get", "fairgate:latest", "-o", "path", home=home).strip())
    run([sys.executable, "-m", "cli", "train", "--rows", "2000", "--bootstrap", "0",
         "--reports", str(work / "reports")], home, cwd=work)  # fmt: skip
    newer = json.loads(bentoml_cli("models", "get", "fairgate-loan:latest", "-o", "json",
                                   home=home))  # fmt: skip
    return Built(home, info, path, newer=f"{newer['name']}:{newer['version']}")


@pytest.mark.integration
def test_the_bento_carries_the_model_it_was_built_with(bento, trained):
    services = bento.info["services"]
    assert [m["tag"] for s in services for m in s["models"]] == [trained.tag]


@pytest.mark.integration
def test_the_bento_ships_only_the_serving_code(bento):
    source = bento.path / "src"
    files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    folders = {name.partition("/")[0] for name in files if "/" in name}
    assert folders == SHIPPED, files
    assert "record/bench.py" not in files
    assert "fairgate/contracts/synthetic.toml" in files  # read with importlib.resources
    requirements = (bento.path / "env" / "python" / "requirements.txt").read_text()
    assert "prometheus-client" in requirements and "scikit-learn" not in requirements


def serve_and_decide(bento: str, home: Path, cwd: Path, application: dict) -> httpx.Response:
    """``bentoml serve BENTO`` (a tag or a directory) run in ``cwd`` with no FAIRGATE_MODEL,
    and one ``POST /decide``."""
    unset = ("FAIRGATE_MODEL", "FAIRGATE_DATA_DIR")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env |= {"BENTOML_HOME": str(home), "OMP_NUM_THREADS": "1"}
    port = free_port()
    command = [sys.executable, "-m", "bentoml", "serve", bento,
               "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with ServerProcess(command, url=f"http://127.0.0.1:{port}", env=env, cwd=cwd,
                       log=temporary_log("bento-serve-")) as server:  # fmt: skip
        server.wait_ready(60)
        return httpx.post(f"{server.url}/decide", json=application, timeout=10)


@pytest.mark.integration
def test_bentoml_serve_runs_the_bento_s_model_from_an_empty_directory(bento, trained, tmp_path):
    assert bento.newer != trained.tag  # the store's latest is no longer the Bento's model
    example = load_serving_bundle(trained.tag).contract.example
    response = serve_and_decide("fairgate:latest", bento.home, tmp_path, example)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == trained.tag
    # The record is where the server was started, never inside the Bento.
    assert (tmp_path / "fairgate-data" / "record.sqlite").is_file()
    assert not (bento.path / "src" / "fairgate-data").exists()


@pytest.mark.integration
def test_the_exported_bento_serves_with_nothing_else(bento, trained, tmp_path):
    """What ``bentoml containerize`` puts in an image: the exported Bento, its model inside
    it, served with an empty model store (no Docker engine here to build the image)."""
    archive = bentoml_cli("export", "fairgate:latest", str(tmp_path / "fairgate.bento"),
                          home=bento.home)  # fmt: skip
    assert "exported" in archive
    unpacked = tmp_path / "bento"
    with tarfile.open(tmp_path / "fairgate.bento") as bundle:
        bundle.extractall(unpacked, filter="data")
    assert [p.name for p in (unpacked / "models").iterdir()] == ["fairgate-loan"]
    empty = tmp_path / "empty"
    empty.mkdir()
    example = load_serving_bundle(trained.tag).contract.example
    response = serve_and_decide(str(unpacked), tmp_path / "empty-home", empty, example)
    assert response.status_code == 200, response.text
    assert response.json()["model_version"] == trained.tag


PYPROJECT = """[project]
dependencies = [
  "bentoml>=1.4,<1.5",
  "numpy>=1.26",
  "prometheus-client>=0.20,<0.27",
  "uvloop>=0.19",
  "locust>=2.30",
]
"""
DISTRIBUTIONS = {"numpy": ["numpy"], "prometheus_client": ["prometheus-client"],
                 "bentoml": ["bentoml"], "starlette": ["starlette"], "yaml": ["PyYAML"],
                 "locust": ["locust"]}  # fmt: skip
OWN = {"fairgate", "service", "training", "loadtests"}
REQUIRES = {"bentoml": ["starlette>=0.24.0", "pyyaml", "pytest; extra == 'testing'"]}.get


def test_the_bento_installs_what_its_code_imports_with_pyproject_s_specifiers():
    sources = {
        "service/a.py": "import numpy\nfrom prometheus_client import Counter\nimport bentoml\n",
        "service/b.py": "from starlette.routing import Route\nfrom fairgate import x\nimport os\n",
        "fairgate/x.py": "",
    }
    packages, problems = bento_packages(
        sources, dependencies(PYPROJECT), OWN, DISTRIBUTIONS, lambda dist: REQUIRES(dist, [])
    )
    # bentoml is pinned by the build, starlette comes with it, locust is imported by nothing
    # shipped; uvloop is loaded by the server without an import.
    assert packages == ["numpy>=1.26", "prometheus-client>=0.20,<0.27", "uvloop>=0.19"]
    assert problems == []


def test_an_import_the_bento_could_not_satisfy_is_a_problem():
    sources = {
        "service/a.py": "def f():\n    from training.pipeline import run\n",
        "service/b.py": "import locust\nimport pytest\n",
    }
    _, problems = bento_packages(
        sources, dependencies(PYPROJECT.replace('  "locust>=2.30",\n', "")), OWN,
        DISTRIBUTIONS | {"pytest": ["pytest"]}, lambda dist: REQUIRES(dist, []),
    )  # fmt: skip
    # pytest: bentoml requires it only for an extra, so the Bento would not have it.
    assert problems == [
        NOT_SHIPPED.format(file="service/a.py", package="training"),
        NOT_LISTED.format(file="service/b.py", module="locust", dist="locust"),
        NOT_LISTED.format(file="service/b.py", module="pytest", dist="pytest"),
    ]


def test_render_replaces_only_the_generated_block():
    bentofile = (
        "name: x\npython:\n"
        "  # generated by `python -m scripts.bentofile --write` from pyproject.toml\n"
        '  packages:\n    - "old"\n  # end generated\nenvs: []\n'
    )
    assert render(bentofile, ["numpy>=1.26"]) == bentofile.replace('"old"', '"numpy>=1.26"')


def test_bentofile_yaml_is_generated_from_pyproject():
    result = subprocess.run([sys.executable, "-m", "scripts.bentofile", "--check"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
