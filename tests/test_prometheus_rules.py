"""Prometheus config and rules, checked by promtool (Debian's prometheus package)."""

import subprocess

import pytest
import yaml

from service.launch import REPO

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


def _rule_tests_with(tmp_path, file: str, old: str, new: str) -> str:
    """Run the shipped rule tests against the rules with ``old`` replaced by ``new`` in ``file``."""
    (tmp_path / "rules").mkdir()
    for name in ("alerts.yml", "recording.yml"):
        text = (PROMETHEUS / "rules" / name).read_text()
        if name == file:
            assert old in text, f"{old!r} not in {name}"
            text = text.replace(old, new)
        (tmp_path / "rules" / name).write_text(text)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "alerts_test.yml").write_text(RULE_TESTS.read_text())
    result = subprocess.run(
        ["promtool", "test", "rules", "tests/alerts_test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0, "the rule tests passed against broken rules"
    return result.stdout + result.stderr


LIVE_ALERT = "expr: floor(fairgate_approval:four_fifths_ratio_rate1h * 1000 + 1e-9) / 1000 < 0.8"
# Each mutation undoes one thing the rules must get right; the rule tests must catch it.
MUTATIONS = {
    "four-fifths line moved": (
        "alerts.yml",
        "fairgate_probe_four_fifths_ratio * 1000 + 1e-9) / 1000 < 0.8",
        "fairgate_probe_four_fifths_ratio * 1000 + 1e-9) / 1000 < 0.6",
        "FairgateProbeFourFifthsBreach",
    ),
    "never-approved group without an approve series dropped": (
        "recording.yml",
        "or group:fairgate_decisions:rate1h * 0",
        "",
        "group:fairgate_approval:ratio_rate1h",
    ),
    "global minimum-volume guard instead of a per-group one": (
        "alerts.yml",
        LIVE_ALERT,
        LIVE_ALERT + " and on () min(group:fairgate_decisions:rate1h) * 3600 >= 100",
        "FairgateLiveFourFifthsBreach",
    ),
    "quiet groups kept in the ratio": (
        "recording.yml",
        "and on (attribute, group) group:fairgate_decisions:rate1h * 3600 >= 100",
        "and on (attribute, group) group:fairgate_decisions:rate1h * 3600 >= 0",
        "FairgateLiveFourFifthsBreach",
    ),
    "float noise at exactly four fifths read as a breach": (
        "alerts.yml",
        LIVE_ALERT,
        LIVE_ALERT.replace(" + 1e-9", ""),
        "FairgateLiveFourFifthsBreach",
    ),
    "attribute dropped from the live aggregation": (
        "recording.yml",
        "sum by (attribute, group) (rate(fairgate_decisions_total[1h]))",
        "sum by (group) (rate(fairgate_decisions_total[1h]))",
        "FairgateLiveFourFifthsBreach",
    ),
    "one ratio across all attributes instead of one per attribute": (
        "recording.yml",
        "min by (attribute) (group:fairgate_approval:ratio_rate1h",
        "min without (attribute, group) (group:fairgate_approval:ratio_rate1h",
        "FairgateLiveFourFifthsBreach",
    ),
    "gap line moved": (
        "alerts.yml",
        "* 1000 - 1e-9) / 1000 > 0.1",
        "* 1000 - 1e-9) / 1000 > 0.3",
        "FairgateGap",
    ),
    "flips alert not held back by the control": (
        "alerts.yml",
        "unless on (target) fairgate_probe_control_flip_rate > 0",
        "",
        "FairgateCounterfactualFlips",
    ),
    "summary rounded across the line": (
        "alerts.yml",
        "expr: floor(fairgate_probe_four_fifths_ratio * 1000 + 1e-9) / 1000 < 0.8",
        "expr: fairgate_probe_four_fifths_ratio < 0.8",
        "FairgateProbeFourFifthsBreach",
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_the_rule_tests_catch_a_broken_rule(tmp_path, mutation):
    file, old, new, named = MUTATIONS[mutation]
    assert named in _rule_tests_with(tmp_path, file, old, new)


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
        "FairgateCounterfactualFlips", "FairgateGap", "FairgateProberDown",
        "FairgateProbeStale", "FairgateHighErrorRate", "FairgateHighLatency",
        "FairgateDecisionsNotReproducible",
    }  # fmt: skip
    assert expected <= set(_alert_names())


def test_the_rules_name_no_attribute_group_or_field_of_a_book():
    """Expressions, labels and annotations take every name from the series' labels."""
    for name in ("alerts.yml", "recording.yml"):
        # Parsed, so comments (which may give the default book as an example) do not count.
        text = str(yaml.safe_load((PROMETHEUS / "rules" / name).read_text())).lower()
        for word in ("gender", "female", "income", "dollars", "age_band", "credit"):
            assert word not in text, f"{name} names {word!r}"
