"""The drift loop's run (``loadtests.drift_loop``) in Markdown, and ``--update-doc``'s writer:
each policy mode's section between its own markers in docs/online-thresholds.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from loadtests.doc_section import splice
from loadtests.drift_stack import Ratio
from loadtests.drift_traffic import BATCH, SENDERS
from service.launch import REPO

if TYPE_CHECKING:
    from loadtests.drift_loop import LoopResult, Switch

DOC: Final[Path] = REPO / "docs" / "online-thresholds.md"


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
    splice(doc, f"{start}\n{section}\n{end}", start, end, "# Online thresholds")
