"""``fairgate probe``: the counterfactual prober, once or as a /metrics exporter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from cli.errors import fail


def probe(
    target: Annotated[str | None, typer.Option(help="Base URL of the decision service.")] = None,
    interval: Annotated[float | None, typer.Option(help="Seconds between cycles.")] = None,
    pairs: Annotated[int | None, typer.Option(help="Twin pairs per attribute per cycle.")] = None,
    gap_sample: Annotated[
        int | None, typer.Option(help="Applicants for the gap in the contract's gap field.")
    ] = None,
    control_pairs: Annotated[
        int | None, typer.Option(help="Applicants sent twice, identical (the control).")
    ] = None,
    attribute: Annotated[
        list[str] | None,
        typer.Option(help="Protected attribute to flip (repeat); default: the contract's."),
    ] = None,
    boundary_share: Annotated[
        float | None,
        typer.Option(help="Share of probes drawn like the book's applicants near a threshold."),
    ] = None,
    contract: Annotated[
        Path | None,
        typer.Option(
            exists=True,
            dir_okay=False,
            help="Contract of an endpoint that is not fairgate (default: its GET /policy).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the probe population.")] = None,
    listen: Annotated[
        str | None, typer.Option("--web.listen-address", help="HOST:PORT for /metrics.")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config.file", exists=True, help="TOML file of settings.")
    ] = None,
    once: Annotated[bool, typer.Option(help="Run one cycle, print the audit, exit.")] = False,
    log_level: Annotated[
        str,
        typer.Option(
            "--log.level", help="debug, info, warning or error; debug adds one line per request."
        ),
    ] = "info",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="With --once: write JSON.")
    ] = None,
    markdown_out: Annotated[
        Path | None, typer.Option("--markdown", help="With --once: write Markdown.")
    ] = None,
) -> None:
    """Counterfactual prober: twins differing only in a protected attribute, as probes.

    Applicants, attributes and the gap field come from the target's contract (its
    GET /policy), or from --contract FILE for an endpoint that is not fairgate. Probes
    carry FAIRGATE_PROBE_TOKEN (or the file FAIRGATE_PROBE_TOKEN_FILE names): a fairgate
    service refuses probe claims without its token.
    """
    import tomllib

    from fairgate.config_error import ConfigError
    from monitoring.audit import markdown, print_audit, to_json
    from monitoring.client import DecisionClient
    from monitoring.config import config_from_mapping, env_mapping
    from monitoring.cycle_log import LOG_LEVELS, configure_logging
    from monitoring.runner import probe_once, serve_forever

    raw: dict = tomllib.loads(config_file.read_text()) if config_file else {}
    raw |= env_mapping(os.environ)
    flags = {
        "target": target,
        "interval_seconds": interval,
        "pairs": pairs,
        "gap_sample": gap_sample,
        "control_pairs": control_pairs,
        "attributes": attribute,
        "boundary_share": boundary_share,
        "contract": contract,
        "seed": seed,
        "listen_address": listen,
    }
    raw |= {k: v for k, v in flags.items() if v is not None}
    if log_level not in LOG_LEVELS:
        fail(f"--log.level: expected one of {', '.join(LOG_LEVELS)} (got {log_level!r})")
    try:
        config = config_from_mapping(raw)
    except ConfigError as error:
        fail(error)
    # One line per cycle and per failure; httpx's per-request lines only at debug.
    configure_logging(log_level)
    if not once:
        serve_forever(config)
        return
    client = DecisionClient(config.target, timeout=config.timeout_seconds, token=config.token)
    result = probe_once(config, None, 0, client)
    if result is None:
        fail(f"probing {config.target} failed (see log above)", code=1)
    print_audit(result, Console())
    for path, text in ((json_out, to_json), (markdown_out, markdown)):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)  # e.g. reports/, as documented
            path.write_text(text(result))
