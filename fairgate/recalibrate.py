"""Recalibrate a policy from live scores, label-free, and replay a window under a candidate.

The live decisions of a window (their scores and groups, probes left out) say how the
applicant population now scores; no repayment is known yet. ``recalibrate`` moves the cut-offs
so that the window would meet the training-time target again:

- group thresholds (``mitigated``, ``randomized``): every group approved at the trained
  overall approval rate (equal selection rates), each group's cut-off at the matching
  quantile of its own live scores;
- one cut-off for everyone (``lda``, ``unmitigated``): an overall approval rate within
  ``band`` of the trained one and a four-fifths ratio (lowest group rate over highest) of at
  least ``floor``. The cut-off already served is kept if it meets both; else the nearest one
  that does; if none in the band does, the one with the highest ratio, and a note says so.

A group with fewer than ``min_decisions`` live decisions keeps its rule, with a note (under
one cut-off it cannot keep its own: it is left out of the ratio and gets the cut-off).
Intervals are bootstrap percentiles computed exactly rather than by resampling rows: a
resampled group's k-th largest score is the empirical
distribution's ``ceil(n U)``-th smallest with ``U ~ Beta(n - k + 1, k)`` (the order statistic
of uniforms), and a resampled approval count is Binomial(n, rate); so a million decisions cost
what a thousand do (``tests/test_recalibrate.py`` checks both against resampling rows).
``fairgate.replay`` decides a window's recorded decisions again under a candidate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np

from fairgate.policy import GroupRule, ThresholdPolicy

FOUR_FIFTHS: Final[float] = 0.80
APPROVAL_BAND: Final[float] = 0.05  # as the LDA selection's (training/lda_select.py)
MIN_DECISIONS: Final[int] = 200
N_BOOT: Final[int] = 1000
GROUP_MODES: Final[tuple[str, ...]] = ("mitigated", "randomized")
# Where each mode's approval rate at training is in the model's metadata.json.
_TRAINED_RATE: Final[dict[str, tuple[str, ...]]] = {
    "mitigated": ("fairness", "mitigated", "overall", "selection_rate"),
    "randomized": ("fairness", "randomized", "overall", "selection_rate"),
    "unmitigated": ("fairness", "baseline", "overall", "selection_rate"),
    "lda": ("lda", "test", "chosen", "approval_rate"),
}
TOO_FEW: Final[str] = (
    "group {group}: {n:,} live decisions, fewer than {least:,}: its rule is left as it is"
)
TOO_FEW_ONE_CUT: Final[str] = (
    "group {group}: {n:,} live decisions, fewer than {least:,}: left out of the four-fifths "
    "ratio (the one cut-off applies to every group)"
)
# The constraints whose target equal selection rates restore (a recalibrated one included).
PARITY: Final[tuple[str, ...]] = ("demographic_parity", "equal selection rates on live scores")
OTHER_CONSTRAINT: Final[str] = (
    "the policy was fitted for {constraint}, which needs repayment labels: this label-free "
    "recalibration restores equal selection rates (demographic parity) instead"
)
FLOOR_OUT_OF_REACH: Final[str] = (
    "no single cut-off with an approval rate within {band:.0%} of {rate:.1%} reaches the "
    "four-fifths floor {floor:.2f}; the best ratio in the band is chosen"
)


class RecalibrationError(ValueError):
    """Nothing to recalibrate from (no live decisions, no group with enough)."""


@dataclass(frozen=True)
class Target:
    """The training-time target a recalibration restores."""

    kind: Literal["equal-rates", "band"]
    approval_rate: float
    band: float = APPROVAL_BAND
    floor: float = FOUR_FIFTHS


def trained_target(metadata: dict[str, Any], mode: str) -> Target:
    """The target of ``mode`` from a model's training metadata."""
    value: Any = metadata
    for key in _TRAINED_RATE[mode]:
        value = value[key]
    return Target("equal-rates" if mode in GROUP_MODES else "band", float(value))


@dataclass(frozen=True)
class Window:
    """Recorded live decisions: score, group (as codes into ``names``), the decision made
    and the keyed draw that realised it (NaN where the policy drew none)."""

    scores: np.ndarray
    codes: np.ndarray
    names: list[str]
    approved: np.ndarray
    draws: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    def split(self) -> dict[str, np.ndarray]:
        """Row numbers per group, in ``names`` order."""
        order = np.argsort(self.codes, kind="stable")
        bounds = np.searchsorted(self.codes[order], np.arange(len(self.names) + 1))
        return {name: order[bounds[i] : bounds[i + 1]] for i, name in enumerate(self.names)}


def cut(rule: GroupRule) -> float:
    """A rule's cut-off: its threshold if deterministic, else the two thresholds weighted by
    their probabilities (a summary, for showing how far a rule moved)."""
    if rule.p0 == 1.0 and rule.operator0 == ">":
        return rule.threshold0
    weights = rule.p0 + rule.p1
    if weights == 0:
        return math.nan
    return (rule.p0 * rule.threshold0 + rule.p1 * rule.threshold1) / weights


def approvals(
    policy: ThresholdPolicy, group: str, scores: np.ndarray, draws: np.ndarray
) -> np.ndarray:
    """Whether ``policy`` approves each of one group's scores (with its draws if randomized)."""
    index = np.full(len(scores), policy.group_index([group])[0], dtype=np.intp)
    probability = policy.approval_probability(scores, [group], index)
    if policy.randomized:
        # A certain approval needs no draw (a record decided by a deterministic version has none).
        return (probability >= 1.0) | (draws < probability)
    return probability >= 1.0


def _rate(policy: ThresholdPolicy, group: str, scores: np.ndarray) -> float:
    """The approval rate ``policy`` gives one group's scores; for a randomized rule, its
    expected rate (the probabilities averaged): no draws are made for a window's scores."""
    index = np.full(len(scores), policy.group_index([group])[0], dtype=np.intp)
    return float(policy.approval_probability(scores, [group], index).mean())


def _between(descending: np.ndarray, k: int) -> float:
    """A cut-off approving exactly the ``k`` highest scores (``score > cut``), ties aside."""
    n = len(descending)
    if k <= 0:
        return float(descending[0])
    if k >= n:
        return float(np.nextafter(descending[-1], -np.inf))
    high, low = float(descending[k - 1]), float(descending[k])
    return (high + low) / 2 if high > low else low


def _betweens(descending: np.ndarray, ks: np.ndarray) -> np.ndarray:
    """``_between`` for every k in ``ks`` at once (the same values, without a Python loop
    over a band that holds a hundred thousand k at a million decisions)."""
    n = len(descending)
    inner = np.clip(ks, 1, max(n - 1, 1))
    high, low = descending[inner - 1], descending[np.minimum(inner, n - 1)]
    cuts = np.where(high > low, (high + low) / 2, low)
    cuts = np.where(ks <= 0, descending[0], cuts)
    return np.where(ks >= n, np.nextafter(descending[-1], -np.inf), cuts)


def _cut_draws(descending: np.ndarray, k: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap draws of the ``k``-th largest score (the exact order-statistic shortcut)."""
    n = len(descending)
    k = min(max(k, 1), n)
    u = rng.beta(n - k + 1, k, size=n_boot)  # the (n-k+1)-th smallest of n uniforms
    smallest = np.clip(np.ceil(n * u).astype(np.intp) - 1, 0, n - 1)
    return descending[::-1][smallest]


def _interval(draws: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def four_fifths(rates: dict[str, float]) -> float:
    """The lowest group approval rate over the highest (NaN for fewer than two groups)."""
    if len(rates) < 2:
        return math.nan
    top = max(rates.values())
    return min(rates.values()) / top if top > 0 else math.nan


@dataclass(frozen=True)
class GroupChange:
    group: str
    decisions: int
    recalibrated: bool  # False: too few decisions, rule kept
    cut_before: float
    cut_after: float
    cut_interval: tuple[float, float] | None
    rate_before: float
    rate_after: float
    rate_interval: tuple[float, float]


@dataclass(frozen=True)
class Recalibration:
    policy: ThresholdPolicy
    target: Target
    decisions: int
    groups: dict[str, GroupChange]
    rate_before: float
    rate_after: float
    ratio_before: float
    ratio_after: float
    ratio_interval: tuple[float, float] | None
    notes: list[str] = field(default_factory=list)

    def expected_effect(self) -> dict[str, Any]:
        """JSON-ready: what the window's decisions would look like under the candidate."""

        def number(value: float) -> float | None:
            return None if math.isnan(value) else round(value, 6)

        return {
            "target": {"kind": self.target.kind, "approval_rate": self.target.approval_rate,
                       "band": self.target.band, "floor": self.target.floor},
            "decisions": self.decisions,
            "approval_rate": {"before": number(self.rate_before), "after": number(self.rate_after)},
            "four_fifths_ratio": {
                "before": number(self.ratio_before),
                "after": number(self.ratio_after),
                "interval": None if self.ratio_interval is None else list(self.ratio_interval),
            },
            "groups": {
                g.group: {
                    "decisions": g.decisions,
                    "recalibrated": g.recalibrated,
                    "cut_before": number(g.cut_before),
                    "cut_after": number(g.cut_after),
                    "cut_interval": None if g.cut_interval is None else list(g.cut_interval),
                    "approval_rate_before": number(g.rate_before),
                    "approval_rate_after": number(g.rate_after),
                    "approval_rate_interval": list(g.rate_interval),
                }
                for g in self.groups.values()
            },
            "notes": list(self.notes),
        }  # fmt: skip


def recalibrate(
    active: ThresholdPolicy,
    window: Window,
    target: Target,
    *,
    min_decisions: int = MIN_DECISIONS,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> Recalibration:
    """A candidate policy restoring ``target`` on ``window``'s live scores (see the module)."""
    if len(window) == 0:
        raise RecalibrationError("no live decisions in the window: nothing to recalibrate from")
    rng = np.random.default_rng(seed)
    rows = {g: r for g, r in window.split().items() if len(r)}  # a name may have no row
    notes: list[str] = []
    # Groups the active policy has no rule for were decided by its unseen rule; they keep it.
    known = {g: r for g, r in rows.items() if g in active.rules}
    for group in sorted(set(rows) - set(known)):
        notes.append(f"group {group}: not a group of the policy (unseen rule), left as it is")
    ranked = {g: np.sort(window.scores[r])[::-1] for g, r in known.items()}
    enough = {g: s for g, s in ranked.items() if len(s) >= min_decisions}
    too_few = TOO_FEW if target.kind == "equal-rates" else TOO_FEW_ONE_CUT
    for group in sorted(set(ranked) - set(enough)):
        notes.append(too_few.format(group=group, n=len(ranked[group]), least=min_decisions))
    if not enough:
        raise RecalibrationError(
            f"no group has {min_decisions:,} live decisions in the window: nothing was changed"
        )
    if target.kind == "equal-rates" and active.constraint not in PARITY:
        notes.append(OTHER_CONSTRAINT.format(constraint=active.constraint))
    before = {g: _rate(active, g, s) for g, s in ranked.items()}
    if target.kind == "equal-rates":
        policy = _equal_rates(active, enough, target)
    else:
        policy = _one_cut(active, enough, target, notes)
    changes: dict[str, GroupChange] = {}
    rate_draws: dict[str, np.ndarray] = {}
    for group, scores in ranked.items():
        n = len(scores)
        after = _rate(policy, group, scores)
        drawn = rng.binomial(n, after, size=n_boot) / n
        if group in enough:
            rate_draws[group] = drawn
        k = round(after * n)
        changes[group] = GroupChange(
            group=group,
            decisions=n,
            recalibrated=group in enough,
            cut_before=cut(active.rules[group]),
            cut_after=cut(policy.rules[group]),
            # Under one cut-off no group's quantile chose it: no interval of a group's own.
            cut_interval=(
                _interval(_cut_draws(scores, k, rng, n_boot))
                if group in enough and target.kind == "equal-rates"
                else None
            ),
            rate_before=before[group],
            rate_after=after,
            rate_interval=_interval(drawn),
        )
    total = sum(len(s) for s in ranked.values())

    def overall(rates: dict[str, float]) -> float:
        return sum(rates[g] * len(s) for g, s in ranked.items()) / total

    after_rates = {g: c.rate_after for g, c in changes.items()}
    ratio_interval = None
    if len(rate_draws) >= 2:
        stacked = np.vstack(list(rate_draws.values()))
        top = stacked.max(axis=0)
        ratio_interval = _interval(
            np.where(top > 0, stacked.min(axis=0) / np.maximum(top, 1e-12), np.nan)
        )
    return Recalibration(
        policy=policy,
        target=target,
        decisions=total,
        groups=changes,
        rate_before=overall(before),
        rate_after=overall(after_rates),
        ratio_before=four_fifths({g: before[g] for g in enough}),
        ratio_after=four_fifths({g: after_rates[g] for g in enough}),
        ratio_interval=ratio_interval,
        notes=notes,
    )


def _equal_rates(
    active: ThresholdPolicy, enough: dict[str, np.ndarray], target: Target
) -> ThresholdPolicy:
    cuts = {g: _between(s, round(target.approval_rate * len(s))) for g, s in enough.items()}
    rules = {g: GroupRule.threshold(cuts[g]) if g in cuts else rule
             for g, rule in active.rules.items()}  # fmt: skip
    draft = ThresholdPolicy(
        attributes=active.attributes,
        rules=rules,
        unseen=active.unseen,
        unseen_rule=active.unseen_rule,
        constraint="equal selection rates on live scores",
        objective=f"approval rate {target.approval_rate:.4f}",
        mode=active.mode,
    )
    # The unseen rule chosen again among the new rules, as at training (most lenient or
    # pooled), on an even sample of the live scores (at most about 5,000: enough to rank rules).
    step = max(1, sum(len(s) for s in enough.values()) // 5000)
    sample = {g: s[::step] for g, s in enough.items()}
    scores = np.concatenate(list(sample.values()))
    groups = np.concatenate([np.full(len(s), g, dtype=object) for g, s in sample.items()])
    return draft.with_unseen_rule(active.unseen_rule, scores=scores, groups=groups)


def _one_cut(
    active: ThresholdPolicy, enough: dict[str, np.ndarray], target: Target, notes: list[str]
) -> ThresholdPolicy:
    pooled = np.sort(np.concatenate(list(enough.values())))[::-1]
    n = len(pooled)
    current = cut(active.unseen)
    # The one served now, and a cut-off for every number of approvals across the band (each
    # decides differently; a coarser grid misses the nearest and the best).
    low = max(math.ceil((target.approval_rate - target.band) * n - 1e-9), 0)
    high = min(math.floor((target.approval_rate + target.band) * n + 1e-9), n)
    candidates = np.concatenate([[current], _betweens(pooled, np.arange(low, high + 1))])
    ascending = {g: s[::-1] for g, s in enough.items()}
    group_rates = np.vstack([
        1 - np.searchsorted(a, candidates, side="right") / len(a) for a in ascending.values()
    ])  # fmt: skip
    overall = 1 - np.searchsorted(pooled[::-1], candidates, side="right") / n
    top = group_rates.max(axis=0)
    ratio = np.where(top > 0, group_rates.min(axis=0) / np.maximum(top, 1e-12), 0.0)
    in_band = np.abs(overall - target.approval_rate) <= target.band + 1e-9
    feasible = in_band & (ratio >= target.floor) if len(enough) >= 2 else in_band
    if feasible[0]:
        chosen = current
    elif feasible.any():
        distance = np.where(feasible, np.abs(candidates - current), np.inf)
        chosen = float(candidates[int(np.argmin(distance))])
    else:
        notes.append(FLOOR_OUT_OF_REACH.format(band=target.band, rate=target.approval_rate,
                                               floor=target.floor))  # fmt: skip
        scored = np.where(in_band, ratio, -1.0)
        chosen = float(candidates[int(np.argmax(scored))])
    return ThresholdPolicy.single_threshold(
        attributes=active.attributes, groups=list(active.rules), threshold=chosen, mode=active.mode
    )
