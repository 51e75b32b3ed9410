"""What a newcomer meets first: the serve log's first line, a busy port, a mistyped flag, a
load test without the probe token, an export's format, short windows, and docs that count
what the code has."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.record import FORMAT_MISMATCH, UNKNOWN_SUFFIX, window_moment
from fairgate.policy import POLICY_MODES
from loadtests.failures import (
    PROBE_PAIR,
    PROBE_TOKEN_MISSING,
    PROBE_TOKEN_REFUSED,
    probe_token_hint,
    read_failures,
)
from service.config import NOT_ONE_OF, STARTUP_LINE, service_config, startup_line
from service.launch import PORT_IN_USE, REPO
from tests.test_config_path import FairgateServe, fairgate, plain_env
from tests.test_fuzz import EXPECTED_OPERATIONS
from tests.test_record_cli import fill, run
from training.pipeline import TrainResult


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port someone else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def test_the_serve_logs_first_line_says_what_is_served_and_where_it_is_recorded(
    trained: TrainResult, tmp_path: Path
):
    server = FairgateServe(tmp_path, plain_env(), "--model", trained.tag or "")
    server.stop()
    first = server.log.read_text().splitlines()[0]
    expected = STARTUP_LINE.format(
        tag=trained.tag, contract=trained.contract.name, version=trained.contract.version,
        policy="lda", record=f"sqlite:///{tmp_path}/fairgate-data/record.sqlite",
    )  # fmt: skip
    assert first.endswith(expected), first


def test_the_start_up_line_never_shows_a_record_password():
    url = "postgresql://app:s3cret@db:5432/fairgate"
    config = service_config({"FAIRGATE_RECORD_URL": url})
    line = startup_line(config, "m:1", "synthetic", 2, config.record_url)
    assert "s3cret" not in line
    assert line.endswith("(contract synthetic v2), policy lda, record "
                         "postgresql://app:<set>@db:5432/fairgate")  # fmt: skip


def test_serve_on_a_busy_port_says_so_in_one_line(trained, busy_port, tmp_path):
    # One line on an 80-column terminal.
    env = plain_env(COLUMNS="80")
    args = ["serve", "--port", str(busy_port), "--model", trained.tag or ""]
    result = fairgate(*args, cwd=tmp_path, env=env)
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    expected = PORT_IN_USE.format(port=busy_port, host="127.0.0.1", flag="--port")
    assert lines == [f"error: {expected}"]


@pytest.mark.parametrize("flag", ["--port", "--probe-port"])
def test_demo_on_a_busy_port_fails_before_starting_anything(busy_port, flag, tmp_path):
    args = ["demo", flag, str(busy_port)]
    result = fairgate(*args, cwd=tmp_path, env=plain_env(COLUMNS="80"))
    assert result.returncode == 2
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    expected = PORT_IN_USE.format(port=busy_port, host="127.0.0.1", flag=flag)
    assert lines == [f"error: {expected}"]
    assert not (tmp_path / "fairgate-data").exists()  # no server ever started


def test_a_mistyped_policy_flag_is_reported_as_the_flag():
    result = CliRunner().invoke(app, ["serve", "--policy", "mitigatd"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    setting = "--policy 'mitigatd'"
    assert NOT_ONE_OF.format(setting=setting, allowed=", ".join(POLICY_MODES)) in result.output
    assert "FAIRGATE_POLICY" not in result.output


@pytest.mark.parametrize(
    ("error", "given", "expected"),
    [
        ("BadStatusCode('http://127.0.0.1:1/decide_batch', code=403)", False, PROBE_TOKEN_MISSING),
        ("BadStatusCode('http://127.0.0.1:1/decide_batch', code=403)", True, PROBE_TOKEN_REFUSED),
        ("BadStatusCode('http://127.0.0.1:1/decide_batch', code=503)", False, None),
    ],
)  # fmt: skip
def test_refused_probe_pairs_name_the_probe_token(tmp_path, error, given, expected):
    failures = tmp_path / "locust_failures.csv"
    failures.write_text(
        "Method,Name,Error,Occurrences,First Seen,Last Seen\n"
        f'POST,{PROBE_PAIR},"{error}",12,,\n'
        f'POST,/decide,"{error}",3,,\n'
    )
    hint = probe_token_hint(read_failures(failures), token_given=given)
    assert hint == (None if expected is None else expected.format(count=12))


@pytest.mark.integration
def test_a_load_test_without_the_probe_token_says_so(live_service, tmp_path):
    env = {k: v for k, v in plain_env().items() if k != "FAIRGATE_PROBE_TOKEN"}
    result = fairgate("loadtest", "--target", live_service.url, "--users", "2", "--run-time",
                      "3s", "--out", str(tmp_path / "out"), cwd=REPO, env=env)  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    hint = re.search(r"^hint: (.*)$", result.stdout, re.M)
    assert hint, result.stdout
    assert hint.group(1).startswith("probe pairs were refused (403, ")
    assert "the probe token is missing; set FAIRGATE_PROBE_TOKEN" in hint.group(1)


@pytest.fixture
def record_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'record.sqlite'}"
    fill(url)  # records 1, 20, 40 days and 26 months old
    return url


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".CSV"])
def test_export_writes_the_format_its_file_is_named_for(record_url, tmp_path, suffix):
    out = tmp_path / f"records{suffix}"
    result = run(record_url, "export", "--output", str(out))
    assert result.exit_code == 0, result.output
    is_parquet = out.read_bytes()[:4] == b"PAR1"
    assert is_parquet == (suffix == ".parquet")
    frame = pd.read_parquet(out) if is_parquet else pd.read_csv(out)
    assert len(frame) == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "records.txt"], UNKNOWN_SUFFIX.format(path="records.txt")),
        (["--output", "records.csv", "--format", "parquet"],
         FORMAT_MISMATCH.format(path="records.csv", suffix=".csv", format="parquet")),
    ],
)  # fmt: skip
def test_export_refuses_a_format_it_cannot_tell_or_that_disagrees(record_url, args, message):
    result = run(record_url, "export", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("since", "records"), [("25h", 1), ("1500m", 1), ("23h", 0), ("2d", 1), ("21d", 2)]
)
def test_export_since_takes_minutes_and_hours(record_url, tmp_path, since, records):
    result = run(record_url, "export", "--since", since, "--output", str(tmp_path / "o.csv"))
    assert result.exit_code == 0, result.output
    assert f"wrote {records} records" in result.output


def test_a_window_moment_is_a_date_or_a_span_before_now():
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert window_moment("30m", now) == now - timedelta(minutes=30)
    assert window_moment("1h", now) == now - timedelta(hours=1)
    assert window_moment("2d", now) == now - timedelta(days=2)
    assert window_moment("2026-01-31", now) == datetime(2026, 1, 31, tzinfo=UTC)


METRICS_ROW = re.compile(r"^\| `GET /metrics` \|(.*)\|$", re.M)
SHOWN_METRIC = re.compile(r"`(fairgate_[a-z_]+)(?:\{([a-z_,]+)\})?`")
# In a fresh process: the service's own metrics (created once per process), and whether each
# takes the labels the README shows for it (prometheus_client refuses any other set).
CHECK_LABELS = """
import json, sys
from service.metrics import create_metrics
shown = json.loads(sys.argv[1])
found = {}
for metric in vars(create_metrics()).values():
    family = metric.describe()[0]
    name = family.name + "_total" if family.type == "counter" else family.name
    labels = shown.get(name)
    try:
        if labels:
            metric.labels(**{label: "x" for label in labels})
        found[name] = True
    except ValueError:
        found[name] = False
print(json.dumps(found))
"""


def test_the_readme_metric_table_shows_each_metric_with_its_labels():
    row = METRICS_ROW.search((REPO / "README.md").read_text())
    assert row
    shown = {name: labels.split(",") if labels else [] for name, labels in
             SHOWN_METRIC.findall(row.group(1))}  # fmt: skip
    done = subprocess.run([sys.executable, "-c", CHECK_LABELS, json.dumps(shown)], cwd=REPO,
                          capture_output=True, text=True, check=True)  # fmt: skip
    found = json.loads(done.stdout)
    assert set(found) <= set(shown), f"not in the README's /metrics row: {set(found) - set(shown)}"
    assert all(found.values()), f"labels differ from the README's: {found}"
    assert shown["fairgate_decisions_total"] == ["attribute", "group", "outcome"]


def test_the_reliability_doc_counts_the_services_operations():
    text = " ".join((REPO / "docs" / "reliability.md").read_text().split())
    words = {"seven": 7, "eight": 8, "nine": 9, "ten": 10}
    counted = re.search(r"which lists all (\w+) operations", text)
    assert counted and words[counted.group(1)] == len(EXPECTED_OPERATIONS)
    progress = re.search(r"`fuzz \d+/(\d+) ", text)
    assert progress and int(progress.group(1)) == len(EXPECTED_OPERATIONS)


def test_bench_deletes_the_model_it_trained_even_when_it_fails(monkeypatch, tmp_path):
    import bentoml

    import loadtests.bench as bench

    def no_server(**_: object) -> None:
        raise RuntimeError("no server in this test")

    def bench_models() -> set[str]:
        return {str(m.tag) for m in bentoml.models.list() if m.tag.name == bench.BENCH_MODEL}

    monkeypatch.setattr(bench, "running_server", no_server)
    before = bench_models()
    config = bench.BenchConfig(rows=2000, out=tmp_path / "bench-out")
    with pytest.raises(RuntimeError, match="no server in this test"):
        bench.run_bench(config, log=lambda line: None)
    assert bench_models() == before
