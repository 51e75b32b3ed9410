"""Shared fixtures: one small trained model per session, in a private BentoML home."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Before anything imports bentoml: the model store location is read at import time.
os.environ.setdefault("BENTOML_HOME", tempfile.mkdtemp(prefix="fairgate-bentoml-"))
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import httpx
import pytest

from fairgate.cli import serve_command
from training.pipeline import TrainConfig, TrainResult, run_training

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The naive model (gender as a feature) on the default income-bar book, 40k rows."""
    reports = tmp_path_factory.mktemp("reports")
    config = TrainConfig(
        rows=40_000, seed=7, include_sensitive=True, bootstrap=50, reports_dir=reports
    )
    return run_training(config)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer 200 within {timeout}s")


class LiveService:
    def __init__(self, tag: str, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the server
            prefix="bentoml-serve-", suffix=".log", delete=False
        )
        env = os.environ | {
            "FAIRGATE_MODEL": tag,
            "FAIRGATE_WORKERS": str(workers),
            "OMP_NUM_THREADS": "1",
        }
        self.process = subprocess.Popen(
            serve_command("127.0.0.1", self.port),
            cwd=REPO,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait(self) -> LiveService:
        try:
            wait_http(f"{self.url}/readyz", 90, self.process)
        except (RuntimeError, TimeoutError) as error:
            raise RuntimeError(f"{error}\n{Path(self.log.name).read_text()[-3000:]}") from error
        return self

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 15)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(10)


@pytest.fixture(scope="session")
def live_service(trained: TrainResult) -> Iterator[LiveService]:
    service = LiveService(trained.tag or "", workers=2).wait()
    yield service
    service.stop()
