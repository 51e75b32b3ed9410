"""HAProxy in front of the replicas (``loadtests.replicas``): its binary, its configuration,
its ``show stat``; and the Prometheus configuration that scrapes every replica.

Why HAProxy is set as it is: decisions are reproducible and an answer is sent only once its
record is committed, so a request a dead replica never answered can be sent again to another
one (``retry-on``, ``option redispatch 1``). Requests of up to ``BUFFER_BYTES`` are retried
(HAProxy copies a request it may retry into one buffer: a batch of 100 applications is about
37 kB); larger ones are not. Health checks on ``/readyz`` every half second, and every quarter
second once one has failed, mark a killed replica down in about a second.
"""

from __future__ import annotations

import csv
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Final

HAPROXY_INSTALL_HINT: Final[str] = (
    "HAProxy not found: install Debian's haproxy (apt-get install -y haproxy; scripts/test.sh does)"
)
BACKEND: Final[str] = "replicas"
# A request HAProxy may retry must fit one buffer (HAProxy's default is 16 kB).
BUFFER_BYTES: Final[int] = 128 * 1024


def haproxy_binary() -> str:
    """Debian installs haproxy in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(HAPROXY_INSTALL_HINT)
    return found


def haproxy_config(port: int, servers: Sequence[int], stats_socket: Path) -> str:
    """HAProxy's configuration: 127.0.0.1:``port`` balanced round robin over the replicas on
    127.0.0.1:``servers``, with an admin socket for ``show stat``.

    >>> "server replica1 127.0.0.1:3002" in haproxy_config(3000, [3001, 3002], Path("s"))
    True
    """
    lines = [
        "global",
        "    maxconn 256",
        f"    tune.bufsize {BUFFER_BYTES}",
        f"    stats socket {stats_socket} mode 600 level admin",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 30s",
        "    timeout server 10s",
        "    timeout check 1s",
        # A request sent to a replica that refused the connection, or closed it without an
        # answer (killed), goes to another replica on each retry. Not one that is merely slow:
        # that replica is still deciding and would record and count it a second time.
        "    retries 3",
        "    option redispatch 1",
        "    retry-on conn-failure empty-response",
        "frontend fairgate",
        f"    bind 127.0.0.1:{port}",
        f"    default_backend {BACKEND}",
        f"backend {BACKEND}",
        "    balance roundrobin",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        # Two failed checks mark a replica down: the first after at most 500 ms, the second
        # 250 ms later. Two good ones bring it back.
        "    default-server check inter 500ms fastinter 250ms downinter 1s fall 2 rise 2",
        *(f"    server replica{i} 127.0.0.1:{p}" for i, p in enumerate(servers)),
    ]
    return "\n".join(lines) + "\n"


def prometheus_config(replicas: Sequence[str], prober: str, interval: str) -> dict:
    """Prometheus's configuration: every replica in job ``fairgate``, the prober in job
    ``fairgate-prober``, scraped every ``interval`` (a Prometheus duration: ``1s``, ``15s``)."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "fairgate", "static_configs": [{"targets": list(replicas)}]},
            {"job_name": "fairgate-prober", "static_configs": [{"targets": [prober]}]},
        ],
    }


def show_stat(stats_socket: Path) -> list[dict[str, str]]:
    """HAProxy's ``show stat`` (one row per frontend, backend and server) from its socket."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(stats_socket))
        sock.sendall(b"show stat\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    text = b"".join(chunks).decode().removeprefix("# ")
    return list(csv.DictReader(text.splitlines()))
