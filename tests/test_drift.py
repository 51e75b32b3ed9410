"""Population drift for load: spec parsing against a contract, the drift itself, the pool's
singles and batches drifted (its probe twins not), and ``fairgate loadtest --drift``."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from cli.main import app
from fairgate.contract import contract_from_mapping, contract_to_mapping
from fairgate.contract_synth import Synthesis, marginals_from_contract
from fairgate.schema import SYNTHETIC_CONTRACT
from loadtests.drift import Condition, Drift, DriftError, apply_drift, parse_drift
from loadtests.pool import build_pool, drifted_applications
from loadtests.slo import RunStats
from service.launch import REPO

# A small book with one field of each kind a drift meets: bounded number and integer, codes,
# an optional number, a category.
TINY = contract_from_mapping({
    "name": "tiny",
    "fields": [
        {"name": "app_id", "type": "id"},
        {"name": "income", "type": "number", "constraints": {"minimum": 0, "maximum": 1000}},
        {"name": "visits", "type": "integer", "constraints": {"minimum": 1, "maximum": 10}},
        {"name": "flag", "type": "integer", "constraints": {"enum": [0, 1]}},
        {"name": "bonus", "type": "number", "constraints": {"required": False, "minimum": 0}},
        {"name": "sex", "type": "category", "constraints": {"enum": ["a", "b"]}},
    ],
    "label": {"column": "y", "approved": [1], "denied": [0]},
    "protected": [{"name": "sex", "field": "sex"}],
    "groups": {"policy": ["sex"], "audit": ["sex"], "prober": ["sex"]},
    "features": [
        {"name": "income", "transform": "as_is", "field": "income"},
        {"name": "visits", "transform": "as_is", "field": "visits"},
    ],
})  # fmt: skip
TINY_SYNTHESIS = Synthesis(marginals_from_contract(TINY))
ROWS = [
    {"app_id": "r1", "income": 500.0, "visits": 4, "flag": 1, "bonus": 10.0, "sex": "a"},
    {"app_id": "r2", "income": 300.0, "visits": 7, "flag": 0, "bonus": 2.5, "sex": "b"},
    {"app_id": "r3", "income": 900.0, "visits": 9, "flag": 1, "sex": "a"},  # no bonus
    {"app_id": "r4", "income": 80.0, "visits": 1, "flag": 0, "bonus": None, "sex": "a"},
    {"app_id": "r5", "income": 0.0, "visits": 2, "flag": 1, "bonus": 7.0, "sex": "b"},
]


def _one_line(text: str) -> str:
    # rich wraps a long error at the terminal's width
    return " ".join(text.split())


# ---- parsing ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("bogus*0.8", ["unknown field 'bogus'", "expected one of annual_income, age"]),
        ("gender*0.8", ["field 'gender' is a category field", "expected one of annual_income"]),
        ("application_id*2", ["field 'application_id' is a id field"]),
        ("annual_income*abc", ["factor 'abc' is not a positive finite number"]),
        ("annual_income*0", ["factor '0' is not a positive"]),
        ("annual_income*-0.5", ["factor '-0.5' is not a positive"]),
        ("annual_income*inf", ["factor 'inf' is not a positive"]),
        (
            "annual_income*0.8@gender=woman",
            ["gender='woman'", "expected one of ['female', 'male', 'nonbinary', 'undisclosed']"],
        ),
        ("annual_income*0.8@sex=female", ["unknown condition field 'sex'", "gender"]),
        ("annual_income*0.8@age=17", ["age='17'", "a whole number in [18, 100]"]),
        ("annual_income*0.8@age=30.5", ["age='30.5'", "not a whole number"]),
        ("annual_income*0.8@age=old", ["age='old'", "not a number"]),
        ("annual_income*0.8@application_id=APP-1", ["'application_id' is the id field"]),
        ("annual_income", ["expected FIELD*FACTOR or FIELD*FACTOR@FIELD=VALUE"]),
        ("annual_income*0.8@gender", ["expected FIELD*FACTOR or FIELD*FACTOR@FIELD=VALUE"]),
        ("*0.8", ["expected FIELD*FACTOR"]),
    ],
)
def test_a_bad_spec_names_what_is_wrong_and_what_was_expected(spec, named):
    with pytest.raises(DriftError) as error:
        parse_drift(spec, SYNTHETIC_CONTRACT)
    assert error.value.problems[0].startswith(repr(spec))
    for text in named:
        assert text in str(error.value)


def test_coded_integer_fields_do_not_scale():
    with pytest.raises(DriftError, match=r"'flag' holds codes \[0, 1\]"):
        parse_drift("flag*2", TINY)


def test_every_bad_spec_is_reported_at_once():
    with pytest.raises(DriftError) as error:
        parse_drift("bogus*0.8, annual_income*0.8@gender=woman, age*1.1", SYNTHETIC_CONTRACT)
    assert len(error.value.problems) == 2
    assert "'bogus'" in error.value.problems[0] and "'woman'" in error.value.problems[1]


def test_specs_parse_into_drifts():
    text = " annual_income*0.8@gender=female , age * 1.1 @ delinquencies_2y = 0,loan_amount*2"
    assert parse_drift(text, SYNTHETIC_CONTRACT) == (
        Drift("annual_income", 0.8, Condition("gender", "female")),
        Drift("age", 1.1, Condition("delinquencies_2y", 0)),
        Drift("loan_amount", 2.0),
    )
    (whole,) = parse_drift("age*2@delinquencies_2y=3", SYNTHETIC_CONTRACT)
    assert type(whole.when.value) is int  # an integer field's condition is a whole number
    assert parse_drift("income*2@income=12.5", TINY)[0].when == Condition("income", 12.5)
    assert parse_drift("", SYNTHETIC_CONTRACT) == ()
    assert parse_drift(" , ", SYNTHETIC_CONTRACT) == ()


# ---- applying --------------------------------------------------------------------------


def test_only_the_matching_rows_are_scaled():
    before = [dict(row) for row in ROWS]
    drifted = apply_drift(ROWS, parse_drift("income*0.8@sex=a", TINY), TINY)
    expected = [
        {**row, "income": row["income"] * 0.8} if row["sex"] == "a" else row for row in ROWS
    ]
    assert drifted == expected
    assert [row["income"] for row in drifted] == [400.0, 300.0, 720.0, 64.0, 0.0]
    assert before == ROWS  # new dicts; the given rows are untouched
    assert all(d is not r for d, r in zip(drifted, ROWS, strict=True))


def test_an_unconditional_drift_scales_every_row():
    drifted = apply_drift(ROWS, parse_drift("income*1.1", TINY), TINY)
    assert [row["income"] for row in drifted] == [min(r["income"] * 1.1, 1000) for r in ROWS]
    assert [{k: v for k, v in row.items() if k != "income"} for row in drifted] == [
        {k: v for k, v in row.items() if k != "income"} for row in ROWS
    ]


@pytest.mark.parametrize(
    ("factor", "visits"),
    [
        (1.3, [5, 9, 10, 1, 3]),  # 5.2, 9.1, 11.7 -> the maximum 10, 1.3, 2.6
        (0.3, [1, 2, 3, 1, 1]),  # 1.2, 2.1, 2.7, 0.3 -> the minimum 1, 0.6 -> 1
    ],
)
def test_an_integer_field_stays_a_whole_number_within_its_bounds(factor, visits):
    drifted = apply_drift(ROWS, [Drift("visits", factor)], TINY)
    assert [row["visits"] for row in drifted] == visits
    assert all(type(row["visits"]) is int for row in drifted)


def test_a_number_is_clipped_to_the_contracts_bounds():
    drifted = apply_drift(ROWS, [Drift("income", 2.0)], TINY)
    assert [row["income"] for row in drifted] == [1000, 600.0, 1000, 160.0, 0.0]
    # No maximum declared: nothing to clip to.
    assert apply_drift(ROWS, [Drift("bonus", 1000.0)], TINY)[0]["bonus"] == 10_000.0


def test_rows_without_the_field_are_left_as_they_are():
    drifted = apply_drift(ROWS, [Drift("bonus", 2.0)], TINY)
    assert "bonus" not in drifted[2]
    assert drifted[3]["bonus"] is None
    nan_row = {**ROWS[0], "bonus": math.nan}
    assert math.isnan(apply_drift([nan_row], [Drift("bonus", 2.0)], TINY)[0]["bonus"])
    assert [row.get("bonus") for row in drifted] == [20.0, 5.0, None, None, 14.0]


def test_conditions_read_the_rows_as_given():
    """The first drift moves r1's visits 4 -> 8; the second still matches visits 4, not 8."""
    drifts = parse_drift("visits*2@visits=4, income*0.5@visits=4, income*0.1@visits=8", TINY)
    drifted = apply_drift(ROWS, drifts, TINY)
    assert (drifted[0]["visits"], drifted[0]["income"]) == (8, 250.0)
    assert drifted[1:] == ROWS[1:]


# ---- the load pool ---------------------------------------------------------------------


def test_the_drifted_pool_differs_only_in_the_drifted_field_of_matching_rows():
    synthesis = Synthesis(marginals_from_contract(SYNTHETIC_CONTRACT))
    plain = build_pool(SYNTHETIC_CONTRACT, synthesis, 400, batch_size=100, seed=5)
    drifts = parse_drift("annual_income*0.8@gender=female", SYNTHETIC_CONTRACT)
    drifted = build_pool(SYNTHETIC_CONTRACT, synthesis, 400, batch_size=100, seed=5, drift=drifts)
    women = 0
    for before, after in zip(plain.singles, drifted.singles, strict=True):
        if before["gender"] == "female":
            women += 1
            assert after == {**before, "annual_income": before["annual_income"] * 0.8}
            assert after["annual_income"] < before["annual_income"]
        else:
            assert after == before
    assert 50 < women < 150  # the contract's four genders drawn evenly
    assert [app for batch in drifted.batches for app in batch["applications"]] == drifted.singles
    assert drifted.pairs == plain.pairs  # probes stay twins


def test_drifted_applications_are_the_pools_drifted_singles():
    drifts = parse_drift("income*0.5@sex=b,visits*2", TINY)
    pool = build_pool(TINY, TINY_SYNTHESIS, 300, batch_size=100, seed=9, drift=drifts)
    bodies = drifted_applications(TINY, TINY_SYNTHESIS, 300, "income*0.5@sex=b,visits*2", seed=9)
    assert bodies == pool.singles == drifted_applications(TINY, TINY_SYNTHESIS, 300, drifts, 9)
    assert bodies != build_pool(TINY, TINY_SYNTHESIS, 300, seed=9).singles
    with pytest.raises(DriftError, match="'annual_income'"):
        drifted_applications(TINY, TINY_SYNTHESIS, 10, "annual_income*0.8", seed=9)


# ---- fairgate loadtest --drift ---------------------------------------------------------


class _Target(BaseHTTPRequestHandler):
    """A stand-in service: the tiny book's ``GET /policy``; every POST body is kept."""

    protocol_version = "HTTP/1.1"  # keep-alive, as Locust's client expects
    bodies: ClassVar[list[tuple[str, dict]]] = []

    def do_GET(self) -> None:
        policy = {"contract": contract_to_mapping(TINY), "synthesis": TINY_SYNTHESIS.to_dict()}
        self._answer(policy if self.path.rstrip("/") == "/policy" else None)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.bodies.append((self.path, body))
        self._answer({})

    def _answer(self, body: dict | None) -> None:
        data = json.dumps(body).encode()
        self.send_response(200 if body is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def target() -> Iterator[str]:
    _Target.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Target)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def nothing_starts(monkeypatch):
    """Training, a service and Locust all fail the test if the command gets to them."""

    def started(what: str):
        def refuse(*_args, **_kwargs):
            raise AssertionError(f"{what} started")

        return refuse

    monkeypatch.setattr("cli.load.train_default", started("training"))
    monkeypatch.setattr("loadtests.server.running_server", started("a service"))
    monkeypatch.setattr("loadtests.runner.run_locust", started("locust"))


def _invoke(*args: str):
    return CliRunner().invoke(app, ["loadtest", *args], env={"COLUMNS": "200"})


def test_a_bad_drift_fails_before_anything_is_trained_or_started(
    nothing_starts, monkeypatch, tmp_path
):
    from fairgate.artifacts import ModelNotFound

    def no_model(*_args, **_kwargs):
        raise ModelNotFound("no model")

    monkeypatch.setattr("fairgate.artifacts.load_serving_bundle", no_model)
    result = _invoke("--drift", "bogus*0.8", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2, result.output
    assert "--drift: bad drift: 'bogus*0.8': unknown field 'bogus'" in _one_line(result.stderr)
    assert not (tmp_path / "out").exists()


def test_without_target_the_stored_models_contract_is_the_one_checked(nothing_starts, monkeypatch):
    stored = SimpleNamespace(contract=TINY)
    monkeypatch.setattr("fairgate.artifacts.load_serving_bundle", lambda *_a, **_k: stored)
    result = _invoke("--drift", "annual_income*0.8@gender=female")
    assert result.exit_code == 2, result.output
    assert "unknown field 'annual_income'; expected one of income, visits, bonus" in _one_line(
        result.stderr
    )


def test_against_a_target_its_own_contract_is_the_one_checked(nothing_starts, target):
    """annual_income is the default book's field, not the target's."""
    result = _invoke("--target", target, "--drift", "annual_income*0.8")
    assert result.exit_code == 2, result.output
    assert "unknown field 'annual_income'" in _one_line(result.stderr)
    result = _invoke("--target", target, "--drift", "income*0.8@sex=c")
    assert result.exit_code == 2, result.output
    assert "sex='c' never holds" in _one_line(result.stderr)


def test_the_checked_drift_reaches_locusts_environment(monkeypatch, target, tmp_path):
    runs = []

    def run_locust(run, *_args, **_kwargs):
        runs.append(run)
        return {"Aggregated": RunStats("Aggregated", 1000, 0, 500.0, 1, 2, 3)}

    monkeypatch.setattr("loadtests.runner.run_locust", run_locust)
    monkeypatch.setenv("FAIRGATE_DRIFT", "visits*2")  # the option wins over the environment
    result = _invoke("--target", target, "--drift", "income*0.8@sex=a", "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert runs[0].env["FAIRGATE_DRIFT"] == "income*0.8@sex=a"
    assert "drift income*0.8@sex=a" in result.stdout
    runs.clear()
    result = _invoke("--target", target, "--out", str(tmp_path))  # from FAIRGATE_DRIFT
    assert result.exit_code == 0, result.output
    assert runs[0].env["FAIRGATE_DRIFT"] == "visits*2"
    monkeypatch.delenv("FAIRGATE_DRIFT")
    result = _invoke("--target", target, "--out", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert runs[1].env["FAIRGATE_DRIFT"] == ""  # none: a stale one never leaks into the run


def test_the_command_line_exits_2_with_the_message(target):
    result = subprocess.run(
        [sys.executable, "-m", "cli", "loadtest", "--target", target, "--drift", "bogus*0.8"],
        cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "unknown field 'bogus'; expected one of income, visits, bonus" in result.stderr


@pytest.mark.integration
def test_locust_sends_the_drifted_bodies_and_undrifted_twins(target, tmp_path):
    """A real headless run against the stand-in: every single and batch body is the pool's
    body drifted (the oracle: the undrifted pool scaled here), every probe pair a twin pair."""
    result = subprocess.run(
        [sys.executable, "-m", "cli", "loadtest", "--target", target, "--users", "2",
         "--run-time", "3s", "--drift", "income*0.5@sex=a", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=120,
        env={**os.environ, "FAIRGATE_LOAD_POOL": "500"},
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stdout + result.stderr  # 1: an SLO missed
    plain = build_pool(TINY, TINY_SYNTHESIS, 500, batch_size=100)
    by_id = {row["app_id"]: row for row in plain.singles}
    singles = [body for path, body in _Target.bodies if path == "/decide"]
    posted = [body["applications"] for path, body in _Target.bodies if path == "/decide_batch"]
    pairs = [apps for apps in posted if len(apps) == 2]
    batches = [apps for apps in posted if len(apps) != 2]
    assert len(singles) > 20 and pairs and batches, result.stdout + result.stderr
    scaled = 0
    for body in singles + [body for batch in batches for body in batch]:
        before = by_id[body["app_id"]]
        if before["sex"] == "a":
            scaled += before["income"] > 0
            assert body == {**before, "income": before["income"] * 0.5}
        else:
            assert body == before
    assert scaled > 5
    assert all({"applications": pair} in plain.pairs for pair in pairs)
