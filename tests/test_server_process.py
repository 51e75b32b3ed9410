"""The one server lifecycle (``service.server_process``): start in a session of its own,
ready on a 200, stopped with its whole process group; a server that cannot start is stopped
and reported with its log."""

from __future__ import annotations

import sys
import time

import psutil
import pytest

from service.server_process import (
    ServerNotReady,
    ServerProcess,
    free_port,
    wait_http,
)

# A shell that starts an HTTP server as its own child, as ``bentoml serve`` starts workers.
PARENT_AND_CHILD = "{python} -m http.server --bind 127.0.0.1 {port} & wait"


def _gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.05)
    return False


def test_a_server_is_ready_on_a_200_and_stopped_with_its_children(tmp_path):
    port = free_port()
    command = PARENT_AND_CHILD.format(python=sys.executable, port=port)
    log = tmp_path / "serve.log"
    url = f"http://127.0.0.1:{port}"
    server = ServerProcess(["sh", "-c", command], url=url, ready_path="/", cwd=tmp_path, log=log)
    with server:
        assert server.wait_ready(30) is server
        children = psutil.Process(server.pid).children(recursive=True)
        assert children and server.running()
    assert not server.running()
    assert all(_gone(child.pid) for child in children)
    assert server.log is not None and "GET / HTTP" in server.log.read_text()


def test_a_server_that_exits_is_reported_with_its_log(tmp_path):
    log = tmp_path / "serve.log"
    command = [sys.executable, "-c", "import sys; print('cannot start: no model'); sys.exit(3)"]
    server = ServerProcess(command, url=f"http://127.0.0.1:{free_port()}", log=log)
    with pytest.raises(ServerNotReady, match="exited with 3") as raised:
        server.wait_ready(30)
    assert "cannot start: no model" in str(raised.value)


def test_a_server_that_never_answers_is_stopped_after_the_timeout():
    command = [sys.executable, "-c", "import time; time.sleep(60)"]
    server = ServerProcess(command, url=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    with pytest.raises(ServerNotReady, match="did not answer 200 within 1 s"):
        server.wait_ready(1)
    assert time.monotonic() - started < 15
    assert not server.running()


def test_waiting_on_an_address_without_a_process_times_out():
    with pytest.raises(TimeoutError):
        wait_http(f"http://127.0.0.1:{free_port()}/readyz", 0.5)
