"""End to end against a real `bentoml serve` (2 workers) on a loopback port."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import bentoml
import httpx
import psutil
import pytest

from fairgate.artifacts import DEFAULT_MODEL, DEFAULT_MODEL_NAME, load_serving_bundle
from fairgate.decider import Decider
from fairgate.draw import DrawKey
from fairgate.generator import generate_applicants, to_records
from fairgate.schema import Applicant
from service.launch import REPO
from tests.conftest import LiveService
from tests.suite_home import TEST_PROBE_TOKEN
from training.save_model import save_artifacts

pytestmark = pytest.mark.integration
EXAMPLE = Applicant.model_json_schema()["example"]


PROBE = {"X-Fairgate-Probe": "1", "X-Fairgate-Probe-Token": TEST_PROBE_TOKEN}


def metric(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and ",".join(sorted(match.group(1).split(","))) == wanted:
            total += float(match.group(2))
    return total


def test_decide_batch_errors_and_metrics(live_service):
    url = live_service.url
    records = to_records(generate_applicants(20, seed=41))
    before = httpx.get(f"{url}/metrics").text
    single = httpx.post(f"{url}/decide", json=records[0]).json()
    batch = httpx.post(f"{url}/decide_batch", json={"applications": records}).json()
    assert batch["count"] == 20
    assert batch["decisions"][0]["approved"] == single["approved"]
    probes = httpx.post(
        f"{url}/decide_batch", json={"applications": records}, headers=PROBE
    ).json()
    assert all(d["probe"] for d in probes["decisions"])

    bad = httpx.post(f"{url}/decide", json=EXAMPLE | {"annual_income": "lots"})
    assert bad.status_code == 400 and bad.json()["detail"][0]["loc"] == ["annual_income"]

    after = httpx.get(f"{url}/metrics").text

    def delta(name: str) -> float:
        return sum(
            metric(after, name, attribute="gender", group=g, outcome=o)
            - metric(before, name, attribute="gender", group=g, outcome=o)
            for g in ("female", "male")
            for o in ("approve", "deny")
        )

    # Other tests share this server, so count what this test added.
    shown = [line for line in (before + "\n" + after).splitlines() if "decisions_total{" in line]
    assert delta("fairgate_decisions_total") == 21, shown  # a single + a batch of 20
    assert delta("fairgate_probe_decisions_total") == 20, shown  # the probes, only here
    assert "fairgate_score_bucket" in after
    assert re.search(r'fairgate_model_info\{[^}]*policy_version="p-', after)


def test_same_decision_after_a_restart(trained, live_service):
    records = to_records(generate_applicants(50, seed=42))
    first = httpx.post(f"{live_service.url}/decide_batch", json={"applications": records}).json()[
        "decisions"
    ]
    other = LiveService(trained.tag, workers=1).wait()
    try:
        again = httpx.post(f"{other.url}/decide_batch", json={"applications": records}).json()[
            "decisions"
        ]
    finally:
        other.stop()
    assert [d["approved"] for d in first] == [d["approved"] for d in again]


def test_refuses_to_start_without_a_model(tmp_path):
    env = {"BENTOML_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "serve"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "train one with `fairgate train`" in " ".join(result.stderr.split())


def test_bentoml_build_accepts_the_bentofile(trained):
    result = subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fairgate:" in result.stdout


def _workers(server: LiveService) -> list[psutil.Process]:
    found = []
    for child in psutil.Process(server.pid).children(recursive=True):
        try:
            if "_bentoml_impl.worker.service" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # exited (a zombie until circus reaps it)
            continue
    return found


def _model_loaded(worker: psutil.Process) -> bool:
    """A worker sets fairgate_model_info when it has loaded its model, which uvicorn does after
    it set up its event loop and HTTP protocol, and before the worker takes a request."""
    metrics_dir = Path(worker.environ()["PROMETHEUS_MULTIPROC_DIR"])
    return (metrics_dir / f"gauge_max_{worker.pid}.db").exists()


def _wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.3)
    raise TimeoutError(what)


def test_one_model_per_deployment_across_a_newer_model_and_a_worker_restart(trained):
    """Started on the default tag; a newer model is trained while it runs; a worker is
    killed and respawned by BentoML; every worker still serves the tag resolved at start."""
    resolved = str(bentoml.models.get(DEFAULT_MODEL).tag)
    server = LiveService(DEFAULT_MODEL, workers=2).wait()
    try:
        workers = _wait_for(lambda: len(_workers(server)) == 2 and _workers(server), 30, "workers")
        for worker in workers:
            # server.wait() saw one worker answer; the other may still be starting up.
            _wait_for(lambda w=worker: _model_loaded(w), 60, f"worker {worker.pid} loaded")
            # Handed the concrete tag, and no training library mapped into a real worker.
            assert worker.environ()["FAIRGATE_MODEL"] == resolved
            mapped = {m.path for m in worker.memory_maps()}
            assert not [p for p in mapped if "/sklearn/" in p or "/pandas/" in p]
            # uvicorn picked the C event loop and HTTP parser (cheaper per request).
            assert {"uvloop", "httptools"} <= {part for p in mapped for part in p.split("/")}
        newer = save_artifacts(
            name=DEFAULT_MODEL_NAME,
            scorer=trained.scorer,
            policy=trained.policy,
            randomized=trained.randomized,
            features=trained.feature_builder,
            contract_text=trained.contract_text,
            synthesis=trained.synthesis,
            reference=trained.reference,
            metadata={"purpose": "newer model trained while serving"},
            sklearn_model=trained.model,
            lda=trained.lda,
        )
        assert str(bentoml.models.get(DEFAULT_MODEL).tag) == newer != resolved
        killed = workers[0].pid
        os.kill(killed, signal.SIGKILL)
        respawned = _wait_for(
            lambda: [w for w in _workers(server) if w.pid not in {p.pid for p in workers}],
            60,
            "a respawned worker",
        )[0]
        assert respawned.environ()["FAIRGATE_MODEL"] == resolved
        _wait_for(lambda: _model_loaded(respawned), 60, "respawn")
        served = {
            httpx.post(f"{server.url}/decide", json=EXAMPLE).json()["model_version"]
            for _ in range(40)
        }
        assert served == {resolved}
        assert httpx.get(f"{server.url}/policy/").json()["model_version"] == resolved
        info = [
            line
            for line in httpx.get(f"{server.url}/metrics").text.splitlines()
            if line.startswith("fairgate_model_info{")
        ]
        assert info and all(f'model_version="{resolved}"' in line for line in info), info
    finally:
        server.stop()


def test_randomized_mode_agrees_across_workers_ids_and_an_in_process_decider(trained):
    """Served with FAIRGATE_POLICY=randomized: the same applications under fresh ids, over
    fresh connections (either worker), decide as a Decider with the same key decides them."""
    key = "live-draw-key-0123456789"
    server = LiveService(
        trained.tag,
        workers=2,
        FAIRGATE_POLICY="randomized",
        FAIRGATE_DRAW_KEY=key,
        FAIRGATE_MAX_BODY_BYTES="200000",  # read when a worker starts, not at import
    ).wait()
    try:
        records = to_records(generate_applicants(300, seed=43))
        answers = []
        for attempt in range(3):
            renamed = [r | {"application_id": f"try{attempt}-{i}"} for i, r in enumerate(records)]
            with httpx.Client() as client:  # a new connection each round
                answers.append(
                    client.post(
                        f"{server.url}/decide_batch", json={"applications": renamed}
                    ).json()["decisions"]
                )
        policy = httpx.get(f"{server.url}/policy/").json()
        too_big = httpx.post(f"{server.url}/decide_batch", json={"applications": records * 3})
    finally:
        server.stop()
    assert too_big.status_code == 413 and "200000 bytes" in too_big.text
    assert policy["policy_mode"] == "randomized"
    decided = [[d["approved"] for d in batch] for batch in answers]
    assert decided[0] == decided[1] == decided[2]
    assert {d["policy_mode"] for d in answers[0]} == {"randomized"}
    bundle = load_serving_bundle(trained.tag, "randomized")
    local = Decider(bundle, DrawKey(key.encode())).decide([Applicant(**r) for r in records])
    assert decided[0] == local.approved.tolist()
    # Some of these applications really were decided by the draw.
    assert any(0 < d["approval_probability"] < 1 for d in answers[0])


def _live_and_probe_counts(url: str) -> tuple[float, float]:
    text = httpx.get(f"{url}/metrics").text
    live = sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("fairgate_decisions_total{"))  # fmt: skip
    probes = sum(float(line.split()[-1]) for line in text.splitlines()
                 if line.startswith("fairgate_probe_decisions_total{"))  # fmt: skip
    return live, probes


def test_a_probe_claim_needs_the_token(live_service):
    url = live_service.url
    before = httpx.get(f"{url}/metrics").text
    counts = _live_and_probe_counts(url)
    for headers in ({"X-Fairgate-Probe": "1"},
                    {"X-Fairgate-Probe": "yes", "X-Fairgate-Probe-Token": "x" * 28},
                    {"X-Fairgate-Probe": "1", "X-Fairgate-Probe-Token": TEST_PROBE_TOKEN[:-1]}):
        refused = httpx.post(f"{url}/decide", json=EXAMPLE, headers=headers)
        assert refused.status_code == 403, headers
        body = refused.json()
        assert body["error"] == "probe claim refused"
        assert body["detail"][0]["loc"] == ["X-Fairgate-Probe"]
        assert "X-Fairgate-Probe-Token" in body["detail"][0]["msg"]
    # Decided for no one: neither counter moved, and the refusals are counted.
    assert _live_and_probe_counts(url) == counts
    after = httpx.get(f"{url}/metrics").text
    refused_count = metric(after, "fairgate_probe_refused_total", reason="bad_token") - metric(
        before, "fairgate_probe_refused_total", reason="bad_token"
    )
    assert refused_count == 3
    accepted = httpx.post(f"{url}/decide", json=EXAMPLE, headers=PROBE)
    assert accepted.status_code == 200 and accepted.json()["probe"] is True
    assert _live_and_probe_counts(url) == (counts[0], counts[1] + 1)


def test_without_a_token_every_probe_claim_is_refused(trained):
    server = LiveService(trained.tag, FAIRGATE_PROBE_TOKEN="").wait()
    try:
        claim = httpx.post(f"{server.url}/decide", json=EXAMPLE, headers=PROBE)
        assert claim.status_code == 403
        assert "accepts no probes" in claim.json()["detail"][0]["msg"]
        live = httpx.post(f"{server.url}/decide", json=EXAMPLE)
        assert live.status_code == 200 and live.json()["probe"] is False
        text = httpx.get(f"{server.url}/metrics").text
        assert metric(text, "fairgate_probe_refused_total", reason="no_token_configured") == 1
        assert _live_and_probe_counts(server.url) == (1, 0)
    finally:
        server.stop()
