"""A server run as a child process: started in a session of its own, ready once an HTTP
address answers 200, stopped with its whole process group.

The one way ``bentoml serve`` (``fairgate demo``, the load tests, the benchmark, the scripts,
the live tests), the prober and Prometheus are run from Python. A session of its own because
``bentoml serve`` starts workers and each worker a record writer: signalling the group stops
them all, where signalling the first process alone can leave a worker holding the port; and a
Ctrl-C at the terminal reaches the caller only, which then stops the server in order.

>>> env = service_env({"FAIRGATE_MODEL": tag})
>>> with ServiceProcess(free_port(), env, log=temporary_log("serve-")) as server:  # doctest: +SKIP
...     httpx.post(f"{server.wait_ready(120).url}/decide", json=application)
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, Self

import httpx

from service.launch import REPO, SERVICE_TARGET, serve_command

POLL_SECONDS: Final[float] = 0.3
# How much of a log a start-up failure quotes: BentoML's traceback fits.
LOG_TAIL_CHARS: Final[int] = 3000
NOT_READY: Final[str] = "{url} did not answer 200 within {timeout:g} s"
EXITED: Final[str] = "process exited with {code} before {url} answered"


class ServerNotReady(RuntimeError):
    """The server exited, or did not answer in time; the message ends with its log's tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now, chosen by the system, for a server started right after."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def temporary_log(prefix: str) -> Path:
    """A new empty file for a server's output, kept after the run for a reader to look at."""
    handle, name = tempfile.mkstemp(prefix=prefix, suffix=".log")
    os.close(handle)
    return Path(name)


def wait_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    """Return once ``url`` answers 200. ``RuntimeError`` if ``process`` exits first,
    ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(EXITED.format(code=process.returncode, url=url))
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(POLL_SECONDS)
    raise TimeoutError(NOT_READY.format(url=url, timeout=timeout))


class ServerProcess:
    """``command`` started at once in a session of its own, serving at ``url``.

    ``log``: a file its output is appended to (``temporary_log``), or None to leave it on
    this process's terminal. ``env`` is the whole environment (None: this process's).
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        url: str,
        ready_path: str = "/readyz",
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
    ) -> None:
        self.url = url
        self.ready_url = f"{url}{ready_path}"
        self.env = dict(os.environ if env is None else env)
        self.log = log
        output = None if log is None else log.open("ab")
        try:
            self.process = subprocess.Popen(
                list(command), cwd=cwd, env=self.env, stdout=output, stderr=output,
                start_new_session=True,
            )  # fmt: skip
        finally:
            if output is not None:
                output.close()  # the child holds its own descriptor

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> str:
        if self.log is None or not self.log.exists():
            return ""
        return self.log.read_text(errors="replace")[-LOG_TAIL_CHARS:]

    def wait_ready(self, timeout: float) -> Self:
        """Wait until the ready address answers 200. If the server exits first or does not
        answer in time, it is stopped and ``ServerNotReady`` says why, with its log's tail."""
        try:
            wait_http(self.ready_url, timeout, self.process)
        except (RuntimeError, TimeoutError) as error:
            self.stop()
            tail = self.log_tail()
            raise ServerNotReady(f"{error}\n{tail}" if tail else str(error)) from error
        return self

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM to the whole process group; SIGKILL to it after ``grace`` seconds."""
        if self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceProcess(ServerProcess):
    """``bentoml serve`` (``service.launch``'s command line) on 127.0.0.1:``port``, run in
    the repository with ``env`` (``service.launch.service_env`` builds it)."""

    def __init__(
        self,
        port: int,
        env: Mapping[str, str],
        *,
        target: str = SERVICE_TARGET,
        log: Path | None = None,
    ) -> None:
        self.port = port
        super().__init__(
            serve_command("127.0.0.1", port, target),
            url=f"http://127.0.0.1:{port}",
            env=env,
            cwd=REPO,
            log=log,
        )
