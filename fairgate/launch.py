"""How a ``bentoml serve`` process is launched: one command line and environment for all.

Used by ``fairgate serve``/``demo``, the load tests, the benchmark and the live tests.

BentoML 1.4 keeps its Prometheus multiprocess files in ``$BENTOML_HOME/prometheus_multiproc_dir``
(``BentoMLContainer.prometheus_multiproc_dir``; no environment variable or config key moves it)
and empties that directory whenever a server starts, so a second server on the same home
zeroes the first one's counters. ``python -m fairgate.launch serve ...`` is ``bentoml serve``
with that container value set to a directory of its own, as BentoML's own pytest plugin sets
it; the workers inherit it as ``PROMETHEUS_MULTIPROC_DIR``.

The worker count is handed to BentoML the supported way, as a configuration override
(``BENTOML_CONFIG_OVERRIDES={"services": {"fairgate": {"workers": N}}}``) built from
``FAIRGATE_WORKERS``, so the service module reads no environment when it is imported.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def service_env(workers: int) -> dict[str, str]:
    """Environment for ``bentoml serve``: one OpenMP thread per worker avoids oversubscription."""
    return os.environ | {"OMP_NUM_THREADS": "1", "FAIRGATE_WORKERS": str(workers)}


SERVICE_TARGET = "service.service:DecisionService"


def serve_command(host: str, port: int, target: str = SERVICE_TARGET) -> list[str]:
    """The one ``bentoml serve`` command line (serve, demo, loadtest, bench, live tests)."""
    return [
        sys.executable, "-m", "fairgate.launch", "serve", target,
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


def main(argv: list[str] | None = None) -> None:
    """Run the BentoML CLI with a private Prometheus directory, removed when it exits."""
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
