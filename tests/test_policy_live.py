"""``fairgate policy`` against a real ``bentoml serve`` (one worker, SQLite record): a promoted
version is what answers, records, /policy and /metrics show, it survives a restart, rollback
returns, and every refusal names what to do. The two-worker drift loop is tests/test_drift_loop.py;
several replicas on PostgreSQL, tests/test_replicas.py."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from fairgate.generator import generate_applicants, to_records
from fairgate.schema import SYNTHETIC_CONTRACT
from loadtests.drift import apply_drift, parse_drift
from record import open_record
from service.config import ConfigError, service_config
from service.launch import REPO
from tests.conftest import LiveService

pytestmark = pytest.mark.integration
DRIFT = parse_drift("annual_income*0.8@gender=female", SYNTHETIC_CONTRACT)


def policy_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "policy", *args], env=os.environ | env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)  # fmt: skip


def decide_batch(url: str, rows: list[dict]) -> list[dict]:
    answer = httpx.post(f"{url}/decide_batch", json={"applications": rows}, timeout=30)
    answer.raise_for_status()
    return answer.json()["decisions"]


def version_of(url: str, row: dict) -> str:
    answer = httpx.post(f"{url}/decide", json=row, timeout=10)
    answer.raise_for_status()
    return answer.json()["policy_version"]


def wait_for_version(url: str, row: dict, version: str, seconds: float = 5.0) -> float:
    started = time.monotonic()
    while version_of(url, row) != version:
        assert time.monotonic() - started < seconds, f"{version} not served after {seconds} s"
        time.sleep(0.05)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def served(trained, tmp_path_factory) -> Iterator[tuple[LiveService, dict[str, str], str]]:
    path = tmp_path_factory.mktemp("policy-live") / "record.sqlite"
    env = {"FAIRGATE_MODEL": trained.tag, "FAIRGATE_POLICY": "mitigated",
           "FAIRGATE_RECORD_URL": f"sqlite:///{path}"}  # fmt: skip
    service = LiveService(trained.tag, **env).wait()
    yield service, env, trained.tag
    service.stop()


def test_promote_reaches_answers_records_policy_and_metrics(served, trained):
    service, env, _ = served
    started = datetime.now(UTC)
    drifted = apply_drift(
        to_records(generate_applicants(1500, seed=901)), DRIFT, SYNTHETIC_CONTRACT
    )
    decide_batch(service.url, drifted[:1000])
    decide_batch(service.url, drifted[1000:])
    trained_version = trained.policy.version
    made = policy_cli(env, "recalibrate", "--since", started.isoformat(), "--json")
    assert made.returncode == 0, made.stderr
    candidate = json.loads(made.stdout)
    version = candidate["version"]
    assert candidate["changed"] and candidate["parent"] == trained_version
    assert candidate["window"]["decisions"] == 1500
    expected = candidate["expected"]
    assert expected["four_fifths_ratio"]["after"] > expected["four_fifths_ratio"]["before"]

    shadow = json.loads(policy_cli(env, "diff", version, "--json").stdout)
    assert shadow["decisions"] == 1500 and shadow["changed"] > 0
    # A move over the bound: refused without --force, and --force without a reason too.
    tight = policy_cli(env, "promote", version, "--max-move", "0.001")
    assert tight.returncode == 2 and "promote it with --force and --reason" in tight.stderr
    no_reason = policy_cli(env, "promote", version, "--max-move", "0.001", "--force")
    assert no_reason.returncode == 2 and "promote it with --force and --reason" in no_reason.stderr
    assert version_of(service.url, drifted[0]) == trained_version
    done = policy_cli(env, "promote", version, "--force", "--reason", "women's incomes drifted")
    assert done.returncode == 0, done.stderr
    assert wait_for_version(service.url, drifted[0], version) <= 5.0

    view = httpx.get(f"{service.url}/policy").json()
    assert view["policy_version"] == version and view["trained_policy_version"] == trained_version
    assert view["policy"]["version"] == version
    latest = view["history"][0]
    assert latest["kind"] == "promote" and latest["version"] == version
    assert latest["reason"] == "women's incomes drifted" and latest["parent"] == trained_version
    stored = next(e for e in view["history"] if e["kind"] == "version" and e["version"] == version)
    assert stored["body"]["window"]["decisions"] == 1500 and "expected" in stored["body"]

    metrics = httpx.get(f"{service.url}/metrics").text
    assert f'fairgate_policy_info{{mode="mitigated",version="{version}"}} 1.0' in metrics
    assert f'fairgate_policy_info{{mode="mitigated",version="{trained_version}"}} 0.0' in metrics
    assert "fairgate_policy_changes_total 1.0" in metrics

    # The record says which version decided each decision: the answer's.
    answers = decide_batch(service.url, drifted[:20])
    assert {a["policy_version"] for a in answers} == {version}
    with open_record(env["FAIRGATE_RECORD_URL"], create=False) as store:
        recorded = {r.application_id: r.policy_version for r in store.rows_between(started)}
    assert recorded[answers[0]["application_id"]] == version


def test_the_active_version_survives_a_restart_and_rollback_returns(served, trained):
    service, env, tag = served
    row = to_records(generate_applicants(1, seed=902))[0]
    active = version_of(service.url, row)
    assert active != trained.policy.version  # promoted by the test before
    again = LiveService(tag, **env).wait()
    try:
        assert version_of(again.url, row) == active  # from its first answer on
        # A start with a promoted version is not a change: not counted (no annotation).
        metrics = httpx.get(f"{again.url}/metrics").text
        assert "fairgate_policy_changes_total 0.0" in metrics
        assert f'fairgate_policy_info{{mode="mitigated",version="{active}"}} 1.0' in metrics
        assert "policy change" not in again.log_tail()
        back = policy_cli(env, "rollback", "--reason", "drift over")
        assert back.returncode == 0, back.stderr
        for url in (service.url, again.url):
            assert wait_for_version(url, row, trained.policy.version) <= 5.0
    finally:
        again.stop()
    nothing = policy_cli(env, "rollback")
    assert nothing.returncode == 2 and "nothing to roll back" in nothing.stderr
    listed = json.loads(policy_cli(env, "list", "--json").stdout)
    assert listed["intact"] and listed["active"] == trained.policy.version
    assert [e["kind"] for e in listed["entries"]].count("rollback") == 1
    verified = subprocess.run([sys.executable, "-m", "cli", "record", "verify"], cwd=REPO,
                              env=os.environ | env, capture_output=True, text=True)  # fmt: skip
    assert verified.returncode == 0 and "intact" in verified.stderr + verified.stdout


def test_refusals_name_what_is_wrong(served):
    _, env, _ = served
    listed = json.loads(policy_cli(env, "list", "--json").stdout)
    again = policy_cli(env, "promote", listed["active"])
    assert again.returncode == 2 and "already the active version" in again.stderr
    unknown = policy_cli(env, "promote", "p-000000000000")
    assert unknown.returncode == 2 and "no policy version 'p-000000000000'" in unknown.stderr
    far = datetime(2001, 1, 1, tzinfo=UTC).isoformat()
    empty = policy_cli(env, "recalibrate", "--since", far, "--until", far)
    assert empty.returncode == 2 and "no live decisions in the window" in empty.stderr
    bad = policy_cli(env, "recalibrate", "--since", "yesterday-ish")
    assert bad.returncode == 2 and "--since" in bad.stderr


@pytest.mark.parametrize("value", ["abc", "-1", "61", "nan"])
def test_a_bad_poll_interval_is_named(value):
    with pytest.raises(ConfigError, match="FAIRGATE_POLICY_POLL"):
        service_config({"FAIRGATE_POLICY_POLL": value})


def test_poll_interval_zero_means_never():
    assert service_config({"FAIRGATE_POLICY_POLL": "0"}).policy_poll == 0.0
    assert service_config({}).policy_poll == 1.0
