"""The feature builder and group keys derived from a contract.

``ContractFeatures(contract).build(columns)`` is the one feature builder: training and the
service build the model's float64 matrix through it, and the prober groups its twins with the
same group keys, so what is served is what was trained. On the built-in synthetic contract it
matches, column for column and bit for bit, an independent hand-written builder kept as a
test oracle (``tests/synthetic_oracle.py``).
The per-feature work is resolved once in the constructor into a list of small column
functions, so a request pays only for the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cached_property
from operator import itemgetter
from typing import Any

import numpy as np

from fairgate.contract import Contract, Feature
from fairgate.contract_missing import fill_values, filled, missing_mask

Column = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def feature_columns(contract: Contract, feature: Feature) -> tuple[str, ...]:
    """Model column names of one feature (one_hot: ``prefix + value`` per value)."""
    if feature.transform != "one_hot":
        return (feature.name,)
    values = feature.values or contract.field(feature.field or "").constraints.enum or ()
    prefix = f"{feature.field}_" if feature.prefix is None else feature.prefix
    return tuple(f"{prefix}{value}" for value in values)


def _log1p(name: str) -> Column:
    return lambda columns: np.log1p(np.asarray(columns[name], dtype=np.float64))


def _ratio(feature: Feature) -> Column:
    numerator, denominator = feature.numerator or "", feature.denominator or ""
    scale, floor = feature.scale, feature.floor

    def ratio(columns: Mapping[str, np.ndarray]) -> np.ndarray:
        below = np.asarray(columns[denominator], dtype=np.float64)
        if floor is not None:
            below = np.maximum(below, floor)
        above = np.asarray(columns[numerator], dtype=np.float64)
        # Multiply before dividing, as a person writes "debt * 12 / income".
        return (above * scale if scale is not None else above) / below

    return ratio


def _one_hot(name: str, values: tuple[str, ...]) -> Column:
    # One comparison against every value at once: a (rows, values) block, not one ufunc
    # call per value, which is what a single-row build pays for.
    known = np.asarray(values, dtype=object)
    return lambda columns: (np.asarray(columns[name], dtype=object)[:, None] == known).astype(
        np.float64
    )


class ContractFeatures:
    """Which model columns a contract defines, and how to build them.

    ``include_sensitive`` adds the features marked ``sensitive`` (the naive model).
    """

    def __init__(self, contract: Contract, *, include_sensitive: bool = False) -> None:
        self.contract = contract
        self.include_sensitive = include_sensitive
        self.features = tuple(f for f in contract.features if include_sensitive or not f.sensitive)
        names: list[str] = []
        monotone: list[int] = []
        # The as_is features are copied in one block; every other feature is a part that
        # computes its column (or one-hot block) and is written to where it goes.
        plain: list[tuple[str, int]] = []
        parts: list[tuple[Column, int | slice]] = []
        for feature in self.features:
            columns = feature_columns(contract, feature)
            start = len(names)
            names += columns
            monotone += [feature.monotone] * len(columns)
            if feature.transform == "as_is":
                plain.append((feature.field or "", start))
            elif feature.transform == "one_hot":
                parts.append((self._part(feature), slice(start, len(names))))
            else:
                parts.append((self._part(feature), start))
        self.names = tuple(names)
        self.monotonic_constraints = monotone
        self._plain_fields = [field for field, _ in plain]
        self._plain_at = np.array([at for _, at in plain], dtype=np.intp)
        self._parts_list = parts
        self._rows_from = next(iter(self.input_fields), "")
        # Fields filled when a request leaves them out; a learnt fill the contract does not
        # carry yet (a contract not trained with) fails at build, not here, so the contract
        # can still be read, checked and drafted from.
        self._fills: list[tuple[str, Any, bool]] = []
        self._unfilled: ValueError | None = None
        try:
            self._fills = fill_values(contract, self.input_fields)
        except ValueError as error:
            self._unfilled = error

    def _part(self, feature: Feature) -> Column:
        field = feature.field or ""
        if feature.transform == "log1p":
            return _log1p(field)
        if feature.transform == "ratio":
            return _ratio(feature)
        values = feature.values or self.contract.field(field).constraints.enum or ()
        return _one_hot(field, tuple(values))

    @cached_property
    def input_fields(self) -> tuple[str, ...]:
        """The fields the built features read, in contract order."""
        used = {name for feature in self.features for name in feature.inputs}
        return tuple(name for name in self.contract.field_names if name in used)

    def build(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """The float64 matrix, one row per applicant, columns in ``names`` order; missing
        values filled as the contract says (NaN left where it says ``missing = "model"``)."""
        if self._unfilled is not None:
            raise self._unfilled
        if self._fills:
            columns = filled(columns, self._fills)
        rows = len(columns[self._rows_from])
        matrix = np.empty((rows, len(self.names)))
        if self._plain_fields:
            # One stack and one scatter for all as_is columns: a single application's build
            # is mostly per-call numpy overhead, two calls per column before.
            block = np.array([columns[name] for name in self._plain_fields], dtype=np.float64)
            matrix[:, self._plain_at] = block.T
        # Each part written into its own slice: ``np.column_stack`` reshapes and copies
        # every part first, the larger share of a single application's build.
        for part, where in self._parts_list:
            matrix[:, where] = part(columns)
        return matrix


def attribute_column(
    contract: Contract, name: str, columns: Mapping[str, np.ndarray]
) -> np.ndarray:
    """One protected attribute's value per applicant: band labels for a banded field, the
    code as text ("0", "1") for a field of codes, the attribute's ``missing`` label for an
    applicant who left the field out."""
    attribute = contract.attribute(name)
    values = columns[attribute.field]
    codes = contract.field(attribute.field).codes
    if attribute.banded:
        numbers = np.asarray(values, dtype=np.float64)
        index = np.searchsorted(np.asarray(attribute.edges), numbers, side="right")
        labels = np.asarray(attribute.labels, dtype=object)
    elif codes is not None:
        ordered = sorted(codes)  # searchsorted needs them in order; a request has one of them
        numbers = np.asarray(values, dtype=np.float64)
        index = np.searchsorted(np.asarray(ordered, dtype=np.float64), numbers)
        labels = np.asarray([str(code) for code in ordered], dtype=object)
    else:
        result = np.asarray(values, dtype=object)
        if attribute.missing is None:
            return result
        return np.where(missing_mask(result), attribute.missing, result)
    if attribute.missing is None:
        return labels[index]
    # NaN sorts past every edge or code: give it the missing label instead.
    return np.append(labels, attribute.missing)[np.where(np.isnan(numbers), len(labels), index)]


def group_keys(
    contract: Contract, columns: Mapping[str, np.ndarray], attributes: tuple[str, ...]
) -> np.ndarray:
    """One group label per applicant; several attributes join into an intersection.

    Same labels as ``fairgate.schema.group_keys`` on the synthetic contract, e.g.
    ``'female&30-49'`` for ``("gender", "age_band")``.
    """
    known = tuple(p.name for p in contract.protected)
    unknown = [a for a in attributes if a not in known]
    if unknown or not attributes:
        raise ValueError(f"unknown protected attribute(s) {unknown}; known: {known}")
    keys = attribute_column(contract, attributes[0], columns)
    for name in attributes[1:]:
        keys = keys + contract.groups.separator + attribute_column(contract, name, columns)
    return np.asarray(keys, dtype=object)


class RequestColumns:
    """Validated requests (pydantic models of ``request_model(contract)``) -> column table.

    Numeric fields become float64 columns, the others object columns; the same mapping the
    feature builder, the group keys and the draw read. One 2-D object table sliced into
    columns, because a getattr per field per request dominates the batch path otherwise.
    """

    def __init__(self, contract: Contract) -> None:
        self.names = contract.field_names
        self._row = itemgetter(*self.names)
        numeric = [i for i, f in enumerate(contract.fields) if f.numeric]
        self._numeric = np.array(numeric, dtype=np.intp)
        # (name, row of the numeric block or None, column of the object table), field order.
        self._where = [
            (name, numeric.index(i) if i in numeric else None, i)
            for i, name in enumerate(self.names)
        ]

    def __call__(self, requests: Sequence[Any]) -> dict[str, np.ndarray]:
        width = len(self.names)
        table = np.array([self._row(r.__dict__) for r in requests], dtype=object)
        table = table.reshape(len(requests), width)
        # Every numeric field converted in one call; each column is a row of that block.
        numbers = table[:, self._numeric].T.astype(np.float64, order="C")
        return {name: table[:, i] if row is None else numbers[row] for name, row, i in self._where}
