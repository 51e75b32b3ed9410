"""The request model derived from a contract, with the strictness of ``fairgate.schema``.

Strict types (no "52000" for a number, no True for an integer), unknown fields refused,
no NaN or infinity, inclusive bounds, categories as a ``Literal``, the id's pattern and
length, frozen instances; the contract's example is in the JSON schema as ``example``
(singular: BentoML publishes OpenAPI 3.0, whose Schema object has no ``examples``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    create_model,
    model_validator,
)

from fairgate.contract import DEFAULT_ID_PATTERN, Contract, FieldSpec

_TYPES: dict[str, type] = {"number": float, "integer": int}


def _annotation(spec: FieldSpec) -> Any:
    c = spec.constraints
    if spec.type == "category":
        return Literal[tuple(c.enum or ())]
    if spec.codes is not None:
        # Not Literal[0, 1]: pydantic's Literal takes true and 1.0 for 1 even in strict mode.
        return Annotated[
            int,
            AfterValidator(_one_of(spec.codes)),
            Field(json_schema_extra={"enum": list(spec.codes)}),
        ]
    if spec.type == "id":
        return Annotated[
            str,
            StringConstraints(
                min_length=1 if c.min_length is None else c.min_length,
                max_length=c.max_length,
                pattern=c.pattern or DEFAULT_ID_PATTERN,
            ),
        ]
    return _TYPES[spec.type]


def _one_of(codes: tuple[int, ...]) -> Any:
    allowed = frozenset(codes)
    message = "Input should be " + " or ".join(str(c) for c in codes)

    def check(value: int) -> int:
        if value not in allowed:
            raise ValueError(message)
        return value

    return check


def _bound(value: float | None, kind: str) -> float | int | None:
    # An integer field keeps integer bounds so its JSON schema reads "minimum": 18, not 18.0.
    if value is None:
        return None
    return int(value) if kind == "integer" or float(value).is_integer() else value


def _field(spec: FieldSpec) -> tuple[Any, Any]:
    c = spec.constraints
    default: Any = ... if c.required or spec.type == "id" else None
    annotation = _annotation(spec)
    if default is None:
        annotation = annotation | None
    return (
        annotation,
        Field(
            default,
            ge=_bound(c.minimum, spec.type),
            le=_bound(c.maximum, spec.type),
            description=spec.description or None,
        ),
    )


def request_model(contract: Contract, model_name: str = "Applicant") -> type[BaseModel]:
    """Build the pydantic model of one application under ``contract``.

    >>> Model = request_model(builtin_contract())
    >>> Model.model_validate(builtin_contract().example).age
    34
    """
    config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        # The name a 400 gives ("1 validation error for application"), not the class name
        # BentoML derives from it (ApplicantIODescriptor), which means nothing to a caller.
        title=TITLE,
        json_schema_extra={"example": contract.example},
    )
    fields = {spec.name: _field(spec) for spec in contract.fields}
    required = frozenset(
        s.name for s in contract.fields if s.constraints.required or s.type == "id"
    )
    return create_model(
        model_name,
        __config__=config,
        __validators__={"null_is_missing": _null_is_missing(required)},
        **fields,
    )


TITLE = "application"


def _null_is_missing(required: frozenset[str]) -> Any:
    """A ``null`` in a required field is reported as the field missing ("Field required"),
    not as "Input should be a valid number": the caller left the value out, whatever its
    type. The null is dropped before validation, so pydantic itself reports it, beside every
    other problem of the request; a request without a null pays one membership test."""

    def check(cls: type[BaseModel], data: Any) -> Any:
        if isinstance(data, dict) and None in data.values():
            return {k: v for k, v in data.items() if v is not None or k not in required}
        return data

    return model_validator(mode="before")(classmethod(check))  # type: ignore[arg-type]
