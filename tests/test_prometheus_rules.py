"""Prometheus config and rules, checked by promtool (Debian's prometheus package)."""

import subprocess

import pytest
import yaml

from tests.conftest import REPO

PROMETHEUS = REPO / "monitoring" / "prometheus"
RULE_TESTS = PROMETHEUS / "tests" / "alerts_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


def test_prometheus_config_and_rule_files_are_valid():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_and_recording_rule_unit_tests_pass():
    result = promtool("test", "rules", str(RULE_TESTS.relative_to(PROMETHEUS)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_broken_threshold_fails_the_rule_tests(tmp_path):
    """The rule tests can fail: move the four-fifths line and they must."""
    rules = (PROMETHEUS / "rules" / "alerts.yml").read_text()
    assert "fairgate_probe_four_fifths_ratio < 0.8" in rules
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "alerts.yml").write_text(
        rules.replace(
            "fairgate_probe_four_fifths_ratio < 0.8", "fairgate_probe_four_fifths_ratio < 0.6"
        )
    )
    (tmp_path / "rules" / "recording.yml").write_text(
        (PROMETHEUS / "rules" / "recording.yml").read_text()
    )
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "alerts_test.yml").write_text(RULE_TESTS.read_text())
    result = subprocess.run(
        ["promtool", "test", "rules", "tests/alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "FairgateProbeFourFifthsBreach" in result.stdout + result.stderr


def _alert_names() -> list[str]:
    groups = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"]]


@pytest.mark.parametrize("alert", _alert_names())
def test_every_alert_has_a_firing_and_a_quiet_case(alert):
    cases = [
        case
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case["alertname"] == alert
    ]
    assert any(case["exp_alerts"] for case in cases), f"{alert} never expected to fire"
    assert any(not case["exp_alerts"] for case in cases), f"{alert} never expected quiet"


def test_the_issue_alerts_all_exist():
    expected = {
        "FairgateLiveFourFifthsBreach", "FairgateProbeFourFifthsBreach",
        "FairgateCounterfactualFlips", "FairgateIncomeGap", "FairgateProberDown",
        "FairgateProbeStale", "FairgateHighErrorRate", "FairgateHighLatency",
    }  # fmt: skip
    assert expected <= set(_alert_names())
