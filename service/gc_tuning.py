"""Garbage-collector settings for the serving process.

At saturation, full (generation 2) collections dominate p99 (docs/benchmarks.md): each one
walks every object the process holds, most of them the model, the policy and BentoML
itself, none of which ever becomes garbage. ``gc.freeze()`` moves everything alive after
start-up into a permanent generation that collections skip, and a higher generation-0
threshold makes the (cheap) young collections rarer. ``FAIRGATE_GC=default`` turns this off,
which ``fairgate bench`` uses to show the difference.
"""

from __future__ import annotations

import gc
from typing import Final

GC_MODES: Final[tuple[str, ...]] = ("tuned", "default")
GEN0_THRESHOLD: Final[int] = 10_000


def tune_gc(mode: str) -> None:
    if mode not in GC_MODES:
        raise ValueError(f"FAIRGATE_GC must be one of {GC_MODES}, got {mode!r}")
    if mode == "default":
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)
