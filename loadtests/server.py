"""Start a ``bentoml serve`` process on a free loopback port and wait until it is ready."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from service.launch import SERVICE_TARGET, serve_command, service_env

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextmanager
def running_server(
    *, workers: int = 1, target: str = SERVICE_TARGET, env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> Iterator[Server]:  # fmt: skip
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.NamedTemporaryFile(prefix="fairgate-serve-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        serve_command("127.0.0.1", port, target),
        cwd=REPO, env=service_env({"FAIRGATE_WORKERS": str(workers)} | dict(env or {})),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_ready(url, process, timeout, Path(log.name))
        yield Server(url=url, pid=process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        log.close()


def _wait_ready(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"bentoml serve exited with {process.returncode}:\n"
                               f"{log.read_text()[-2000:]}")  # fmt: skip
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s; log: {log}")
