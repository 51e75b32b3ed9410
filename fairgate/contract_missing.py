"""Values a request leaves out: which ones count as missing, and how the contract fills them.

A field that says ``missing = "median"`` or ``"most_frequent"`` is filled with a value learnt
from the training rows (``learn_fills``), written into the copy of the contract stored with
the model (``training/contract_fills.py``), so training and serving fill alike: one feature
builder reads the filled contract (``fairgate.contract_features``). ``"constant"`` takes the
contract's own ``fill``; ``"model"`` leaves a number missing (NaN) for a model that takes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from fairgate.contract import Contract, FieldSpec

LEARNT: Final[tuple[str, ...]] = ("median", "most_frequent")
NOTHING_TO_LEARN: Final[str] = (
    "field {name!r}: missing = {missing!r}, but the training rows have no value of it"
)
NOT_LEARNT: Final[str] = (
    "field {name!r}: missing = {missing!r} has no learnt fill in this contract; train a model "
    "with it (the model's copy of the contract carries the fill)"
)


def missing_mask(values: np.ndarray) -> np.ndarray:
    """True where a value is missing: NaN in a number column, None (or NaN) in an object one."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind != "O":
        return np.zeros(len(values), dtype=bool)
    # ``v != v`` is NaN's own test, which pandas' empty cells in an object column are.
    return np.fromiter((v is None or v != v for v in values), dtype=bool, count=len(values))


def _learn(spec: FieldSpec, values: np.ndarray) -> str | int | float:
    present = np.asarray(values)[~missing_mask(values)]
    if len(present) == 0:
        raise ValueError(NOTHING_TO_LEARN.format(name=spec.name, missing=spec.missing))
    if spec.missing == "median":
        median = float(np.median(present.astype(np.float64)))
        # An integer field is filled with a whole number a request could have sent.
        return int(np.floor(median + 0.5)) if spec.type == "integer" else median
    kinds, counts = np.unique(present.astype(np.float64) if spec.numeric else present.astype(str),
                              return_counts=True)  # fmt: skip
    # Ties go to the smallest value (np.unique sorts), so the fill does not hang on row order.
    mode = kinds[int(np.argmax(counts))]
    if spec.type == "integer":
        return int(mode)
    return float(mode) if spec.numeric else str(mode)


def learn_fills(contract: Contract, columns: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """The fill of every ``median`` / ``most_frequent`` field, learnt from ``columns``."""
    return {
        spec.name: _learn(spec, columns[spec.name])
        for spec in contract.fields
        if spec.missing in LEARNT
    }


def fill_values(contract: Contract, fields: tuple[str, ...]) -> list[tuple[str, Any, bool]]:
    """(field, fill, numeric) for each of ``fields`` that is filled when missing; raises
    ``ValueError`` for a learnt fill the contract does not carry yet."""
    result = []
    for name in fields:
        spec = contract.field(name)
        if spec.missing is None or spec.missing == "model":
            continue
        if spec.fill is None:
            raise ValueError(NOT_LEARNT.format(name=name, missing=spec.missing))
        result.append((name, float(spec.fill) if spec.numeric else spec.fill, spec.numeric))
    return result


def filled(
    columns: Mapping[str, np.ndarray], fills: list[tuple[str, Any, bool]]
) -> dict[str, np.ndarray]:
    """A copy of ``columns`` with each missing value of ``fills``' fields replaced."""
    result = dict(columns)
    for name, value, numeric in fills:
        column = columns[name]
        if numeric:
            numbers = np.asarray(column, dtype=np.float64)
            result[name] = np.where(np.isnan(numbers), value, numbers)
        else:
            objects = np.asarray(column, dtype=object)
            result[name] = np.where(missing_mask(objects), value, objects)
    return result
