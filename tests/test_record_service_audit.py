"""``fairgate audit``: the live fairness figures from the record agree with the Prometheus
counters the service kept over the same traffic, probes excluded from both."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.launch import REPO
from tests.conftest import LiveService
from tests.suite_home import TEST_PROBE_TOKEN
from tests.test_record_service import applications, sqlite_url
from training.fairness import group_fairness, selection_fairness

PROBE = {"X-Fairgate-Probe": "1", "X-Fairgate-Probe-Token": TEST_PROBE_TOKEN}


def test_selection_fairness_is_group_fairness_without_labels():
    rng = np.random.default_rng(3)
    groups = rng.choice(np.array(["a", "b", "c"], dtype=object), size=500)
    y_pred = (rng.random(500) < np.where(groups == "a", 0.3, 0.6)).astype(int)
    y_true = rng.integers(0, 2, size=500)
    with_labels = group_fairness(y_true, y_pred, groups, n_boot=50, seed=1)
    without = selection_fairness(y_pred, groups, n_boot=50, seed=1)
    for key in ("demographic_parity_difference", "demographic_parity_ratio", "bootstrap_95"):
        assert without[key] == with_labels[key]
    for group, row in without["by_group"].items():
        assert row["count"] == with_labels["by_group"][group]["count"]
        assert row["selection_rate"] == with_labels["by_group"][group]["selection_rate"]


def counters(url: str) -> dict[str, dict[str, float]]:
    """fairgate_decisions_total by group and outcome, parsed by prometheus_client."""
    found: dict[str, dict[str, float]] = defaultdict(dict)
    text = httpx.get(f"{url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name != "fairgate_decisions":
            continue
        for sample in family.samples:
            if sample.name == "fairgate_decisions_total":
                found[sample.labels["group"]][sample.labels["outcome"]] = sample.value
    return found


@pytest.mark.integration
def test_the_audit_agrees_with_the_live_counters(trained, tmp_path):
    url = sqlite_url(tmp_path / "record.sqlite")
    server = LiveService(trained.tag, workers=2, FAIRGATE_RECORD_URL=url).wait()
    rows = applications(900, seed=601, prefix="AUDIT")
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for start in range(0, 600, 200):
                batch = {"applications": rows[start : start + 200]}
                assert client.post("/decide_batch", json=batch).status_code == 200
            for row in rows[600:700]:
                assert client.post("/decide", json=row).status_code == 200
            probes = {"applications": rows[700:]}
            assert client.post("/decide_batch", json=probes, headers=PROBE).status_code == 200
        live = counters(server.url)
    finally:
        server.stop()
    out = tmp_path / "audit.json"
    done = subprocess.run(
        [sys.executable, "-m", "cli", "audit", "--record", url, "--since", "1d",
         "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["probes_excluded"] == 200
    (audit,) = result["audits"]
    assert audit["decisions"] == 700
    # The policy's grouping is the counters' "group" label.
    policy = audit["groups"]["gender"]
    totals = {g: o.get("approve", 0) + o.get("deny", 0) for g, o in live.items()}
    assert sum(totals.values()) == 700
    seen = {g: n for g, n in totals.items() if n > 0}
    assert {g: row["count"] for g, row in policy["by_group"].items()} == seen
    rates = {g: live[g].get("approve", 0) / n for g, n in seen.items()}
    for group, row in policy["by_group"].items():
        assert row["selection_rate"] == pytest.approx(rates[group], abs=1e-12)
    assert policy["demographic_parity_ratio"] == pytest.approx(
        min(rates.values()) / max(rates.values()), abs=1e-12
    )
    # Every audit attribute of the contract gets its own figures over the same decisions.
    assert sum(r["count"] for r in audit["groups"]["age_band"]["by_group"].values()) == 700
    assert "four-fifths ratio" in done.stdout and "200 probes left out" in done.stdout
