"""The online-threshold loop for real on this machine: a drift pushes one group's approvals
under four fifths of the other's, the record and Prometheus show it, ``fairgate policy``
recalibrates and promotes, and the same drifted population is decided fairly again.

    python -m loadtests.drift_loop [--policy mitigated|lda] [--workers 2] [--seconds 300]
                                   [--baseline-seconds 60] [--model TAG] [--update-doc]

Starts, on 127.0.0.1 and ports chosen at run time, the service (``--workers`` workers,
OMP_NUM_THREADS=1, the decision record in a temporary data directory, the policy store polled
every second) and a Prometheus with the shipped rule files scraping it every second. Then:

0. ``--baseline-seconds`` of applicants as the book has them;
1. ``--seconds`` of drifted ones (``--drift``: women's incomes x0.8 by default);
2. ``fairgate policy recalibrate --since <phase 1 start> --json``, ``fairgate policy diff``,
   ``fairgate policy promote`` (with ``--force`` when the shadow diff moves a cut-off over
   the bound), and the seconds until every worker decides with the new version;
3. ``--seconds`` more of the same drifted population, decided by the new version;
4. ``fairgate policy rollback`` and the seconds until every worker is back;
   ``fairgate record verify``.

Each phase's four-fifths ratio comes from the record (``fairgate audit --since --until``
over the phase alone) and from Prometheus (the shipped rule
``fairgate_approval:four_fifths_ratio_rate5m`` at the phase's end, whose five minutes reach
back into the phase before when a phase is shorter, and the same ratio over the phase's own
window). A Markdown summary goes to stdout; ``--update-doc`` writes it into
docs/online-thresholds.md. ``tests/test_drift_loop.py`` runs ``run_loop`` in a short
configuration.

The traffic is sent from threads, not Locust: Locust's pool (``loadtests/pool.py``) is
synthesized from the contract's marginals, whose gender/income joint is not the training
book's, so the same drift moves its approvals by another amount. The loop sends the book's own
population (``fairgate.generator`` with seeds training never used, drifted by
``loadtests.drift.apply_drift``) at a steady rate, each request on a connection of its own so
that every worker gets requests (a kept-alive connection stays with the worker that accepted
it), and keeps every answer's status and policy versions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Self

import httpx
from prometheus_client.parser import text_string_to_metric_families

from fairgate.artifacts import DEFAULT_MODEL
from fairgate.contract import contract_from_mapping
from fairgate.generator import generate_applicants, to_records
from fairgate.policy import PolicyMode
from loadtests.drift import apply_drift, parse_drift
from record.url import default_record_url
from service.launch import REPO, service_env
from service.server_process import ServerProcess, ServiceProcess, free_port, temporary_log

DEFAULT_DRIFT: Final[str] = "annual_income*0.8@gender=female"
# Generator seeds no model saw: ``fairgate train`` draws its book with 42, the suite with 7.
UNDRIFTED_SEED: Final[int] = 9001
DRIFTED_SEED: Final[int] = 9002
BATCH: Final[int] = 10  # applications per /decide_batch request
SENDERS: Final[int] = 4  # threads sending side by side
SWITCH_TIMEOUT: Final[float] = 30.0
AFTER_ROLLBACK: Final[float] = 2.0  # seconds of traffic kept after every worker is back
REASON: Final[str] = "drift: {drift}; recalibrated by loadtests.drift_loop"
ROLLED_BACK: Final[str] = "end of loadtests.drift_loop"
DOC: Final[Path] = REPO / "docs" / "online-thresholds.md"
COMMAND_FAILED: Final[str] = "`fairgate {command}` exited {code}:\n{output}"
NOT_THE_BOOK: Final[str] = (
    "the model at {url} serves contract {name!r}: the loop sends the synthetic book's "
    "applicants (fairgate.generator), so it needs a model trained on that book"
)


@dataclass(frozen=True)
class LoopSettings:
    policy: PolicyMode = "mitigated"
    workers: int = 2
    seconds: float = 300.0  # phases 1 and 2
    baseline_seconds: float = 60.0  # phase 0
    rate: float = 20.0  # /decide_batch requests per second, all senders together
    drift: str = DEFAULT_DRIFT
    model: str | None = None  # None: FAIRGATE_MODEL, else the default model


@dataclass(frozen=True)
class Answer:
    sent: float  # time.monotonic() when the request was sent
    status: int  # 0: no answer (a connection error)
    versions: frozenset[str]  # policy_version of each decision of a 200

    @property
    def ok(self) -> bool:
        return self.status == 200 and bool(self.versions)


@dataclass(frozen=True)
class Moment:
    wall: datetime
    mono: float

    @classmethod
    def now(cls) -> Moment:
        return cls(datetime.now(UTC), time.monotonic())

    def iso(self) -> str:
        return self.wall.isoformat().replace("+00:00", "Z")


class Traffic:
    """``/decide_batch`` requests of ``BATCH`` applications at ``rate`` a second in all, from
    ``SENDERS`` threads, each request on a new connection (the workers share the listening
    socket, and a kept-alive connection would stay with one of them), cycling through
    ``applications``."""

    def __init__(self, url: str, applications: Sequence[dict], *, rate: float) -> None:
        self.url = url
        self.period = SENDERS / rate
        self.answers: list[Answer] = []
        self._population = list(applications)
        self._next = 0
        self._generation = 0
        self._in_flight: dict[int, int] = {}  # sender -> generation of its request in flight
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._send, args=(i,), name=f"drift-loop-{i}", daemon=True)
            for i in range(SENDERS)
        ]

    def _take(self, sender: int) -> list[dict]:
        with self._changed:
            start, self._next = self._next, self._next + BATCH
            self._in_flight[sender] = self._generation
            population = self._population
        return [population[(start + i) % len(population)] for i in range(BATCH)]

    def _send(self, sender: int) -> None:
        due = time.monotonic() + sender * self.period / SENDERS  # spread the senders
        fresh = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(base_url=self.url, timeout=30, limits=fresh) as client:
            while not self._stop.wait(max(0.0, due - time.monotonic())):
                body = {"applications": self._take(sender)}
                sent = time.monotonic()
                status, versions = 0, frozenset[str]()
                # A 200 without its decisions' versions counts as failed (``LoopResult.failed``).
                with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
                    response = client.post("/decide_batch", json=body)
                    status = response.status_code
                    decisions = response.json()["decisions"] if status == 200 else []
                    versions = frozenset(d["policy_version"] for d in decisions)
                with self._changed:
                    self.answers.append(Answer(sent, status, versions))
                    del self._in_flight[sender]
                    self._changed.notify_all()
                due = max(due + self.period, time.monotonic())  # late: no burst to catch up

    def switch(self, applications: Sequence[dict]) -> None:
        """Send ``applications`` from now on; returns once no request of the earlier ones is
        in flight, so every decision after it is of the new population."""
        with self._changed:
            self._population, self._next = list(applications), 0
            self._generation += 1
            now = self._generation
            self._changed.wait_for(lambda: now - 1 not in self._in_flight.values(), timeout=30)

    def __enter__(self) -> Self:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(35)


def prometheus_config(service: str) -> dict[str, Any]:
    """The shipped rule files, the service scraped every second as job ``fairgate-service``."""
    rules = sorted(str(p) for p in (REPO / "monitoring" / "prometheus" / "rules").glob("*.yml"))
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": rules,
        "scrape_configs": [
            {"job_name": "fairgate-service", "static_configs": [{"targets": [service]}]}
        ],
    }


class Stack:
    """The service and Prometheus, started on entering and stopped on leaving; ``fairgate``
    runs a command against the service's model, mode and record."""

    def __init__(self, settings: LoopSettings) -> None:
        self.settings = settings
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _start(self) -> None:
        s = self.settings
        self.root = Path(tempfile.mkdtemp(prefix="fairgate-drift-loop-"))
        self._stack.callback(shutil.rmtree, self.root, ignore_errors=True)
        data = self.root / "data"
        self.record_url = default_record_url({"FAIRGATE_DATA_DIR": str(data)})
        env = {
            "FAIRGATE_MODEL": s.model or os.environ.get("FAIRGATE_MODEL") or DEFAULT_MODEL,
            "FAIRGATE_POLICY": s.policy, "FAIRGATE_WORKERS": str(s.workers),
            "FAIRGATE_POLICY_POLL": "1", "FAIRGATE_RECORD": "on",
            "FAIRGATE_DATA_DIR": str(data), "FAIRGATE_RECORD_URL": self.record_url,
        }  # fmt: skip
        service = ServiceProcess(
            free_port(), service_env(env), log=temporary_log("fairgate-drift-loop-serve-")
        )
        self._stack.callback(service.stop)
        self.url = service.wait_ready(180).url
        self.view = httpx.get(f"{self.url}/policy", timeout=30).json()
        self.model = self.view["model_version"]
        config = self.root / "prometheus.yml"  # JSON is YAML
        config.write_text(json.dumps(prometheus_config(self.url.removeprefix("http://"))))
        port = free_port()
        prometheus = ServerProcess(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={self.root / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            url=f"http://127.0.0.1:{port}", ready_path="/-/ready",
            log=temporary_log("fairgate-drift-loop-prometheus-"),
        )  # fmt: skip
        self._stack.callback(prometheus.stop)
        self.prometheus_url = prometheus.wait_ready(60).url

    # The service ------------------------------------------------------------------------
    @property
    def cli_env(self) -> dict[str, str]:
        return {
            "FAIRGATE_MODEL": self.model, "FAIRGATE_POLICY": self.settings.policy,
            "FAIRGATE_RECORD_URL": self.record_url,
        }  # fmt: skip

    def fairgate(self, *args: str) -> str:
        """``fairgate ARGS`` as a user runs it; its stdout. ``RuntimeError`` on a failure."""
        return _finished(self._spawn(args), args)[0]

    def verify(self) -> str:
        """``fairgate record verify``'s verdict (it writes to stderr)."""
        out, err = _finished(self._spawn(("record", "verify")), ("record", "verify"))
        return (out + err).strip()

    def _spawn(self, args: Sequence[str]) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "cli", *args], cwd=REPO, env=os.environ | self.cli_env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def audits(self, windows: Sequence[tuple[Moment, Moment]]) -> list[dict[str, Any]]:
        """``fairgate audit --since --until --json`` of each window, run side by side."""
        runs = []
        for i, (low, high) in enumerate(windows):
            path = self.root / f"audit-{i}.json"
            args = ("audit", "--since", low.iso(), "--until", high.iso(), "--json", str(path))
            runs.append((self._spawn(args), args, path))
        results = []
        for process, args, path in runs:
            _finished(process, args)
            results.append(json.loads(path.read_text()))
        return results

    def policy_changes(self) -> float:
        """``fairgate_policy_changes_total`` on the service's /metrics: worker switches."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "fairgate_policy_changes_total"
        )

    def switched(self, before: float, since: float) -> float:
        """The moment (monotonic) every worker has switched once more than ``before`` counted:
        the changes counter grew by the worker count. ``TimeoutError`` after
        ``SWITCH_TIMEOUT`` seconds from ``since``."""
        wanted = before + self.settings.workers
        while self.policy_changes() < wanted:
            if time.monotonic() - since > SWITCH_TIMEOUT:
                raise TimeoutError(f"the workers did not switch within {SWITCH_TIMEOUT:g} s")
            time.sleep(0.05)
        return time.monotonic()

    # Prometheus -------------------------------------------------------------------------
    def query(self, expr: str, at: datetime) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{self.prometheus_url}/api/v1/query",
            params={"query": expr, "time": at.timestamp()},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()["data"]["result"]

    def wait_scraped(self, after: datetime, timeout: float = 30) -> None:
        """Until Prometheus has scraped the service, and evaluated the rules, after ``after``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = datetime.now(UTC)
            stamps = self.query('timestamp(up{job="fairgate-service"})', now)
            if stamps and float(stamps[0]["value"][1]) > after.timestamp() + 1:
                return
            time.sleep(0.25)
        raise TimeoutError(f"Prometheus did not scrape {self.url} within {timeout:g} s")


def _finished(process: subprocess.Popen[str], args: Sequence[str]) -> tuple[str, str]:
    output, errors = process.communicate(timeout=600)
    if process.returncode != 0:
        raise RuntimeError(
            COMMAND_FAILED.format(command=" ".join(args[:2]), code=process.returncode,
                                  output=(output + errors)[-3000:])
        )  # fmt: skip
    return output, errors


# Figures ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ratio:
    """A four-fifths ratio (lowest group approval rate over the highest) and its groups'
    rates; from the record also the decisions per group and a bootstrap 95% interval."""

    ratio: float
    rates: dict[str, float]
    decisions: dict[str, int] = field(default_factory=dict)
    interval: tuple[float, float] | None = None

    @classmethod
    def of(cls, rates: dict[str, float]) -> Ratio:
        top = max(rates.values(), default=0.0)
        return cls(min(rates.values()) / top if top > 0 else float("nan"), rates)


@dataclass(frozen=True)
class Phase:
    name: str
    since: Moment
    until: Moment
    versions: frozenset[str]  # the policy versions in the phase's answers
    record: Ratio  # ``fairgate audit`` over the phase
    prometheus: Ratio  # the counters' increase over the phase
    rule_5m: Ratio  # the recorded rules at the phase's end

    @property
    def seconds(self) -> float:
        return self.until.mono - self.since.mono


def record_ratio(audit: dict[str, Any], attribute: str) -> Ratio:
    """The policy attribute's figures in ``fairgate audit --json`` output."""
    if not audit["audits"]:
        raise RuntimeError(f"no live decisions in the record from {audit['since']}")
    figures = audit["audits"][0]["groups"][attribute]
    rows = figures["by_group"]
    low, high = figures["bootstrap_95"]["demographic_parity_ratio"]
    return Ratio(
        figures["demographic_parity_ratio"],
        {g: row["selection_rate"] for g, row in rows.items()},
        {g: int(row["count"]) for g, row in rows.items()},
        (low, high),
    )


def prometheus_ratios(
    stack: Stack, attribute: str, since: Moment, until: Moment
) -> tuple[Ratio, Ratio]:
    """At ``until``: the ratio of the counters' increase since ``since``, and the shipped
    rules' ``fairgate_approval:four_fifths_ratio_rate5m`` with its groups' rates."""
    label = json.dumps(attribute)  # a PromQL string literal
    window = f"{max(1, round(until.mono - since.mono))}s"
    approved = f'fairgate_decisions_total{{attribute={label},outcome="approve"}}'
    decided = f"fairgate_decisions_total{{attribute={label}}}"
    expr = (
        f"sum by (group) (increase({approved}[{window}]))"
        f" / sum by (group) (increase({decided}[{window}]))"
    )

    def by_group(expr: str) -> dict[str, float]:
        found = stack.query(expr, until.wall)
        rates = {r["metric"]["group"]: float(r["value"][1]) for r in found}
        return {g: v for g, v in rates.items() if v == v}  # NaN: no decisions in the window

    rule = stack.query(
        f"fairgate_approval:four_fifths_ratio_rate5m{{attribute={label}}}", until.wall
    )
    rule_rates = by_group(f"group:fairgate_approval:ratio_rate5m{{attribute={label}}}")
    rule_ratio = float(rule[0]["value"][1]) if rule else float("nan")
    return Ratio.of(by_group(expr)), Ratio(rule_ratio, rule_rates)


def seconds_to_last_other(
    answers: Sequence[Answer], version: str, since: float, until: float = float("inf")
) -> float:
    """Seconds from ``since`` to the last request sent before ``until`` whose answer carried
    a version other than ``version`` (0.0 if none): after it, every answer carries it."""
    other = [
        a.sent for a in answers
        if since <= a.sent < until and a.ok and a.versions != {version}
    ]  # fmt: skip
    return max(other, default=since) - since


@dataclass(frozen=True)
class Switch:
    """A promotion or a rollback: the command, and when (monotonic seconds) it was issued,
    returned, and every worker had switched to ``version``."""

    version: str
    command: list[str]
    issued: float
    returned: float
    switched: float

    @property
    def seconds(self) -> float:
        """From the command's return until every worker decides with ``version`` (the first
        look, a few milliseconds, when they had switched before the command exited)."""
        return self.switched - self.returned


@dataclass(frozen=True)
class LoopResult:
    settings: LoopSettings
    model: str
    attribute: str
    trained: str  # the version served at the start, and again after the rollback
    phases: list[Phase]
    candidate: dict[str, Any]  # ``fairgate policy recalibrate --json``
    answers: list[Answer]
    verify: str
    diff: dict[str, Any] | None = None  # ``fairgate policy diff --json``; None: no candidate
    promotion: Switch | None = None
    rollback: Switch | None = None
    serving: list[str] = field(default_factory=list)  # fairgate_policy_info == 1, phase 2's end

    @property
    def failed(self) -> int:
        return sum(not a.ok for a in self.answers)

    def answers_seconds(self, switch: Switch) -> float:
        """From the command's return to the last request answered by another version."""
        until = self.rollback.issued if switch is self.promotion and self.rollback else math.inf
        return seconds_to_last_other(self.answers, switch.version, switch.returned, until)


def _say(line: str) -> None:
    print(f"drift loop: {line}", file=sys.stderr, flush=True)


def _switch(stack: Stack, version: str, *command: str) -> Switch:
    before = stack.policy_changes()
    issued = time.monotonic()
    stack.fairgate(*command)
    returned = time.monotonic()
    switched = stack.switched(before, returned)
    return Switch(version, list(command), issued, returned, switched)


def run_loop(settings: LoopSettings, say: Callable[[str], None] = _say) -> LoopResult:
    """The whole loop (see the module); every figure in the result."""
    from fairgate.schema import SYNTHETIC_CONTRACT

    say(f"starting the service ({settings.workers} workers, {settings.policy}) and Prometheus")
    with Stack(settings) as stack:
        contract = contract_from_mapping(stack.view["contract"])
        if contract.name != SYNTHETIC_CONTRACT.name:
            raise ValueError(NOT_THE_BOOK.format(url=stack.url, name=contract.name))
        drifts = parse_drift(settings.drift, contract)
        attribute = contract.groups.separator.join(stack.view["policy"]["attributes"])
        trained = stack.view["policy_version"]
        per_second = settings.rate * BATCH
        book = generate_applicants(
            round(per_second * (settings.baseline_seconds + 30)), seed=UNDRIFTED_SEED
        )
        # Enough for both drifted phases and the steps between, so phase 2 decides other
        # applicants than the recalibration read.
        count = round(per_second * (2 * settings.seconds + 120))
        drifted = apply_drift(
            to_records(generate_applicants(count, seed=DRIFTED_SEED)), drifts, contract
        )
        stack.wait_scraped(datetime.now(UTC))  # phase 0 is in Prometheus from its start
        windows: list[tuple[str, Moment, Moment]] = []
        promotion = rollback = diff = None
        with Traffic(stack.url, to_records(book), rate=settings.rate) as traffic:
            say(f"phase 0: {settings.baseline_seconds:g} s of the book's applicants")
            start = Moment.now()
            time.sleep(settings.baseline_seconds)
            traffic.switch(drifted)
            drift_start = Moment.now()
            windows.append(("0: the book's applicants", start, drift_start))
            say(f"phase 1: {settings.seconds:g} s drifted ({settings.drift})")
            time.sleep(settings.seconds)
            windows.append(("1: drifted", drift_start, Moment.now()))
            candidate = json.loads(
                stack.fairgate("policy", "recalibrate", "--since", drift_start.iso(), "--json")
            )
            new = candidate["version"]
            say(f"recalibrated: {new} (changed: {candidate['changed']})")
            if candidate["changed"]:
                diff = json.loads(stack.fairgate("policy", "diff", new, "--json"))
                promote = [
                    "policy",
                    "promote",
                    new,
                    "--reason",
                    REASON.format(drift=settings.drift),
                ]
                if diff["largest_move"] > diff["bound"]:
                    promote[3:3] = ["--force"]
                promotion = _switch(stack, new, *promote)
                say(f"every worker decides with {new} {promotion.seconds:.2f} s after promote")
                start = Moment.now()
                say(f"phase 2: {settings.seconds:g} s drifted, decided by {new}")
                time.sleep(settings.seconds)
                windows.append(("2: drifted, recalibrated", start, Moment.now()))
                rollback = _switch(stack, trained, "policy", "rollback", "--reason", ROLLED_BACK)
                say(f"rolled back: every worker on {trained} {rollback.seconds:.2f} s after")
                time.sleep(AFTER_ROLLBACK)
            end = Moment.now()
        verify = stack.verify()
        say(verify)
        audits = stack.audits([(low, high) for _, low, high in windows])
        stack.wait_scraped(end.wall)
        phases = []
        for (name, low, high), audit in zip(windows, audits, strict=True):
            sent = [a.versions for a in traffic.answers if low.mono <= a.sent < high.mono]
            window, rule = prometheus_ratios(stack, attribute, low, high)
            record = record_ratio(audit, attribute)
            phases.append(Phase(name, low, high, frozenset().union(*sent), record, window, rule))
        serving = []
        if promotion is not None:
            found = stack.query("fairgate_policy_info == 1", windows[-1][2].wall)
            serving = sorted(r["metric"]["version"] for r in found)
        return LoopResult(
            settings=settings, model=stack.model, attribute=attribute, trained=trained,
            phases=phases, candidate=candidate, answers=traffic.answers, verify=verify,
            diff=diff, promotion=promotion, rollback=rollback, serving=serving,
        )  # fmt: skip


# The summary ----------------------------------------------------------------------------
def _pct(value: float) -> str:
    return f"{value:.1%}"


def _rates(ratio: Ratio) -> str:
    return " / ".join(_pct(ratio.rates[g]) for g in sorted(ratio.rates))


def _ratio(ratio: Ratio) -> str:
    return "n/a" if ratio.ratio != ratio.ratio else f"{ratio.ratio:.3f}"


def summary(result: LoopResult) -> str:
    """The run in Markdown: settings, a table of the phases, the policy steps, the checks."""
    s, phases = result.settings, result.phases
    groups = " / ".join(sorted(phases[0].record.rates))
    lines = [
        f"`python -m loadtests.drift_loop --policy {s.policy} --workers {s.workers} "
        f"--seconds {s.seconds:g} --baseline-seconds {s.baseline_seconds:g}`: model "
        f"`{result.model}`, drift `{s.drift}`, {s.rate * BATCH:g} decisions/s "
        f"({s.rate:g} batches of {BATCH} a second from {SENDERS} threads, a connection each "
        "request), the policy "
        "store polled every second, Prometheus scraping and evaluating every second.",
        "",
        f"| phase | seconds | decided by | live decisions (record) | approval {groups} "
        "(record) | four-fifths ratio (record) [95%] | Prometheus over the phase "
        f"(ratio: {groups}) | `fairgate_approval:four_fifths_ratio_rate5m` at its end |",
        "|---|---:|---|---:|---|---|---|---|",
    ]
    for p in phases:
        low, high = p.record.interval or (float("nan"), float("nan"))
        lines.append(
            f"| {p.name} | {p.seconds:.0f} | {', '.join(f'`{v}`' for v in sorted(p.versions))} "
            f"| {sum(p.record.decisions.values()):,} | {_rates(p.record)} "
            f"| {_ratio(p.record)} [{low:.3f}, {high:.3f}] "
            f"| {_ratio(p.prometheus)}: {_rates(p.prometheus)} | {_ratio(p.rule_5m)} |"
        )
    lines += [
        "",
        *_steps(result),
        "",
        f"`fairgate record verify`: {result.verify}. Requests: {len(result.answers):,} "
        f"(of {BATCH} applications each), {result.failed:,} failed.",
    ]
    return "\n".join(lines)


def _steps(result: LoopResult) -> list[str]:
    c = result.candidate
    expected = c["expected"]
    cuts = ", ".join(
        f"{g} {row['cut_before']:.4f} -> {row['cut_after']:.4f}"
        for g, row in sorted(expected["groups"].items())
    )
    ratio = expected["four_fifths_ratio"]
    interval = ratio["interval"]
    shown = "" if interval is None else f" [{interval[0]:.3f}, {interval[1]:.3f}]"
    target = expected["target"]
    aim = (
        f"every group at the trained approval rate {_pct(target['approval_rate'])}"
        if target["kind"] == "equal-rates"
        else f"one cut-off, approval rate {_pct(target['approval_rate'])} +- "
        f"{target['band']:.0%}, four-fifths ratio >= {target['floor']:.2f}"
    )
    lines = [
        "- `fairgate policy recalibrate --since <phase 1 start> --json`: "
        + (f"candidate `{c['version']}`" if c["changed"] else f"no change (`{c['version']}`)")
        + f" from {c['window']['decisions']:,} live decisions; target: {aim}; cut-offs {cuts}; "
        f"expected four-fifths ratio {ratio['before']:.3f} -> {ratio['after']:.3f}{shown}.",
        *(f"  Note: {note}" for note in expected["notes"]),
    ]
    if result.diff is None or result.promotion is None or result.rollback is None:
        return lines
    d, promotion, rollback = result.diff, result.promotion, result.rollback
    over = "over" if d["largest_move"] > d["bound"] else "within"
    serving = ", ".join(f"`{v}`" for v in result.serving)
    return [
        *lines,
        f"- `fairgate policy diff {c['version']} --json`: {d['changed']:,} of "
        f"{d['decisions']:,} recorded live decisions would change; largest cut-off move "
        f"{d['largest_move']:.4f}, {over} the bound {d['bound']:.2f}.",
        f"- `fairgate {' '.join(_quoted(promotion.command))}` "
        f"({promotion.returned - promotion.issued:.1f} s): {_switched(result, promotion)} "
        f"At phase 2's end Prometheus shows `fairgate_policy_info == 1` for {serving}.",
        f"- `fairgate policy rollback` ({rollback.returned - rollback.issued:.1f} s), back to "
        f"`{rollback.version}`: {_switched(result, rollback)}",
    ]


def _switched(result: LoopResult, switch: Switch) -> str:
    return (
        f"every worker had switched {switch.seconds:.2f} s after the command returned "
        f"(`fairgate_policy_changes_total` +{result.settings.workers}); the last request "
        f"answered by another version was sent {result.answers_seconds(switch):.2f} s after it."
    )


def _quoted(args: Sequence[str]) -> list[str]:
    return [f'"{a}"' if " " in a else a for a in args]


def update_doc(section: str, mode: str, doc: Path = DOC) -> None:
    """Put ``section`` between the doc's markers for ``mode`` (appended if it has none)."""
    start, end = (
        f"<!-- generated: drift-loop-{mode} -->",
        f"<!-- end generated: drift-loop-{mode} -->",
    )
    text = doc.read_text() if doc.exists() else "# Online thresholds\n"
    block = f"{start}\n{section}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    doc.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.drift_loop", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--policy",
        choices=("mitigated", "lda"),
        default="mitigated",
        help="served mode (default mitigated: group thresholds)",
    )
    parser.add_argument("--workers", type=int, default=2, help="service workers (default 2)")
    parser.add_argument(
        "--seconds", type=float, default=300.0, help="phases 1 and 2, drifted (default 300)"
    )
    parser.add_argument(
        "--baseline-seconds", type=float, default=60.0, help="phase 0, undrifted (default 60)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=20.0,
        help=f"/decide_batch requests a second, {BATCH} applications each (default 20)",
    )
    parser.add_argument(
        "--drift",
        default=DEFAULT_DRIFT,
        help=f"FIELD*FACTOR[@FIELD=VALUE], comma-separated (default {DEFAULT_DRIFT})",
    )
    parser.add_argument("--model", help="model tag (default: FAIRGATE_MODEL, else the default)")
    parser.add_argument(
        "--update-doc", action="store_true", help=f"write the summary into {DOC.relative_to(REPO)}"
    )
    args = parser.parse_args(argv)
    settings = LoopSettings(
        policy=args.policy, workers=args.workers, seconds=args.seconds,
        baseline_seconds=args.baseline_seconds, rate=args.rate, drift=args.drift, model=args.model,
    )  # fmt: skip
    section = summary(run_loop(settings))
    print(section)
    if args.update_doc:
        update_doc(section, settings.policy)
        _say(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
