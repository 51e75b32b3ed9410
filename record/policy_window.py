"""The live decisions a recalibration reads: one query, returned as columns.

Only what a label-free recalibration needs (score, group, the decision made and its draw),
live traffic only (probes left out), of one model and of the policy versions of one scope (a
mode's scores come from its own scorer). Columns, not rows: a million decisions arrive as four
numpy arrays in well under a second (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from fairgate.recalibrate import Window
from record.entry import format_time
from record.store import TABLE, RecordStore


def read_window(
    store: RecordStore,
    *,
    since: datetime,
    until: datetime,
    model_version: str,
    policy_versions: Sequence[str],
) -> Window:
    """Live decisions with ``since <= time < until`` of ``model_version``, decided by one of
    ``policy_versions``."""
    p = "?" if store.backend == "sqlite" else "%s"
    live = '"probe" = 0' if store.backend == "sqlite" else 'NOT "probe"'
    versions = ", ".join([p] * len(policy_versions))
    # A draw is in [0, 1); -1 stands for "none" (NULL) so the column arrives as numbers.
    query = (
        f'SELECT "score", "group", "decision" = \'approve\', COALESCE("draw", -1.0) FROM {TABLE} '
        f'WHERE "time" >= {p} AND "time" < {p} AND {live} AND "model_version" = {p} '
        f'AND "policy_version" IN ({versions})'
    )
    args = (format_time(since), format_time(until), model_version, *policy_versions)
    rows = store._conn().execute(query, args).fetchall() if policy_versions else []
    if not rows:
        empty = np.zeros(0)
        return Window(empty, np.zeros(0, dtype=np.intp), [], empty.astype(bool), empty)
    scores, groups, approved, draws = zip(*rows, strict=True)
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(g, len(index)) for g in groups), np.intp, len(groups))
    drawn = np.asarray(draws, dtype=np.float64)
    return Window(
        scores=np.asarray(scores, dtype=np.float64),
        codes=codes,
        names=list(index),
        approved=np.asarray(approved, dtype=bool),
        draws=np.where(drawn < 0, np.nan, drawn),
    )
