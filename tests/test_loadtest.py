"""Load tests: the request pool, the SLO check, and a 10-second headless Locust smoke run."""

import math
import re
import subprocess
import sys

import pytest

from fairgate.schema import Applicant
from loadtests.pool import synthetic_pool, target_pool
from loadtests.runner import progress_line
from loadtests.server_latency import quantile
from loadtests.slo import RunStats, Slo, SloError, read_stats, slo_from_mapping, violations
from service.launch import REPO

STATS_CSV = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,\
Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,\
80%,90%,95%,98%,99%,99.9%,99.99%,100%
POST,/decide,3098,0,25,24.9,3,60,371.0,343.9,0.0,25,27,28,29,30,31,33,36,45,60,60
,Aggregated,3550,2,25,25.1,3,61,800.1,394.1,0.2,25,27,28,29,30,31,33,36,47,61,61
"""


def test_pool_bodies_are_valid_applicants_and_pairs_differ_only_in_gender():
    pool = synthetic_pool(300, batch_size=100)
    assert len(pool.singles) == 300 and len(pool.batches) == 3
    for body in pool.singles[:50]:
        Applicant.model_validate(body)
    for pair in pool.pairs[:50]:
        female, male = pair["applications"]
        assert (female["gender"], male["gender"]) == ("female", "male")
        assert {k: v for k, v in female.items() if k != "gender"} == {
            k: v for k, v in male.items() if k != "gender"
        }
    assert synthetic_pool(300) == pool  # seeded: same bodies every run
    assert len({body["application_id"] for body in pool.singles}) == 300


def test_a_pool_for_another_contract():
    """German credit's drafted contract: its own fields in its order, twins in its banded age."""
    import numpy as np

    from fairgate.contract import parse_contract
    from fairgate.contract_request import request_model
    from fairgate.contract_synth import record_synthesis
    from loadtests.pool import build_pool
    from training.book_check import read_book
    from training.draft_contract import draft_contract

    frame = read_book(REPO / "tests" / "fixtures" / "germancredit" / "germancredit.csv")
    contract = parse_contract(draft_contract(
        frame, label="creditability", approved=["good"],
        protected=["age_in_years", "personal_status_and_sex"], name="german",
    ))  # fmt: skip
    columns = {c: frame[c].to_numpy() for c in frame.columns if c != "creditability"}
    synthesis = record_synthesis(contract, columns, np.linspace(0, 1, len(frame)))
    pool = build_pool(contract, synthesis, 400, batch_size=100, seed=3)
    Model = request_model(contract)
    assert len(pool.batches) == 4 and len(pool.pairs) == 400
    for body in pool.singles:
        assert list(body) == list(contract.field_names)
        Model.model_validate(body)
    assert len({body["application_id"] for body in pool.singles}) == 400
    assert contract.groups.prober[0] == "age_in_years_band"  # bands 19-24, 25-34, ...
    for pair in pool.pairs:
        young, older = pair["applications"]
        Model.model_validate(young)
        Model.model_validate(older)
        assert young["age_in_years"] < 25 <= older["age_in_years"] < 35
        assert {k: v for k, v in young.items() if k != "age_in_years"} == {
            k: v for k, v in older.items() if k != "age_in_years"
        }
    assert build_pool(contract, synthesis, 400, batch_size=100, seed=3) == pool
    assert build_pool(contract, synthesis, 400, batch_size=100, seed=4) != pool


def test_the_pool_speaks_the_targets_contract(trained, live_service):
    """Read from GET /policy: the served model's contract and summaries, its request model."""
    pool = target_pool(live_service.url, 200, batch_size=50)
    assert len(pool.batches) == 4
    for body in pool.singles[:50]:
        Applicant.model_validate(body)
    ages = [body["age"] for body in pool.singles]
    # From the recorded quantiles of the book, not the contract's 18..100 bounds alone.
    assert min(ages) >= 18 and sorted(ages)[100] < 60


def test_read_stats_parses_locust_csv(tmp_path):
    path = tmp_path / "run_stats.csv"
    path.write_text(STATS_CSV)
    stats = read_stats(path)
    total = stats["Aggregated"]
    assert (total.requests, total.failures, total.rps) == (3550, 2, 394.1)
    assert (total.p50_ms, total.p95_ms, total.p99_ms) == (25, 31, 36)
    assert stats["/decide"].requests == 3098


@pytest.mark.parametrize(
    ("slo", "missed"),
    [
        (Slo(p95_ms=50, p99_ms=100, max_failure_ratio=0.01, min_rps=100), []),
        (Slo(p95_ms=30, p99_ms=100, max_failure_ratio=0.01, min_rps=100), ["p95 31 ms > 30 ms"]),
        (Slo(p95_ms=50, p99_ms=35, max_failure_ratio=0.01, min_rps=100), ["p99 36 ms > 35 ms"]),
        (Slo(p95_ms=50, p99_ms=100, max_failure_ratio=0.0, min_rps=100), ["failure ratio"]),
        (Slo(p95_ms=50, p99_ms=100, max_failure_ratio=0.01, min_rps=400), ["throughput 394.1"]),
    ],
)
def test_violations_name_each_missed_objective(slo, missed):
    stats = RunStats("Aggregated", 3550, 2, 394.1, 25, 31, 36)
    found = violations(stats, slo)
    assert len(found) == len(missed)
    for line, expected in zip(found, missed, strict=True):
        assert line.startswith(expected)


def test_no_requests_is_a_violation_not_a_pass():
    assert violations(RunStats("Aggregated", 0, 0, 0.0, 0, 0, 0), Slo()) == [
        "no requests completed"
    ]


def test_slo_file_errors_are_reported_together():
    with pytest.raises(SloError) as error:
        slo_from_mapping({"p95_ms": "fast", "min_rps": -1, "p999_ms": 3})
    for text in ("p95_ms", "min_rps", "p999_ms: unknown"):
        assert text in str(error.value)
    assert slo_from_mapping({"p99_ms": 20}).p99_ms == 20.0


HISTORY_HEADER = (
    "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,"
    "99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,"
    "Total Average Response Time,Total Min Response Time,Total Max Response Time,"
    "Total Average Content Size\n"
)


def test_progress_line_reads_the_newest_complete_aggregated_row(tmp_path):
    history = tmp_path / "x_stats_history.csv"
    assert progress_line(history) is None  # Locust has not written it yet
    history.write_text(HISTORY_HEADER)
    assert progress_line(history) is None
    history.write_text(
        HISTORY_HEADER
        + "1700000000,5,,Aggregated,0.000000,0.000000,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,"
        "N/A,N/A,0,0,0,0.0,0,0,0.0\n"
        + "1700000001,20,,Aggregated,412.300000,0.000000,4,5,6,6,8,9,11,13,20,25,31,"
        "1234,2,4,4.8,1,31,410.0\n"
        + "1700000002,20,,Aggregated,415.1"  # cut mid-row: Locust flushes every 5 s
    )
    assert progress_line(history) == (
        "users 20  requests 1,234  failures 2  req/s 412.3  p95 9 ms"
    )


def _loadtest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli", "loadtest", *args],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.mark.integration
def test_ten_second_headless_smoke_run_meets_the_shipped_slos(live_service, tmp_path):
    out = tmp_path / "out"
    result = _loadtest("--target", live_service.url, "--users", "5", "--run-time", "10s",
                       "--out", str(out))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all SLOs met" in result.stdout
    live = re.findall(r"^  users \d+  requests [\d,]+  failures \d+  req/s [\d.,]+  p95 ",
                      result.stdout, re.M)  # fmt: skip
    assert live, result.stdout  # a line every 5 s of the 10 s run
    stats = read_stats(out / "locust_stats.csv")
    assert {"/decide", "/decide_batch", "/decide_batch (probe pair)"} <= stats.keys()
    assert stats["Aggregated"].failures == 0 and stats["Aggregated"].requests > 100
    assert (out / "report.html").stat().st_size > 1000


@pytest.mark.integration
def test_a_missed_slo_exits_non_zero(live_service, tmp_path):
    strict = tmp_path / "slo.toml"
    strict.write_text("min_rps = 1000000\n")
    result = _loadtest("--target", live_service.url, "--users", "2", "--run-time", "3s",
                       "--out", str(tmp_path / "out"), "--slo", str(strict))  # fmt: skip
    assert result.returncode == 1
    assert "SLO missed: throughput" in result.stdout


def test_server_side_quantile_matches_prometheus_histogram_quantile():
    """Same buckets as the promtool case in alerts_test.yml, where Prometheus says p99 = 0.46 s."""
    before = {0.01: 10.0, 0.1: 10.0, 0.5: 10.0, float("inf"): 10.0}
    after = {0.01: 100.0, 0.1: 100.0, 0.5: 110.0, float("inf"): 110.0}
    assert quantile(before, after, 0.99) == pytest.approx(0.46)
    assert quantile(before, after, 0.5) == pytest.approx(0.01 * 50 / 90)
    assert math.isnan(quantile(after, after, 0.99))


def test_bench_results_go_to_the_output_dir_and_the_doc_only_when_asked(tmp_path, monkeypatch):
    import loadtests.bench as bench

    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\nintro\n\n<!-- fairgate bench: start -->\nold\n"
                   "<!-- fairgate bench: end -->\n\nafter\n")  # fmt: skip
    monkeypatch.setattr(bench, "DOC", doc)
    section = "<!-- fairgate bench: start -->\nnew\n<!-- fairgate bench: end -->"
    written = bench.write_results(section, tmp_path / "out")
    assert written == [tmp_path / "out" / "benchmarks.md"]
    assert "new" in written[0].read_text() and "\nold\n" in doc.read_text()
    assert bench.write_results(section, tmp_path / "out", update_doc=True)[1] == doc
    assert doc.read_text() == (
        "# Benchmarks\n\nintro\n\n<!-- fairgate bench: start -->\nnew\n"
        "<!-- fairgate bench: end -->\n\nafter\n"
    )


def test_a_bench_row_of_rounds_is_all_its_rounds_together():
    from loadtests.bench import Row
    from loadtests.slo import RunStats

    rounds = (RunStats("r", 100, 0, 10.0, 1, 2, 3), RunStats("r", 300, 1, 30.0, 4, 5, 6),
              RunStats("r", 200, 0, 20.0, 7, 8, 9))  # fmt: skip
    # Equal rounds: 600 requests in 3 x 10 s = 20 req/s; latencies of the round at 20 req/s.
    assert Row("r", rounds).stats == RunStats("r", 600, 1, 20.0, 7, 8, 9)
    assert Row("r", rounds[:1]).stats == rounds[0]
