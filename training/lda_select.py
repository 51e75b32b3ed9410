"""Choosing a less discriminatory alternative (LDA) from a table of candidate figures.

The rule a model-risk reviewer can follow by hand, in three steps, over ``Figures`` rows
(``training/lda_figures.py``; no model object is needed):

(a) **Business necessity**, bounds relative to the baseline (the model the lender would
    otherwise serve, at its own 0.5 cut-off): AUC at least the baseline's less
    ``auc_margin``; agreement with the historical decisions at least the baseline's less
    ``agreement_margin``; approval rate within ``approval_band`` of the baseline's, either
    side (a lender that approves far more or far fewer is running another business).
(b) **Do no harm**: for every attribute the baseline is audited on, the candidate's
    four-fifths ratio (point estimate) is no worse than the baseline's by more than
    ``harm_tolerance``. An alternative that helps women by hurting the young is not less
    discriminatory, only differently so.
(c) **Least disparity across all audited attributes**, lexicographically:
    1. the most attributes whose ratio is at or above 0.80 (the four-fifths rule: the line
       regulators read, so crossing it counts before any amount of improvement below it);
    2. then the smallest total shortfall below 0.80, summed over the attributes (how far
       the rest still is from the line; an attribute above it adds nothing);
    3. then the highest agreement with the historical decisions (the business need
       itself; accuracy against repayment is unknown on a real book), then the higher
       AUC, then the earlier row of the table (the search lists simpler families first).
    With ``judge_on="lower-bound"`` (the default) 1 and 2 read each ratio's bootstrap 95%
    lower bound where the table gives one, the point estimate otherwise: a candidate
    counts as passing only when validation noise alone would not have put it there, so
    the choice holds on applicants it has not seen.

The baseline passes (a) and (b) by definition and is ranked with the others. The outcome
is a **discovery** when the best-ranked candidate has strictly less disparity than the
baseline by (c)1-2 (reported as "disparity X -> Y at cost Z"); otherwise the baseline
stays and the outcome is a **refutation within the searched family**: no candidate of
this table meets the business need with less disparity, which says nothing about models
outside it. Bounds are inclusive, compared within 1e-9 so a figure written at the bound
passes.

Example::

    selection = select(table, baseline="baseline@0.5000")
    selection.outcome, selection.chosen.name, selection.summary
    selection.reasons["drop:weekly_hours@0.5000"]  # why it was not chosen
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

from training.lda_figures import Figures

FOUR_FIFTHS: Final[float] = 0.80
# Default margins, a lender's policy to confirm, not a statistical fact. Both necessity
# figures are measured against the historical decisions, whose bias is what an LDA must
# stop reproducing: on the proxy book the blind model that stops reading weekly hours
# loses 0.013 AUC and 2.6 points of agreement there, and gains 1.9 points of accuracy
# against repayment. Margins of 0.01 and 0.02 would refuse it.
AUC_MARGIN: Final[float] = 0.02
AGREEMENT_MARGIN: Final[float] = 0.03
APPROVAL_BAND: Final[float] = 0.05
HARM_TOLERANCE: Final[float] = 0.01
_SLACK: Final[float] = 1e-9

Outcome = Literal["discovery", "refutation within the searched family"]
OUTCOMES: Final[tuple[str, ...]] = get_args(Outcome)
DISCOVERY: Final = "discovery"
REFUTATION: Final = "refutation within the searched family"
JudgeOn = Literal["lower-bound", "point"]

NO_BASELINE: Final[str] = "baseline {name!r} is not in the table ({count} candidates)"
DUPLICATE_NAMES: Final[str] = "candidate names must be unique; repeated: {names}"
AUC_BELOW: Final[str] = (
    "AUC {value:.3f} below the floor {floor:.3f} (baseline {base:.3f} - {margin})"
)
AGREEMENT_BELOW: Final[str] = (
    "agreement {value:.3f} below the floor {floor:.3f} (baseline {base:.3f} - {margin})"
)
APPROVAL_OUTSIDE: Final[str] = (
    "approval rate {value:.3f} outside {low:.3f}-{high:.3f} (baseline {base:.3f} +- {band})"
)
HARMS: Final[str] = (
    "do no harm: {attribute} ratio {value:.3f} below the baseline's {base:.3f} by more than "
    "{tolerance}"
)
NOT_MEASURED: Final[str] = "do no harm: {attribute} ratio not measured (the baseline's {base:.3f})"
OUTRANKED: Final[str] = "admissible; ranked below {chosen}: {why}"
NOT_LESS: Final[str] = "admissible, but no less disparity than the baseline: {why}"


@dataclass(frozen=True)
class Selection:
    """What ``select`` decided: the chosen row, why every other row was not chosen
    (name -> reasons), the admissible rows best first, and one line for the report."""

    outcome: Outcome
    chosen: Figures
    baseline: Figures
    reasons: dict[str, tuple[str, ...]]
    ranking: tuple[str, ...]
    summary: str
    rule: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "chosen": self.chosen.name,
            "baseline": self.baseline.name,
            "summary": self.summary,
            "ranking": list(self.ranking),
            "reasons": {name: list(why) for name, why in self.reasons.items()},
            "rule": self.rule,
        }


def _judged(row: Figures, attribute: str, judge_on: JudgeOn) -> float:
    interval = row.ratio_intervals.get(attribute)
    value = row.ratios[attribute]
    assert value is not None  # admissible rows have every audited ratio
    return interval[0] if judge_on == "lower-bound" and interval is not None else value


def _disparity(row: Figures, attributes: Sequence[str], judge_on: JudgeOn) -> tuple[int, float]:
    """(attributes at or above 0.80, total shortfall below it), ratios as judged."""
    values = [_judged(row, a, judge_on) for a in attributes]
    passing = sum(v >= FOUR_FIFTHS - _SLACK for v in values)
    # Rounded so shortfalls equal in decimals tie instead of differing in the last ulp.
    return passing, round(sum(max(0.0, FOUR_FIFTHS - v) for v in values), 9)


def _necessity(
    row: Figures, base: Figures, auc_margin: float, agreement_margin: float, band: float
) -> list[str]:
    failures = []
    if row.auc < base.auc - auc_margin - _SLACK:
        failures.append(
            AUC_BELOW.format(
                value=row.auc, floor=base.auc - auc_margin, base=base.auc, margin=auc_margin
            )
        )
    if row.agreement < base.agreement - agreement_margin - _SLACK:
        failures.append(
            AGREEMENT_BELOW.format(
                value=row.agreement,
                floor=base.agreement - agreement_margin,
                base=base.agreement,
                margin=agreement_margin,
            )
        )
    if abs(row.approval_rate - base.approval_rate) > band + _SLACK:
        failures.append(
            APPROVAL_OUTSIDE.format(
                value=row.approval_rate,
                low=base.approval_rate - band,
                high=base.approval_rate + band,
                base=base.approval_rate,
                band=band,
            )
        )
    return failures


def _harm(row: Figures, base: Figures, attributes: Sequence[str], tolerance: float) -> list[str]:
    failures = []
    for attribute in attributes:
        reference = base.ratios[attribute]
        assert reference is not None
        value = row.ratios.get(attribute)
        if value is None:
            failures.append(NOT_MEASURED.format(attribute=attribute, base=reference))
        elif value < reference - tolerance - _SLACK:
            failures.append(
                HARMS.format(attribute=attribute, value=value, base=reference, tolerance=tolerance)
            )
    return failures


def _describe(row: Figures, attributes: Sequence[str], judge_on: JudgeOn) -> str:
    passing, shortfall = _disparity(row, attributes, judge_on)
    ratios = ", ".join(f"{a} {_judged(row, a, judge_on):.3f}" for a in attributes)
    return f"{passing} at or above {FOUR_FIFTHS:.2f}, shortfall {shortfall:.3f} ({ratios})"


def _cost(chosen: Figures, base: Figures) -> str:
    parts = [
        f"AUC {chosen.auc - base.auc:+.3f}",
        f"agreement {100 * (chosen.agreement - base.agreement):+.1f} pts",
        f"approval rate {100 * (chosen.approval_rate - base.approval_rate):+.1f} pts",
    ]
    if chosen.accuracy_repaid is not None and base.accuracy_repaid is not None:
        gain = 100 * (chosen.accuracy_repaid - base.accuracy_repaid)
        parts.append(f"accuracy vs repaid {gain:+.1f} pts (sandbox)")
    return ", ".join(parts)


def _summary(
    discovered: Figures | None,
    base: Figures,
    table: Sequence[Figures],
    admissible: int,
    attributes: Sequence[str],
    judge_on: JudgeOn,
) -> str:
    judged = "95% lower bound" if judge_on == "lower-bound" else "point estimate"
    before = _describe(base, attributes, judge_on)
    if discovered is not None:
        moves = ", ".join(
            f"{a} {base.ratios[a]:.3f} -> {discovered.ratios[a]:.3f}" for a in attributes
        )
        return (
            f"{DISCOVERY}: {discovered.name} instead of {base.name}; disparity (four-fifths "
            f"ratio) {moves}; judged on the {judged}: {before} -> "
            f"{_describe(discovered, attributes, judge_on)}; at cost {_cost(discovered, base)}"
        )
    families = ", ".join(sorted({row.family for row in table if row.family})) or "unnamed"
    return (
        f"{REFUTATION}: none of {len(table)} candidates ({admissible} meeting the business "
        f"need without harm; families {families}) has less disparity than {base.name} "
        f"({before}, judged on the {judged})"
    )


def select(
    table: Sequence[Figures],
    *,
    baseline: str,
    auc_margin: float = AUC_MARGIN,
    agreement_margin: float = AGREEMENT_MARGIN,
    approval_band: float = APPROVAL_BAND,
    harm_tolerance: float = HARM_TOLERANCE,
    judge_on: JudgeOn = "lower-bound",
) -> Selection:
    """Apply the module's rule to ``table``; ``baseline`` names the reference row.

    Attributes whose baseline ratio is ``None`` (not measured) are left out of the rule,
    since nothing can be compared to them; the summary names them.
    """
    names = [row.name for row in table]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(DUPLICATE_NAMES.format(names=", ".join(repeated)))
    if baseline not in names:
        raise ValueError(NO_BASELINE.format(name=baseline, count=len(table)))
    base = table[names.index(baseline)]
    attributes = [a for a, value in base.ratios.items() if value is not None]
    unmeasured = [a for a, value in base.ratios.items() if value is None]

    reasons: dict[str, list[str]] = {}
    admissible: list[tuple[int, Figures]] = []
    for order, row in enumerate(table):
        failures = [
            *_necessity(row, base, auc_margin, agreement_margin, approval_band),
            *_harm(row, base, attributes, harm_tolerance),
        ]
        if failures:
            reasons[row.name] = failures
        else:
            admissible.append((order, row))

    def rank(entry: tuple[int, Figures]) -> tuple[float, ...]:
        order, row = entry
        passing, shortfall = _disparity(row, attributes, judge_on)
        return (-passing, shortfall, -row.agreement, -row.auc, order)

    admissible.sort(key=rank)
    best = admissible[0][1]  # the baseline itself is always admissible
    base_key = _disparity(base, attributes, judge_on)
    best_key = _disparity(best, attributes, judge_on)
    less = (-best_key[0], best_key[1]) < (-base_key[0], base_key[1])
    chosen = best if less else base
    for _, row in admissible:
        if row is chosen:
            continue
        if less:
            theirs, ours = (_describe(r, attributes, judge_on) for r in (row, chosen))
            why = f"{theirs} vs {ours}, agreement {row.agreement:.3f} vs {chosen.agreement:.3f}"
            reasons[row.name] = [OUTRANKED.format(chosen=chosen.name, why=why)]
        else:
            why = (
                f"{_describe(row, attributes, judge_on)} vs the baseline's "
                f"{_describe(base, attributes, judge_on)}"
            )
            reasons[row.name] = [NOT_LESS.format(why=why)]

    summary = _summary(chosen if less else None, base, table, len(admissible), attributes, judge_on)
    if unmeasured:
        summary += f"; not judged (baseline ratio not measured): {', '.join(unmeasured)}"
    return Selection(
        outcome=DISCOVERY if less else REFUTATION,
        chosen=chosen,
        baseline=base,
        reasons={name: tuple(why) for name, why in reasons.items()},
        ranking=tuple(row.name for _, row in admissible),
        summary=summary,
        rule={
            "auc_margin": auc_margin,
            "agreement_margin": agreement_margin,
            "approval_band": approval_band,
            "harm_tolerance": harm_tolerance,
            "four_fifths": FOUR_FIFTHS,
            "judge_on": judge_on,
            "attributes": attributes,
        },
    )
