"""How a ``bentoml serve`` process is launched: one command line and environment for all.

Used by ``fairgate serve``/``demo``, the load tests, the benchmark and the live tests.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def service_env(workers: int) -> dict[str, str]:
    """Environment for ``bentoml serve``: one OpenMP thread per worker avoids oversubscription."""
    return os.environ | {"OMP_NUM_THREADS": "1", "FAIRGATE_WORKERS": str(workers)}


SERVICE_TARGET = "service.service:DecisionService"


def serve_command(host: str, port: int, target: str = SERVICE_TARGET) -> list[str]:
    """The one ``bentoml serve`` command line (serve, demo, loadtest, bench, live tests)."""
    return [sys.executable, "-m", "bentoml", "serve", target, "--host", host, "--port", str(port)]
