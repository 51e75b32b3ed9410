"""The compiled decision policy: a per-group threshold table, in one of four modes.

``lda`` (the default): the less discriminatory alternative chosen at training
(``training/lda_select.py``), a model blind to the protected attributes with one cut-off
for everyone: every group's rule, and the unseen rule, is the same threshold, so the
decision reads no protected field. ``mitigated``: one deterministic threshold per group,
compiled at training from fairlearn's ThresholdOptimizer (``training/compile_policy.py``).
``randomized``:
fairlearn's own rule, per group ``p0 * [score op0 t0] + p1 * [score op1 t1]`` (optionally
blended with ``p_ignore``/``constant`` for equalized odds), whose approval probability equals
``_pmf_predict``; the draw that realises it comes from ``fairgate.draw`` (keyed, never on the
caller's id). ``unmitigated``: the trained model with one 0.5 threshold for every group.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Literal, get_args

import numpy as np

Operator = Literal[">", "<"]
UnseenRule = Literal["most-lenient", "pooled"]
PolicyMode = Literal["lda", "mitigated", "randomized", "unmitigated"]
POLICY_MODES: Final[tuple[str, ...]] = get_args(PolicyMode)
# Served when no mode is given (``FAIRGATE_POLICY``): attribute-blind, so the counterfactual
# prober finds no flip and no gap by construction.
DEFAULT_POLICY_MODE: Final[PolicyMode] = "lda"

NOT_FITTED: Final[str] = (
    "policy has no rules; build it with ThresholdPolicy.from_threshold_optimizer"
)
NEEDS_DRAWS: Final[str] = "a randomized policy needs one keyed draw per application"


@dataclass(frozen=True)
class GroupRule:
    """One group's threshold rule (randomized as fairlearn fits it, or one plain threshold)."""

    p0: float
    operator0: Operator
    threshold0: float
    p1: float
    operator1: Operator
    threshold1: float
    p_ignore: float = 0.0
    constant: float = 0.0

    @classmethod
    def threshold(cls, value: float) -> GroupRule:
        """The deterministic rule ``approve iff score > value``."""
        return cls(p0=1.0, operator0=">", threshold0=value, p1=0.0, operator1=">", threshold1=value)

    @property
    def randomized(self) -> bool:
        """Whether some score gets an approval probability strictly between 0 and 1."""
        return self.p_ignore > 0 or any(0 < p < 1 for p in (self.p0, self.p1))

    def describe(self) -> str:
        parts = [
            f"{p:.3f} x [score {op} {t:.4f}]"
            for p, op, t in (
                (self.p0, self.operator0, self.threshold0),
                (self.p1, self.operator1, self.threshold1),
            )
            if p > 0
        ]
        text = " + ".join(parts) or "0"
        if self.p_ignore:
            text = f"{self.p_ignore:.3f} x {self.constant:.3f} + {1 - self.p_ignore:.3f} x ({text})"
        return f"P(approve) = {text}"


def _sign(operator: Operator) -> float:
    return 1.0 if operator == ">" else -1.0


def _encode_float(value: float) -> float | str:
    # JSON has no infinities; fairlearn's thresholds often are +-inf.
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _decode_float(value: float | str) -> float:
    return float(value)


@dataclass(frozen=True)
class ThresholdPolicy:
    """Group -> rule table plus the explicit rule for groups unseen at fit time."""

    attributes: tuple[str, ...]
    rules: dict[str, GroupRule]
    unseen: GroupRule
    unseen_rule: UnseenRule
    constraint: str
    objective: str
    mode: PolicyMode = "randomized"
    version: str = field(default="")

    def __post_init__(self) -> None:
        if not self.rules:
            raise ValueError(NOT_FITTED)
        if self.mode not in POLICY_MODES:
            raise ValueError(f"policy mode must be one of {POLICY_MODES}, got {self.mode!r}")
        if not self.version:
            object.__setattr__(self, "version", self._content_hash())
        groups = list(self.rules)
        table = [*(self.rules[g] for g in groups), self.unseen]
        # Column arrays, one entry per group plus the unseen rule last: decide() then
        # needs only numpy gathers, no Python loop over applications.
        object.__setattr__(self, "_groups", {g: i for i, g in enumerate(groups)})
        # One row per rule, gathered once per call: ``score < t`` is written as
        # ``-score > -t`` (negation is exact), so both operators are one comparison.
        object.__setattr__(
            self,
            "_rows",
            np.array(
                [
                    (
                        rule.p0,
                        _sign(rule.operator0),
                        _sign(rule.operator0) * rule.threshold0,
                        rule.p1,
                        _sign(rule.operator1),
                        _sign(rule.operator1) * rule.threshold1,
                        rule.p_ignore,
                        rule.constant,
                    )
                    for rule in table
                ],
                dtype=np.float64,
            ),
        )
        # The same rows as Python floats, for one application (``decide``'s single-row path).
        object.__setattr__(self, "_row_floats", [tuple(row) for row in self._rows.tolist()])
        object.__setattr__(self, "_randomized", any(rule.randomized for rule in table))

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_threshold_optimizer(
        cls,
        optimizer: Any,
        *,
        attributes: Sequence[str],
        scores: np.ndarray,
        groups: np.ndarray,
        unseen_rule: UnseenRule = "most-lenient",
    ) -> ThresholdPolicy:
        """Compile a fitted ``ThresholdOptimizer``; ``scores``/``groups`` pick the unseen rule."""
        interpolation = optimizer.interpolated_thresholder_.interpolation_dict
        rules = {
            str(group): GroupRule(
                p0=float(item.p0),
                operator0=item.operation0.operator,
                threshold0=float(item.operation0.threshold),
                p1=float(item.p1),
                operator1=item.operation1.operator,
                threshold1=float(item.operation1.threshold),
                p_ignore=float(item.get("p_ignore", 0.0)),
                constant=float(item.get("prediction_constant", 0.0)),
            )
            for group, item in interpolation.items()
        }
        draft = cls(
            attributes=tuple(attributes),
            rules=rules,
            unseen=next(iter(rules.values())),
            unseen_rule=unseen_rule,
            constraint=optimizer.constraints,
            objective=optimizer.objective,
        )
        return draft.with_unseen_rule(unseen_rule, scores=scores, groups=groups)

    @classmethod
    def single_threshold(
        cls,
        *,
        attributes: Sequence[str],
        groups: Sequence[str],
        threshold: float = 0.5,
        mode: PolicyMode = "unmitigated",
    ) -> ThresholdPolicy:
        """One deterministic threshold for every group, the unseen rule included.

        At 0.5 it is the model's own ``predict``: the unmitigated baseline, served to show
        what the model does without group rules (``FAIRGATE_POLICY=unmitigated``). With
        ``mode="lda"`` it is the less discriminatory alternative's one cut-off. The groups
        are kept only to name the rules (and the metrics' series): every rule is the same.

        >>> policy = ThresholdPolicy.single_threshold(
        ...     attributes=["gender"], groups=["female", "male"], threshold=0.41, mode="lda")
        >>> policy.decide(np.array([0.4, 0.42]), ["female", "male"])[0].tolist()
        [False, True]
        """
        rule = GroupRule.threshold(float(threshold))
        # The LDA's cut-off was chosen by training/lda_select.py's rule, not by a constraint.
        lda = mode == "lda"
        return cls(
            attributes=tuple(attributes),
            rules=dict.fromkeys(groups, rule),
            unseen=rule,
            unseen_rule="most-lenient",
            constraint="one-threshold" if lda else "none",
            objective="lda-selection" if lda else "none",
            mode=mode,
        )

    def with_unseen_rule(
        self, unseen_rule: UnseenRule, *, scores: np.ndarray, groups: np.ndarray
    ) -> ThresholdPolicy:
        """Choose the rule for unseen groups from the fit-time score distribution.

        ``most-lenient``: the seen group's rule with the highest approval rate over all
        fit-time scores (an unseen group is never treated worse than any seen one).
        ``pooled``: the weighted mixture of all seen rules, i.e. the average applicant's rule,
        realised as the rule of the group whose approval rate is closest to the pooled rate.
        """
        rates = {
            g: float(
                self.approval_probability(scores, np.full(len(scores), g, dtype=object)).mean()
            )
            for g in self.rules
        }
        if unseen_rule == "most-lenient":
            chosen = max(rates, key=rates.__getitem__)
        elif unseen_rule == "pooled":
            pooled = float(self.approval_probability(scores, groups).mean())
            chosen = min(rates, key=lambda g: abs(rates[g] - pooled))
        else:
            raise ValueError(f"unseen_rule must be 'most-lenient' or 'pooled', got {unseen_rule!r}")
        return ThresholdPolicy(
            attributes=self.attributes,
            rules=self.rules,
            unseen=self.rules[chosen],
            unseen_rule=unseen_rule,
            constraint=self.constraint,
            objective=self.objective,
            mode=self.mode,
        )

    # -- deciding -----------------------------------------------------------------------
    def group_index(self, groups: Sequence[str] | np.ndarray) -> np.ndarray:
        """Row index into the rule table; unseen groups get the last (unseen) row."""
        unseen = len(self._groups)
        return np.fromiter(
            (self._groups.get(g, unseen) for g in groups), dtype=np.intp, count=len(groups)
        )

    def is_unseen(self, index: np.ndarray) -> np.ndarray:
        return index == len(self._groups)

    def approval_probability(
        self,
        scores: np.ndarray,
        groups: Sequence[str] | np.ndarray,
        index: np.ndarray | None = None,
    ) -> np.ndarray:
        """P(approve) per row; equals ``ThresholdOptimizer._pmf_predict(...)[:, 1]``."""
        index = self.group_index(groups) if index is None else index
        p0, sign0, t0, p1, sign1, t1, p_ignore, constant = self._rows[index].T
        mixed = p0 * (sign0 * scores > t0) + p1 * (sign1 * scores > t1)
        return p_ignore * constant + (1 - p_ignore) * mixed

    @property
    def randomized(self) -> bool:
        return self._randomized  # type: ignore[attr-defined, no-any-return]

    def decide(
        self,
        scores: np.ndarray,
        groups: Sequence[str] | np.ndarray,
        draws: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return (approved, approval probability, rule index) per application.

        ``draws`` (uniform [0, 1), from ``fairgate.draw.DrawKey``) are needed only when the
        policy is randomized; a deterministic policy's probabilities are exactly 0 or 1.
        """
        if len(scores) == 1:
            return self._decide_one(float(scores[0]), groups[0], draws)
        index = self.group_index(groups)
        probability = self.approval_probability(scores, groups, index)
        if draws is None:
            if self.randomized:
                raise ValueError(NEEDS_DRAWS)
            return probability >= 1.0, probability, index
        return draws < probability, probability, index

    def _decide_one(
        self, score: float, group: str, draws: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``decide`` for one application with Python floats: the same IEEE double
        operations in the same order as ``approval_probability`` (so the same bits), without
        the numpy calls on one-element arrays whose per-call overhead a single decision would
        otherwise pay."""
        index = self._groups.get(group, len(self._groups))
        p0, sign0, t0, p1, sign1, t1, p_ignore, constant = self._row_floats[index]
        mixed = p0 * (sign0 * score > t0) + p1 * (sign1 * score > t1)
        probability = p_ignore * constant + (1 - p_ignore) * mixed
        if draws is None:
            if self.randomized:
                raise ValueError(NEEDS_DRAWS)
            approved = probability >= 1.0
        else:
            approved = float(draws[0]) < probability
        return np.array([approved]), np.array([probability]), np.array([index], dtype=np.intp)

    def boundary_distance(
        self, scores: np.ndarray, groups: Sequence[str] | np.ndarray
    ) -> np.ndarray:
        """Distance of each score to the nearest threshold of its group's rule that matters.

        A threshold matters when its term has weight (``p0``/``p1`` > 0) and it is finite;
        a rule with none (always or never approve) is infinitely far. The prober and the
        recorded boundary population use it to tell applicants near a decision from the rest.
        """
        rows = self._rows[self.group_index(groups)]
        scores = np.asarray(scores, dtype=np.float64)
        near = np.full(len(rows), np.inf)
        for p, sign, signed in ((0, 1, 2), (3, 4, 5)):
            threshold = rows[:, sign] * rows[:, signed]  # the threshold itself (sign * sign = 1)
            live = (rows[:, p] > 0) & np.isfinite(threshold)
            near = np.where(live, np.minimum(near, np.abs(scores - threshold)), near)
        return near

    def rule_name(self, index: int) -> str:
        groups = list(self._groups)
        return groups[index] if index < len(groups) else f"unseen:{self.unseen_rule}"

    # -- serialisation ------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        def rule(r: GroupRule) -> dict[str, Any]:
            data = {
                k: _encode_float(v) if isinstance(v, float) else v for k, v in asdict(r).items()
            }
            return data | {"reads": r.describe()}

        return {
            "version": self.version,
            "mode": self.mode,
            "attributes": list(self.attributes),
            "constraint": self.constraint,
            "objective": self.objective,
            "rules": {g: rule(r) for g, r in self.rules.items()},
            "unseen_rule": self.unseen_rule,
            "unseen": rule(self.unseen),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ThresholdPolicy:
        def rule(d: dict[str, Any]) -> GroupRule:
            return GroupRule(
                p0=_decode_float(d["p0"]),
                operator0=d["operator0"],
                threshold0=_decode_float(d["threshold0"]),
                p1=_decode_float(d["p1"]),
                operator1=d["operator1"],
                threshold1=_decode_float(d["threshold1"]),
                p_ignore=_decode_float(d["p_ignore"]),
                constant=_decode_float(d["constant"]),
            )

        policy = cls(
            attributes=tuple(data["attributes"]),
            rules={g: rule(r) for g, r in data["rules"].items()},
            unseen=rule(data["unseen"]),
            unseen_rule=data["unseen_rule"],
            constraint=data["constraint"],
            objective=data["objective"],
            mode=data["mode"],
            version=data["version"],
        )
        if policy._content_hash() != policy.version:
            raise ValueError("policy content does not match its version hash (edited or corrupted)")
        return policy

    def _content_hash(self) -> str:
        body = {
            "attributes": list(self.attributes),
            "constraint": self.constraint,
            "objective": self.objective,
            "mode": self.mode,
            "unseen_rule": self.unseen_rule,
            "rules": {g: {k: repr(v) for k, v in asdict(r).items()} for g, r in self.rules.items()},
            "unseen": {k: repr(v) for k, v in asdict(self.unseen).items()},
        }
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        return f"p-{digest[:12]}"
