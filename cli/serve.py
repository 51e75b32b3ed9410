"""``fairgate serve``: the decision API under ``bentoml serve``.

Every setting comes through ``service/config.py``'s one path: the FAIRGATE_* environment,
with the flags the user gave laid over it. A flag not given is None here, never a default
of its own, so ``FAIRGATE_POLICY=unmitigated fairgate serve`` serves ``unmitigated`` as
``bentoml serve`` and docker-compose do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli.errors import fail
from cli.train import train_default
from service.launch import REPO, port_problem, serve_command, service_env

if TYPE_CHECKING:
    from service.config import Flag, ServiceConfig


def given_flags(workers: int | None, model: str | None, policy: str | None) -> list[Flag]:
    """The settings the user gave as flags (None: not given, the environment decides)."""
    from service.config import Flag

    given = [
        ("FAIRGATE_WORKERS", "--workers", workers),
        ("FAIRGATE_MODEL", "--model", model),
        ("FAIRGATE_POLICY", "--policy", policy),
    ]
    return [
        Flag(variable, name, str(value)) for variable, name, value in given if value is not None
    ]


def prepare_server(
    host: str, port: int, flags: list[Flag], *, train_if_missing: bool
) -> tuple[ServiceConfig, dict[str, str]]:
    """Check everything a server needs before one starts: the configuration (every bad entry
    at once), the model and the port. Returns the configuration and the environment to start
    ``bentoml serve`` with; a problem is one line and exit 2.

    The server runs in the repository, so a relative record path is resolved here, where the
    user stands (``fairgate record verify`` in the same directory finds it).
    """
    from fairgate.artifacts import ArtifactError, ModelNotFound, load_serving_bundle
    from fairgate.config_error import ConfigError
    from service.config import exported_settings, service_config

    try:
        config = service_config(os.environ, flags=flags, cwd=Path.cwd())
    except ConfigError as error:
        fail(error)
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
    # Last, just before BentoML binds it (which on a busy port fails inside circus with a
    # page of traceback).
    problem = port_problem(host, port)
    if problem is not None:
        fail(problem)
    return config, service_env(exported_settings(config))


def serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 3000,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    workers: Annotated[
        int | None,
        typer.Option(help="BentoML API workers (default: FAIRGATE_WORKERS, else 1)."),
    ] = None,
    model_tag: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="Model tag in the store (default: FAIRGATE_MODEL, else fairgate-loan:latest).",
        ),
    ] = None,
    policy: Annotated[
        str | None,
        typer.Option(
            help="lda (the less discriminatory alternative: an attribute-blind model, one "
            "cut-off for everyone), mitigated (deterministic group thresholds), randomized "
            "(fairlearn's rule, needs FAIRGATE_DRAW_KEY) or unmitigated (the model at 0.5); "
            "default: FAIRGATE_POLICY, else lda."
        ),
    ] = None,
    train_if_missing: Annotated[
        bool,
        typer.Option(help="Train the synthetic default first if the store has no model."),
    ] = False,
) -> None:
    """Serve the decision API (BentoML) on HOST:PORT.

    The whole configuration (FAIRGATE_* variables, and the flags given, which win over
    them; ``service/config.py``) is checked before anything starts: every bad entry is
    listed and the exit status is 2.
    """
    flags = given_flags(workers, model_tag, policy)
    _, env = prepare_server(host, port, flags, train_if_missing=train_if_missing)
    command = serve_command(host, port)
    # Replace this process with the server rather than wait on a child: a signal sent to
    # `fairgate serve` (Ctrl-C, `kill`, a supervisor's SIGTERM) then reaches BentoML itself,
    # which shuts its workers down; a waiting parent would die and leave them serving.
    os.chdir(REPO)
    os.execvpe(command[0], command, env)
