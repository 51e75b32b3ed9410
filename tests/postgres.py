"""Fixtures for a real PostgreSQL server (``loadtests/postgres.py`` starts it).

``python -m loadtests.postgres COMMAND...`` runs a command against a throwaway server.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loadtests.postgres import INSTALL_HINT, PostgresServer, postgres_bindir

__all__ = [
    "INSTALL_HINT",
    "PostgresServer",
    "postgres_bindir",
    "postgres_server",
    "postgres_url",
    "raw_sql",
]


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    yield server
    server.destroy()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres_server.sql(f"CREATE DATABASE {name}")
    yield postgres_server.url.rsplit("/", 1)[0] + f"/{name}"
    postgres_server.sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def raw_sql(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, Callable[[str], list[tuple]]]:
    """For a fixture parametrized with "sqlite" and "postgresql": a fresh record URL of that
    backend and a function running one SQL statement on it outside any store (as an insider
    tampering with the database would)."""
    if request.param == "sqlite":
        path = tmp_path / "record.sqlite"

        def raw(sql: str) -> list[tuple]:
            with sqlite3.connect(path, isolation_level=None) as conn:
                return conn.execute(sql).fetchall()

        return f"sqlite:///{path}", raw
    url = request.getfixturevalue("postgres_url")
    server = request.getfixturevalue("postgres_server")
    database = url.rsplit("/", 1)[1]
    return url, lambda sql: server.sql(sql, database)
