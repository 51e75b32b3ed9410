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

The parts: ``loadtests/drift_traffic.py`` sends the requests and keeps the answers,
``loadtests/drift_stack.py`` starts the service and Prometheus, runs the ``fairgate`` commands
and reads the ratios back, ``loadtests/drift_summary.py`` writes the Markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from fairgate.contract import contract_from_mapping
from fairgate.generator import generate_applicants, to_records
from fairgate.policy import PolicyMode
from loadtests.drift import apply_drift, parse_drift
from loadtests.drift_stack import Ratio, Stack, prometheus_ratios, record_ratio
from loadtests.drift_summary import DOC, summary, update_doc
from loadtests.drift_traffic import BATCH, Answer, Moment, Traffic, seconds_to_last_other
from service.launch import REPO

DEFAULT_DRIFT: Final[str] = "annual_income*0.8@gender=female"
# Generator seeds no model saw: ``fairgate train`` draws its book with 42, the suite with 7.
UNDRIFTED_SEED: Final[int] = 9001
DRIFTED_SEED: Final[int] = 9002
AFTER_ROLLBACK: Final[float] = 2.0  # seconds of traffic kept after every worker is back
REASON: Final[str] = "drift: {drift}; recalibrated by loadtests.drift_loop"
ROLLED_BACK: Final[str] = "end of loadtests.drift_loop"
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


# Figures ----------------------------------------------------------------------------------
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
