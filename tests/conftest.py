"""Shared fixtures: one small trained model per session, in a private BentoML home."""

from __future__ import annotations

# First, before anything imports bentoml: a private model store for the whole run.
from tests import suite_home  # imported first for its effect, once per process

# isort: split
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from starlette.testclient import TestClient

from service.launch import REPO, service_env
from service.server_process import ServerProcess, ServiceProcess, free_port, temporary_log
from training.pipeline import TrainConfig, TrainResult, run_training


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The private model store goes with the run (test servers are stopped by then)."""
    shutil.rmtree(suite_home.HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The naive model (gender as a feature) on the default income-bar book, 40k rows."""
    reports = tmp_path_factory.mktemp("reports")
    config = TrainConfig(
        rows=40_000, seed=7, include_sensitive=True, bootstrap=50, reports_dir=reports
    )
    return run_training(config)


GERMAN = REPO / "tests" / "fixtures" / "germancredit" / "germancredit.csv"
# What a person adds to the German book's draft: the gap field (larger loans are riskier,
# so less of it helps) and its monotone feature.
GERMAN_GAP = '\n[gap]\nfield = "credit_amount"\ndirection = -1\nunit = "DM"\n'


@pytest.fixture(scope="session")
def german_trained(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """A second contract unlike the default: the German credit book (1,000 rows), drafted
    by ``fairgate init``'s code with a gap field added, trained as it is."""
    from training.book_check import read_book
    from training.draft_contract import draft_contract

    work = tmp_path_factory.mktemp("german")
    contract = work / "german.toml"
    draft = draft_contract(
        read_book(GERMAN),
        label="creditability",
        approved=["good"],
        protected=["age_in_years", "personal_status_and_sex"],
        name="german_credit",
    )
    contract.write_text(draft + GERMAN_GAP)
    config = TrainConfig(
        data=GERMAN, contract=contract, bootstrap=20, reports_dir=work / "reports",
        model_name="german-loan",
    )  # fmt: skip
    return run_training(config)


class LiveService(ServiceProcess):
    """``bentoml serve`` of ``tag`` on a free loopback port, as the launcher starts it;
    ``env_overrides`` laid over this environment."""

    def __init__(self, tag: str, workers: int = 1, **env_overrides: str) -> None:
        settings = {"FAIRGATE_MODEL": tag, "FAIRGATE_WORKERS": str(workers)} | env_overrides
        super().__init__(free_port(), service_env(settings), log=temporary_log("bentoml-serve-"))

    def wait(self) -> LiveService:
        return self.wait_ready(90)


@pytest.fixture(scope="session")
def client(trained: TrainResult) -> Iterator[TestClient]:
    """The service in-process through BentoML's ASGI app (its middleware included).

    One per session: BentoML registers its request metrics once per process.
    """
    os.environ["FAIRGATE_MODEL"] = trained.tag or ""
    from service.service import DecisionService

    with TestClient(DecisionService.to_asgi(), raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def live_service(trained: TrainResult) -> Iterator[LiveService]:
    service = LiveService(trained.tag or "", workers=2).wait()
    yield service
    service.stop()


class ProberProcess(ServerProcess):
    """``fairgate probe`` as its own process, as users run the sidecar."""

    def __init__(self, target: str, *extra: str) -> None:
        self.port = free_port()
        super().__init__(
            [sys.executable, "-m", "cli", "probe", "--target", target,
             "--web.listen-address", f"127.0.0.1:{self.port}", *extra],
            url=f"http://127.0.0.1:{self.port}", ready_path="/metrics", cwd=REPO,
            log=temporary_log("fairgate-probe-"),
        )  # fmt: skip
        self.wait_ready(30)


class PrometheusServer:
    """Debian's prometheus binary on a loopback port, with the shipped rules.

    ``monitoring/prometheus/prometheus.yml`` is used as shipped except for the scrape
    targets (loopback ports instead of compose names) and 1 s intervals.
    """

    def __init__(self, data_dir: Path, service: str, prober: str) -> None:
        shipped = REPO / "monitoring" / "prometheus"
        config = yaml.safe_load((shipped / "prometheus.yml").read_text())
        config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
        config["rule_files"] = [str(shipped / f) for f in config["rule_files"]]
        targets = {"fairgate-service": service, "fairgate-prober": prober}
        for job in config["scrape_configs"]:
            job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = data_dir / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start()

    def start(self) -> None:
        self.server = ServerProcess(
            ["prometheus", f"--config.file={self.config_path}",
             f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            url=self.url, ready_path="/-/ready", log=self.data_dir / "prometheus.log",
        ).wait_ready(60)  # fmt: skip

    def stop(self) -> None:
        self.server.stop()

    def query(self, expr: str) -> list[dict]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        response.raise_for_status()
        return response.json()["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 60) -> list[dict]:
        """The first non-empty result of ``expr`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.5)
