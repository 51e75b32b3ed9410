"""``fairgate serve``: the decision API under ``bentoml serve``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Annotated

import typer

from cli.errors import fail
from cli.train import train_default
from fairgate.launch import REPO, serve_command, service_env


def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(min=1, help="BentoML API workers.")] = 2,
    model_tag: Annotated[
        str, typer.Option("--model", help="Model tag in the store.")
    ] = "fairgate-loan:latest",
    policy: Annotated[
        str,
        typer.Option(
            help="mitigated (deterministic group thresholds), randomized (fairlearn's rule, "
            "needs FAIRGATE_DRAW_KEY) or unmitigated (one 0.5 threshold)."
        ),
    ] = "mitigated",
    train_if_missing: Annotated[
        bool,
        typer.Option(help="Train the synthetic default first if the store has no model."),
    ] = False,
) -> None:
    """Serve the decision API (BentoML) on HOST:PORT.

    The whole configuration (flags and FAIRGATE_* variables, ``service/config.py``) is checked
    before anything starts: every bad entry is listed and the exit status is 2.
    """
    from fairgate.artifacts import ArtifactError, ModelNotFound, load_serving_bundle
    from service.config import ConfigError, absolute_record_url, service_config

    flags = {"FAIRGATE_MODEL": model_tag, "FAIRGATE_POLICY": policy}
    env = service_env(workers) | flags
    try:
        config = service_config(env)
    except ConfigError as error:
        fail(error)
    # The server runs in the repository; a relative record path means where the user stands.
    record_url = absolute_record_url(config.record_url, Path.cwd())
    if record_url is not None:
        env["FAIRGATE_RECORD_URL"] = record_url
    try:
        try:
            load_serving_bundle(config.model, config.policy, artifact_key=config.artifact_key)
        except ModelNotFound:
            if not train_if_missing:
                raise
            train_default()
            load_serving_bundle(config.model, config.policy, artifact_key=config.artifact_key)
    except ArtifactError as error:
        fail(error)
    raise typer.Exit(subprocess.call(serve_command(host, port), env=env, cwd=REPO))
