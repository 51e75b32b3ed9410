"""The prober against endpoints with known answers, plus its config and exporter."""

import asyncio
import threading
import time

import numpy as np
import pytest
import uvicorn
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from monitoring.client import DecisionClient
from monitoring.config import ConfigError, config_from_mapping
from monitoring.counterfactual import base_population
from monitoring.exporter import ProberMetrics
from monitoring.prober import ProbeSettings, run_cycle
from monitoring.runner import probe_once
from tests.conftest import free_port, wait_http

BAR, GAP = 40_000.0, 12_500.0


def rule_app(gap: float, mode: dict) -> Starlette:
    """Men approved from income BAR, women from BAR + gap; ``mode`` switches in faults."""

    async def decide(request: Request):
        if mode.get("fault") == "slow":
            await asyncio.sleep(3)
        if mode.get("fault") == "500":
            return PlainTextResponse("boom", status_code=500)
        if mode.get("fault") == "garbage":
            return PlainTextResponse("not json")
        body = await request.json()
        decisions = []
        for a in body["applications"]:
            bar = BAR + (gap if a["gender"] == "female" else 0.0)
            decisions.append(
                {"approved": a["annual_income"] >= bar, "score": float(a["annual_income"] >= bar)}
            )
        return JSONResponse({"decisions": decisions})

    async def ready(_: Request):
        return PlainTextResponse("ok")

    return Starlette(
        routes=[Route("/decide_batch", decide, methods=["POST"]), Route("/readyz", ready)]
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
    result = run_cycle(client, SETTINGS, cycle=0)
    base = base_population(SETTINGS.pairs, seed=SETTINGS.seed * 1_000_003)
    income = base["annual_income"]
    analytic = np.mean((income >= BAR) & (income < BAR + GAP))
    gender = next(a for a in result.attributes if a.attribute == "gender")
    (pair,) = gender.pairs
    assert pair.flip_rate == pytest.approx(analytic, abs=1e-12)
    assert pair.favours_a_rate == 0  # women never favoured under this rule
    age = next(a for a in result.attributes if a.attribute == "age_band")
    assert all(p.flip_rate == 0 for p in age.pairs)
    gap = result.gap
    assert gap.measured == 100 and gap.non_monotone == 0
    assert gap.median_dollars == pytest.approx(GAP, rel=0.01)
    assert gap.p90_dollars == pytest.approx(GAP, rel=0.01)


def test_fair_endpoint_shows_no_flips_and_no_gap(endpoint):
    start, _ = endpoint
    result = run_cycle(DecisionClient(start(0.0)), SETTINGS, cycle=0)
    assert all(p.flip_rate == 0 for a in result.attributes for p in a.pairs)
    assert result.gap.median_dollars == pytest.approx(0, abs=1.0)


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
    probe_once(config, metrics, 0, client)
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
                "attributes": "gender,religion",
                "listen_address": "nope",
                "colour": "red",
            }
        )
    message = str(error.value)
    for key in ("target", "pairs", "attributes", "listen_address", "colour: unknown"):
        assert key in message
    config = config_from_mapping({"pairs": "50", "attributes": "gender"})
    assert config.pairs == 50 and config.attributes == ("gender",)
