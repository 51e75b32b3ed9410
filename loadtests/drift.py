"""A population drift for synthetic load: numeric fields scaled, optionally in one group only.

A spec is ``FIELD*FACTOR`` or ``FIELD*FACTOR@FIELD=VALUE``; several are joined by ``,``::

    >>> from fairgate.schema import SYNTHETIC_CONTRACT
    >>> drifts = parse_drift("annual_income*0.8@gender=female", SYNTHETIC_CONTRACT)
    >>> row = {"annual_income": 50000.0, "gender": "female", "age": 40}
    >>> apply_drift([row], drifts, SYNTHETIC_CONTRACT)[0]["annual_income"]
    40000.0

``parse_drift`` checks every spec against the contract and reports every bad one at once.
``apply_drift`` keeps each field's type (an integer field stays a whole number) and its
contract bounds, so drifted bodies are still valid requests: the drift shows in the decisions
and the monitoring, not as 422s.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fairgate.contract import Contract, FieldSpec

__all__ = ["Condition", "Drift", "DriftError", "apply_drift", "parse_drift"]

# Messages a user acts on; tests match them.
SPEC_FORMAT: Final[str] = (
    "{spec!r}: expected FIELD*FACTOR or FIELD*FACTOR@FIELD=VALUE, "
    "e.g. annual_income*0.8@gender=female"
)
UNKNOWN_FIELD: Final[str] = "{spec!r}: unknown field {field!r}; expected one of {expected}"
NOT_NUMERIC: Final[str] = (
    "{spec!r}: field {field!r} is {kind}, only number and integer fields scale; "
    "expected one of {expected}"
)
CODED: Final[str] = (
    "{spec!r}: field {field!r} holds codes {codes}, which do not scale; expected one of {expected}"
)
BAD_FACTOR: Final[str] = "{spec!r}: factor {factor!r} is not a positive finite number"
UNKNOWN_CONDITION: Final[str] = (
    "{spec!r}: unknown condition field {field!r}; expected one of {expected}"
)
ID_CONDITION: Final[str] = (
    "{spec!r}: {field!r} is the id field; a condition takes a category or numeric field"
)
BAD_CONDITION_VALUE: Final[str] = (
    "{spec!r}: condition {field}={value!r} never holds: {why}; expected {expected}"
)


class DriftError(ValueError):
    """Drift specs that do not fit the contract; ``problems`` lists each, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("bad drift: " + "; ".join(problems))


@dataclass(frozen=True)
class Condition:
    """Rows whose ``field`` equals ``value`` (a category's text, or a number)."""

    field: str
    value: str | int | float

    def matches(self, row: Mapping[str, Any]) -> bool:
        # A numeric condition compares numbers (40 == 40.0); text compares as text.
        return self.field in row and row[self.field] == self.value


@dataclass(frozen=True)
class Drift:
    """Scale ``field`` by ``factor`` in the rows ``when`` matches (every row when None)."""

    field: str
    factor: float
    when: Condition | None = None


def _scalable(contract: Contract) -> list[str]:
    return [f.name for f in contract.fields if f.numeric and f.codes is None]


def _condition_value(spec: FieldSpec, text: str) -> tuple[str | int | float | None, str, str]:
    """The condition's value, or None with why it cannot hold and what was expected."""
    c = spec.constraints
    if not spec.numeric:
        expected = f"one of {list(c.enum or ())}"
        if text in (c.enum or ()):
            return text, "", expected
        return None, "not one of its values", expected
    low = "-inf" if c.minimum is None else f"{c.minimum:g}"
    high = "inf" if c.maximum is None else f"{c.maximum:g}"
    if spec.codes is not None:
        expected = f"one of {list(spec.codes)}"
    elif spec.type == "integer":
        expected = f"a whole number in [{low}, {high}]"
    else:
        expected = f"a number in [{low}, {high}]"
    try:
        number = float(text)
    except ValueError:
        return None, "not a number", expected
    value: int | float = int(number) if spec.type == "integer" and number.is_integer() else number
    why = spec.value_problem(value)
    return (None, why, expected) if why else (value, "", expected)


def _parse_one(spec: str, contract: Contract, problems: list[str]) -> Drift | None:
    head, at, condition = spec.partition("@")
    field, star, factor_text = (part.strip() for part in head.partition("*"))
    when_field, equals, value_text = (part.strip() for part in condition.partition("="))
    if not field or not star or not factor_text or (at and not (when_field and equals)):
        problems.append(SPEC_FORMAT.format(spec=spec))
        return None
    found = len(problems)
    names = ", ".join(contract.field_names)
    scalable = ", ".join(_scalable(contract))
    if field not in contract.fields_by_name:
        problems.append(UNKNOWN_FIELD.format(spec=spec, field=field, expected=scalable))
    elif not contract.field(field).numeric:
        kind = f"a {contract.field(field).type} field"
        problems.append(NOT_NUMERIC.format(spec=spec, field=field, kind=kind, expected=scalable))
    elif contract.field(field).codes is not None:
        codes = list(contract.field(field).codes or ())
        problems.append(CODED.format(spec=spec, field=field, codes=codes, expected=scalable))
    try:
        factor = float(factor_text)
    except ValueError:
        factor = math.nan
    if not (math.isfinite(factor) and factor > 0):
        problems.append(BAD_FACTOR.format(spec=spec, factor=factor_text))
    when = None
    if at:
        if when_field not in contract.fields_by_name:
            problems.append(UNKNOWN_CONDITION.format(spec=spec, field=when_field, expected=names))
        elif contract.field(when_field).type == "id":
            problems.append(ID_CONDITION.format(spec=spec, field=when_field))
        else:
            value, why, expected = _condition_value(contract.field(when_field), value_text)
            if value is None:
                problems.append(
                    BAD_CONDITION_VALUE.format(
                        spec=spec, field=when_field, value=value_text, why=why, expected=expected
                    )
                )
            else:
                when = Condition(when_field, value)
    return Drift(field, factor, when) if len(problems) == found else None


def parse_drift(text: str, contract: Contract) -> tuple[Drift, ...]:
    """The drifts of ``text`` (specs joined by ``,``; blank: none), checked against
    ``contract``. Raises ``DriftError`` naming every bad spec, the part that is wrong and
    what was expected.

    >>> from fairgate.schema import SYNTHETIC_CONTRACT
    >>> parse_drift("annual_income*0.8@gender=female", SYNTHETIC_CONTRACT)
    (Drift(field='annual_income', factor=0.8, when=Condition(field='gender', value='female')),)
    """
    problems: list[str] = []
    specs = [spec.strip() for spec in text.split(",") if spec.strip()]
    drifts = [_parse_one(spec, contract, problems) for spec in specs]
    if problems:
        raise DriftError(problems)
    return tuple(d for d in drifts if d is not None)


def _scaled(spec: FieldSpec, value: int | float, factor: float) -> int | float:
    low = -math.inf if spec.constraints.minimum is None else spec.constraints.minimum
    high = math.inf if spec.constraints.maximum is None else spec.constraints.maximum
    scaled = float(value) * factor
    if spec.type == "integer":
        # Half up, as the contract's learnt integer fills round; bounds made whole inward.
        whole = math.floor(scaled + 0.5)
        return int(min(max(whole, math.ceil(low)), math.floor(high)))
    return min(max(scaled, low), high)


def apply_drift(
    rows: Sequence[Mapping[str, Any]], drifts: Sequence[Drift], contract: Contract
) -> list[dict[str, Any]]:
    """New request dicts: each drift's field scaled in the rows its condition matches,
    rounded (integer fields) and clipped into the contract's bounds.

    Conditions read the row as given, so one drift's scaling never changes which rows
    another matches. A row without the field (an optional one left out, or None/NaN) keeps
    it as it is.
    """
    drifted = []
    for row in rows:
        out = dict(row)
        for drift in drifts:
            value = row.get(drift.field)
            if value is None or value != value:  # NaN: a missing number
                continue
            if drift.when is None or drift.when.matches(row):
                spec = contract.field(drift.field)
                out[drift.field] = _scaled(spec, out[drift.field], drift.factor)
        drifted.append(out)
    return drifted
