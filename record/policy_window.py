"""The live decisions a recalibration reads: one query, returned as columns.

Only what a label-free recalibration needs (score, group, the decision made and, under the
randomized mode, its draw), live traffic only (probes left out), of one model and of the
policy versions of one scope (a mode's scores come from its own scorer). Both backends answer
from the record's window index (time first, then these columns), not from the rows with their
requests. Columns, not rows: SQLite's rows are unpacked with the garbage collector paused (a
million tuples would trigger it dozens of times); PostgreSQL sends one array per group and
column in its binary format.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime

import numpy as np

from fairgate.recalibrate import Window
from record.entry import format_time
from record.store import TABLE, RecordStore


@contextmanager
def _collector_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _where(p: str, live: str, versions: int) -> str:
    return (
        f'WHERE "time" >= {p} AND "time" < {p} AND "model_version" = {p} '
        f'AND "policy_version" IN ({", ".join([p] * versions)}) AND {live}'
    )


def read_window(
    store: RecordStore,
    *,
    since: datetime,
    until: datetime,
    model_version: str,
    policy_versions: Sequence[str],
    groups: Sequence[str] = (),
    draws: bool = False,
) -> Window:
    """Live decisions with ``since <= time < until`` of ``model_version``, decided by one of
    ``policy_versions``. ``groups``: the policy's groups, the ones expected (any other is
    read too, only more slowly); ``draws``: read the keyed draws too (only a randomized
    policy has them; NaN otherwise)."""
    if not policy_versions:
        return _window([], [], [], [])
    args = (format_time(since), format_time(until), model_version, *policy_versions)
    if store.backend == "sqlite":
        return _sqlite(store, args, len(policy_versions), list(groups), draws)
    return _postgres(store, args, len(policy_versions), list(groups), draws)


def _sqlite(
    store: RecordStore, args: tuple[str, ...], versions: int, groups: list[str], draws: bool
) -> Window:
    # Known groups arrive as small integers (Python's cached ones): a million text values
    # would each be a new string object.
    case = " ".join(f"WHEN ? THEN {i}" for i in range(len(groups)))
    code = f'CASE "group" {case} ELSE -1 END' if groups else "-1"
    drawn = ', "draw"' if draws else ""
    where = _where("?", '"probe" = 0', versions)
    query = f'SELECT "score", {code}, "decision" = \'approve\'{drawn} FROM {TABLE} {where}'
    conn = store.connection()
    with _collector_paused():
        rows = conn.execute(query, (*groups, *args)).fetchall()
        if not rows:
            return _window([], [], [], [])
        columns = list(zip(*rows, strict=True))
        del rows
        codes = np.asarray(columns[1], dtype=np.intp)
        names = list(groups)
        if (codes < 0).any():
            # A group the policy does not know: read again with every group's name (one
            # query, so no reliance on two queries returning rows in the same order).
            named = f'SELECT "score", "group", "decision" = \'approve\'{drawn} FROM {TABLE} {where}'
            columns = list(zip(*conn.execute(named, args).fetchall(), strict=True))
            index = {g: i for i, g in enumerate(names)}
            codes = np.fromiter((index.setdefault(g, len(index)) for g in columns[1]), np.intp)
            names = list(index)
        return Window(
            scores=np.asarray(columns[0], dtype=np.float64),
            codes=codes,
            names=names,
            approved=np.asarray(columns[2], dtype=bool),
            draws=_draws(columns[3] if draws else None, len(codes)),
        )


# COPY's binary format: a header, then per row a field count (int16) and per field its
# length (int32) and bytes, big-endian. Every field here has a fixed size, so the rows are one
# numpy record array: no Python object per row.
_COPY_HEADER = 19  # signature (11), flags (4), header extension length (4)
_COPY_ROW = np.dtype([
    ("fields", ">i2"), ("score_len", ">i4"), ("score", ">f8"), ("code_len", ">i4"),
    ("code", ">i4"), ("approved_len", ">i4"), ("approved", "?"), ("draw_len", ">i4"),
    ("draw", ">f8"),
])  # fmt: skip


def _postgres(
    store: RecordStore, args: tuple[str, ...], versions: int, groups: list[str], draws: bool
) -> Window:
    """Known groups by COPY in binary (the rows as one numpy array); any other group by the
    slower query below, which names every group."""
    if not groups:
        return _postgres_named(store, args, versions, draws)
    case = " ".join(f"WHEN %s THEN {i}" for i in range(len(groups)))
    where = _where("%s", 'NOT "probe"', versions)
    query = (
        f'COPY (SELECT "score", CASE "group" {case} ELSE -1 END, "decision" = \'approve\', '
        f"COALESCE(\"draw\", 'NaN'::float8) FROM {TABLE} {where}) TO STDOUT (FORMAT binary)"
    )
    conn = store.connection()
    buffer = bytearray()
    with conn.cursor() as cursor, cursor.copy(query, (*groups, *args)) as copy:
        for chunk in copy:
            buffer += chunk
    body = memoryview(buffer)[_COPY_HEADER : len(buffer) - 2]  # the trailer: int16 -1
    rows = np.frombuffer(body, dtype=_COPY_ROW)
    codes = rows["code"].astype(np.intp)
    if (codes < 0).any():
        return _postgres_named(store, args, versions, draws)
    drawn = rows["draw"].astype(np.float64)
    return Window(
        scores=rows["score"].astype(np.float64),
        codes=codes,
        names=list(groups),
        approved=rows["approved"].astype(bool),
        draws=drawn if draws else np.full(len(rows), np.nan),
    )


def _postgres_named(
    store: RecordStore, args: tuple[str, ...], versions: int, draws: bool
) -> Window:
    drawn = ', array_agg("draw")' if draws else ""
    where = _where("%s", 'NOT "probe"', versions)
    query = (
        f'SELECT "group", array_agg("score"), array_agg("decision" = \'approve\'){drawn} '
        f'FROM {TABLE} {where} GROUP BY "group"'
    )
    conn = store.connection()
    with _collector_paused(), conn.cursor(binary=True) as cursor:
        found = cursor.execute(query, args).fetchall()
        names = [row[0] for row in found]
        scores = [np.asarray(row[1], dtype=np.float64) for row in found]
        approved = [np.asarray(row[2], dtype=bool) for row in found]
        drawn_rows = [_draws(row[3], len(row[1])) for row in found] if draws else None
    return _window(names, scores, approved, drawn_rows)


def _draws(values: Sequence[float | None] | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _window(
    names: list[str],
    scores: list[np.ndarray],
    approved: list[np.ndarray],
    draws: list[np.ndarray] | None,
) -> Window:
    """A window from per-group columns."""
    if not names:
        empty = np.zeros(0)
        return Window(empty, np.zeros(0, dtype=np.intp), [], empty.astype(bool), empty)
    sizes = [len(s) for s in scores]
    return Window(
        scores=np.concatenate(scores),
        codes=np.repeat(np.arange(len(names), dtype=np.intp), sizes),
        names=list(names),
        approved=np.concatenate(approved),
        draws=np.full(sum(sizes), np.nan) if draws is None else np.concatenate(draws),
    )
