"""Fixtures for a real PostgreSQL server (``loadtests/postgres.py`` starts it).

``python -m loadtests.postgres COMMAND...`` runs a command against a throwaway server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from loadtests.postgres import INSTALL_HINT, PostgresServer, postgres_bindir

__all__ = ["INSTALL_HINT", "PostgresServer", "postgres_bindir", "postgres_server", "postgres_url"]


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
