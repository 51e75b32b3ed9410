"""The sidecar loop: cycle, export, log, sleep; never dies on a failed cycle."""

from __future__ import annotations

import logging
import threading
import time

from prometheus_client import CollectorRegistry, start_http_server

from monitoring.client import DecisionClient, ProbeError
from monitoring.config import ProberConfig
from monitoring.cycle_log import cycle_failed_line, cycle_line
from monitoring.exporter import ProberMetrics
from monitoring.prober import CycleResult, ProbeSettings, run_cycle
from monitoring.target import ProbeTarget, fetch_target, target_from_contract

log = logging.getLogger("fairgate.prober")


def settings_of(config: ProberConfig) -> ProbeSettings:
    return ProbeSettings(
        pairs=config.pairs,
        gap_sample=config.gap_sample,
        control_pairs=config.control_pairs,
        attributes=config.attributes,
        seed=config.seed,
        boundary_share=config.boundary_share,
    )


def resolve_target(config: ProberConfig, client: DecisionClient) -> ProbeTarget:
    """The contract file when one is configured, else the target's own ``GET /policy``
    (read every cycle: a redeployed model may bring another contract)."""
    if config.contract is not None:
        return target_from_contract(config.contract, config.target)
    assert client.client is not None
    return fetch_target(client.client, config.target)


def probe_once(
    config: ProberConfig, metrics: ProberMetrics | None, cycle: int, client: DecisionClient
) -> CycleResult | None:
    started = time.perf_counter()
    sent_before = client.decisions_sent
    try:
        target = resolve_target(config, client)
        result = run_cycle(client, target, settings_of(config), cycle)
    except ProbeError as error:
        duration = time.perf_counter() - started
        sent = client.decisions_sent - sent_before
        log.warning(cycle_failed_line(config.target, cycle, error, sent, duration))
        if metrics is not None:
            metrics.record_sent(config.target, sent)
            metrics.record_failure(config.target, error.kind, duration)
        return None
    log.info(cycle_line(result))
    if metrics is not None:
        metrics.record_sent(result.target, result.decisions_sent)
        metrics.record_success(result)
    return result


def serve_forever(config: ProberConfig, stop: threading.Event | None = None) -> None:
    registry = CollectorRegistry()
    metrics = ProberMetrics(registry)
    metrics.watch(config.target)
    host, port = config.listen
    start_http_server(port, addr=host, registry=registry)
    log.info("prober metrics on http://%s:%d/metrics, probing %s", host, port, config.target)
    stop = stop or threading.Event()
    client = DecisionClient(config.target, timeout=config.timeout_seconds, token=config.token)
    cycle = 0
    while not stop.is_set():
        probe_once(config, metrics, cycle, client)
        cycle += 1
        stop.wait(config.interval_seconds)
    client.close()
