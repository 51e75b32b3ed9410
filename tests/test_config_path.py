"""One configuration path: FAIRGATE_* variables work the same through ``fairgate serve``,
``bentoml serve`` and docker-compose, flags given win over them; and one record URL, so
``fairgate record verify`` finds what ``fairgate serve`` recorded in the same directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest
from typer.testing import CliRunner

from cli.main import app
from fairgate.artifacts import DEFAULT_MODEL
from record.url import record_url
from service.config import DEFAULT_WORKERS, Flag, service_config
from service.server_process import ServerProcess, free_port, temporary_log
from tests.test_compose import SERVICES
from training.pipeline import TrainResult

DECISIONS = 7
WORKER_MODULE = "_bentoml_impl.worker.service"


def plain_env(**settings: str) -> dict[str, str]:
    """The suite's environment without any FAIRGATE_* setting but the probe token (the suite
    points FAIRGATE_DATA_DIR at its own directory; these tests need the default)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAIRGATE_")}
    return env | {"FAIRGATE_PROBE_TOKEN": os.environ["FAIRGATE_PROBE_TOKEN"]} | settings


def fairgate(*args: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """A ``fairgate`` command; wide columns unless ``env`` says, so Rich does not wrap a
    long path."""
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=cwd, env={"COLUMNS": "500"} | dict(env), capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip


class FairgateServe(ServerProcess):
    """``fairgate serve`` itself (not ``bentoml serve``) as a user starts it, from ``cwd``."""

    def __init__(self, cwd: Path, env: Mapping[str, str], *flags: str) -> None:
        self.port = free_port()
        super().__init__(
            [sys.executable, "-m", "cli", "serve", "--port", str(self.port), *flags],
            url=f"http://127.0.0.1:{self.port}", env=env, cwd=cwd,
            log=temporary_log("fairgate-serve-"),
        )  # fmt: skip
        self.wait_ready(90)

    def workers(self) -> int:
        """BentoML API workers in this server's process tree."""
        count = 0
        for child in psutil.Process(self.pid).children(recursive=True):
            try:
                count += WORKER_MODULE in " ".join(child.cmdline())
            except psutil.Error:  # exited between the listing and the look
                continue
        return count


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ({}, [], (DEFAULT_MODEL, "lda", DEFAULT_WORKERS)),
        (
            {"FAIRGATE_MODEL": "x:1", "FAIRGATE_POLICY": "unmitigated", "FAIRGATE_WORKERS": "3"},
            [],
            ("x:1", "unmitigated", 3),
        ),
        (
            {"FAIRGATE_MODEL": "x:1", "FAIRGATE_POLICY": "unmitigated", "FAIRGATE_WORKERS": "3"},
            [Flag("FAIRGATE_POLICY", "--policy", "mitigated"),
             Flag("FAIRGATE_WORKERS", "--workers", "2")],
            ("x:1", "mitigated", 2),
        ),
        ({}, [Flag("FAIRGATE_MODEL", "--model", "y:2")], ("y:2", "lda", DEFAULT_WORKERS)),
    ],
)  # fmt: skip
def test_a_flag_given_wins_and_a_flag_not_given_leaves_the_environment(env, flags, expected):
    config = service_config(env, flags=flags)
    assert (config.model, config.policy, config.workers) == expected


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"FAIRGATE_DATA_DIR": "data"},
        {"FAIRGATE_DATA_DIR": "/var/lib/fairgate"},
        {"FAIRGATE_RECORD_URL": "sqlite:///rel/r.sqlite"},
        {"FAIRGATE_RECORD_URL": "postgresql://db/fairgate"},
    ],
)
def test_the_service_and_the_record_commands_resolve_one_url(env):
    expected = {
        (): "sqlite:////srv/fairgate-data/record.sqlite",
        ("FAIRGATE_DATA_DIR", "data"): "sqlite:////srv/data/record.sqlite",
        ("FAIRGATE_DATA_DIR", "/var/lib/fairgate"): "sqlite:////var/lib/fairgate/record.sqlite",
        ("FAIRGATE_RECORD_URL", "sqlite:///rel/r.sqlite"): "sqlite:////srv/rel/r.sqlite",
        ("FAIRGATE_RECORD_URL", "postgresql://db/fairgate"): "postgresql://db/fairgate",
    }[next(iter(env.items()), ())]
    assert record_url(env, Path("/srv")) == expected
    assert service_config(env, cwd=Path("/srv")).record_url == expected


@pytest.mark.parametrize("policy", ["lda", "unmitigated", "mitigated"])
def test_compose_serves_what_its_environment_says(policy, monkeypatch, tmp_path):
    """The compose service's command, run with its environment, starts BentoML with those
    settings (Docker is not here: the command stops where it would start the server)."""
    import fairgate.artifacts
    from cli import serve as serve_module

    started: dict[str, str] = {}

    def start(file: str, command: list[str], env: dict[str, str]) -> None:
        started.update(env)

    monkeypatch.setattr(fairgate.artifacts, "load_serving_bundle", lambda *a, **k: None)
    monkeypatch.setattr(serve_module, "port_problem", lambda *a, **k: None)
    monkeypatch.setattr(serve_module.os, "chdir", lambda path: None)
    monkeypatch.setattr(serve_module.os, "execvpe", start)
    service = SERVICES["service"]
    # The token file is the compose volume's; the suite's token stands in for it.
    env = {k: v for k, v in service["environment"].items() if k != "FAIRGATE_PROBE_TOKEN_FILE"}
    env |= {"FAIRGATE_POLICY": policy}
    result = CliRunner().invoke(app, service["command"], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert started["FAIRGATE_POLICY"] == policy
    assert started["FAIRGATE_WORKERS"] == str(service["environment"]["FAIRGATE_WORKERS"])
    assert started["FAIRGATE_RECORD_URL"] == "sqlite:////data/record/record.sqlite"


def test_no_record_url_looks_for_the_default_and_says_where(tmp_path):
    result = fairgate("record", "verify", cwd=tmp_path, env=plain_env())
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert f"no decision record at {tmp_path}/fairgate-data/record.sqlite" in message
    assert "FAIRGATE_RECORD_URL is not set, so this is the default" in message


@dataclass(frozen=True)
class Served:
    policy: dict
    workers: int
    verified: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def served_from_the_environment(
    german_trained: TrainResult, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    """``FAIRGATE_MODEL=X FAIRGATE_POLICY=unmitigated FAIRGATE_WORKERS=1 fairgate serve``
    in a fresh directory; a few decisions; stopped; then ``fairgate record verify`` there
    with no record setting at all."""
    cwd = tmp_path_factory.mktemp("user-dir")
    settings = {"FAIRGATE_MODEL": german_trained.tag or "", "FAIRGATE_POLICY": "unmitigated",
                "FAIRGATE_WORKERS": "1"}  # fmt: skip
    server = FairgateServe(cwd, plain_env(**settings))
    try:
        policy = httpx.get(f"{server.url}/policy/", timeout=10).json()
        workers = server.workers()
        example = german_trained.contract.example
        for number in range(DECISIONS):
            body = example | {german_trained.contract.id_field.name: f"env-{number}"}
            httpx.post(f"{server.url}/decide", json=body, timeout=10).raise_for_status()
    finally:
        server.stop()
    yield Served(policy, workers, fairgate("record", "verify", cwd=cwd, env=plain_env()))


def test_fairgate_serve_serves_the_model_and_policy_the_environment_names(
    served_from_the_environment, german_trained
):
    policy = served_from_the_environment.policy
    assert policy["model_version"] == german_trained.tag
    assert policy["contract"]["name"] == german_trained.contract.name
    assert policy["policy_mode"] == "unmitigated"


def test_fairgate_serve_starts_the_workers_the_environment_asks_for(served_from_the_environment):
    assert served_from_the_environment.workers == 1


def test_record_verify_with_no_url_verifies_what_a_default_serve_recorded(
    served_from_the_environment,
):
    verified = served_from_the_environment.verified
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert f"ok: {DECISIONS} records in 1 chains, intact" in verified.stdout + verified.stderr


def test_a_signal_to_fairgate_serve_stops_the_server(trained, tmp_path):
    """``fairgate serve`` becomes the server (exec): SIGTERM to the pid a user or supervisor
    knows stops BentoML and its workers, instead of killing a waiting parent and leaving
    them serving."""
    server = FairgateServe(tmp_path, plain_env(FAIRGATE_MODEL=trained.tag or ""))
    tree = [server.pid, *(c.pid for c in psutil.Process(server.pid).children(recursive=True))]
    try:
        os.kill(server.pid, signal.SIGTERM)
        _, alive = psutil.wait_procs([psutil.Process(p) for p in tree if psutil.pid_exists(p)],
                                        timeout=30)  # fmt: skip
        assert not alive, [p.cmdline() for p in alive]
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{server.url}/readyz", timeout=2)
    finally:
        server.stop()
