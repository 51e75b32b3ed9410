"""Start a ``bentoml serve`` process on a free loopback port and wait until it is ready."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from service.launch import SERVICE_TARGET, service_env
from service.server_process import ServiceProcess, free_port, temporary_log


@dataclass(frozen=True)
class Server:
    url: str
    pid: int


@contextmanager
def running_server(
    *, workers: int = 1, target: str = SERVICE_TARGET, env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> Iterator[Server]:  # fmt: skip
    """A server with ``workers`` workers and ``env`` laid over this environment, stopped
    (its whole process group) on leaving."""
    settings = {"FAIRGATE_WORKERS": str(workers)} | dict(env or {})
    log = temporary_log("fairgate-serve-")
    with ServiceProcess(free_port(), service_env(settings), target=target, log=log) as server:
        server.wait_ready(timeout)
        yield Server(url=server.url, pid=server.pid)
