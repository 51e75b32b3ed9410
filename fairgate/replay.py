"""Shadow replay: a window's recorded live decisions decided again under a candidate policy.

What ``fairgate policy diff`` shows and ``fairgate policy promote`` bounds: per group, the
approval rate recorded and under the candidate, the decisions that would change either way,
the four-fifths ratio before and after, and how far each cut-off moves from the version
served now.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fairgate.policy import ThresholdPolicy
from fairgate.recalibrate import MIN_DECISIONS, Window, approvals, cut, four_fifths


@dataclass(frozen=True)
class GroupReplay:
    group: str
    decisions: int
    rate_before: float
    rate_after: float
    to_approve: int  # denied then, approved under the candidate
    to_deny: int
    cut_before: float
    cut_after: float

    @property
    def move(self) -> float:
        return self.cut_after - self.cut_before


@dataclass(frozen=True)
class Replay:
    decisions: int
    changed: int
    groups: dict[str, GroupReplay]
    ratio_before: float
    ratio_after: float

    @property
    def largest_move(self) -> float:
        moves = [abs(g.move) for g in self.groups.values() if not math.isnan(g.move)]
        return max(moves, default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decisions": self.decisions,
            "changed": self.changed,
            "largest_move": self.largest_move,
            "four_fifths_ratio": {"before": self.ratio_before, "after": self.ratio_after},
            "groups": {g.group: {**g.__dict__, "move": g.move} for g in self.groups.values()},
        }


def replay(
    active: ThresholdPolicy,
    candidate: ThresholdPolicy,
    window: Window,
    *,
    min_decisions: int = MIN_DECISIONS,
) -> Replay:
    """The window's recorded decisions against ``candidate``'s: per group, what changes.

    ``before`` is what was recorded (whatever version decided it then); ``after`` is the
    candidate deciding the same scores with the same keyed draws. Cut-off moves are from
    ``active``, the version served now.
    """
    groups: dict[str, GroupReplay] = {}
    for group, rows in window.split().items():
        if len(rows) == 0:
            continue
        was = window.approved[rows]
        now = approvals(candidate, group, window.scores[rows], window.draws[rows])
        served = active.rules.get(group, active.unseen)
        proposed = candidate.rules.get(group, candidate.unseen)
        groups[group] = GroupReplay(
            group=group,
            decisions=len(rows),
            rate_before=float(was.mean()),
            rate_after=float(now.mean()),
            to_approve=int((now & ~was).sum()),
            to_deny=int((was & ~now).sum()),
            cut_before=cut(served),
            cut_after=cut(proposed),
        )
    judged = {g: r for g, r in groups.items() if r.decisions >= min_decisions}
    return Replay(
        decisions=len(window),
        changed=sum(r.to_approve + r.to_deny for r in groups.values()),
        groups=groups,
        ratio_before=four_fifths({g: r.rate_before for g, r in judged.items()}),
        ratio_after=four_fifths({g: r.rate_after for g, r in judged.items()}),
    )
