"""A throwaway PostgreSQL server: Debian's binaries, a fresh cluster in a temp directory.

Used by the test suite (``tests/postgres.py``: fixtures) and the soak
(``python -m loadtests.soak --postgres``), which restarts it mid-load.

The server runs as the ``postgres`` user when the tests run as root (PostgreSQL refuses to run
as root), listens on 127.0.0.1 only, on a port chosen at run time, and its socket lives in its
own directory. ``stop()`` and ``start()`` keep the data, so a test can take the server away
mid-stream and bring it back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from service.server_process import free_port

INSTALL_HINT = "install Debian's postgresql (apt-get install -y postgresql; scripts/test.sh does)"


def postgres_bindir() -> Path:
    """Debian keeps initdb and pg_ctl in /usr/lib/postgresql/VERSION/bin, off the PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).parent
    raise RuntimeError(f"PostgreSQL's pg_ctl not found: {INSTALL_HINT}")


class PostgresServer:
    """``initdb`` + ``pg_ctl start`` on a free loopback port; ``url`` is the test database."""

    def __init__(self, **settings: str) -> None:
        self.bindir = postgres_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="fairgate-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.settings = {"listen_addresses": "127.0.0.1", "unix_socket_directories": str(self.root),
                         **settings}  # fmt: skip
        self.run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.run_as:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")  # fmt: skip
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        command = [*self.run_as, str(self.bindir / tool), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{tool} failed: {done.stdout}{done.stderr}{log}")

    def start(self) -> None:
        options = " ".join(f"-c {key}={value}" for key, value in self.settings.items())
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60",
                  "-o", f"-p {self.port} {options}", "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(RuntimeError):  # already stopped
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def sql(self, statement: str, database: str = "postgres") -> list[tuple]:
        """Run raw SQL as the superuser on its own connection (how the tests tamper)."""
        import psycopg

        url = self.url.rsplit("/", 1)[0] + f"/{database}"
        with psycopg.connect(url, autocommit=True) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else []


def main(argv: list[str]) -> int:
    """``python -m loadtests.postgres COMMAND...``: run COMMAND with ``POSTGRES_URL`` pointing at a
    throwaway server (e.g. ``python -m loadtests.postgres python -m record.bench``)."""
    server = PostgresServer()
    try:
        return subprocess.run(argv, env=os.environ | {"POSTGRES_URL": server.url}).returncode
    finally:
        server.destroy()


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv[1:] or [sys.executable, "-m", "record.bench"]))
