"""The service and the Prometheus the drift loop (``loadtests.drift_loop``) runs against, the
``fairgate`` commands it runs on them, and the four-fifths ratios it reads back from the
record (``fairgate audit``) and from Prometheus.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Self

import httpx
from prometheus_client.parser import text_string_to_metric_families

from fairgate.artifacts import DEFAULT_MODEL
from loadtests.drift_traffic import Moment
from record.url import default_record_url
from service.launch import REPO, service_env
from service.server_process import ServerProcess, ServiceProcess, free_port, temporary_log

if TYPE_CHECKING:
    from loadtests.drift_loop import LoopSettings

SWITCH_TIMEOUT: Final[float] = 30.0
COMMAND_FAILED: Final[str] = "`fairgate {command}` exited {code}:\n{output}"


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


# The four-fifths ratios -------------------------------------------------------------------
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
