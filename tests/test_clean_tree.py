"""Running the documented commands leaves ``git status`` clean: outputs go to ignored
directories (reports/, loadtest-out/, .schemathesis/ ...), never into tracked files.

The commands run in a copy of this working tree (tracked and untracked files, committed
as they are), so the check never writes into the checkout under test.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from service.launch import REPO

pytestmark = pytest.mark.integration


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def copy_of_the_tree(target: Path) -> Path:
    files = git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for name in filter(None, files.split("\0")):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git(target, "init", "-q")
    git(target, "add", "-A")
    git(target, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy")
    return target


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_documented_commands_leave_git_status_clean(live_service, tmp_path):
    repo = copy_of_the_tree(tmp_path / "repo")
    assert git(repo, "status", "--porcelain") == ""
    url = live_service.url
    commands = [
        [sys.executable, "-m", "cli", "train", "--rows", "2000", "--bootstrap", "0"],
        [sys.executable, "-m", "cli", "probe", "--once", "--target", url,
         "--json", "reports/probe.json", "--markdown", "reports/probe.md"],
        [sys.executable, "-m", "cli", "loadtest", "--target", url, "--users", "2",
         "--run-time", "3s"],
        [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/docs.json", "--checks", "all",
         "--max-examples", "3", "--include-name", "GET /policy"],
        [sys.executable, "scripts/readme.py"],
    ]  # fmt: skip
    for command in commands:
        result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    assert (repo / "reports" / "probe.json").is_file()
    assert (repo / "loadtest-out" / "report.html").is_file()
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""
