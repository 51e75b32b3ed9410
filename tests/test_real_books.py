"""Real loan books as they come, end to end: `fairgate init` -> `fairgate train` on the draft
as it is -> `fairgate serve` answers 200 for every row of the file -> `fairgate probe --once`.

Three books (tests/real_books.py): the German credit data (no id at all, few applicants
over 65); the Spanish credit-scoring book (`rownames` as its only id, empty cells in its
best predictors, a thin over-65 age group, one applicant without `Marital`); Wooldridge's
Boston mortgage applications (the label restated by `reject` and `action`, 0/1 codes for
`black` and `male`, 15 applicants without `male`). The oracles come from the books' own
documentation and from pandas, not from fairgate: which column restates the label, which
cells are empty, what a row number is.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from fairgate.contract import Contract, parse_contract
from service.launch import REPO
from tests import real_books
from tests.conftest import LiveService

BATCH = 1000


@dataclass
class Book:
    name: str
    frame: pd.DataFrame
    contract: Contract
    init_output: str
    reports: Path
    tag: str
    server: LiveService


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def _bring_up(
    work: Path, path: Path, name: str, label: str, approved: str, *protected: str
) -> Book:
    # In a directory that does not exist yet: init makes it.
    contract_path = work / "drafts" / f"{name}.toml"
    args = ["--data", str(path), "--label", label, "--approved", approved, "--name", name]
    for column in protected:
        args += ["--protected", column]
    drafted = cli("init", *args, "--output", str(contract_path))
    assert drafted.returncode == 0, drafted.stdout + drafted.stderr
    # The draft trains as it is: no edit between init and train.
    reports = work / "reports"
    trained = cli(
        "train", "--data", str(path), "--contract", str(contract_path), "--name", name,
        "--bootstrap", "20", "--reports", str(reports),
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout + trained.stderr
    tag = next(line.split()[1] for line in trained.stdout.splitlines() if line.startswith("saved"))
    server = LiveService(tag).wait()
    return Book(
        name=name,
        frame=pd.read_csv(path),
        contract=parse_contract(contract_path.read_text()),
        init_output=" ".join((drafted.stdout + drafted.stderr).split()),
        reports=reports,
        tag=tag,
        server=server,
    )


@pytest.fixture(scope="module")
def credit(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("credit_data")
    book = _bring_up(
        work, real_books.credit_data(work), "credit_data", "Status", "good", "Age", "Marital"
    )
    yield book
    book.server.stop()


@pytest.fixture(scope="module")
def german(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("german")
    book = _bring_up(
        work, real_books.german(work), "german", "creditability", "good",
        "age_in_years", "personal_status_and_sex",
    )  # fmt: skip
    yield book
    book.server.stop()


@pytest.fixture(scope="module")
def loans(tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("loanapp")
    book = _bring_up(work, real_books.loanapp(work), "loanapp", "approve", "1", "black", "male")
    yield book
    book.server.stop()


def requests_of(book: Book) -> list[dict[str, Any]]:
    """Every row of the file as a request: the contract's fields, empty cells left out."""
    id_name = book.contract.id_field.name
    requests = []
    for i, row in enumerate(book.frame.to_dict("records")):
        request: dict[str, Any] = {}
        for spec in book.contract.fields:
            value = row.get(spec.name)
            if spec.name == id_name:
                request[id_name] = str(value) if spec.name in row else f"row-{i + 1}"
            elif value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            elif spec.type == "integer":
                request[spec.name] = int(value)
            elif spec.type == "number":
                request[spec.name] = float(value)
            else:
                request[spec.name] = str(value)
        requests.append(request)
    return requests


def decide_all(book: Book, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    decisions = []
    for start in range(0, len(requests), BATCH):
        chunk = requests[start : start + BATCH]
        response = httpx.post(
            f"{book.server.url}/decide_batch", json={"applications": chunk}, timeout=60
        )
        assert response.status_code == 200, response.text[:2000]
        decisions += response.json()["decisions"]
    return decisions


def feature_inputs(contract: Contract) -> set[str]:
    return {name for f in contract.features if not f.sensitive for name in f.inputs}


@pytest.mark.parametrize("which", ["credit", "loans", "german"])
def test_every_row_of_the_file_is_decided(which, request):
    book: Book = request.getfixturevalue(which)
    requests = requests_of(book)
    decisions = decide_all(book, requests)
    assert len(decisions) == len(book.frame)
    assert [d["application_id"] for d in decisions] == [r[book.contract.id_field.name]
                                                       for r in requests]  # fmt: skip
    # /decide and /decide_batch decide alike, the rows with empty cells first.
    incomplete = [r for r, row in zip(requests, book.frame.isna().any(axis=1), strict=True) if row]
    for single in [*incomplete[:20], *requests[:5]]:
        one = httpx.post(f"{book.server.url}/decide", json=single, timeout=30)
        assert one.status_code == 200, one.text
        same = next(d for d in decisions if d["application_id"] == one.json()["application_id"])
        assert one.json()["score"] == same["score"]


def test_a_row_number_is_the_id_never_a_feature(credit):
    # rownames is 1..N in file order: a row number (Rdatasets adds it to every book).
    assert credit.frame["rownames"].tolist() == list(range(1, len(credit.frame) + 1))
    assert credit.contract.id_field.name == "rownames"
    assert "rownames" not in feature_inputs(credit.contract)
    # The same applicant under another row number gets the same score.
    row = requests_of(credit)[0]
    scores = {
        httpx.post(f"{credit.server.url}/decide", json=row | {"rownames": rid}).json()["score"]
        for rid in ("1", "4400", "99999")
    }
    assert len(scores) == 1


def test_a_book_without_an_id_says_so(loans):
    assert "rownames" not in loans.frame.columns
    assert "no id column" in loans.init_output
    assert "application_id" not in loans.frame.columns
    assert loans.contract.id_field.name == "application_id"


def test_columns_restating_the_label_are_not_features(loans):
    # The book's documentation: approve = 1 iff action is 1 or 2; reject = 1 iff action is 3.
    frame = loans.frame
    assert ((frame["approve"] == 1) == frame["action"].isin([1, 2])).all()
    assert ((frame["reject"] == 1) == (frame["action"] == 3)).all()
    inputs = feature_inputs(loans.contract)
    assert not {"reject", "action"} & inputs
    assert "leak: column 'reject'" in loans.init_output
    assert "leak: column 'action'" in loans.init_output
    assert {"hrat", "obrat", "loanprc"} <= inputs  # the book's real predictors stay


def test_predictors_with_empty_cells_are_kept_and_filled_as_trained(credit):
    empty = credit.frame.isna().sum()
    assert empty["Income"] > 300  # counted by pandas in the file
    assert {"Income", "Assets", "Debt", "Home", "Job"} <= feature_inputs(credit.contract)
    served = httpx.get(f"{credit.server.url}/policy").json()["contract"]
    income = next(f for f in served["fields"] if f["name"] == "Income")
    assert income["missing"] == "median"
    # The learnt fill is a median of the book's incomes (of its training rows: close to the
    # whole file's median, computed here by pandas).
    median = credit.frame["Income"].median()
    assert abs(income["fill"] - median) <= 0.05 * median
    # Leaving Income out decides as sending the learnt fill.
    requests = requests_of(credit)
    without = next(r for r in requests if "Income" not in r)
    left_out = httpx.post(f"{credit.server.url}/decide", json=without).json()
    filled = httpx.post(f"{credit.server.url}/decide", json=without | {"Income": income["fill"]})
    assert filled.json()["score"] == left_out["score"]


def test_reasons_never_blame_a_value_the_applicant_did_not_give(credit):
    requests = [r for r in requests_of(credit) if "Income" not in r]
    decisions = decide_all(credit, requests)
    denied = [d for d in decisions if d["decision"] == "deny"]
    assert denied
    # With Income filled in, the same denials do name it: the exclusion is what holds here.
    given = decide_all(credit, [r | {"Income": 20} for r in requests])
    assert any("R-INCOME" in {x["code"] for x in d["reasons"]} for d in given if d["reasons"])
    assert all("R-INCOME" not in {x["code"] for x in d["reasons"]} for d in denied)


def test_bands_hold_enough_people_and_start_at_the_fields_minimum(credit):
    age = credit.contract.attribute("Age_band")
    edges = list(age.edges or ())
    bounds = [-math.inf, *edges, math.inf]
    counts = [
        int(((credit.frame["Age"] >= low) & (credit.frame["Age"] < high)).sum())
        for low, high in pairwise(bounds)
    ]
    assert min(counts) >= 50, counts
    minimum = credit.contract.field("Age").constraints.minimum
    assert (age.labels or ())[0].startswith(f"{int(minimum or 0)}-")
    metrics = json.loads((credit.reports / "metrics.json").read_text())
    assert set(metrics["mitigated"]["groups"]["Age_band"]["by_group"]) == set(age.labels or ())


def test_codes_are_categories_of_the_values_the_field_has(loans, tmp_path):
    for name in ("black", "male"):
        field = loans.contract.field(name)
        assert field.type == "integer" and field.constraints.enum == (0, 1)
        assert not loans.contract.attribute(name).banded
    out = tmp_path / "probe.json"
    result = cli("probe", "--once", "--target", loans.server.url, "--pairs", "300",
                 "--json", str(out))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    audit = json.loads(out.read_text())
    for attribute in audit["attributes"]:
        assert set(attribute["approval_rate"]) <= {"0", "1"}
        # Each twin row: the id, and the decision of the twin at each code: 0 and 1 only.
        assert {key for row in attribute["twins"] for key in row} == {"application_id", "0", "1"}


def test_the_probe_runs_on_a_book_with_empty_cells(credit, tmp_path):
    out = tmp_path / "probe.json"
    result = cli("probe", "--once", "--target", credit.server.url, "--pairs", "300",
                 "--json", str(out))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    text = out.read_text()
    assert "nan" not in text.lower().replace("nanos", "")
    policy = httpx.get(f"{credit.server.url}/policy").text
    assert '"nan"' not in policy.lower() and '"none"' not in policy.lower()


def test_no_synthetic_bias_is_claimed_for_a_real_book(credit):
    metrics = json.loads((credit.reports / "metrics.json").read_text())
    assert metrics["config"].get("bias") is None
    policy = httpx.get(f"{credit.server.url}/policy").json()
    assert "income-bar" not in json.dumps(policy)
