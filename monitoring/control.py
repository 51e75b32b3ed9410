"""The control: the same applicants sent twice, identical, in separate requests.

A twin flip is evidence of bias only if the endpoint gives the same applicant the same
answer every time. When identical pairs already disagree, the endpoint's decisions are
not reproducible and every flip rate measured beside them is, at least partly, noise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

Decide = Callable[[dict[str, np.ndarray]], tuple[np.ndarray, np.ndarray]]

NOT_REPRODUCIBLE: Final[str] = (
    "NOT REPRODUCIBLE: {flips} of {pairs} identical applicants sent twice got different "
    "decisions (control flip rate {rate}). The endpoint's decisions are not reproducible, "
    "so the flip rates and the gap cannot be read as bias."
)


@dataclass(frozen=True)
class ControlResult:
    pairs: int
    flips: int

    @property
    def flip_rate(self) -> float:
        return self.flips / self.pairs if self.pairs else 0.0

    @property
    def reproducible(self) -> bool:
        return self.flips == 0


def control(decide: Decide, sample: dict[str, np.ndarray]) -> ControlResult:
    """Decide ``sample`` twice (two separate calls, same ids) and count disagreements."""
    first, _ = decide(sample)
    second, _ = decide(sample)
    return ControlResult(pairs=len(first), flips=int(np.sum(first != second)))
