"""Run Locust headless as a subprocess and read its aggregated statistics."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.server import REPO
from loadtests.slo import RunStats, read_stats

LOCUSTFILE = REPO / "loadtests" / "locustfile.py"


@dataclass(frozen=True)
class LocustRun:
    host: str
    users: int = 20
    run_time: str = "60s"
    spawn_rate: float = 20.0
    locustfile: Path = LOCUSTFILE
    user_classes: Sequence[str] = ()
    env: Mapping[str, str] | None = None


def run_locust(run: LocustRun, out_prefix: Path, html: Path | None = None) -> dict[str, RunStats]:
    """Run to completion; return every stats row keyed by name ("Aggregated": the total)."""
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "locust", "-f", str(run.locustfile), "--headless",
        "--host", run.host, "--users", str(run.users), "--spawn-rate", str(run.spawn_rate),
        "--run-time", run.run_time, "--csv", str(out_prefix), "--only-summary",
        "--loglevel", "WARNING", "--stop-timeout", "5", *run.user_classes,
    ]  # fmt: skip
    if html is not None:
        command += ["--html", str(html)]
    completed = subprocess.run(
        command, cwd=REPO, env=os.environ | dict(run.env or {}),
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    stats_file = Path(f"{out_prefix}_stats.csv")
    # Locust exits 1 when any request failed; that is for the SLO check to judge.
    if not stats_file.exists():
        raise RuntimeError(f"locust wrote no statistics:\n{completed.stderr[-3000:]}")
    return read_stats(stats_file)
