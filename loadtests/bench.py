"""``fairgate bench``: HTTP throughput and latency side by side, in one run.

Every server runs with the same settings (BentoML workers, ``OMP_NUM_THREADS=1``, access
log off) and every Locust run uses the same user count and duration; only the endpoint,
the worker count or the GC setting changes, and each row says which.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import bentoml
import joblib

from fairgate.probe_auth import new_token
from loadtests.bench_inprocess import markdown as inprocess_markdown
from loadtests.bench_inprocess import measure
from loadtests.bench_policy import check_seconds
from loadtests.doc_section import splice
from loadtests.runner import LocustRun, run_locust
from loadtests.server import running_server
from loadtests.server_latency import bucket_counts, quantile
from loadtests.slo import RunStats
from monitoring.client import DecisionClient
from monitoring.prober import ProbeSettings, run_cycle
from monitoring.target import fetch_target
from service.launch import REPO
from training.pipeline import TrainConfig, TrainResult, run_training

BENCHFILE = REPO / "loadtests" / "benchfile.py"
BENCH_MODEL = "fairgate-bench"
BENCH_SERVICE = "loadtests.bench_service:BenchService"
START, END = "<!-- fairgate bench: start -->", "<!-- fairgate bench: end -->"
# The ratios the targets are about are measured in ROUNDS: the compared servers run side by
# side and Locust visits each in turn, round after round, so a slow spell of the shared
# machine hits every side alike. A row's req/s is over all its rounds together (its total
# requests over its total time; rounds last the same), so a ratio of two rows compares the
# same stretches of time.
ROUND_ROWS = ("floor_validated", "decide_off", "decide", "decide_nowatch")
OTHER_ROWS = 6  # the Locust runs after the rounds


@dataclass(frozen=True)
class BenchConfig:
    duration_seconds: int = 20
    users: int = 20
    rows: int = 60_000
    out: Path = Path("bench-out")
    rounds: int = 3


@dataclass(frozen=True)
class Row:
    label: str
    runs: tuple[RunStats, ...]  # one per round (a single run outside the rounds)
    decisions_per_request: int = 1

    @property
    def stats(self) -> RunStats:
        """The run's figures; over several rounds: req/s of all rounds together, the
        latencies of the round closest to that throughput."""
        if len(self.runs) == 1:
            return self.runs[0]
        rps = sum(run.rps for run in self.runs) / len(self.runs)
        closest = min(self.runs, key=lambda run: abs(run.rps - rps))
        return replace(closest, rps=rps, requests=sum(run.requests for run in self.runs),
                       failures=sum(run.failures for run in self.runs))  # fmt: skip

    @property
    def decisions_per_second(self) -> float:
        return self.stats.rps * self.decisions_per_request


def run_bench(config: BenchConfig, log: Callable[[str], None] = print) -> str:
    """Run everything; return the Markdown section for docs/benchmarks.md.

    The benchmark's model is saved to the model store (the servers load it from there) and
    deleted from it at the end, whatever happens: it is the benchmark's, not the user's.
    """
    config.out.mkdir(parents=True, exist_ok=True)
    log("training the benchmark model (naive: gender as a feature)")
    result = run_training(TrainConfig(rows=config.rows, include_sensitive=True, bootstrap=0,
                                      reports_dir=None, model_name=BENCH_MODEL))  # fmt: skip
    try:
        return _measure(config, result, log)
    finally:
        bentoml.models.delete(str(result.tag))


def _measure(config: BenchConfig, result: TrainResult, log: Callable[[str], None]) -> str:
    naive_model = config.out / "naive-threshold-optimizer.joblib"
    joblib.dump(result.optimizer, naive_model)
    # The servers started here and the prober cycle share one probe token.
    probe_token = new_token()
    record_dir = (config.out / "record").resolve()
    # Every server records (as shipped) into the output directory, never the checkout's
    # ./fairgate-data; one server runs with the record off, for the comparison.
    model_env = {"FAIRGATE_MODEL": str(result.tag), "FAIRGATE_PROBE_TOKEN": probe_token,
                 "FAIRGATE_DATA_DIR": str(record_dir)}  # fmt: skip
    rows: dict[str, Row] = {}
    runs: dict[str, list[RunStats]] = {}
    runs_total = config.rounds * len(ROUND_ROWS) + OTHER_ROWS
    count = iter(range(1, runs_total + 1))

    def locust(key: str, label: str, url: str, user: str, *, rate: float = 0.0,
               per_request: int = 1, seconds: int | None = None) -> Row:  # fmt: skip
        seconds = seconds or config.duration_seconds
        log(f"run {next(count)}/{runs_total} ({seconds} s): {label}")
        env = {"FAIRGATE_LOAD_POOL": "2000", "FAIRGATE_LOAD_RATE": str(rate)}
        stats = run_locust(
            LocustRun(host=url, users=config.users, run_time=f"{seconds}s",
                      spawn_rate=config.users, locustfile=BENCHFILE, user_classes=[user],
                      env=env),
            config.out / f"{key}-{len(runs.get(key, []))}",
            progress=lambda line: log(f"  {line}"),
        )  # fmt: skip
        runs.setdefault(key, []).append(stats["Aggregated"])
        rows[key] = Row(label, tuple(runs[key]), per_request)
        return rows[key]

    bench_env = {"FAIRGATE_NAIVE_MODEL": str(naive_model), "FAIRGATE_GC": "default"}
    tuned = {"FAIRGATE_GC": "tuned"}
    off = tuned | {"FAIRGATE_RECORD": "off"}
    # The same service without the policy watch (no look at the policy store, ever).
    nowatch = tuned | {"FAIRGATE_POLICY_POLL": "0"}
    with (
        running_server(target=BENCH_SERVICE, env=bench_env) as bench,
        running_server(env=model_env | off) as decide_off,
        running_server(env=model_env | tuned) as decide,
        running_server(env=model_env | nowatch) as decide_nowatch,
    ):
        round_seconds = max(5, config.duration_seconds // 2)
        for _ in range(config.rounds):
            locust("floor_validated", "(a') floor after validating the Applicant body, default GC",
                   bench.url, "FloorValidatedUser", seconds=round_seconds)  # fmt: skip
            locust("decide_off", "(b) /decide, tuned GC, record off", decide_off.url,
                   "DecideUser", seconds=round_seconds)  # fmt: skip
            locust("decide", "(b) /decide, tuned GC, record on (SQLite; as shipped)",
                   decide.url, "DecideUser", seconds=round_seconds)  # fmt: skip
            locust("decide_nowatch", "(b) /decide as shipped but no policy watch (poll 0)",
                   decide_nowatch.url, "DecideUser", seconds=round_seconds)  # fmt: skip
        locust("floor", "(a) floor: constant response, default GC", bench.url, "FloorUser")
        locust("naive", "(c) naive: ThresholdOptimizer.predict per request", bench.url,
               "NaiveUser")  # fmt: skip
        rate = 0.7 * rows["decide"].stats.rps / config.users
        before = bucket_counts(decide.url, "/decide")
        locust("decide_70", "(b) /decide at 70% of its saturating rate, record on", decide.url,
               "DecideUser", rate=rate)  # fmt: skip
        after = bucket_counts(decide.url, "/decide")
        server_side = {q: quantile(before, after, q) * 1000 for q in (0.5, 0.95, 0.99)}
        locust("batch", "/decide_batch, 100 applications per request, record on", decide.url,
               "BatchUser", per_request=100)  # fmt: skip
        log("prober: one cycle of 1,000 pairs (gender + age band) + income gap on 100")
        client = DecisionClient(decide.url, token=probe_token)
        assert client.client is not None
        target = fetch_target(client.client, decide.url)
        cycle = run_cycle(client, target, ProbeSettings(pairs=1000, gap_sample=100), cycle=0)
        client.close()
    with running_server(env=model_env | {"FAIRGATE_GC": "default"}) as server:
        locust("decide_default_gc", "(b) /decide, default GC, record on", server.url,
               "DecideUser")  # fmt: skip
    with running_server(workers=2, env=model_env | tuned) as server:
        locust("decide_2w", "(b) /decide, tuned GC, record on, 2 workers", server.url,
               "DecideUser")  # fmt: skip
    log("in-process microbenchmark")
    inprocess = measure(result, repeats=3000)
    check = check_seconds(f"sqlite:///{record_dir / 'record.sqlite'}", str(result.tag))
    return render(config, rows, cycle.decisions_sent, cycle.duration_seconds, inprocess,
                  server_side, check)  # fmt: skip


def _rounds(row: Row) -> str:
    return ", ".join(f"{run.rps:,.0f}" for run in row.runs)


def render(config: BenchConfig, rows: dict[str, Row], probe_decisions: int,
           cycle_seconds: float, inprocess: list[tuple[str, float, float]],
           server_side: dict[float, float], check: float) -> str:  # fmt: skip
    floor, decide, naive = rows["floor"], rows["decide"], rows["naive"]
    default_gc, at_70, batch = rows["decide_default_gc"], rows["decide_70"], rows["batch"]
    two, off, validated = rows["decide_2w"], rows["decide_off"], rows["floor_validated"]
    nowatch = rows["decide_nowatch"]
    table = [
        "| run | rounds | requests | failures | req/s | decisions/s | p50 ms | p95 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows.values():
        s = row.stats
        table.append(
            f"| {row.label} | {len(row.runs)} | {s.requests:,} | {s.failures} | {s.rps:,.0f} | "
            f"{row.decisions_per_second:,.0f} | {s.p50_ms:.0f} | {s.p95_ms:.0f} | {s.p99_ms:.0f} |"
        )

    def verdict(ok: bool) -> str:
        return "met" if ok else "**missed**"

    def per_round(top: Row, bottom: Row) -> list[float]:
        return [a.rps / b.rps for a, b in zip(top.runs, bottom.runs, strict=True)]

    off_floor = off.stats.rps / validated.stats.rps
    on_off = decide.stats.rps / off.stats.rps
    b_a, b_c = decide.stats.rps / floor.stats.rps, decide.stats.rps / naive.stats.rps
    ratios = ", ".join(f"{r:.2f}" for r in per_round(off, validated))
    ratios_on = ", ".join(f"{r:.2f}" for r in per_round(decide, off))
    watch_ratio = decide.stats.rps / nowatch.stats.rps
    ratios_watch = ", ".join(f"{r:.2f}" for r in per_round(decide, nowatch))
    targets = [
        f"- Rounds (req/s per round, in order): validating floor {_rounds(validated)}; /decide "
        f"record off {_rounds(off)}; /decide record on {_rounds(decide)}. A row's figure is "
        "over all its rounds together; so is each ratio below.",
        f"- /decide with the record off = **{off_floor:.2f} x** the validating floor "
        f"({off.stats.rps:,.0f} against {validated.stats.rps:,.0f} req/s; per round {ratios}; "
        f"target >= 0.9: {verdict(off_floor >= 0.9)}). As shipped, with the record "
        f"on: {decide.stats.rps / validated.stats.rps:.2f} x.",
        f"- /decide with the SQLite record on: **{on_off:.2f} x** the same service with it off "
        f"({decide.stats.rps:,.0f} against {off.stats.rps:,.0f} req/s; per round {ratios_on}; "
        f"target >= 0.8: {verdict(on_off >= 0.8)}).",
        f"- The policy watch (each worker looks for a new active version once a second): one "
        f"look costs **{check * 1e6:.0f} us** (median of 2,000 on this run's record), "
        f"{check:.4%} of a worker's second (target < 1% of throughput: "
        f"{verdict(check < 0.01)}). Served side by side, /decide as shipped = "
        f"{watch_ratio:.2f} x the same service with the watch off ({decide.stats.rps:,.0f} "
        f"against {nowatch.stats.rps:,.0f} req/s; per round {ratios_watch}): within the "
        "machine's round-to-round noise, which is far above the look's cost.",
        f"- /decide throughput = **{b_a:.2f} x** the floor's (record on; the constant-response "
        f"floor, measured once after the rounds: {floor.stats.rps:,.0f} req/s) and "
        f"**{b_c:.1f} x** the naive path's (target >= 4: {verdict(b_c >= 4)}).",
        f"- p99 of /decide at 70% of its saturating rate ({at_70.stats.rps:,.0f} req/s, record "
        f"on): **{at_70.stats.p99_ms:.0f} ms** as Locust measures it (target <= 20 ms: "
        f"{verdict(at_70.stats.p99_ms <= 20)}); inside the server (its request-duration "
        f"histogram over the same run) p50 {server_side[0.5]:.1f} ms, p95 "
        f"{server_side[0.95]:.1f} ms, p99 **{server_side[0.99]:.1f} ms** "
        f"({verdict(server_side[0.99] <= 20)} server-side). Locust shares the 2 cores.",
        f"- p99 at saturation: /decide with tuned GC {decide.stats.p99_ms:.0f} ms against the "
        f"floor with default GC {floor.stats.p99_ms:.0f} ms (target: better, "
        f"{verdict(decide.stats.p99_ms < floor.stats.p99_ms)}); the same /decide with default "
        f"GC: {default_gc.stats.p99_ms:.0f} ms.",
        f"- /decide_batch of 100, record on: **{batch.decisions_per_second:,.0f} decisions/s** "
        f"(target >= 20,000: {verdict(batch.decisions_per_second >= 20_000)}).",
        f"- 2 workers against 1: {two.stats.rps / decide.stats.rps:.2f} x the throughput "
        f"({two.stats.rps:,.0f} against {decide.stats.rps:,.0f} req/s).",
        f"- prober: one cycle (1,000 base applicants, gender + age band, income gap on 100) "
        f"sent {probe_decisions:,} decisions (twins, control and gap search) in "
        f"{cycle_seconds:.2f} s = {probe_decisions / cycle_seconds:,.0f} decisions/s.",
    ]
    round_seconds = max(5, config.duration_seconds // 2)
    return "\n".join([
        START,
        "## HTTP side by side (`fairgate bench`)",
        "",
        "```bash",
        f"fairgate bench --duration {config.duration_seconds} --users {config.users} "
        f"--rounds {config.rounds}",
        "```",
        "",
        f"One run on this machine (Python {platform.python_version()}): Locust "
        f"({config.users} users, closed loop unless a rate is given) and the server share the "
        f"machine's 2 cores. 1 worker unless stated. The validating floor and /decide with the "
        f"record off and on run side by side, visited in turn for {config.rounds} rounds of "
        f"{round_seconds} s (req/s over all rounds together; latencies of the round closest "
        f"to it); every other row is one {config.duration_seconds} s run.",
        "",
        *table,
        "",
        *targets,
        "",
        "### In-process, same run",
        "",
        inprocess_markdown(inprocess),
        END,
    ])  # fmt: skip


DOC = REPO / "docs" / "benchmarks.md"


def write_results(section: str, out: Path, *, update_doc: bool = False) -> list[Path]:
    """Write the section to ``out/benchmarks.md``; rewrite the committed docs/benchmarks.md
    only when asked (``fairgate bench --update-doc``), so a plain run leaves the tree clean."""
    out.mkdir(parents=True, exist_ok=True)
    result = out / "benchmarks.md"
    result.write_text(f"# Benchmarks (fairgate bench)\n\n{section}\n")
    if not update_doc:
        return [result]
    splice(DOC, section, START, END, "# Benchmarks")
    return [result, DOC]
