"""The counterfactual audit as terminal tables, JSON and Markdown."""

from __future__ import annotations

import json
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from monitoring.control import NOT_REPRODUCIBLE
from monitoring.figures import dollars, rate, ratio
from monitoring.prober import CycleResult


def control_warning(result: CycleResult) -> str | None:
    """The plain-words warning when identical applicants were decided differently."""
    c = result.control
    if c is None or c.reproducible:
        return None
    return NOT_REPRODUCIBLE.format(flips=c.flips, pairs=c.pairs, rate=rate(c.flip_rate))


def control_summary(result: CycleResult) -> str:
    c = result.control
    if c is None:
        return "control: not run"
    return (
        f"control: {c.flips} of {c.pairs} identical applicants sent twice decided "
        f"differently (control flip rate {rate(c.flip_rate)})"
    )


def as_dict(result: CycleResult, rows: int = 20) -> dict[str, Any]:
    gap = result.gap
    return {
        "target": result.target,
        "decisions_sent": result.decisions_sent,
        "duration_seconds": result.duration_seconds,
        "control": None
        if result.control is None
        else {
            "pairs": result.control.pairs,
            "flips": result.control.flips,
            "flip_rate": result.control.flip_rate,
            "reproducible": result.control.reproducible,
        },
        "warning": control_warning(result),
        "attributes": [
            {
                "attribute": a.attribute,
                "approval_rate": a.approval_rate,
                "four_fifths_ratio": a.approval_ratio,
                "pairs": [vars(p) for p in a.pairs],
                "twins": a.rows[:rows],
            }
            for a in result.attributes
        ],
        "income_gap": None if gap is None else {k: v for k, v in vars(gap).items() if k != "gaps"},
    }


def print_audit(result: CycleResult, console: Console, rows: int = 10) -> None:
    warning = control_warning(result)
    if warning:
        console.print(f"[bold red]{warning}[/bold red]")
    for attribute in result.attributes:
        values = list(attribute.approval_rate)
        table = Table(
            title=f"Twins differing only in {attribute.attribute} "
            f"(first {rows} of {len(attribute.rows)})"
        )
        table.add_column("application id")
        table.add_column("income", justify="right")
        for value in values:
            table.add_column(value)
        for row in attribute.rows[:rows]:
            table.add_row(
                row["application_id"],
                f"${row['annual_income']:,.0f}",
                *("approve" if row[v] else "deny" for v in values),
            )
        console.print(table)
        # Layout for an 80-column terminal: short lines and a table, nothing that wraps.
        rates = ", ".join(f"{v} {r:.1%}" for v, r in attribute.approval_rate.items())
        console.print(f"approval: {rates}")
        console.print(f"four-fifths ratio {ratio(attribute.approval_ratio)}")
        if attribute.pairs:
            pairs = Table(box=box.SIMPLE, pad_edge=False)
            for name in ("twins", "flip rate", "favours first", "favours second", "score diff"):
                pairs.add_column(name, justify="left" if name == "twins" else "right")
            for p in attribute.pairs:
                pairs.add_row(
                    f"{p.group_a} vs {p.group_b}",
                    rate(p.flip_rate),
                    f"{p.group_a} {rate(p.favours_a_rate)}",
                    f"{p.group_b} {rate(p.favours_b_rate)}",
                    f"{p.mean_score_difference:+.3f}",
                )
            console.print(pairs)
    if result.gap is not None:
        g = result.gap
        console.print(
            f"income gap ({g.group_a} minus {g.group_b}), {g.measured} of {g.sampled} applicants:"
        )
        console.print(
            f"  median {dollars(g.median_dollars)}, 90th percentile {dollars(g.p90_dollars)}"
        )
        console.print(f"  non-monotone {g.non_monotone}, never approved {g.never_approved}")
    c = result.control
    if c is None:
        console.print("control: not run")
    else:
        console.print(
            f"control: {c.flips} of {c.pairs} identical applicants sent twice decided differently"
        )
        console.print(f"  control flip rate {rate(c.flip_rate)}")
    if warning:
        console.print(f"[bold red]{warning}[/bold red]")
    console.print(
        f"{result.decisions_sent} decisions sent (twins, control and gap search) "
        f"in {result.duration_seconds:.2f} s"
    )


def markdown(result: CycleResult, rows: int = 20) -> str:
    lines = [f"# Counterfactual audit of {result.target}", ""]
    warning = control_warning(result)
    if warning:
        lines += [f"> **{warning}**", ""]
    lines += [control_summary(result) + ".", ""]
    for attribute in result.attributes:
        values = list(attribute.approval_rate)
        lines += [
            f"## {attribute.attribute}",
            "",
            "| application id | income | " + " | ".join(values) + " |",
            "|---|---:|" + "---|" * len(values),
        ]
        for row in attribute.rows[:rows]:
            lines.append(
                f"| {row['application_id']} | ${row['annual_income']:,.0f} | "
                + " | ".join("approve" if row[v] else "deny" for v in values)
                + " |"
            )
        lines += ["", f"Four-fifths ratio {ratio(attribute.approval_ratio)}.", ""]
        for p in attribute.pairs:
            lines.append(f"- {p.group_a} vs {p.group_b}: flip rate {rate(p.flip_rate)}")
        lines.append("")
    if result.gap is not None:
        lines.append(
            f"Income gap: median {dollars(result.gap.median_dollars)}, "
            f"p90 {dollars(result.gap.p90_dollars)}."
        )
    lines += ["", f"{result.decisions_sent} decisions sent in {result.duration_seconds:.2f} s.", ""]
    return "\n".join(lines) + "\n"


def to_json(result: CycleResult) -> str:
    return json.dumps(as_dict(result), indent=2, default=float)
