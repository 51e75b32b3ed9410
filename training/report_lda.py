"""The audit report's section on the less discriminatory alternative (LDA).

Built from ``metrics["lda"]`` alone (plain data, as written to ``reports/metrics.json``):
``selection`` (``Selection.to_dict()``), ``candidates`` (every candidate's ``Figures`` on
the validation split), ``test`` (the baseline's and the chosen one's ``Figures`` on the test
split), ``policies`` (the group-threshold policies in the same terms, validation) and
``seconds``. What the section says, in order: the outcome in one line, the rule with its
parameters, baseline against chosen on the test split, why the chosen one won, why the
others were not chosen (counts by reason), what was searched and how long it took.

Ratios are floored to three decimals, never rounded across the four-fifths line (0.7996
prints 0.799, not 0.800), as the prober prints them.

Example::

    lines = lda_section(metrics["lda"], image="lda_pareto.png")
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Final

from training.lda_select import (
    AGREEMENT_BELOW,
    APPROVAL_OUTSIDE,
    AUC_BELOW,
    DISCOVERY,
    HARMS,
    NOT_LESS,
    NOT_MEASURED,
    OUTRANKED,
)

__all__ = [
    "SANDBOX",
    "SECTION",
    "disparity_attribute",
    "figure_rows",
    "lda_section",
    "ratio",
    "rejection_counts",
]

SECTION: Final[str] = "Less discriminatory alternative"
SANDBOX: Final[str] = "sandbox only: the synthetic book knows who repaid"
FAMILIES_DOC: Final[str] = "docs/lda.md"

Figures = Mapping[str, Any]  # ``Figures.to_dict()``


def ratio(value: float | None) -> str:
    """A four-fifths ratio floored to 3 decimals: ``ratio(0.7996) == "0.799"``."""
    if value is None:
        return "n/a"
    return str(Decimal(repr(value)).quantize(Decimal("0.001"), rounding=ROUND_FLOOR))


def _interval(bounds: Sequence[float] | None) -> str:
    return "no interval" if bounds is None else f"{ratio(bounds[0])}-{ratio(bounds[1])}"


def _figure(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _pattern(template: str) -> re.Pattern[str]:
    """A message constant of ``training.lda_select`` as a regex, its fields as groups."""
    parts = re.split(r"\{(\w+)[^}]*\}", template)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


# Each reason the rule gives, read back from its own message constant, and how the
# report counts it (a do-no-harm failure per attribute).
_KINDS: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (_pattern(AUC_BELOW), "business necessity: AUC below the baseline's less {margin}"),
    (
        _pattern(AGREEMENT_BELOW),
        "business necessity: agreement with the historical decisions below the baseline's "
        "less {margin}",
    ),
    (
        _pattern(APPROVAL_OUTSIDE),
        "business necessity: approval rate more than {band} from the baseline's",
    ),
    (
        _pattern(HARMS),
        "do no harm: {attribute} ratio more than {tolerance} below the baseline's",
    ),
    (_pattern(NOT_MEASURED), "do no harm: {attribute} ratio not measured"),
    (_pattern(OUTRANKED), "admissible, ranked below the chosen one"),
    (_pattern(NOT_LESS), "admissible, but no less disparity than the baseline"),
)


def _kind(reason: str) -> str:
    for pattern, label in _KINDS:
        found = pattern.match(reason)
        if found:
            return label.format(**found.groupdict())
    return reason


def rejection_counts(reasons: Mapping[str, Sequence[str]]) -> Counter[str]:
    """Candidates per kind of reason; a candidate failing several bounds counts under each.

    >>> rejection_counts({"x": ["admissible; ranked below y: ..."]})
    Counter({'admissible, ranked below the chosen one': 1})
    """
    counts: Counter[str] = Counter()
    for why in reasons.values():
        counts.update({_kind(reason) for reason in why})
    return counts


def disparity_attribute(lda: Mapping[str, Any], preferred: str) -> str:
    """The attribute the plot and the report lead with: ``preferred`` (the policy grouping)
    when the search measured it, else the first attribute the rule judged."""
    baseline = _by_name(lda)[lda["selection"]["baseline"]]
    if baseline["ratios"].get(preferred) is not None:
        return preferred
    judged = lda["selection"]["rule"].get("attributes") or list(baseline["ratios"])
    return str(judged[0])


def _by_name(lda: Mapping[str, Any]) -> dict[str, Figures]:
    return {row["name"]: row for row in lda["candidates"]}


def _outcome(selection: Mapping[str, Any]) -> str:
    outcome, summary = selection["outcome"], selection["summary"]
    prefix = f"{outcome}: "
    said = summary[len(prefix) :] if summary.startswith(prefix) else summary
    where = "validation split, where the choice is made"
    return f"**{outcome[:1].upper()}{outcome[1:]}** ({where}): {said}."


def _rule(rule: Mapping[str, Any]) -> list[str]:
    attributes = ", ".join(rule["attributes"]) or "none measured"
    judged = (
        "each ratio's bootstrap 95% lower bound (the point estimate where it has no interval), "
        "so a candidate passes only where validation noise alone would not have put it"
        if rule["judge_on"] == "lower-bound"
        else "the point estimates"
    )
    line = rule["four_fifths"]
    return [
        "The rule (`training/lda_select.py`), applied to every candidate on the validation split:",
        "",
        f"1. **Business necessity**, against the baseline (the blind model at its own 0.5 "
        f"cut-off): AUC at least the baseline's less {rule['auc_margin']}; agreement with the "
        f"historical decisions at least the baseline's less {rule['agreement_margin']}; approval "
        f"rate within {rule['approval_band']} of the baseline's, either side.",
        f"2. **Do no harm**: on every audited attribute ({attributes}), a four-fifths ratio no "
        f"more than {rule['harm_tolerance']} below the baseline's.",
        f"3. **Least disparity** among the candidates left, in this order: the most attributes "
        f"at or above the four-fifths line ({line:.2f}); then the smallest total shortfall below "
        f"it; both read on {judged}; then the highest agreement with the historical decisions, "
        "the higher AUC, and the earlier candidate (simpler families are listed first).",
        "",
        "The best-ranked candidate replaces the baseline only with strictly less disparity by "
        "the first two keys of 3 (a discovery). Otherwise the baseline stays: a refutation "
        "within the searched family, which says nothing of models outside it.",
    ]


def _ratio_cell(row: Figures, attribute: str) -> str:
    value = row["ratios"].get(attribute)
    if value is None:
        return "n/a"
    return f"{ratio(value)} ({_interval(row['ratio_intervals'].get(attribute))})"


def figure_rows(columns: Sequence[Figures], attributes: Sequence[str]) -> list[str]:
    """Table rows (no header) of the ``Figures`` in ``columns``, one column each."""

    def row(label: str, cell: Any) -> str:
        return f"| {label} | " + " | ".join(cell(c) for c in columns) + " |"

    rows = [
        row("cut-off (approve iff score > t, everyone)",
            lambda c: "per group" if c.get("threshold") is None
            else format(c["threshold"], ".4f")),
        row("AUC", lambda c: _figure(c["auc"], ".3f")),
        row("agreement with the historical decisions", lambda c: f"{c['agreement']:.1%}"),
        row("approval rate", lambda c: f"{c['approval_rate']:.1%}"),
    ]  # fmt: skip
    for attribute in attributes:
        rows.append(
            row(f"{attribute} four-fifths ratio (95% CI)", lambda c, a=attribute: _ratio_cell(c, a))
        )
    for attribute in attributes:
        rows.append(
            row(
                f"{attribute} equalized-odds difference",
                lambda c, a=attribute: _figure(c["equalized_odds"].get(a), ".3f"),
            )
        )
    if any(c.get("accuracy_repaid") is not None for c in columns):
        rows.append(
            row(
                f"accuracy against repayment ({SANDBOX})",
                lambda c: _figure(c.get("accuracy_repaid"), ".1%"),
            )
        )
    return rows


def _test_table(lda: Mapping[str, Any]) -> list[str]:
    baseline, chosen = lda["test"]["baseline"], lda["test"]["chosen"]
    attributes = list(baseline["ratios"])
    if chosen["name"] == baseline["name"]:
        columns, header = [baseline], f"baseline, kept: `{baseline['name']}`"
    else:
        columns = [baseline, chosen]
        header = f"baseline: `{baseline['name']}` | chosen: `{chosen['name']}`"
    return [
        f"| figure (test split) | {header} |",
        "|---|" + "---:|" * len(columns),
        *figure_rows(columns, attributes),
        "",
        "The test split took no part in the choice. Ratios are floored to three decimals "
        "(never rounded up across the 0.80 line); the 95% interval is a stratified bootstrap.",
    ]


def _why(selection: Mapping[str, Any]) -> list[str]:
    ranking, reasons = selection["ranking"], selection["reasons"]
    chosen, baseline = selection["chosen"], selection["baseline"]
    place = ranking.index(chosen) + 1 if chosen in ranking else None
    admissible = f"{len(ranking)} candidate{'s' if len(ranking) != 1 else ''}"
    others = [name for name in ranking if name != chosen]
    if selection["outcome"] == DISCOVERY:
        lines = [
            f"`{chosen}` ranked {place} of the {admissible} that met the business need without "
            f"harm, and has less disparity than the baseline `{baseline}`."
        ]
    else:
        lines = [
            f"The baseline `{baseline}` stays: ranked {place} of the {admissible} that met the "
            "business need without harm, and none of them has less disparity."
        ]
    if others:
        runner = others[0]
        why = "; ".join(reasons.get(runner, ())) or "no reason recorded"
        label = "The runner-up" if selection["outcome"] == DISCOVERY else "The best-ranked other"
        lines.append(f"{label}, `{runner}`: {why}.")
    else:
        lines.append("No other candidate met the business need without harm.")
    return [" ".join(lines)]


def _rejections(selection: Mapping[str, Any], total: int) -> list[str]:
    counts = rejection_counts(selection["reasons"])
    rows = [f"| {kind} | {count} |" for kind, count in counts.most_common()]
    return [
        f"Why the other {total - 1} candidates were not chosen (a candidate failing several "
        "bounds counts under each):",
        "",
        "| reason | candidates |",
        "|---|---:|",
        *rows,
    ]


def _searched(lda: Mapping[str, Any]) -> str:
    families = Counter(row.get("family") or "unnamed" for row in lda["candidates"])
    listed = ", ".join(f"{family} {count}" for family, count in families.items())
    return (
        f"Searched: {len(lda['candidates'])} candidates (model and cut-off pairs) in "
        f"{len(families)} families ({listed}; what each family is: `{FAMILIES_DOC}`), "
        f"searched and selected in {lda['seconds']:.1f} s."
    )


def _policies_table(lda: Mapping[str, Any]) -> list[str]:
    by_name = _by_name(lda)
    selection = lda["selection"]
    columns = [by_name[selection["baseline"]]]
    labels = [f"baseline `{selection['baseline']}`"]
    if selection["chosen"] != selection["baseline"]:
        columns.append(by_name[selection["chosen"]])
        labels.append(f"chosen `{selection['chosen']}`")
    for name, row in lda["policies"].items():
        columns.append(row)
        labels.append(f"{name} (group thresholds)" if name != "unmitigated" else name)
    attributes = list(columns[0]["ratios"])
    return [
        "The same figures on the validation split, beside the group-threshold policies "
        "(which read the protected attribute at decision time):",
        "",
        "| figure (validation split) | " + " | ".join(labels) + " |",
        "|---|" + "---:|" * len(columns),
        *figure_rows(columns, attributes),
    ]


def lda_section(lda: Mapping[str, Any], *, image: str | None = None) -> list[str]:
    """The report's LDA section as Markdown lines, from ``metrics["lda"]``; ``image``, a
    plot file beside the report, is shown at its end."""
    selection = lda["selection"]
    lines = [
        f"## {SECTION}",
        "",
        "One cut-off for everyone on a model that reads no protected attribute: no disparate "
        "treatment. The search fits a family of such models, the selection rule below picks "
        "one, and the served default policy (`lda`) is the one picked.",
        "",
        _outcome(selection),
        "",
        *_rule(selection["rule"]),
        "",
        *_test_table(lda),
        "",
        *_why(selection),
        "",
        *_rejections(selection, len(lda["candidates"])),
        "",
        _searched(lda),
    ]
    if lda.get("policies"):
        lines += ["", *_policies_table(lda)]
    if image is not None:
        lines += ["", f"![less discriminatory alternative]({image})"]
    return lines
