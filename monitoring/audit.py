"""The counterfactual audit as terminal tables, JSON and Markdown."""

from __future__ import annotations

import json
import math
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from monitoring.control import NOT_REPRODUCIBLE
from monitoring.figures import amount, rate, ratio, share
from monitoring.gap import Gap, reading
from monitoring.prober import CycleResult


def control_warning(result: CycleResult) -> str | None:
    """The plain-words warning when identical applicants were decided differently."""
    c = result.control
    if c is None or c.reproducible:
        return None
    return NOT_REPRODUCIBLE.format(flips=c.flips, pairs=c.pairs, rate=rate(c.flip_rate))


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def _sentence(text: str) -> str:
    # str.capitalize() would lower-case the rest, contract names and groups included.
    return text[:1].upper() + text[1:]


def gap_title(gap: Gap) -> str:
    """E.g. 'annual_income gap (more needed by female than by male)', in the contract's own
    field; the group that needs more is named first, whichever sign the median has."""
    read = reading(gap)
    if read.median == 0 and read.p90 == 0:
        # A blind model: no twin needs anything more; naming one group first would say
        # the opposite of the figures.
        return f"{gap.field} gap (none: {gap.group_a} and {gap.group_b} need the same)"
    more = "more" if gap.direction > 0 else "less"
    return f"{gap.field} gap ({more} needed by {read.first} than by {read.second})"


def gap_figures(gap: Gap, p90: str = "90th percentile") -> str:
    """The median and 90th percentile of the gap as the title reads it (never negative
    for the median)."""
    read = reading(gap)
    return f"median {amount(read.median, gap.unit)}, {p90} {amount(read.p90, gap.unit)}"


def gap_share(gap: Gap) -> str:
    """The gap as a share of the book's median value of the field (what FairgateGap reads)."""
    if not math.isfinite(gap.median_ratio):
        return f"no recorded book: the median is not scaled by a book median {gap.field}"
    return f"median {share(reading(gap).share)} x the book's median {gap.field}"


def population_line(result: CycleResult) -> str:
    p = result.population
    if p is None:
        return "population: not recorded"
    near = (
        "unknown (no policy or boundary width known)"
        if p.near_boundary is None
        else f"{p.near_boundary} of {p.size}"
    )
    # Three short lines: nothing wraps on an 80-column terminal.
    return (
        f"population: {p.size} synthetic applicants, {p.from_boundary} drawn like\n"
        f"  the book's near-threshold ones;\n"
        f"  near a threshold when decided: {near}"
    )


def control_summary(result: CycleResult) -> str:
    c = result.control
    if c is None:
        return "control: not run"
    return (
        f"control: {c.flips} of {c.pairs} identical applicants sent twice decided "
        f"differently (control flip rate {rate(c.flip_rate)})"
    )


def _gap_dict(gap: Gap) -> dict[str, Any]:
    # The signed figures (group a minus group b) for machines; "reads" for people.
    return {k: v for k, v in vars(gap).items() if k != "gaps"} | {
        "reads": f"{gap_title(gap)}: {gap_figures(gap)}; {gap_share(gap)}"
    }


def as_dict(result: CycleResult, rows: int = 20) -> dict[str, Any]:
    gap = result.gap
    return {
        "target": result.target,
        "contract": result.contract,
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
        "population": None if result.population is None else vars(result.population),
        "gap": None if gap is None else _gap_dict(gap),
        "gap_skipped": result.gap_skipped,
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
        shown = [k for k in attribute.rows[0] if k not in values] if attribute.rows else []
        for name in shown:
            table.add_column(
                name.replace("_", " "), justify="left" if name == shown[0] else "right"
            )
        for value in values:
            table.add_column(value)
        for row in attribute.rows[:rows]:
            table.add_row(
                *(_cell(row[name]) for name in shown),
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
        console.print(f"{gap_title(g)}:")
        console.print(f"  {g.measured} of {g.sampled} applicants measured")
        console.print(f"  {gap_figures(g)}")
        console.print(f"  {gap_share(g)}")
        console.print(f"  non-monotone {g.non_monotone}, never approved {g.never_approved}")
    elif result.gap_skipped:
        console.print(result.gap_skipped)
    console.print(population_line(result))
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
        shown = [k for k in attribute.rows[0] if k not in values] if attribute.rows else []
        lines += [
            f"## {attribute.attribute}",
            "",
            "| " + " | ".join([*shown, *values]) + " |",
            "|" + "---|" * (len(shown) + len(values)),
        ]
        for row in attribute.rows[:rows]:
            cells = [_cell(row[name]) for name in shown]
            cells += ["approve" if row[v] else "deny" for v in values]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", f"Four-fifths ratio {ratio(attribute.approval_ratio)}.", ""]
        for p in attribute.pairs:
            lines.append(f"- {p.group_a} vs {p.group_b}: flip rate {rate(p.flip_rate)}")
        lines.append("")
    if result.gap is not None:
        g = result.gap
        lines.append(f"{_sentence(gap_title(g))}: {gap_figures(g, 'p90')}; {gap_share(g)}.")
    elif result.gap_skipped:
        lines.append(_sentence(result.gap_skipped) + ".")
    lines += ["", " ".join(population_line(result).split()) + "."]
    lines += ["", f"{result.decisions_sent} decisions sent in {result.duration_seconds:.2f} s.", ""]
    return "\n".join(lines) + "\n"


def to_json(result: CycleResult) -> str:
    return json.dumps(as_dict(result), indent=2, default=float)
