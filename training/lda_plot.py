"""The LDA search as one picture: every candidate's disparity against its accuracy.

x: agreement with the historical decisions; y: one attribute's four-fifths ratio (point
estimate); both on the validation split, where the choice is made. Candidates are coloured
by family, filled when they met the business need without harm, hollow when they did not;
the baseline, the chosen candidate and the group-threshold policies are marked and named,
with the four-fifths line and the candidates' Pareto front (no other candidate both agrees
more with history and has a higher ratio).

Example::

    labels = plot_lda_pareto(metrics["lda"], Path("reports/lda_pareto.png"), attribute="gender")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")  # reports are written on headless machines
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from training.lda_select import FOUR_FIFTHS

__all__ = ["legend_labels", "pareto_figure", "pareto_front", "plot_lda_pareto"]

_POLICY_MARKERS: Final[dict[str, str]] = {"unmitigated": "v", "mitigated": "^", "randomized": "D"}
_BASELINE: Final[dict[str, Any]] = {"marker": "s", "s": 90, "color": "black", "edgecolors": "black"}
_CHOSEN: Final[dict[str, Any]] = {"marker": "*", "s": 320, "color": "gold", "edgecolors": "black"}
_LABEL_BOX: Final[dict[str, Any]] = {"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8,
                                     "lw": 0}  # fmt: skip
_REJECTED: Final[str] = "hollow: fails business necessity or do no harm"


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both coordinates (higher is better),
    by increasing x.

    >>> pareto_front([(0.8, 0.9), (0.9, 0.7), (0.7, 0.6), (0.85, 0.9)])
    [3, 1]
    """
    order = sorted(range(len(points)), key=lambda i: (-points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front[::-1]


def _policy_label(name: str) -> str:
    return name if name == "unmitigated" else f"{name} (group thresholds)"


def _annotate(axis: Axes, spots: Sequence[tuple[float, float]], labels: Sequence[str]) -> None:
    """Name each marked point beside it; points closer than 3% of the axes (the baseline is
    the unmitigated policy when the trainer's model is blind) share one annotation instead
    of printing over each other."""
    (x0, x1), (y0, y1) = axis.get_xlim(), axis.get_ylim()
    clusters: list[tuple[tuple[float, float], list[str]]] = []
    for (x, y), label in zip(spots, labels, strict=True):
        short = label.split(":")[0].split(" (")[0]
        for (cx, cy), names in clusters:
            if abs(x - cx) < 0.03 * (x1 - x0) and abs(y - cy) < 0.03 * (y1 - y0):
                names.append(short)
                break
        else:
            clusters.append(((x, y), [short]))
    for spot, names in clusters:
        axis.annotate(", ".join(names), spot, xytext=(8, 6), textcoords="offset points",
                      fontsize=8, zorder=6, bbox=_LABEL_BOX)  # fmt: skip


def pareto_figure(lda: Mapping[str, Any], *, attribute: str) -> Figure:
    """The figure, not saved: its one axes' legend names every marked point."""
    selection = lda["selection"]
    rows = [row for row in lda["candidates"] if row["ratios"].get(attribute) is not None]
    admissible = set(selection["ranking"])
    figure, axis = plt.subplots(figsize=(10, 6))

    families = list(dict.fromkeys(row.get("family") or "unnamed" for row in rows))
    colours = {family: plt.get_cmap("tab10")(i % 10) for i, family in enumerate(families)}
    for family in families:
        mine = [row for row in rows if (row.get("family") or "unnamed") == family]
        label: str | None = f"{family} ({len(mine)})"
        for passed in (True, False):
            drawn = [row for row in mine if (row["name"] in admissible) is passed]
            if not drawn:
                continue
            axis.scatter(
                [row["agreement"] for row in drawn],
                [row["ratios"][attribute] for row in drawn],
                s=22,
                facecolors=colours[family] if passed else "none",
                edgecolors=colours[family],
                linewidths=0.8,
                alpha=0.8,
                label=label,
            )
            label = None  # one legend entry per family
    axis.scatter([], [], s=22, facecolors="none", edgecolors="grey", label=_REJECTED)

    points = [(row["agreement"], row["ratios"][attribute]) for row in rows]
    front = pareto_front(points)
    axis.step(
        [points[i][0] for i in front],
        [points[i][1] for i in front],
        where="post",
        color="black",
        linewidth=1,
        alpha=0.6,
        zorder=3,
        label="Pareto front of the candidates",
    )
    axis.axhline(FOUR_FIFTHS, color="crimson", linestyle="--", linewidth=1,
                 label=f"four-fifths line ({FOUR_FIFTHS:.1f})")  # fmt: skip

    by_name = {row["name"]: row for row in lda["candidates"]}
    baseline, chosen = by_name[selection["baseline"]], by_name[selection["chosen"]]
    margin = selection["rule"].get("agreement_margin")
    if margin is not None:
        axis.axvline(baseline["agreement"] - margin, color="grey", linestyle=":", linewidth=1,
                     label=f"agreement floor (the baseline's less {margin})")  # fmt: skip
    marks: list[tuple[str, Mapping[str, Any], dict[str, Any]]] = []
    for name, policy in (lda.get("policies") or {}).items():
        style = {"marker": _POLICY_MARKERS.get(name, "P"), "s": 90, "color": "dimgrey",
                 "edgecolors": "black"}  # fmt: skip
        marks.append((_policy_label(name), policy, style))
    if chosen is baseline:
        marks.append((f"baseline, kept: {baseline['name']}", baseline, _CHOSEN))
    else:
        marks.append((f"baseline: {baseline['name']}", baseline, _BASELINE))
        marks.append((f"chosen: {chosen['name']}", chosen, _CHOSEN))
    spots: list[tuple[float, float]] = []
    shown: list[str] = []
    for label, row, style in marks:
        value = row["ratios"].get(attribute)
        if value is not None:
            axis.scatter([row["agreement"]], [value], label=label, zorder=5, linewidths=1, **style)
            spots.append((row["agreement"], value))
            shown.append(label)
    _annotate(axis, spots, shown)

    axis.set_xlabel("agreement with the historical decisions (validation split)")
    axis.set_ylabel(f"{attribute} four-fifths ratio (validation split, point estimate)")
    judged = ", ".join(selection["rule"].get("attributes") or [attribute])
    axis.set_title(
        f"Less discriminatory alternative: {len(lda['candidates'])} candidates, "
        f"{selection['outcome']}\n(the rule ranks on every audited attribute: {judged}; "
        "this axis shows one)",
        fontsize=10,
    )
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    figure.tight_layout()
    return figure


def legend_labels(figure: Figure) -> tuple[str, ...]:
    legend = figure.axes[0].get_legend()
    return tuple(text.get_text() for text in legend.get_texts())


def plot_lda_pareto(lda: Mapping[str, Any], path: Path, *, attribute: str) -> tuple[str, ...]:
    """Write the figure to ``path`` (PNG); returns its legend's labels."""
    figure = pareto_figure(lda, attribute=attribute)
    labels = legend_labels(figure)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return labels
