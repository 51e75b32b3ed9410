"""``fairgate demo``: train if needed, serve, and probe the service, in one command."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from cli.errors import fail
from cli.probe import probe
from cli.serve import prepare_server
from fairgate.probe_auth import new_token
from service.launch import port_problem


def demo(
    port: Annotated[int, typer.Option(help="Service port.")] = 3000,
    probe_port: Annotated[int, typer.Option(help="Prober /metrics port.")] = 9109,
    once: Annotated[bool, typer.Option(help="Stop after the first audit.")] = False,
) -> None:
    """Train the default model if none exists, serve it, and probe it.

    The service is configured as ``fairgate serve`` configures it (FAIRGATE_* variables).
    """
    from service.server_process import ServerNotReady, ServiceProcess  # httpx: not at --help

    # Both ports before anything starts or trains: on a busy one the demo would wait for,
    # and then probe, someone else's server.
    for number, flag in ((port, "--port"), (None if once else probe_port, "--probe-port")):
        problem = None if number is None else port_problem("127.0.0.1", number, flag)
        if problem is not None:
            fail(problem)
    # One token shared by the service and the prober started here (unless one is set):
    # without it the service refuses every probe claim.
    if not (os.environ.get("FAIRGATE_PROBE_TOKEN") or os.environ.get("FAIRGATE_PROBE_TOKEN_FILE")):
        os.environ["FAIRGATE_PROBE_TOKEN"] = new_token()
    # The record goes to FAIRGATE_DATA_DIR (default ./fairgate-data, git-ignored) where the
    # demo is started, not inside the repository the server runs in.
    _, env = prepare_server("127.0.0.1", port, [], train_if_missing=True)
    server = ServiceProcess(port, env)  # its log on this terminal
    try:
        try:
            server.wait_ready(120)
        except ServerNotReady as error:
            fail(f"the service did not start: {error}", code=1)
        url = server.url
        typer.echo(f"service ready on {url} (try {url}/docs.json, {url}/policy)")
        probe(target=url, once=True)
        if not once:
            typer.echo(
                f"probing every 30 s; prober metrics on http://127.0.0.1:{probe_port}/metrics"
            )
            probe(target=url, listen=f"127.0.0.1:{probe_port}")
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
