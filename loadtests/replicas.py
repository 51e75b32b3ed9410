"""Several replicas for real: ``fairgate serve`` processes behind HAProxy on one PostgreSQL
record, Prometheus scraping each replica, the prober probing through the balancer.

    python -m loadtests.replicas [--replicas 2] [--workers 1]

starts, all on 127.0.0.1 and on ports chosen at run time: a throwaway PostgreSQL server
(``loadtests/postgres.py``); N replicas of ``fairgate serve`` recording into it
(``FAIRGATE_RECORD_URL``), sharing one probe token; HAProxy in front of them; Prometheus
scraping every replica's ``/metrics`` (job ``fairgate``) and the prober (job
``fairgate-prober``); the prober with the balancer as its target. It prints the addresses and
runs until Ctrl-C. ``tests/test_replicas.py`` uses ``ReplicaSet`` the same way:

>>> with ReplicaSet(replicas=2, scrape_interval="1s") as replicas:  # doctest: +SKIP
...     httpx.post(f"{replicas.balancer_url}/decide", json=application)
...     replicas.kill(1)  # SIGKILL: the balancer sends its traffic to the other

HAProxy's settings, and why: ``loadtests/balancer.py``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, Self

import httpx
import psutil

from fairgate.probe_auth import TOKEN_VARIABLE, new_token, token_from_env
from loadtests.balancer import BACKEND, haproxy_binary, haproxy_config, prometheus_config, show_stat
from loadtests.postgres import PostgresServer
from service.launch import REPO, service_env
from service.server_process import ServerProcess, free_port, temporary_log

# Prober settings for ``python -m loadtests.replicas``: a cycle every 30 s, as docker-compose.
DEFAULT_PROBER_ARGS: Final[tuple[str, ...]] = ("--interval", "30")


def _process_tree(pid: int) -> list[psutil.Process]:
    """``pid`` and every process under it (BentoML's workers and their record writers)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _metrics_dirs(tree: Sequence[psutil.Process]) -> set[str]:
    """The private Prometheus directories of a server's workers (``service.launch`` removes
    its own on exit, which a SIGKILL prevents)."""
    found = set()
    for process in tree:
        with contextlib.suppress(psutil.Error):
            directory = process.environ().get("PROMETHEUS_MULTIPROC_DIR")
            if directory and Path(directory).name.startswith("fairgate-metrics-"):
                found.add(directory)
    return found


def _kill_tree(tree: Sequence[psutil.Process]) -> None:
    """SIGKILL every process group in ``tree``: BentoML starts each worker in a session of its
    own, so the server's group alone would leave the workers serving on its socket."""
    groups = set()
    for process in tree:
        with contextlib.suppress(OSError):
            groups.add(os.getpgid(process.pid))
    for group in groups - {os.getpgrp()}:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


class ReplicaSet:
    """PostgreSQL, ``replicas`` x ``fairgate serve``, HAProxy, Prometheus and the prober.

    ``env`` is laid over this process's environment for the replicas and the prober (the
    model, the policy, ``FAIRGATE_POLICY_POLL``...); ``FAIRGATE_RECORD_URL``,
    ``FAIRGATE_WORKERS`` and the probe token are the set's own. ``prober_args`` are
    ``fairgate probe`` flags. ``start()`` (or ``with``) starts everything, and stops what it
    had started if a part fails; ``stop()`` stops it all and removes its files but the logs.
    """

    def __init__(
        self,
        *,
        replicas: int = 2,
        workers: int = 1,
        env: Mapping[str, str] | None = None,
        scrape_interval: str = "5s",
        prober_args: Sequence[str] = DEFAULT_PROBER_ARGS,
        timeout: float = 180.0,
    ) -> None:
        if replicas < 1:
            raise ValueError(f"replicas: at least 1 (got {replicas})")
        self.count = replicas
        self.workers = workers
        self.env = dict(env or {})
        self.scrape_interval = scrape_interval
        self.prober_args = tuple(prober_args)
        self.timeout = timeout
        # The shell's probe token (FAIRGATE_PROBE_TOKEN or its _FILE), else a new one.
        self.token = token_from_env(os.environ | self.env) or new_token()
        self.replicas: list[ServerProcess] = []
        self._stack = contextlib.ExitStack()

    # Addresses -------------------------------------------------------------------------
    @property
    def replica_urls(self) -> list[str]:
        return [replica.url for replica in self.replicas]

    @property
    def record_url(self) -> str:
        """The PostgreSQL record every replica writes: ``FAIRGATE_RECORD_URL`` for
        ``fairgate record verify`` and the other commands that read it."""
        return self.postgres.url

    # Lifecycle -------------------------------------------------------------------------
    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="fairgate-replicas-"))
        self._stack.callback(shutil.rmtree, self.root, ignore_errors=True)
        self.postgres = PostgresServer()
        self._stack.callback(self.postgres.destroy)
        settings = self.env | {
            "FAIRGATE_RECORD_URL": self.postgres.url,
            TOKEN_VARIABLE: self.token,
            "FAIRGATE_WORKERS": str(self.workers),
        }
        # One token, given as a value: a _FILE beside it would be refused.
        env = {k: v for k, v in service_env(settings).items() if k != f"{TOKEN_VARIABLE}_FILE"}
        self.replica_ports = [free_port() for _ in range(self.count)]
        for i, port in enumerate(self.replica_ports):
            replica = ServerProcess(
                [sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
                url=f"http://127.0.0.1:{port}", env=env, cwd=REPO,
                log=temporary_log(f"fairgate-replica{i}-"),
            )  # fmt: skip
            self.replicas.append(replica)
            self._stack.callback(self._stop_replica, replica)
        for replica in self.replicas:
            replica.wait_ready(self.timeout)
        self._start_haproxy()
        self.prober_port = free_port()
        self._start_prometheus()
        self.prober = ServerProcess(
            [sys.executable, "-m", "cli", "probe", "--target", self.balancer_url,
             "--web.listen-address", f"127.0.0.1:{self.prober_port}", *self.prober_args],
            url=f"http://127.0.0.1:{self.prober_port}", ready_path="/metrics",
            env=env, cwd=REPO, log=temporary_log("fairgate-replicas-probe-"),
        )  # fmt: skip
        self._stack.callback(self.prober.stop)
        self.prober.wait_ready(60)

    def _start_haproxy(self) -> None:
        port = free_port()
        self.stats_socket = self.root / "haproxy.sock"
        config = self.root / "haproxy.cfg"
        config.write_text(haproxy_config(port, self.replica_ports, self.stats_socket))
        self.balancer_url = f"http://127.0.0.1:{port}"
        # -db: in the foreground, so ServerProcess owns it and stops it.
        self.haproxy = ServerProcess(
            [haproxy_binary(), "-db", "-f", str(config)], url=self.balancer_url,
            log=temporary_log("fairgate-haproxy-"),
        )  # fmt: skip
        self._stack.callback(self.haproxy.stop)
        self.haproxy.wait_ready(30)
        self.wait_states({f"replica{i}": "UP" for i in range(self.count)}, 30)

    def _start_prometheus(self) -> None:
        port = free_port()
        config = self.root / "prometheus.yml"
        targets = [f"127.0.0.1:{replica}" for replica in self.replica_ports]
        prober = f"127.0.0.1:{self.prober_port}"
        # JSON is YAML: no YAML writer needed.
        config.write_text(json.dumps(prometheus_config(targets, prober, self.scrape_interval)))
        self.prometheus_url = f"http://127.0.0.1:{port}"
        self.prometheus = ServerProcess(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            url=self.prometheus_url, ready_path="/-/ready",
            log=temporary_log("fairgate-replicas-prometheus-"),
        )  # fmt: skip
        self._stack.callback(self.prometheus.stop)
        self.prometheus.wait_ready(60)

    @staticmethod
    def _stop_replica(replica: ServerProcess) -> None:
        tree = _process_tree(replica.pid)
        directories = _metrics_dirs(tree)
        replica.stop()
        # Workers left behind by a server that was killed (``kill``) or did not stop them.
        survivors = [process for process in tree[1:] if process.is_running()]
        _kill_tree(survivors)
        psutil.wait_procs(survivors, timeout=10)
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)

    def stop(self) -> None:
        """Stop everything started, in reverse order; safe to call twice."""
        self._stack.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # Faults and state ------------------------------------------------------------------
    def kill(self, index: int) -> None:
        """SIGKILL replica ``index``: the server, its workers and their record writers at once,
        as a crashed machine would; returns once they are gone."""
        replica = self.replicas[index]
        tree = _process_tree(replica.pid)
        directories = _metrics_dirs(tree)
        _kill_tree(tree)
        replica.process.wait(10)  # the server is this process's child: reaped here
        psutil.wait_procs(tree[1:], timeout=10)
        for directory in directories:
            shutil.rmtree(directory, ignore_errors=True)

    def server_states(self) -> dict[str, str]:
        """HAProxy's view of each replica: ``{"replica0": "UP", "replica1": "DOWN", ...}``
        (``UP 1/2`` and ``DOWN 1/2`` while a state is changing)."""
        return {
            row["svname"]: row["status"]
            for row in show_stat(self.stats_socket)
            if row["pxname"] == BACKEND and row["svname"] not in ("FRONTEND", "BACKEND")
        }

    def wait_states(self, expected: Mapping[str, str], timeout: float) -> float:
        """Seconds until HAProxy shows every replica named in ``expected`` in its state;
        ``TimeoutError`` after ``timeout``."""
        started = time.monotonic()
        while True:
            states = self.server_states()
            if all(states.get(name) == state for name, state in expected.items()):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"HAProxy shows {states}, not {dict(expected)}")
            time.sleep(0.02)

    def query(self, expr: str) -> list[dict]:
        """A PromQL instant query's result (``[{"metric": {...}, "value": [t, "v"]}, ...]``)."""
        response = httpx.get(f"{self.prometheus_url}/api/v1/query", params={"query": expr},
                             timeout=10)  # fmt: skip
        response.raise_for_status()
        return response.json()["data"]["result"]

    def wait_for(self, expr: str, timeout: float = 30.0) -> list[dict]:
        """The first non-empty result of ``expr`` within ``timeout`` seconds, else ``[]``."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.25)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=2, help="fairgate serve processes")
    parser.add_argument("--workers", type=int, default=1, help="BentoML workers per replica")
    parser.add_argument("--scrape-interval", default="5s", help="Prometheus scrape interval")
    args = parser.parse_args(argv)
    # Ctrl-C and SIGTERM stop the set (SIGINT too when a shell started this in the background,
    # which ignores it).
    for stopping in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stopping, signal.default_int_handler)
    replicas = ReplicaSet(replicas=args.replicas, workers=args.workers,
                          scrape_interval=args.scrape_interval)  # fmt: skip
    print(f"starting PostgreSQL, {args.replicas} replicas ({args.workers} worker(s) each), "
          "HAProxy, Prometheus and the prober...", flush=True)  # fmt: skip
    try:
        with replicas:
            print(f"balancer    {replicas.balancer_url}   (POST /decide, /decide_batch)")
            for i, (url, replica) in enumerate(zip(replicas.replica_urls, replicas.replicas,
                                                   strict=True)):  # fmt: skip
                print(f"replica{i}    {url}   (log {replica.log})")
            print(f"prometheus  {replicas.prometheus_url}   (job fairgate: every replica)")
            print(f"prober      {replicas.prober.url}/metrics   (target: the balancer)")
            print(f"logs        HAProxy {replicas.haproxy.log}, Prometheus "
                  f"{replicas.prometheus.log}, prober {replicas.prober.log}")  # fmt: skip
            print(f"probe token {replicas.token}")
            print("the record, for fairgate record / policy / audit in another shell:")
            print(f"  export FAIRGATE_RECORD_URL={replicas.record_url}")
            print("  fairgate record verify")
            print("Ctrl-C stops everything.", flush=True)
            gone: set[int] = set()
            while True:
                time.sleep(1)
                for i, replica in enumerate(replicas.replicas):
                    if i not in gone and not replica.running():
                        gone.add(i)
                        code = replica.process.returncode
                        print(f"replica{i} exited ({code}); the balancer sends its traffic "
                              "to the others", flush=True)  # fmt: skip
    except KeyboardInterrupt:
        print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
