"""Import rules: the core package imports no deployable, and nothing imports the CLI.

``fairgate/`` is the core (the decision logic: it spawns no process and opens no database);
``record/`` (the decision record) imports only the core; ``training/``, ``service/``,
``monitoring/`` and ``loadtests/`` are the deployables; ``cli/`` composes them all. Every
import statement counts, including the lazy ones inside functions, so the rule holds for any
code path, not only for what runs at import time.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from service.launch import REPO

CORE = "fairgate"
DEPLOYABLES = ("training", "record", "service", "monitoring", "loadtests")
CLI = "cli"


def imported_packages(source: str, package: str) -> set[str]:
    """Top-level package names that ``source`` (a module of ``package``) imports."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names |= {alias.name.partition(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            # A relative import stays inside its own package.
            names.add(package if node.level else (node.module or "").partition(".")[0])
    return names


def modules(package: str) -> list[Path]:
    found = sorted((REPO / package).rglob("*.py"))
    assert found, f"no modules under {package}/"
    return found


def test_the_checker_sees_lazy_and_from_imports():
    source = "import os\ndef f():\n    from cli.main import app\n    import loadtests.runner\n"
    assert imported_packages(source, "fairgate") == {"os", "cli", "loadtests"}
    assert imported_packages("from . import x\nfrom .y import z\n", "service") == {"service"}


@pytest.mark.parametrize("path", modules(CORE), ids=lambda p: str(p.relative_to(REPO)))
def test_core_imports_no_deployable_and_no_cli(path: Path):
    forbidden = imported_packages(path.read_text(), CORE) & {*DEPLOYABLES, CLI}
    assert not forbidden, f"{path.relative_to(REPO)} imports {sorted(forbidden)}"


@pytest.mark.parametrize(
    "path",
    [path for package in DEPLOYABLES for path in modules(package)],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_no_deployable_imports_the_cli(path: Path):
    assert CLI not in imported_packages(path.read_text(), path.relative_to(REPO).parts[0])


# What would make the core more than decision logic: processes and database drivers.
NOT_IN_CORE = {"subprocess", "multiprocessing", "concurrent", "psycopg", "psycopg2", "sqlite3",
               "sqlalchemy", "asyncpg", "pyarrow"}  # fmt: skip


@pytest.mark.parametrize("path", modules(CORE), ids=lambda p: str(p.relative_to(REPO)))
def test_the_core_spawns_no_process_and_opens_no_database(path: Path):
    source = path.read_text()
    found = imported_packages(source, CORE) & NOT_IN_CORE
    assert not found, f"{path.relative_to(REPO)} imports {sorted(found)}"
    for call in ("os.fork", "os.spawn", "os.system", "os.popen", "os.exec"):
        assert call not in source, f"{path.relative_to(REPO)} calls {call}"


@pytest.mark.parametrize("path", modules("record"), ids=lambda p: str(p.relative_to(REPO)))
def test_the_record_imports_only_the_core(path: Path):
    forbidden = imported_packages(path.read_text(), "record") & {*DEPLOYABLES, CLI} - {"record"}
    assert not forbidden, f"{path.relative_to(REPO)} imports {sorted(forbidden)}"


def test_the_entry_point_is_the_cli_package():
    import tomllib

    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"fairgate": "cli.main:app"}


# Locust files monkey-patch the process with gevent when imported: they run under Locust.
UNDER_LOCUST = {"loadtests.locustfile", "loadtests.benchfile"}


def _importable() -> list[str]:
    names = []
    for package in (CORE, *DEPLOYABLES, CLI):
        for path in modules(package):
            name = ".".join(path.relative_to(REPO).with_suffix("").parts)
            if name.endswith("__main__") or name in UNDER_LOCUST:
                continue
            names.append(name.removesuffix(".__init__"))
    return names


def test_every_module_imports(trained, monkeypatch):
    """A module whose imports are broken fails here even if no test exercises it. The
    service module needs a model at import (BentoML's declared model): the session's."""
    import importlib

    monkeypatch.setenv("FAIRGATE_MODEL", trained.tag or "")

    broken = []
    for name in _importable():
        try:
            importlib.import_module(name)
        except Exception as error:  # report every broken module at once
            broken.append(f"{name}: {type(error).__name__}: {error}")
    assert not broken, "\n".join(broken)
