"""The prober against endpoints with known answers, plus its config and exporter."""

import asyncio
import json
import threading
import time

import numpy as np
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from rich.console import Console
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from fairgate.config_error import ConfigError
from fairgate.contract import contract_to_mapping
from fairgate.contract_synth import Synthesis, record_marginals
from fairgate.generator import generate_applicants
from fairgate.policy import ThresholdPolicy
from fairgate.schema import SYNTHETIC_CONTRACT
from monitoring.audit import as_dict, control_warning, markdown, print_audit, to_json
from monitoring.client import DecisionClient
from monitoring.config import config_from_mapping
from monitoring.counterfactual import AttributeResult, probe_population
from monitoring.cycle_log import cycle_line
from monitoring.exporter import ProberMetrics
from monitoring.figures import amount, dollars, rate, ratio, share
from monitoring.prober import CycleResult, ProbeSettings, run_cycle
from monitoring.runner import probe_once
from monitoring.target import target_from_policy
from service.server_process import free_port, wait_http

BAR, GAP = 40_000.0, 12_500.0
# What the fake endpoints publish on GET /policy: the synthetic contract, summaries of the
# synthetic generator's applicants, and a one-threshold policy by gender.
SYNTHESIS = Synthesis(record_marginals(SYNTHETIC_CONTRACT, generate_applicants(20_000, seed=3)))
POLICY = ThresholdPolicy.single_threshold(attributes=("gender",), groups=["female", "male"])
PAYLOAD = {
    "contract": contract_to_mapping(SYNTHETIC_CONTRACT),
    "synthesis": SYNTHESIS.to_dict(),
    "policy": POLICY.to_dict(),
}
TARGET = target_from_policy(PAYLOAD, "test")


def rule_app(gap: float, mode: dict) -> Starlette:
    """Men approved from income BAR, women from BAR + gap; ``mode`` switches in faults.

    ``mode["coin"]`` (a seeded numpy Generator) turns it into a coin toss: every decision
    random on every call, so the same applicant sent twice may get either answer.
    ``mode["received"]`` counts the applications it was asked to decide.
    """

    async def decide(request: Request):
        if mode.get("fault") == "slow":
            await asyncio.sleep(3)
        if mode.get("fault") == "500":
            return PlainTextResponse("boom", status_code=500)
        if mode.get("fault") == "garbage":
            return PlainTextResponse("not json")
        body = await request.json()
        mode["received"] = mode.get("received", 0) + len(body["applications"])
        if "coin" in mode:
            heads = mode["coin"].random(len(body["applications"])) < 0.5
            return JSONResponse(
                {"decisions": [{"approved": bool(h), "score": float(h)} for h in heads]}
            )
        decisions = []
        for a in body["applications"]:
            bar = BAR + (gap if a["gender"] == "female" else 0.0)
            decisions.append(
                {"approved": a["annual_income"] >= bar, "score": float(a["annual_income"] >= bar)}
            )
        return JSONResponse({"decisions": decisions})

    async def ready(_: Request):
        return PlainTextResponse("ok")

    async def policy(_: Request):
        return JSONResponse(PAYLOAD)

    return Starlette(
        routes=[
            Route("/decide_batch", decide, methods=["POST"]),
            Route("/readyz", ready),
            Route("/policy/", policy),
        ]
    )


@pytest.fixture
def endpoint():
    """Start a known-rule endpoint; returns (start(gap) -> url, mode)."""
    servers = []
    mode: dict = {}

    def start(gap: float) -> str:
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(rule_app(gap, mode), host="127.0.0.1", port=port, log_level="error")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_http(f"http://127.0.0.1:{port}/readyz", 20)
        return f"http://127.0.0.1:{port}"

    yield start, mode
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


SETTINGS = ProbeSettings(pairs=1000, gap_sample=100, attributes=("gender", "age_band"), seed=4)


def test_truth_flip_rate_and_gap_on_a_known_rule(endpoint):
    start, _ = endpoint
    client = DecisionClient(start(GAP))
    result = run_cycle(client, TARGET, SETTINGS, cycle=0)
    # The cycle's inputs (not its outputs): the same seeded synthetic applicants.
    base = probe_population(TARGET, SETTINGS.pairs, seed=SETTINGS.seed * 1_000_003)
    income = base["annual_income"]
    assert 0.1 < np.mean((income >= BAR) & (income < BAR + GAP)) < 0.5  # informative
    analytic = np.mean((income >= BAR) & (income < BAR + GAP))
    gender = next(a for a in result.attributes if a.attribute == "gender")
    (pair,) = gender.pairs
    assert pair.flip_rate == pytest.approx(analytic, abs=1e-12)
    assert pair.favours_a_rate == 0  # women never favoured under this rule
    age = next(a for a in result.attributes if a.attribute == "age_band")
    assert all(p.flip_rate == 0 for p in age.pairs)
    gap = result.gap
    assert gap.measured == 100 and gap.non_monotone == 0
    assert (gap.field, gap.unit, gap.group_a, gap.group_b) == (
        "annual_income", "dollars", "female", "male",
    )  # fmt: skip
    assert gap.median == pytest.approx(GAP, rel=0.01)
    assert gap.p90 == pytest.approx(GAP, rel=0.01)
    typical = SYNTHESIS.population.quantiles["annual_income"][100]  # the book's median income
    assert gap.median_ratio == pytest.approx(GAP / typical, rel=0.01)


def test_fair_endpoint_shows_no_flips_and_no_gap(endpoint):
    start, _ = endpoint
    result = run_cycle(DecisionClient(start(0.0)), TARGET, SETTINGS, cycle=0)
    assert all(p.flip_rate == 0 for a in result.attributes for p in a.pairs)
    assert result.gap.median == pytest.approx(0, abs=5.0)


def test_exporter_clears_values_when_a_cycle_fails_and_recovers(endpoint):
    start, mode = endpoint
    url = start(GAP)
    registry = CollectorRegistry()
    metrics = ProberMetrics(registry, clock=lambda: 1234.0)
    config = config_from_mapping({"target": url, "pairs": 200, "gap_sample": 20})
    client = DecisionClient(url, timeout=1.0)
    metrics.watch(url)
    assert (
        registry.get_sample_value("fairgate_probe_errors_total", {"target": url, "kind": "timeout"})
        == 0
    )
    assert registry.get_sample_value("fairgate_probe_decisions_sent_total", {"target": url}) == 0
    probe_once(config, metrics, 0, client)
    assert registry.get_sample_value("fairgate_probe_control_flip_rate", {"target": url}) == 0
    flip = {"target": url, "attribute": "gender", "group_a": "female", "group_b": "male"}
    assert registry.get_sample_value("fairgate_probe_success", {"target": url}) == 1
    assert registry.get_sample_value("fairgate_probe_flip_ratio", flip) > 0
    assert (
        registry.get_sample_value("fairgate_probe_last_success_timestamp_seconds", {"target": url})
        == 1234.0
    )
    for fault, kind in (("500", "http_5xx"), ("garbage", "bad_response"), ("slow", "timeout")):
        mode["fault"] = fault
        probe_once(config, metrics, 1, client)
        assert registry.get_sample_value("fairgate_probe_success", {"target": url}) == 0
        assert registry.get_sample_value("fairgate_probe_flip_ratio", flip) is None
        control = registry.get_sample_value("fairgate_probe_control_flip_rate", {"target": url})
        assert control is None
        assert (
            registry.get_sample_value("fairgate_probe_errors_total", {"target": url, "kind": kind})
            == 1
        )
    mode.clear()
    probe_once(config, metrics, 2, client)
    assert registry.get_sample_value("fairgate_probe_success", {"target": url}) == 1


def test_target_down_is_a_connection_error_not_a_crash():
    url = f"http://127.0.0.1:{free_port()}"
    registry = CollectorRegistry()
    metrics = ProberMetrics(registry)
    config = config_from_mapping({"target": url, "pairs": 10, "gap_sample": 0})
    started = time.monotonic()
    assert probe_once(config, metrics, 0, DecisionClient(url, timeout=2)) is None
    assert time.monotonic() - started < 5
    assert (
        registry.get_sample_value(
            "fairgate_probe_errors_total", {"target": url, "kind": "connection"}
        )
        == 1
    )


def test_config_reports_every_bad_entry_at_once():
    with pytest.raises(ConfigError) as error:
        config_from_mapping(
            {
                "target": "ftp://x",
                "pairs": "0",
                "control_pairs": "0",
                "attributes": "gender,not a name",
                "boundary_share": "2",
                "listen_address": "nope",
                "colour": "red",
            }
        )
    message = str(error.value)
    for key in (
        "target", "pairs", "control_pairs", "attributes", "listen_address", "colour: unknown",
        "boundary_share",
    ):  # fmt: skip
        assert key in message
    config = config_from_mapping({"pairs": "50", "attributes": "gender"})
    assert config.pairs == 50 and config.attributes == ("gender",)


def test_deterministic_biased_endpoint_passes_the_control(endpoint):
    start, _ = endpoint
    result = run_cycle(DecisionClient(start(GAP)), TARGET, SETTINGS, cycle=0)
    assert result.control.pairs == SETTINGS.control_pairs == 200
    assert result.control.flips == 0 and result.control.flip_rate == 0.0
    assert control_warning(result) is None
    assert as_dict(result)["control"] == {
        "pairs": 200, "flips": 0, "flip_rate": 0.0, "reproducible": True,
    }  # fmt: skip
    assert "NOT REPRODUCIBLE" not in markdown(result)


def test_coin_toss_endpoint_is_not_reproducible_rather_than_biased(endpoint):
    start, mode = endpoint
    mode["coin"] = np.random.default_rng(11)
    url = start(0.0)
    registry = CollectorRegistry()
    metrics = ProberMetrics(registry)
    config = config_from_mapping({"target": url, "pairs": 1000, "gap_sample": 20, "seed": 4})
    result = probe_once(config, metrics, 0, DecisionClient(url))
    # A fair coin: identical twins and identical control pairs disagree half the time.
    gender = next(a for a in result.attributes if a.attribute == "gender")
    assert 0.4 < gender.pairs[0].flip_rate < 0.6
    assert 0.35 < result.control.flip_rate < 0.65
    assert not result.control.reproducible
    gauge = registry.get_sample_value("fairgate_probe_control_flip_rate", {"target": url})
    assert gauge == result.control.flip_rate
    console = Console(record=True, width=200)
    print_audit(result, console)
    text = " ".join(console.export_text().split())  # as read, whatever the wrapping
    assert "NOT REPRODUCIBLE" in text and "cannot be read as bias" in text
    assert "NOT REPRODUCIBLE" in markdown(result)
    document = json.loads(to_json(result))
    assert document["control"]["reproducible"] is False
    assert document["control"]["pairs"] == 200
    assert "cannot be read as bias" in document["warning"]
    line = cycle_line(result)
    assert "control_flip_rate=" in line and line.endswith("are not evidence of bias")


def test_decisions_sent_counts_everything_the_endpoint_received(endpoint):
    start, mode = endpoint
    url = start(GAP)
    registry = CollectorRegistry()
    metrics = ProberMetrics(registry)
    metrics.watch(url)
    # Without the gap search the count is known in advance: 1000 pairs x (2 genders +
    # 4 age bands) twins, plus 200 control applicants sent twice.
    config = config_from_mapping({"target": url, "gap_sample": 0})
    result = probe_once(config, metrics, 0, DecisionClient(url))
    assert mode["received"] == result.decisions_sent == 1000 * 6 + 200 * 2
    # With it, the bisection adds a data-dependent number of decisions: still all counted.
    mode["received"] = 0
    config = config_from_mapping({"target": url, "gap_sample": 100})
    result = probe_once(config, metrics, 1, DecisionClient(url))
    assert result.decisions_sent == mode["received"] > 6400 + 2 * 100 * 16
    sent = registry.get_sample_value("fairgate_probe_decisions_sent_total", {"target": url})
    assert sent == 6400 + mode["received"]
    summary = Console(record=True, width=200)
    print_audit(result, summary)
    assert f"{mode['received']} decisions sent" in summary.export_text()
    assert json.loads(to_json(result))["decisions_sent"] == mode["received"]


def test_a_failed_cycle_still_counts_what_it_sent(endpoint):
    start, mode = endpoint
    url = start(GAP)
    registry = CollectorRegistry()
    metrics = ProberMetrics(registry)
    mode["fault"] = "500"
    config = config_from_mapping({"target": url, "pairs": 10, "gap_sample": 0, "control_pairs": 5})
    assert probe_once(config, metrics, 0, DecisionClient(url)) is None
    # The first request (20 gender twins) reached the endpoint and failed the cycle.
    assert registry.get_sample_value("fairgate_probe_decisions_sent_total", {"target": url}) == 20


def test_one_log_line_per_cycle_with_the_headline_figures(endpoint, caplog):
    start, mode = endpoint
    url = start(GAP)
    config = config_from_mapping({"target": url, "pairs": 200, "gap_sample": 20, "seed": 4})
    client = DecisionClient(url, timeout=1.0)
    with caplog.at_level("INFO", logger="fairgate.prober"):
        result = probe_once(config, None, 7, client)
        mode["fault"] = "slow"
        assert probe_once(config, None, 8, client) is None
    lines = [r for r in caplog.records if r.name == "fairgate.prober"]
    assert [r.levelname for r in lines] == ["INFO", "WARNING"]
    ok, failed = lines[0].getMessage(), lines[1].getMessage()
    gender = next(a for a in result.attributes if a.attribute == "gender")
    assert ok.startswith(f"probe cycle 7 ok target={url} decisions_sent={result.decisions_sent} ")
    assert f"max_flip_rate={rate(gender.pairs[0].flip_rate)} (gender female/male)" in ok
    assert "worst_four_fifths=" in ok and "control_flip_rate=0.0%" in ok
    assert "median_gap=-$" not in ok and "median_gap=$12," in ok and "(annual_income)" in ok
    assert failed.startswith(f"probe cycle 8 failed kind=timeout target={url} decisions_sent=")


@pytest.mark.parametrize(
    ("value", "printed", "function"),
    [
        (0.7956, "0.795", ratio),  # not 0.80: the four-fifths line is 0.8
        (0.8, "0.800", ratio),
        (0.29, "0.290", ratio),
        (0.0501, "5.1%", rate),  # not 5.0%: the flips line is 5%
        (0.05, "5.0%", rate),
        (0.07, "7.0%", rate),
        (0.00004, "0.1%", rate),  # a control flip is never printed as 0.0%
        (5000.4, "$5,001", dollars),  # not $5,000: the gap line is $5,000
        (-6375.2, "-$6,376", dollars),
        (2.301, "2.31 months", lambda v: amount(v, "months")),  # away from zero
        (-2.301, "-2.31 months", lambda v: amount(v, "months")),
        (13142.2, "13,143", lambda v: amount(v, "")),
        (5000.4, "$5,001", lambda v: amount(v, "dollars")),
        (0.1001, "0.101", share),  # not 0.100: the gap-ratio line is 0.1
        (0.1, "0.100", share),
        (-0.1001, "-0.101", share),
        (0.31, "0.310", share),
    ],
)
def test_printed_figures_never_round_across_an_alert_line(value, printed, function):
    assert function(value) == printed


def test_the_audit_prints_a_07956_ratio_below_the_line():
    attribute = AttributeResult(
        attribute="gender",
        approval_rate={"female": 0.3978, "male": 0.5},
        approval_ratio=0.7956,
        pairs=[],
        rows=[],
    )
    result = CycleResult(target="http://x", cycle=0, attributes=[attribute])
    console = Console(record=True, width=200)
    print_audit(result, console)
    text = console.export_text() + markdown(result)
    assert "four-fifths ratio 0.795" in text and "Four-fifths ratio 0.795" in text
    assert "0.80" not in text
