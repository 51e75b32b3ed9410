"""Run Locust headless as a subprocess and read its aggregated statistics.

While it runs, one progress line every ``PROGRESS_SECONDS`` (users, requests, failures,
req/s, p95) from the last "Aggregated" row of Locust's own ``_stats_history.csv``: Locust
appends a row every second and flushes the file every 5 s, so a line is at most about 5 s
behind. In that row req/s is the current rate; requests, failures and p95 are totals so far.
``--only-summary`` keeps Locust's own full-table printout off the terminal.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from loadtests.slo import RunStats, read_stats
from service.launch import REPO

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


PROGRESS_SECONDS = 5.0


def progress_line(history: Path) -> str | None:
    """``users 20  requests 1,234  failures 0  req/s 410.2  p95 9 ms`` from the last
    Aggregated row of a Locust ``_stats_history.csv``; None before its first row."""
    try:
        with history.open(newline="") as handle:
            rows = [row for row in csv.DictReader(handle) if row.get("Name") == "Aggregated"]
    except OSError:
        return None
    for last in reversed(rows):  # the newest complete row (the file may end mid-row)
        try:
            requests, failures = int(last["Total Request Count"]), int(last["Total Failure Count"])
            rate, p95 = float(last["Requests/s"]), last["95%"]
        except (KeyError, TypeError, ValueError):
            continue
        return (
            f"users {last['User Count']}  requests {requests:,}  failures {failures:,}  "
            f"req/s {rate:,.1f}  p95 {p95 if p95 != 'N/A' else '-'} ms"
        )
    return None


def run_locust(
    run: LocustRun,
    out_prefix: Path,
    html: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, RunStats]:
    """Run to completion; return every stats row keyed by name ("Aggregated": the total).
    ``progress`` gets a live line at least every ``PROGRESS_SECONDS``."""
    out_prefix.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "locust", "-f", str(run.locustfile), "--headless",
        "--host", run.host, "--users", str(run.users), "--spawn-rate", str(run.spawn_rate),
        "--run-time", run.run_time, "--csv", str(out_prefix), "--only-summary",
        "--loglevel", "WARNING", "--stop-timeout", "5", *run.user_classes,
    ]  # fmt: skip
    if html is not None:
        command += ["--html", str(html)]
    history = Path(f"{out_prefix}_stats_history.csv")
    history.unlink(missing_ok=True)  # a previous run's rows are not this run's progress
    # Output to a file, not a pipe: nobody reads a pipe while waiting, and a full one blocks.
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            command, cwd=REPO, env=os.environ | dict(run.env or {}),
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        while True:
            try:
                process.wait(timeout=PROGRESS_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if progress is not None:
                    progress(progress_line(history) or "locust starting")
        log.seek(0)
        output = log.read()
    stats_file = Path(f"{out_prefix}_stats.csv")
    # Locust exits 1 when any request failed; that is for the SLO check to judge.
    if not stats_file.exists():
        raise RuntimeError(f"locust wrote no statistics:\n{output[-3000:]}")
    return read_stats(stats_file)
