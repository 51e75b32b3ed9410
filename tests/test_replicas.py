"""Two replicas for real (``loadtests/replicas.py``): ``fairgate serve`` twice behind HAProxy
on one PostgreSQL record, Prometheus scraping both, the prober probing through the balancer,
under Locust load sent through the balancer.

In module order, on one set: the decision counters of both replicas add up to the live
decisions answered; a promoted policy, and a rollback, reach both replicas within 5 s with no
request failing; last, a replica SIGKILLed mid-run: the balancer sends its traffic to the
other, every answered decision has its record, the chains verify, Prometheus sees it down.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from loadtests.answers import ENV_VAR, read_answers
from loadtests.balancer import show_stat
from loadtests.drift import apply_drift, parse_drift
from loadtests.pool import target_policy, target_pool
from loadtests.replicas import ReplicaSet
from loadtests.runner import LocustRun, run_locust
from loadtests.slo import RunStats
from loadtests.soak import check_records
from service.launch import REPO

pytestmark = pytest.mark.integration

USERS = 4
# Tasks per second per user: about 80 requests/s in all, light on two cores.
RATE = 20
# The batch size of the load's /decide_batch: a 200 answer with BATCH ids is a live batch,
# one with 2 equal ids a probe pair (twins share their application id).
BATCH = 20
LOAD_SECONDS = 10
KILL_RUN_SECONDS = 12
PROMOTION_RUN_SECONDS = 12
# Answers logged before the kill, so it lands mid-run (at ~80/s: about 2 s in).
ANSWERS_BEFORE_KILL = 150
PROMOTION_SECONDS = 5.0
# Live decisions for the recalibration: the synthetic book's applicants (the ``trained``
# model's) with incomes cut, so the scores move and the recalibrated cut-off with them.
DRIFTED, DRIFT_FIELD, DRIFT_FACTOR = 4000, "annual_income", 0.5
POLICY_CLI_NEEDED = (
    "`fairgate {command}` failed (exit {code}): this test needs `fairgate policy` "
    "(recalibrate/promote/rollback, cli/policy.py) and a service that polls the policy store "
    "every FAIRGATE_POLICY_POLL seconds.\n{output}"
)
VERIFIED = re.compile(r"ok: ([\d,]+) records in ([\d,]+) chains, intact")


@pytest.fixture(scope="module")
def replicas(trained):
    env = {"FAIRGATE_MODEL": trained.tag or "", "FAIRGATE_POLICY_POLL": "1"}
    prober = ("--interval", "2", "--pairs", "50", "--gap-sample", "5")
    with ReplicaSet(replicas=2, workers=1, env=env, scrape_interval="1s",
                    prober_args=prober) as started:  # fmt: skip
        yield started


def _load(replicas: ReplicaSet, out: Path, seconds: int) -> tuple[RunStats, Path]:
    """A Locust run through the balancer; every answer logged to the returned file."""
    answers = out / "answers.jsonl"
    env = {
        "FAIRGATE_PROBE_TOKEN": replicas.token, ENV_VAR: str(answers),
        "FAIRGATE_LOAD_BATCH": str(BATCH), "FAIRGATE_LOAD_POOL": "2000",
        "FAIRGATE_LOAD_RATE": str(RATE),
    }  # fmt: skip
    run = LocustRun(host=replicas.balancer_url, users=USERS, spawn_rate=USERS,
                    run_time=f"{seconds}s", env=env)  # fmt: skip
    return run_locust(run, out / "locust")["Aggregated"], answers


def _live_decisions(answers: Path) -> int:
    """Decisions in the 200 answers that were not probes: a single is 1, a batch its size."""
    live = 0
    for status, _, ids, _ in read_answers(answers):
        if status != 200 or (len(ids) == 2 and ids[0] == ids[1]):
            continue
        assert len(ids) in (1, BATCH), f"an answer of {len(ids)} decisions: not from this load"
        live += len(ids)
    return live


def _scraped_after(replicas: ReplicaSet, moment: float, timeout: float = 15) -> None:
    """Wait until Prometheus has scraped every replica after ``moment`` (Unix seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stamps = replicas.query('timestamp(up{job="fairgate"})')
        if len(stamps) == replicas.count and all(float(s["value"][1]) > moment for s in stamps):
            return
        time.sleep(0.2)
    raise AssertionError(f"no scrape of every replica within {timeout} s: {stamps}")


def _by_instance(replicas: ReplicaSet, expr: str) -> dict[str, float]:
    return {r["metric"].get("instance", ""): float(r["value"][1]) for r in replicas.query(expr)}


def test_the_decision_counters_add_up_over_the_replicas(replicas, tmp_path):
    assert replicas.wait_for('fairgate_probe_success{job="fairgate-prober"} == 1', 60), (
        "no successful probe cycle through the balancer"
    )
    _scraped_after(replicas, time.time())
    before = _by_instance(replicas, 'sum by (instance) (fairgate_decisions_total{job="fairgate"})')
    stats, answers = _load(replicas, tmp_path, LOAD_SECONDS)
    assert stats.requests > 0 and stats.failures == 0, stats
    _scraped_after(replicas, time.time())
    total = replicas.query('sum(fairgate_decisions_total{job="fairgate"})')
    after = _by_instance(replicas, 'sum by (instance) (fairgate_decisions_total{job="fairgate"})')
    live = _live_decisions(answers)
    assert float(total[0]["value"][1]) - sum(before.values()) == live
    counted = {instance: after[instance] - before.get(instance, 0) for instance in after}
    assert sorted(counted) == sorted(u.removeprefix("http://") for u in replicas.replica_urls)
    assert all(n > 0 for n in counted.values()), f"a replica got no live traffic: {counted}"
    print(f"\ncounters: {stats.requests:,} requests, {live:,} live decisions, per replica "
          f"{ {k: int(v) for k, v in counted.items()} }")  # fmt: skip


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=REPO, env=os.environ | env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def _policy(*args: str, env: dict[str, str]) -> str:
    done = _cli("policy", *args, env=env)
    assert done.returncode == 0, POLICY_CLI_NEEDED.format(
        command=" ".join(["policy", *args[:1]]), code=done.returncode,
        output=(done.stdout + done.stderr)[-2000:],
    )  # fmt: skip
    return done.stdout


def _version(url: str, application: dict) -> str:
    response = httpx.post(f"{url}/decide", json=application, timeout=10)
    assert response.status_code == 200, response.text
    assert "policy_version" in response.json(), response.json()
    return response.json()["policy_version"]


def _seconds_to_serve(replicas: ReplicaSet, version: str, application: dict,
                      since: float) -> list[float | None]:  # fmt: skip
    """Per replica, asked directly: seconds from ``since`` (monotonic) until its answers carry
    ``version``; None if not within twice the allowed time."""
    seconds: list[float | None] = [None] * replicas.count
    while None in seconds and time.monotonic() - since < 2 * PROMOTION_SECONDS:
        for i, url in enumerate(replicas.replica_urls):
            if seconds[i] is None and _version(url, application) == version:
                seconds[i] = time.monotonic() - since
        time.sleep(0.05)
    return seconds


class _Stream(threading.Thread):
    """A steady stream of /decide through the balancer, every answer's status and version kept."""

    def __init__(self, url: str, applications: list[dict]) -> None:
        super().__init__(daemon=True)
        self.url, self.applications = url, applications
        self.answers: list[tuple[int, str | None]] = []
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:
            for application in self.applications * 100:
                if self.done.is_set():
                    return
                try:
                    response = client.post("/decide", json=application)
                    body = response.json() if response.status_code == 200 else {}
                    self.answers.append((response.status_code, body.get("policy_version")))
                except httpx.HTTPError as error:
                    self.answers.append((0, repr(error)))
                time.sleep(0.02)

    def __enter__(self) -> _Stream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(15)


def test_a_promoted_policy_and_its_rollback_reach_both_replicas_within_5_s(
    replicas, trained, tmp_path
):
    pool = target_pool(replicas.balancer_url, DRIFTED)
    contract, _ = target_policy(replicas.balancer_url)
    drift = parse_drift(f"{DRIFT_FIELD}*{DRIFT_FACTOR}", contract)
    drifted = apply_drift(pool.singles, drift, contract)
    for start in range(0, len(drifted), 1000):
        batch = {"applications": drifted[start : start + 1000]}
        response = httpx.post(f"{replicas.balancer_url}/decide_batch", json=batch, timeout=60)
        assert response.status_code == 200, response.text
    application = pool.singles[0]
    served = {_version(url, application) for url in replicas.replica_urls}
    assert len(served) == 1, f"the replicas serve different policies: {served}"
    (old,) = served
    env = {"FAIRGATE_RECORD_URL": replicas.record_url, "FAIRGATE_MODEL": trained.tag or ""}
    new = json.loads(_policy("recalibrate", "--since", "10m", "--json", env=env))["version"]
    assert new != old, f"the recalibration kept the served policy {old}"
    # Under Locust load through the balancer, and a stream of single decisions beside it
    # whose every answer is kept (its version included).
    locust: list[RunStats] = []
    load = threading.Thread(
        target=lambda: locust.append(_load(replicas, tmp_path, PROMOTION_RUN_SECONDS)[0]),
        daemon=True,
    )
    load.start()
    with _Stream(replicas.balancer_url, pool.singles[:200]) as stream:
        time.sleep(2)  # the load is running
        _policy("promote", new, "--force", "--reason", "test_replicas", env=env)
        promoted = _seconds_to_serve(replicas, new, application, time.monotonic())
        _policy("rollback", env=env)
        rolled_back = _seconds_to_serve(replicas, old, application, time.monotonic())
    load.join(PROMOTION_RUN_SECONDS + 60)
    assert locust and locust[0].requests > 0 and locust[0].failures == 0, locust
    print(f"\npolicy: {new} served after {promoted} s, {old} again after {rolled_back} s; "
          f"{len(stream.answers)} requests through the balancer meanwhile")  # fmt: skip
    assert all(s is not None and s <= PROMOTION_SECONDS for s in promoted), promoted
    assert all(s is not None and s <= PROMOTION_SECONDS for s in rolled_back), rolled_back
    assert stream.answers, "the stream sent nothing"
    failed = [answer for answer in stream.answers if answer[0] != 200]
    assert not failed, failed[:5]
    assert {version for _, version in stream.answers} <= {old, new}


def test_a_killed_replica_loses_no_answered_decision(replicas, tmp_path):
    """Last in the module: it leaves one replica."""
    result: list[RunStats] = []
    load = threading.Thread(
        target=lambda: result.append(_load(replicas, tmp_path, KILL_RUN_SECONDS)[0]), daemon=True
    )
    answers = tmp_path / "answers.jsonl"
    load.start()
    deadline = time.monotonic() + 60
    while not answers.exists() or len(answers.read_text().splitlines()) < ANSWERS_BEFORE_KILL:
        assert time.monotonic() < deadline and load.is_alive(), "the load did not start"
        time.sleep(0.1)
    # Watched from the moment of the kill: ``kill`` returns once every process is reaped.
    down: list[float] = []
    watch = threading.Thread(
        target=lambda: down.append(replicas.wait_states({"replica1": "DOWN"}, 10)), daemon=True
    )
    killed_at = time.time()
    watch.start()
    replicas.kill(1)
    watch.join(15)
    assert down, f"HAProxy did not mark the killed replica down: {replicas.server_states()}"
    marked_down = down[0]
    assert replicas.server_states()["replica0"] == "UP"
    load.join(KILL_RUN_SECONDS + 60)
    assert result, "the load did not finish"
    stats = result[0]
    logged = read_answers(answers)
    failed = [(status, sent) for status, sent, _, _ in logged if status != 200]
    after = [status for status, sent, _, _ in logged if sent > killed_at + marked_down]
    print(f"\nkill: {stats.requests:,} requests, {len(failed)} failed at the kill "
          f"{failed}, replica marked down {marked_down:.2f} s after it, "
          f"{len(after):,} answers after that")  # fmt: skip
    # At most the requests in flight at the kill (one per user) fail; after it, none.
    assert len(failed) <= USERS, failed
    assert all(sent <= killed_at for _, sent in failed), (killed_at, failed)
    assert after and set(after) == {200}
    assert marked_down < 2.0
    check = check_records(answers, replicas.record_url, None)
    assert check.missing == 0, check
    verified = _cli("record", "verify", env={"FAIRGATE_RECORD_URL": replicas.record_url})
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # fairgate's CLI prints its messages on stderr.
    found = VERIFIED.search(verified.stderr)
    assert found, verified.stderr
    assert int(found[2].replace(",", "")) >= replicas.count, verified.stderr
    backend = next(row for row in show_stat(replicas.stats_socket) if row["svname"] == "BACKEND")
    print(f"record: {check.answered:,} decisions answered 200, {check.records:,} records "
          f"(probes included); {verified.stderr.strip()}; HAProxy retries "
          f"{backend['wretr']}, redispatches {backend['wredis']}")  # fmt: skip
    killed = replicas.replica_urls[1].removeprefix("http://")
    assert replicas.wait_for(f'up{{job="fairgate",instance="{killed}"}} == 0', 15)
    assert replicas.query(f'up{{job="fairgate",instance!="{killed}"}} == 1')
