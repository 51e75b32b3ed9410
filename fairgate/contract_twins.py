"""Counterfactual twins under a contract: the same applicants with one protected attribute
moved to another value, everything else (the application id included) unchanged.

A category attribute takes each of its values; a banded numeric attribute moves the field to
the band's representative value, keeping applicants already in that band as they are, so a
twin differs only where it must. The prober and the load tests' probe pairs use it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from fairgate.contract import Contract
from fairgate.contract_features import attribute_column
from fairgate.contract_synth import Marginals


def attribute_values(
    contract: Contract, attribute: str, marginals: Marginals | None = None
) -> tuple[str, ...]:
    """The values twins are moved across: a banded attribute's band labels; a category's
    allowed values, without those the recorded book never has (nobody to compare with)."""
    spec = contract.attribute(attribute)
    if spec.banded:
        return tuple(spec.labels or ())
    values = tuple(str(v) for v in contract.field(spec.field).constraints.enum or ())
    seen = None if marginals is None else marginals.frequencies.get(spec.field)
    if seen is None:
        return tuple(values)
    return tuple(v for v in values if seen.get(v, 0.0) > 0.0)


def twin(
    contract: Contract, columns: Mapping[str, np.ndarray], attribute: str, value: str
) -> dict[str, np.ndarray]:
    """A copy of ``columns`` with ``attribute`` set to ``value`` for every applicant."""
    spec = contract.attribute(attribute)
    copy = dict(columns)
    n = len(columns[spec.field])
    if not spec.banded:
        field = contract.field(spec.field)
        if value not in [str(v) for v in field.constraints.enum or ()]:
            raise ValueError(f"{value!r} is not a value of {spec.field}")
        # A field of codes (0/1) takes the code as the number it is, not its label.
        copy[spec.field] = (
            np.full(n, int(value), dtype=np.int64)
            if field.codes is not None
            else np.full(n, value, dtype=object)
        )
        return copy
    labels = list(spec.labels or ())
    if value not in labels:
        raise ValueError(f"{value!r} is not a band of {attribute}; bands: {labels}")
    representative = (spec.representatives or ())[labels.index(value)]
    field = np.asarray(columns[spec.field])
    keep = attribute_column(contract, attribute, columns) == value
    moved = np.where(keep, field, representative)
    copy[spec.field] = moved.astype(field.dtype) if field.dtype.kind in "iu" else moved
    return copy
