"""Write docs/examples/api.md: the README's curl requests and what a real service answered.

Trains the default model (``fairgate train``, as scripts/demo.sh does) into a temporary
BentoML home, serves it, runs each ``curl`` command exactly as shown, and records its output.
Regenerate with ``python scripts/api_example.py`` (about a minute); tests/test_docs.py checks
the README shows this file and that the live service answers these requests the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Run as ``python scripts/NAME.py``: this checkout's packages first, not an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fairgate.schema import Applicant
from loadtests.server import running_server
from service.launch import REPO

PATH = REPO / "docs" / "examples" / "api.md"
SHOWN = "http://127.0.0.1:3000"  # the address the README uses (fairgate serve's default)
APPLICANT = Applicant.model_json_schema()["example"]
TWIN = APPLICANT | {"application_id": "APP-000002", "gender": "male"}
# Heavy existing debt and three recent delinquencies: a denial, to show its reasons.
INDEBTED = APPLICANT | {
    "application_id": "APP-000003", "monthly_debt_payments": 2600.0, "delinquencies_2y": 3,
}  # fmt: skip


def commands() -> list[str]:
    """The curl command lines, as shown (against SHOWN)."""
    one = json.dumps(APPLICANT)
    two = json.dumps({"applications": [APPLICANT, TWIN, INDEBTED]})
    header = "-H 'Content-Type: application/json'"
    return [
        f"curl -s {SHOWN}/decide {header} \\\n  -d '{one}' | python3 -m json.tool",
        f"curl -s {SHOWN}/decide_batch {header} \\\n  -d '{two}' | python3 -m json.tool",
    ]


def run(command: str, url: str) -> str:
    completed = subprocess.run(
        ["bash", "-c", command.replace(SHOWN, url)], capture_output=True, text=True, check=True
    )
    return completed.stdout


def render(pairs: list[tuple[str, str]]) -> str:
    blocks = []
    for command, output in pairs:
        blocks += ["```bash", command, "```", "", "```json", output.rstrip("\n"), "```", ""]
    return "\n".join(blocks).rstrip("\n") + "\n"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="fairgate-api-example-") as home:
        env = os.environ | {"BENTOML_HOME": home, "BENTOML_DO_NOT_TRACK": "True"}
        subprocess.run([sys.executable, "-m", "cli", "train", "--reports", f"{home}/reports"],
                       cwd=REPO, env=env, check=True)  # fmt: skip
        os.environ.update(env)  # the server inherits the same model store
        with running_server(workers=1, env=env) as server:
            pairs = [(command, run(command, server.url)) for command in commands()]
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text(render(pairs))
    print(f"wrote {PATH.relative_to(REPO)}")


if __name__ == "__main__":
    main()
