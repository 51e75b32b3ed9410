"""The Dockerfile copies every package ``pip install .`` installs: one left out is missing
from the image, and the service or the prober fails on import there (no Docker engine runs
the image in this suite)."""

import tomllib
from fnmatch import fnmatch

from service.launch import REPO


def test_the_image_has_every_package_pyproject_installs():
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    patterns = find["find"]["include"]
    installed = {
        path.name
        for path in REPO.iterdir()
        if (path / "__init__.py").is_file() and any(fnmatch(path.name, p) for p in patterns)
    }
    copied = {
        line.split()[1]
        for line in (REPO / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ") and len(line.split()) == 3
    }
    assert installed, patterns
    assert installed <= copied, f"the Dockerfile does not copy {sorted(installed - copied)}"
