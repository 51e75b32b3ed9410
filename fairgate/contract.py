"""The data contract of one loan book: its fields, label, protected attributes and features.

One TOML file is the single source of truth; the request model, the feature builder and the
group keys are derived from it (``fairgate.contract_request``, ``fairgate.contract_features``).
Field vocabulary follows the Frictionless Table Schema (``type``, ``description``,
``constraints`` with ``required``/``minimum``/``maximum``/``enum``/``pattern``/``minLength``/
``maxLength``) so the file reads familiar to data engineers.

``contract_from_mapping`` is pure and reports every bad entry at once: the structural errors
pydantic collects across the whole document plus every broken cross-reference, in one
``ContractError``.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from fairgate.contract_rules import reference_problems

FieldKind = Literal["number", "integer", "category", "id"]
Transform = Literal["as_is", "log1p", "one_hot", "ratio"]
# How a value a request leaves out is filled: the training rows' median or most frequent
# value (learnt at training, stored in the model's copy of the contract as ``fill``), a
# constant the contract gives, or left missing for a model that takes it (gradient boosting).
Missing = Literal["median", "most_frequent", "constant", "model"]
NUMERIC_KINDS: Final[tuple[str, ...]] = ("number", "integer")
DEFAULT_ID_PATTERN: Final[str] = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"
SYNTHETIC: Final[str] = "synthetic"

# Messages a user acts on; tests match them, so they live here and nowhere else.
BOUNDS_ORDER: Final[str] = "minimum {minimum} is above maximum {maximum}"
BOUNDS_ON_NON_NUMBER: Final[str] = "minimum/maximum only apply to number and integer fields"
ENUM_REQUIRED: Final[str] = "a category field needs constraints.enum (its allowed values)"
ENUM_ON_NON_CATEGORY: Final[str] = "constraints.enum only applies to category and integer fields"
ENUM_KIND: Final[str] = "constraints.enum of a {kind} field lists {expected}, got {values}"
ENUM_DUPLICATES: Final[str] = "constraints.enum lists {values} more than once"
LENGTH_ON_NON_ID: Final[str] = "pattern/minLength/maxLength only apply to the id field"
EXAMPLE_OUT_OF_BOUNDS: Final[str] = "example {example!r} is outside [{minimum}, {maximum}]"
EXAMPLE_NOT_ALLOWED: Final[str] = "example {example!r} is not one of constraints.enum"
EXAMPLE_WRONG_TYPE: Final[str] = "example {example!r} is not a valid {kind}"
EDGES_NOT_INCREASING: Final[str] = "band edges must be strictly increasing, got {edges}"
BAND_LABELS_COUNT: Final[str] = "{edges} edges make {bands} bands but {labels} labels are given"
BAND_REPRESENTATIVE: Final[str] = "representative {value} of band {label!r} is outside the band"
BAND_PARTS: Final[str] = "a banded attribute needs edges, labels and representatives together"
RATIO_PARTS: Final[str] = "a ratio feature needs numerator and denominator, not field"
SINGLE_FIELD: Final[str] = "a {transform} feature needs field, not numerator/denominator"
ONE_HOT_MONOTONE: Final[str] = "a one_hot feature cannot have a monotone direction"
ONE_HOT_ONLY: Final[str] = "values and prefix only apply to one_hot features"
SCALE_FLOOR_RATIO_ONLY: Final[str] = "scale and floor only apply to ratio features"
NOT_FINITE: Final[str] = "must be a finite number"
MISSING_REQUIRED: Final[str] = (
    "missing = {missing!r} fills a value a request leaves out: set constraints.required = false"
)
MISSING_ON_ID: Final[str] = "the id field is never missing; it takes no missing or fill"
MISSING_KIND: Final[str] = "missing = {missing!r} needs a number or integer field, not {kind}"
FILL_NEEDED: Final[str] = "missing = 'constant' needs fill = <the value a missing one becomes>"
FILL_WITHOUT_MISSING: Final[str] = (
    "fill only applies with missing = constant, median or most_frequent"
)
FILL_INVALID: Final[str] = "fill {fill!r} is not a valid value of this field ({why})"

_NAME = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]
_Finite = Annotated[float, Field(allow_inf_nan=False)]


class ContractError(ValueError):
    """A contract that cannot be used; ``problems`` lists every bad entry, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("bad contract:\n" + "\n".join(f"- {p}" for p in problems))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Constraints(_Strict):
    """Frictionless Table Schema constraints (the subset a loan application needs)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    required: bool = True
    minimum: _Finite | None = None
    maximum: _Finite | None = None
    # Text for a category field; whole numbers for an integer field of codes (e.g. 0/1).
    enum: tuple[str, ...] | tuple[int, ...] | None = None
    pattern: str | None = None
    min_length: int | None = Field(default=None, alias="minLength", ge=0)
    max_length: int | None = Field(default=None, alias="maxLength", ge=1)


class FieldSpec(_Strict):
    """One column of the book and one property of a request."""

    name: _NAME
    type: FieldKind
    description: str = ""
    unit: str = ""
    example: str | int | float | None = None
    constraints: Constraints = Constraints()
    # false: never named as a reason for a denial (protected attributes never are).
    reasons: bool = True
    # How a value left out of a request (an empty cell in the book) is filled; None: never
    # left out unless constraints.required = false and no feature reads it.
    missing: Missing | None = None
    # The filled value: given for "constant"; learnt at training for "median"/"most_frequent"
    # and written into the copy of the contract stored with the model.
    fill: str | int | float | None = None

    @model_validator(mode="after")
    def _fits_kind(self) -> FieldSpec:
        c, problems = self.constraints, []
        numeric = self.type in NUMERIC_KINDS
        if (c.minimum is not None or c.maximum is not None) and not numeric:
            problems.append(BOUNDS_ON_NON_NUMBER)
        if c.minimum is not None and c.maximum is not None and c.minimum > c.maximum:
            problems.append(BOUNDS_ORDER.format(minimum=c.minimum, maximum=c.maximum))
        if self.type == "category" and not c.enum:
            problems.append(ENUM_REQUIRED)
        if c.enum is not None and self.type not in ("category", "integer"):
            problems.append(ENUM_ON_NON_CATEGORY)
        elif c.enum is not None:
            problems.extend(self._enum_problems())
        if c.enum and len(set(c.enum)) != len(c.enum):
            repeated = sorted({v for v in c.enum if c.enum.count(v) > 1})
            problems.append(ENUM_DUPLICATES.format(values=repeated))
        has_length = c.pattern is not None or c.min_length is not None or c.max_length is not None
        if has_length and self.type != "id":
            problems.append(LENGTH_ON_NON_ID)
        problems.extend(self._example_problems())
        problems.extend(self._missing_problems())
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def _enum_problems(self) -> list[str]:
        values = self.constraints.enum or ()
        text = self.type == "category"
        if all(isinstance(v, str) if text else isinstance(v, int) for v in values):
            return []
        expected = "text values" if text else "whole numbers"
        return [ENUM_KIND.format(kind=self.type, expected=expected, values=list(values))]

    def _missing_problems(self) -> list[str]:
        missing, fill = self.missing, self.fill
        if missing is None and fill is None:
            return []
        if self.type == "id":
            return [MISSING_ON_ID]
        problems = []
        if missing is not None and self.constraints.required:
            problems.append(MISSING_REQUIRED.format(missing=missing))
        if missing in ("median", "model") and not self.numeric:
            problems.append(MISSING_KIND.format(missing=missing, kind=self.type))
        if missing == "constant" and fill is None:
            problems.append(FILL_NEEDED)
        if fill is not None and missing in (None, "model"):
            problems.append(FILL_WITHOUT_MISSING)
        elif fill is not None:
            why = self.value_problem(fill)
            if why:
                problems.append(FILL_INVALID.format(fill=fill, why=why))
        return problems

    def value_problem(self, value: Any) -> str:
        """Why ``value`` is not a valid value of this field ("" when it is)."""
        c = self.constraints
        if self.numeric:
            if not isinstance(value, int | float) or isinstance(value, bool):
                return f"not a {self.type}"
            if not math.isfinite(float(value)):
                return NOT_FINITE
            if self.type == "integer" and not float(value).is_integer():
                return "not a whole number"
            low = -math.inf if c.minimum is None else c.minimum
            high = math.inf if c.maximum is None else c.maximum
            if not low <= float(value) <= high:
                return f"outside [{low}, {high}]"
            if c.enum and int(value) not in c.enum:
                return f"not one of {list(c.enum)}"
            return ""
        if not isinstance(value, str):
            return "not text"
        if c.enum and value not in c.enum:
            return f"not one of {list(c.enum)}"
        return ""

    def _example_problems(self) -> list[str]:
        example, c = self.example, self.constraints
        if example is None:
            return []
        if self.type in NUMERIC_KINDS:
            ok = isinstance(example, int | float) and not isinstance(example, bool)
            if self.type == "integer":
                ok = ok and float(example).is_integer()
            if not ok or not math.isfinite(float(example)):
                return [EXAMPLE_WRONG_TYPE.format(example=example, kind=self.type)]
            low = -math.inf if c.minimum is None else c.minimum
            high = math.inf if c.maximum is None else c.maximum
            if not low <= float(example) <= high:
                return [EXAMPLE_OUT_OF_BOUNDS.format(example=example, minimum=low, maximum=high)]
            if c.enum and example not in c.enum:
                return [EXAMPLE_NOT_ALLOWED.format(example=example)]
            return []
        if not isinstance(example, str):
            return [EXAMPLE_WRONG_TYPE.format(example=example, kind=self.type)]
        if c.enum and example not in c.enum:
            return [EXAMPLE_NOT_ALLOWED.format(example=example)]
        return []

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC_KINDS

    @property
    def codes(self) -> tuple[int, ...] | None:
        """An integer field's allowed codes (e.g. 0/1), None for other fields."""
        enum = self.constraints.enum
        return tuple(int(v) for v in enum) if self.type == "integer" and enum else None


class Label(_Strict):
    """The training file's label column and which of its values mean approved."""

    column: _NAME
    approved: tuple[int | str, ...] = Field(min_length=1)
    denied: tuple[int | str, ...] = Field(min_length=1)


class ProtectedAttribute(_Strict):
    """A category field, or a numeric field cut into bands (edges are band lower bounds)."""

    name: _NAME
    field: _NAME
    description: str = ""
    # Band i holds values v with edges[i-1] <= v < edges[i]; the last band is open-ended.
    edges: tuple[_Finite, ...] | None = None
    labels: tuple[str, ...] | None = None
    # A value inside each band: the prober moves a twin to it to change the band only.
    representatives: tuple[_Finite, ...] | None = None
    # The group of applicants who leave the (optional) field out, e.g. "not given"; a
    # protected value is never filled in, so it is a group of its own.
    missing: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _bands_fit(self) -> ProtectedAttribute:
        parts = (self.edges, self.labels, self.representatives)
        if all(p is None for p in parts):
            return self
        if any(p is None for p in parts):
            raise ValueError(BAND_PARTS)
        edges, labels, reps = self.edges or (), self.labels or (), self.representatives or ()
        problems = []
        if not edges or any(b <= a for a, b in pairwise(edges)):
            problems.append(EDGES_NOT_INCREASING.format(edges=list(edges)))
        elif len(labels) != len(edges) + 1 or len(reps) != len(edges) + 1:
            problems.append(
                BAND_LABELS_COUNT.format(edges=len(edges), bands=len(edges) + 1, labels=len(labels))
            )
        else:
            bounds = [-math.inf, *edges, math.inf]
            for i, (label, value) in enumerate(zip(labels, reps, strict=True)):
                if not bounds[i] <= value < bounds[i + 1]:
                    problems.append(BAND_REPRESENTATIVE.format(value=value, label=label))
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def banded(self) -> bool:
        return self.edges is not None


class Groups(_Strict):
    """Which protected attributes the policy, the audit and the prober group by."""

    policy: tuple[_NAME, ...] = Field(min_length=1)
    audit: tuple[_NAME, ...] = Field(min_length=1)
    prober: tuple[_NAME, ...] = Field(min_length=1)
    separator: str = Field(default="&", min_length=1, max_length=3)


class Feature(_Strict):
    """One model input (one_hot: one column per value, named ``prefix + value``)."""

    name: _NAME
    transform: Transform
    field: _NAME | None = None
    numerator: _NAME | None = None
    denominator: _NAME | None = None
    scale: _Finite | None = None
    floor: _Finite | None = Field(default=None, gt=0)
    values: tuple[str, ...] | None = None
    prefix: str | None = None
    monotone: Literal[-1, 0, 1] = 0
    # Reads a protected field: built only for the naive model (include_sensitive).
    sensitive: bool = False
    # The reason text when this feature counts most against a denied applicant, e.g.
    # "debt-to-income ratio too high"; default: "<field or ratio name> too low/high".
    reason: str = ""

    @model_validator(mode="after")
    def _parts_fit(self) -> Feature:
        problems = []
        if self.transform == "ratio":
            if self.field is not None or self.numerator is None or self.denominator is None:
                problems.append(RATIO_PARTS)
        else:
            if self.field is None or self.numerator is not None or self.denominator is not None:
                problems.append(SINGLE_FIELD.format(transform=self.transform))
            if self.scale is not None or self.floor is not None:
                problems.append(SCALE_FLOOR_RATIO_ONLY)
        if self.transform == "one_hot" and self.monotone:
            problems.append(ONE_HOT_MONOTONE)
        if self.transform != "one_hot" and (self.values is not None or self.prefix is not None):
            problems.append(ONE_HOT_ONLY)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def inputs(self) -> tuple[str, ...]:
        """The fields this feature reads."""
        if self.transform == "ratio":
            return (self.numerator or "", self.denominator or "")
        return (self.field or "",)


class GapField(_Strict):
    """A numeric field the decision is monotone in; the prober reports twins' gap in it."""

    field: _NAME
    direction: Literal[-1, 1]
    unit: str = ""


class Contract(_Strict):
    """One loan book's contract. Build it with ``contract_from_mapping`` or ``load_contract``."""

    name: _NAME
    version: int = Field(default=1, ge=1)
    description: str = ""
    fields: tuple[FieldSpec, ...] = Field(min_length=2)
    label: Label
    protected: tuple[ProtectedAttribute, ...] = Field(min_length=1)
    groups: Groups
    features: tuple[Feature, ...] = Field(min_length=1)
    gap: GapField | None = None

    def field(self, name: str) -> FieldSpec:
        return self.fields_by_name[name]

    @cached_property
    def fields_by_name(self) -> dict[str, FieldSpec]:
        # Looked up on every decision (group keys): a dict, not a scan of the fields.
        return {f.name: f for f in self.fields}

    def attribute(self, name: str) -> ProtectedAttribute:
        return next(p for p in self.protected if p.name == name)

    @property
    def id_field(self) -> FieldSpec:
        return next(f for f in self.fields if f.type == "id")

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def example(self) -> dict[str, Any]:
        """A valid request: every field's example (fields without one are left out)."""
        return {f.name: f.example for f in self.fields if f.example is not None}


def _tuples(value: Any) -> Any:
    # TOML arrays arrive as lists; the contract is immutable (tuples) and validated strictly,
    # where pydantic would refuse a list for a tuple.
    if isinstance(value, Mapping):
        return {key: _tuples(item) for key, item in value.items()}
    if isinstance(value, list):
        return tuple(_tuples(item) for item in value)
    return value


def _format_error(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error["loc"]) or "(top level)"
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}"


def contract_from_mapping(raw: Mapping[str, Any]) -> Contract:
    """Check a parsed TOML document and build the contract, or raise ``ContractError``.

    Every problem is reported at once: structural ones (types, missing keys, bounds, band
    edges) and cross-references (a feature naming an unknown field, a protected field used
    as a feature without ``sensitive = true``, ...).
    """
    problems: list[str] = []
    contract: Contract | None = None
    try:
        contract = Contract.model_validate(_tuples(raw))
    except ValidationError as error:
        problems.extend(_format_error(e) for e in error.errors())
    problems.extend(reference_problems(raw))
    if problems or contract is None:
        raise ContractError(problems)
    return contract


def contract_to_mapping(contract: Contract) -> dict[str, Any]:
    """The contract as plain JSON-ready data (``contract_from_mapping`` rebuilds it): what
    ``GET /policy`` shows and the prober reads."""
    return contract.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_contract(text: str) -> Contract:
    """Parse TOML text into a contract; a TOML syntax error is a ``ContractError`` too."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ContractError([f"not valid TOML: {error}"]) from error
    return contract_from_mapping(raw)


def load_contract(path: Path) -> Contract:
    """Read and check a contract file."""
    return parse_contract(Path(path).read_text(encoding="utf-8"))


def builtin_contract(name: str = SYNTHETIC) -> Contract:
    """A contract shipped in the package (``fairgate/contracts/<name>.toml``)."""
    text = resources.files("fairgate.contracts").joinpath(f"{name}.toml").read_text("utf-8")
    return parse_contract(text)
