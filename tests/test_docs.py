"""The docs show what the code does: generated README sections, the example loan book, and
the README's curl requests answered the same way by a live service."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from types import ModuleType

import pytest

from service.launch import REPO


def script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_generated_sections_are_up_to_date():
    result = subprocess.run([sys.executable, "scripts/readme.py", "--check"], cwd=REPO,
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_the_readme_quotes_the_benchmark_figures_it_derives():
    # Hand-checked against docs/benchmarks.md's own sentence, so a parsing slip shows here.
    bench = (REPO / "docs" / "benchmarks.md").read_text()
    ratio = re.search(r"record off = \*\*([\d.]+) x\*\* the validating floor", bench).group(1)
    readme = (REPO / "README.md").read_text()
    assert f"`/decide` with the record off serves {ratio} x the validating floor" in readme


def test_the_example_loan_book_is_what_its_script_writes():
    written = script("example_book").example_book()
    assert (REPO / "examples" / "loan_book.csv").read_text() == written


@pytest.mark.integration
def test_the_readme_data_example_trains_as_written(tmp_path):
    readme = (REPO / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("fairgate train --data"))
    args = line.split()[2:]
    result = subprocess.run(
        [sys.executable, "-m", "cli", "train", *args, "--reports", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "saved fairgate-loan:" in result.stdout
    assert (tmp_path / "audit.md").is_file()


def documented_examples() -> list[tuple[str, dict]]:
    text = (REPO / "docs" / "examples" / "api.md").read_text()
    commands = re.findall(r"```bash\n(.*?)\n```", text, re.S)
    outputs = re.findall(r"```json\n(.*?)\n```", text, re.S)
    assert len(commands) == len(outputs) == 2
    return [(cmd, json.loads(out)) for cmd, out in zip(commands, outputs, strict=True)]


# Fields that depend on the model trained, not on the request.
MODEL_DEPENDENT = {"decision", "approved", "score", "approval_probability", "rule_text",
                   "policy_version", "model_version", "reasons"}  # fmt: skip


def comparable(body: dict) -> dict:
    if "decisions" in body:
        return body | {"decisions": [comparable(item) for item in body["decisions"]]}
    return {key: (value if key not in MODEL_DEPENDENT else type(value).__name__)
            for key, value in body.items()}  # fmt: skip


@pytest.mark.integration
def test_the_readme_curl_requests_get_the_documented_answers(live_service):
    for command, documented in documented_examples():
        assert command.startswith("curl -s http://127.0.0.1:3000/")
        shown = command.replace("http://127.0.0.1:3000", live_service.url)
        result = subprocess.run(["bash", "-c", shown], capture_output=True, text=True,
                                timeout=30, check=True)  # fmt: skip
        assert comparable(json.loads(result.stdout)) == comparable(documented), command
