"""Cross-reference checks of a contract document, run on the raw TOML mapping.

They read the raw mapping, not the validated model, so a broken reference is reported in
the same ``ContractError`` as a structural error elsewhere in the file (one round trip for
the person editing it). Entries that are not even tables are skipped here: the structural
check already names them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

NUMERIC: Final[tuple[str, ...]] = ("number", "integer")

DUPLICATE_NAME: Final[str] = "{section}: {name!r} is defined more than once"
ID_FIELD_COUNT: Final[str] = "fields: exactly one field must have type 'id', found {count}"
LABEL_IS_FIELD: Final[str] = "label.column: {name!r} is also a field; the label is not an input"
UNKNOWN_FIELD: Final[str] = "{where}: unknown field {name!r}; fields are {known}"
UNKNOWN_ATTRIBUTE: Final[str] = "{where}: unknown protected attribute {name!r}; known: {known}"
REPEATED_ATTRIBUTE: Final[str] = "{where}: {name!r} is listed more than once"
PROTECTED_ID: Final[str] = "{where}: the id field cannot be a protected attribute"
CATEGORY_BANDED: Final[str] = "{where}: {name!r} is a category field; it takes no band edges"
NUMERIC_UNBANDED: Final[str] = (
    "{where}: {name!r} is numeric; give edges, labels, representatives (or, for a field of "
    "a few codes such as 0/1, constraints.enum on the field)"
)
PROTECTED_FILLED: Final[str] = (
    "{where}: {name!r} is protected and says missing = {missing!r}; a protected value is "
    "never filled in: drop missing/fill and name the group of those who leave it out "
    '(missing = "not given" on the protected attribute)'
)
PROTECTED_OPTIONAL: Final[str] = (
    '{where}: {name!r} is optional (constraints.required = false): set missing = "not '
    'given" (or another label) here, the group of applicants who leave it out'
)
PROTECTED_NOTHING_MISSING: Final[str] = (
    "{where}: {name!r} is required, so no applicant leaves it out; drop missing here"
)
BAND_OUTSIDE_BOUNDS: Final[str] = (
    "{where}: {what} {value} is outside {name!r}'s bounds [{low}, {high}]"
)
WRONG_KIND: Final[str] = "{where}: {transform} needs a {needed} field, {name!r} is {kind}"
UNKNOWN_VALUES: Final[str] = "{where}: {values} are not categories of {name!r}"
PROTECTED_FEATURE: Final[str] = (
    "{where}: reads protected field {name!r}; set sensitive = true to use it (naive model only)"
)
SENSITIVE_WITHOUT_PROTECTED: Final[str] = (
    "{where}: sensitive = true but it reads no protected field"
)
LOG1P_NEGATIVE: Final[str] = "{where}: log1p needs {name!r} to have minimum >= 0"
RATIO_ZERO: Final[str] = "{where}: denominator {name!r} can be 0 or less; set floor > 0"
DUPLICATE_COLUMN: Final[str] = "features: model column {name!r} is produced more than once"
GAP_PROTECTED: Final[str] = "gap.field: {name!r} is protected; twins must share it"
OPTIONAL_INPUT: Final[str] = (
    "{where}: reads {name!r}, which is optional (constraints.required = false) but says "
    "no missing = median | most_frequent | constant | model: say how a missing value is "
    "filled, or make the field required"
)
REASON_PROTECTED: Final[str] = (
    "{where}: reads protected field {name!r}, which is never a reason for a denial; drop 'reason'"
)


def _tables(raw: Mapping[str, Any], key: str) -> list[tuple[int, Mapping[str, Any]]]:
    entries = raw.get(key)
    if not isinstance(entries, list | tuple):
        return []
    return [(i, e) for i, e in enumerate(entries) if isinstance(e, Mapping)]


def _str(value: Any) -> str | None:
    # Anything but a string where a name belongs is a structural error, reported there;
    # here it is skipped (and never hashed: a list cannot be a dict key).
    return value if isinstance(value, str) else None


def _duplicates(section: str, names: list[Any]) -> list[str]:
    seen: set[str] = set()
    repeated = [n for n in names if isinstance(n, str) and (n in seen or seen.add(n))]
    return [DUPLICATE_NAME.format(section=section, name=n) for n in dict.fromkeys(repeated)]


def reference_problems(raw: Mapping[str, Any]) -> list[str]:
    """Every broken cross-reference in a contract document, one message each."""
    fields = {f.get("name"): f for _, f in _tables(raw, "fields") if isinstance(f.get("name"), str)}
    problems = _duplicates("fields", [f.get("name") for _, f in _tables(raw, "fields")])
    id_count = sum(1 for f in fields.values() if f.get("type") == "id")
    if id_count != 1:
        problems.append(ID_FIELD_COUNT.format(count=id_count))
    label = raw.get("label")
    if isinstance(label, Mapping) and _str(label.get("column")) in fields:
        problems.append(LABEL_IS_FIELD.format(name=label.get("column")))
    protected_fields, attribute_problems = _attribute_problems(raw, fields)
    problems += attribute_problems
    problems += _group_problems(raw)
    problems += _feature_problems(raw, fields, protected_fields)
    gap = raw.get("gap")
    if isinstance(gap, Mapping) and isinstance(gap.get("field"), str):  # a hashable name
        problems += _field_problems("gap.field", gap["field"], fields, NUMERIC, "gap")
        if gap["field"] in protected_fields:
            problems.append(GAP_PROTECTED.format(name=gap["field"]))
    return problems


def _field_problems(
    where: str, name: Any, fields: Mapping[Any, Any], kinds: tuple[str, ...], transform: str
) -> list[str]:
    if name not in fields:
        return [UNKNOWN_FIELD.format(where=where, name=name, known=sorted(map(str, fields)))]
    kind = fields[name].get("type")
    if kind not in kinds:
        needed = " or ".join(kinds)
        return [
            WRONG_KIND.format(where=where, transform=transform, needed=needed, name=name, kind=kind)
        ]
    return []


def _attribute_problems(
    raw: Mapping[str, Any], fields: Mapping[Any, Any]
) -> tuple[set[str], list[str]]:
    entries = _tables(raw, "protected")
    problems = _duplicates("protected", [p.get("name") for _, p in entries])
    protected: set[str] = set()
    for i, attribute in entries:
        where, name = f"protected.{i}.field", _str(attribute.get("field"))
        if name is None:
            continue
        if name not in fields:
            problems.append(
                UNKNOWN_FIELD.format(where=where, name=name, known=sorted(map(str, fields)))
            )
            continue
        protected.add(name)
        spec, banded = fields[name], attribute.get("edges") is not None
        kind = spec.get("type")
        if kind == "id":
            problems.append(PROTECTED_ID.format(where=where))
        elif kind == "category" and banded:
            problems.append(CATEGORY_BANDED.format(where=where, name=name))
        elif kind in NUMERIC and not banded and not _codes(spec):
            problems.append(NUMERIC_UNBANDED.format(where=where, name=name))
        elif kind in NUMERIC:
            problems += _band_bound_problems(f"protected.{i}", attribute, spec)
        problems += _protected_missing_problems(f"protected.{i}", attribute, spec)
    return protected, problems


def _codes(spec: Mapping[str, Any]) -> bool:
    constraints = spec.get("constraints")
    return isinstance(constraints, Mapping) and constraints.get("enum") is not None


def _protected_missing_problems(
    where: str, attribute: Mapping[str, Any], spec: Mapping[str, Any]
) -> list[str]:
    name = spec.get("name")
    if spec.get("missing") is not None:
        return [PROTECTED_FILLED.format(where=f"{where}.field", name=name, missing=spec["missing"])]
    optional = _optional({name: spec}, name)
    if optional and attribute.get("missing") is None:
        return [PROTECTED_OPTIONAL.format(where=f"{where}.missing", name=name)]
    if not optional and attribute.get("missing") is not None:
        return [PROTECTED_NOTHING_MISSING.format(where=f"{where}.missing", name=name)]
    return []


def _band_bound_problems(
    where: str, attribute: Mapping[str, Any], spec: Mapping[str, Any]
) -> list[str]:
    constraints = spec.get("constraints")
    if not isinstance(constraints, Mapping):
        return []
    low, high = constraints.get("minimum"), constraints.get("maximum")
    problems = []
    for what in ("edges", "representatives"):
        values = attribute.get(what)
        if not isinstance(values, list | tuple):
            continue
        for value in values:
            if not isinstance(value, int | float):
                continue
            below = isinstance(low, int | float) and value < low
            above = isinstance(high, int | float) and value > high
            if below or above:
                problems.append(
                    BAND_OUTSIDE_BOUNDS.format(
                        where=f"{where}.{what}",
                        what=what[:-1],
                        value=value,
                        name=spec.get("name"),
                        low=low,
                        high=high,
                    )
                )
    return problems


def _group_problems(raw: Mapping[str, Any]) -> list[str]:
    known = [p.get("name") for _, p in _tables(raw, "protected")]
    groups = raw.get("groups")
    if not isinstance(groups, Mapping):
        return []
    problems = []
    for use in ("policy", "audit", "prober"):
        names = groups.get(use)
        if not isinstance(names, list | tuple):
            continue
        names = [n for n in names if isinstance(n, str)]
        for name in dict.fromkeys(names):
            if name not in known:
                problems.append(
                    UNKNOWN_ATTRIBUTE.format(where=f"groups.{use}", name=name, known=known)
                )
            if list(names).count(name) > 1:
                problems.append(REPEATED_ATTRIBUTE.format(where=f"groups.{use}", name=name))
    return problems


def _feature_problems(
    raw: Mapping[str, Any], fields: Mapping[Any, Any], protected: set[str]
) -> list[str]:
    entries = _tables(raw, "features")
    problems = _duplicates("features", [f.get("name") for _, f in entries])
    columns: list[str] = []
    for i, feature in entries:
        where, transform = f"features.{i}", feature.get("transform")
        inputs = [
            name
            for key in ("field", "numerator", "denominator")
            if (name := _str(feature.get(key))) is not None
        ]
        for name in inputs:
            kinds = ("category",) if transform == "one_hot" else NUMERIC
            problems += _field_problems(where, name, fields, kinds, str(transform))
        reads_protected = any(name in protected for name in inputs)
        if reads_protected and not feature.get("sensitive", False):
            problems.append(
                PROTECTED_FEATURE.format(
                    where=where, name=next(n for n in inputs if n in protected)
                )
            )
        if feature.get("sensitive", False) is True and not reads_protected:
            problems.append(SENSITIVE_WITHOUT_PROTECTED.format(where=where))
        for name in inputs:
            if _optional(fields, name) and fields[name].get("missing") is None:
                problems.append(OPTIONAL_INPUT.format(where=where, name=name))
        if reads_protected and feature.get("reason"):
            # Reasons never name a protected attribute; a text for one would mislead.
            name = next(n for n in inputs if n in protected)
            problems.append(REASON_PROTECTED.format(where=where, name=name))
        problems += _transform_problems(where, feature, fields)
        columns += _columns(feature, fields)
    for name in dict.fromkeys(c for c in columns if columns.count(c) > 1):
        problems.append(DUPLICATE_COLUMN.format(name=name))
    return problems


def _optional(fields: Mapping[Any, Any], name: Any) -> bool:
    spec = fields.get(name)
    constraints = spec.get("constraints") if isinstance(spec, Mapping) else None
    return isinstance(constraints, Mapping) and constraints.get("required") is False


def _minimum(fields: Mapping[Any, Any], name: Any) -> Any:
    spec = fields.get(name)
    constraints = spec.get("constraints") if isinstance(spec, Mapping) else None
    return constraints.get("minimum") if isinstance(constraints, Mapping) else None


def _transform_problems(
    where: str, feature: Mapping[str, Any], fields: Mapping[Any, Any]
) -> list[str]:
    transform = feature.get("transform")
    if transform == "log1p" and _str(feature.get("field")) in fields:
        low = _minimum(fields, feature["field"])
        if not isinstance(low, int | float) or low < 0:
            return [LOG1P_NEGATIVE.format(where=where, name=feature["field"])]
    if transform == "ratio" and _str(feature.get("denominator")) in fields:
        low = _minimum(fields, feature["denominator"])
        floor = feature.get("floor")
        if not isinstance(floor, int | float) and (not isinstance(low, int | float) or low <= 0):
            return [RATIO_ZERO.format(where=where, name=feature["denominator"])]
    if transform == "one_hot" and isinstance(feature.get("values"), list | tuple):
        spec = fields.get(_str(feature.get("field")))
        constraints = spec.get("constraints") if isinstance(spec, Mapping) else None
        enum = constraints.get("enum") if isinstance(constraints, Mapping) else None
        if isinstance(enum, list | tuple):
            unknown = [v for v in feature["values"] if v not in enum]
            if unknown:
                return [UNKNOWN_VALUES.format(where=where, values=unknown, name=feature["field"])]
    return []


def _columns(feature: Mapping[str, Any], fields: Mapping[Any, Any]) -> list[str]:
    """The model columns one feature entry produces (one_hot: prefix + value)."""
    if feature.get("transform") != "one_hot":
        return [str(feature.get("name"))]
    values = feature.get("values")
    if not isinstance(values, list | tuple):
        spec = fields.get(_str(feature.get("field")))
        constraints = spec.get("constraints") if isinstance(spec, Mapping) else None
        values = constraints.get("enum") if isinstance(constraints, Mapping) else None
    prefix = feature.get("prefix", f"{feature.get('field')}_")
    return [f"{prefix}{v}" for v in values] if isinstance(values, list | tuple) else []
