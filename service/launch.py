"""How a ``bentoml serve`` process is launched: one command line and environment for all.

Used by ``fairgate serve``/``demo``, the load tests, the benchmark and the live tests.

BentoML 1.4 keeps its Prometheus multiprocess files in ``$BENTOML_HOME/prometheus_multiproc_dir``
(``BentoMLContainer.prometheus_multiproc_dir``; no environment variable or config key moves it)
and empties that directory whenever a server starts, so a second server on the same home
zeroes the first one's counters. ``python -m service.launch serve ...`` is ``bentoml serve``
with that container value set to a directory of its own, as BentoML's own pytest plugin sets
it; the workers inherit it as ``PROMETHEUS_MULTIPROC_DIR``.

The worker count is handed to BentoML the supported way, as a configuration override
(``BENTOML_CONFIG_OVERRIDES={"services": {"fairgate": {"workers": N}}}``) built from
``FAIRGATE_WORKERS``, so the service module reads no environment when it is imported. BentoML
logs that override as "Applying user config override from json: ..." in the server process;
the user never wrote it (the service's start-up line says the worker count), so that line is
left out there unless the user gave overrides of their own.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Final

# The tree the packages are imported from (the checkout, or site-packages when installed):
# ``bentoml serve`` runs there so that ``service.service`` imports. The one definition: the
# CLI, the load tests, the scripts and the tests import it.
REPO: Final[Path] = Path(__file__).resolve().parent.parent
# One line that fits 80 columns after "error: ".
PORT_IN_USE: Final[str] = "port {port} on {host} is in use; choose another with {flag}"
PORT_FORBIDDEN: Final[str] = "cannot listen on port {port}: permission denied (below 1024?)"
NOT_AN_ADDRESS: Final[str] = "cannot listen on {host}: not an address of this machine"


def service_env(settings: Mapping[str, str]) -> dict[str, str]:
    """Environment for ``bentoml serve``: this process's, with ``settings`` laid over it.

    One OpenMP thread per worker avoids oversubscription.
    """
    return dict(os.environ) | {"OMP_NUM_THREADS": "1"} | dict(settings)


def port_problem(host: str, port: int, flag: str = "--port") -> str | None:
    """Why a server could not listen on ``host:port``, or None if it can.

    Checked before starting BentoML, which otherwise fails to bind inside circus with a long
    traceback, and before ``fairgate demo`` waits for a ready answer that someone else's
    server on that port may give. The server binds with SO_REUSEADDR, so this does too: a
    port left in TIME_WAIT is free, one with a listener is not. A host that does not resolve
    is left to BentoML to report.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError:
        return None
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as error:
            if error.errno == errno.EACCES:
                return PORT_FORBIDDEN.format(port=port)
            if error.errno == errno.EADDRNOTAVAIL:
                return NOT_AN_ADDRESS.format(host=host)
            return PORT_IN_USE.format(port=port, host=host, flag=flag)
    return None


SERVICE_TARGET = "service.service:DecisionService"


def serve_command(host: str, port: int, target: str = SERVICE_TARGET) -> list[str]:
    """The one ``bentoml serve`` command line (serve, demo, loadtest, bench, live tests)."""
    return [
        sys.executable, "-m", "service.launch", "serve", target,
        "--host", host, "--port", str(port),
    ]  # fmt: skip


SERVICE_NAME = "fairgate"


def worker_overrides(env: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """``BENTOML_CONFIG_OVERRIDES`` carrying FAIRGATE_WORKERS to BentoML, merged with any
    overrides already given; {} when FAIRGATE_WORKERS is unset or not a number (the service's
    own configuration check reports a bad value before any worker starts)."""
    text = env.get("FAIRGATE_WORKERS", "")
    if not text.isdigit():
        return {}
    overrides = json.loads(env.get("BENTOML_CONFIG_OVERRIDES") or "{}")
    service = overrides.setdefault("services", {}).setdefault(SERVICE_NAME, {})
    service["workers"] = int(text)
    return {"BENTOML_CONFIG_OVERRIDES": json.dumps(overrides)}


class _OwnOverrideLine(logging.Filter):
    """Drops BentoML's "Applying user config override from json" line (see the module's
    docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Applying user config override from json")


def main(argv: list[str] | None = None) -> None:
    """Run the BentoML CLI with a private Prometheus directory, removed when it exits."""
    if not os.environ.get("BENTOML_CONFIG_OVERRIDES"):
        logging.getLogger("bentoml._internal.configuration.containers").addFilter(
            _OwnOverrideLine()
        )
    os.environ.update(worker_overrides(os.environ))
    directory = tempfile.mkdtemp(prefix="fairgate-metrics-")
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml_cli.cli import cli

    BentoMLContainer.prometheus_multiproc_dir.set(directory)
    try:
        cli(args=argv, prog_name="bentoml")
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
