"""Corrections to the OpenAPI document BentoML generates, so /docs.json tells the truth.

BentoML marks request bodies optional though every POST needs one, and documents a 400's
``detail`` as a string, but a validation error's ``detail`` is
the list of pydantic errors (``loc``, ``msg``, ``type``) that names the field; and it does
not know about the 413 and 415 that ``request_guard`` sends; ``GET /policy`` (a mounted
Starlette app) is missing. Schemathesis checks every response against this document, so the
document has to match what is sent.
"""

from __future__ import annotations

import json
from typing import Any, Final

from service.api_models import PolicyView

ERROR_DETAIL: Final[dict[str, Any]] = {
    "title": "Error Detail",
    "anyOf": [
        {"type": "string"},
        {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "loc", "msg"],
                "properties": {
                    "type": {"type": "string"},
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"},
                                                                 {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "url": {"type": "string"},
                },
            },
        },
    ],
}  # fmt: skip
GUARD_RESPONSES: Final[dict[str, str]] = {
    "413": "Request body over the size limit",
    "415": "Content-Type is not application/json",
    "503": "The decision record cannot take the decision now; nothing was decided. "
    "Retry after the Retry-After header's seconds.",
}
_TEXT: Final[dict[str, str]] = {"type": "string"}
_NUMBER: Final[dict[str, str]] = {"type": "number"}
# A row of the record as GET /decisions answers it (StoredRecord.as_dict()); written out
# here because OpenAPI 3.0 says "nullable", where pydantic would write JSON Schema's null type.
DECISION_RECORD: Final[dict[str, Any]] = {
    "title": "DecisionRecord",
    "type": "object",
    "required": [
        "writer_id",
        "seq",
        "time",
        "application_id",
        "request",
        "score",
        "group",
        "rule",
        "draw",
        "approval_probability",
        "decision",
        "reasons",
        "model_version",
        "policy_version",
        "probe",
        "prev_hash",
        "hash",
    ],
    "properties": {
        "writer_id": {**_TEXT, "description": "The worker process that wrote it (its chain)."},
        "seq": {"type": "integer", "description": "Position in that writer's chain."},
        "time": {**_TEXT, "description": "When decided, UTC: 2026-01-31T12:00:00.000000Z."},
        "application_id": _TEXT,
        "request": {"type": "object", "description": "The application as received."},
        "score": _NUMBER,
        "group": _TEXT,
        "rule": _TEXT,
        "draw": {
            **_NUMBER,
            "nullable": True,
            "description": "The randomized rule's draw; null for a deterministic policy.",
        },
        "approval_probability": _NUMBER,
        "decision": {"type": "string", "enum": ["approve", "deny"]},
        "reasons": {"type": "array", "items": {"$ref": "#/components/schemas/Reason"}},
        "model_version": _TEXT,
        "policy_version": _TEXT,
        "probe": {"type": "boolean"},
        "prev_hash": {**_TEXT, "description": "The hash of the row before it in its chain."},
        "hash": {**_TEXT, "description": "SHA-256 of this row and prev_hash (docs/record.md)."},
    },
}
_ERROR: Final[dict[str, Any]] = {
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InvalidArgument"}}}
}
DECISIONS_OPERATION: Final[dict[str, Any]] = {
    "summary": "An application's recorded decisions",
    "description": "Every recorded decision for the application id, newest first (at most "
    "1000). Needs Authorization: Bearer FAIRGATE_RECORD_READ_TOKEN; without that setting "
    "the endpoint is off and every call is 404.",
    "operationId": "fairgate__decisions",
    "tags": ["Service APIs"],
    "security": [{"recordReader": []}],
    "parameters": [{"name": "application_id", "in": "path", "required": True, "schema": _TEXT}],
    "responses": {
        "200": {
            "description": "The application's decisions, newest first",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/DecisionRecord"},
                    }
                }
            },
        },
        "401": {"description": "No or wrong bearer token", **_ERROR},
        "404": {
            "description": "Endpoint off (no reader token configured), or no decision "
            "recorded for this id",
            **_ERROR,
        },
        "503": {"description": "The record store is unavailable", **_ERROR},
    },
}


POLICY_OPERATION: Final[dict[str, Any]] = {
    "summary": "The served policy",
    "description": "Per-group rules in readable form, the constraint, training-time fairness.",
    "operationId": "fairgate__policy",
    "tags": ["Service APIs"],
    "responses": {
        "200": {
            "description": "Successful Response",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/PolicyView"}}
            },
        }
    },
}


def patch_openapi(spec: dict[str, Any]) -> dict[str, Any]:
    """Return ``spec`` with the error schema and the guard's responses corrected."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    # PolicyView has no nested models and no 3.1-only keywords, so its JSON Schema is also
    # a valid OpenAPI 3.0 schema object.
    schemas.setdefault("PolicyView", PolicyView.model_json_schema())
    spec.setdefault("paths", {}).setdefault("/policy", {"get": POLICY_OPERATION})
    schemas.setdefault("DecisionRecord", DECISION_RECORD)
    spec["paths"].setdefault("/decisions/{application_id}", {"get": DECISIONS_OPERATION})
    spec["components"].setdefault("securitySchemes", {})["recordReader"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "FAIRGATE_RECORD_READ_TOKEN",
    }
    if "InvalidArgument" in schemas:
        schemas["InvalidArgument"]["properties"]["detail"] = ERROR_DETAIL
    error_ref = {"$ref": "#/components/schemas/InvalidArgument"}
    for operations in spec.get("paths", {}).values():
        post = operations.get("post")
        if post is None:
            continue
        if "requestBody" in post:  # every POST here needs its JSON body
            post["requestBody"]["required"] = True
        for status, description in GUARD_RESPONSES.items():
            post["responses"].setdefault(
                status,
                {"description": description,
                 "content": {"application/json": {"schema": error_ref}}},
            )  # fmt: skip
    return spec


def patch_openapi_bytes(body: bytes) -> bytes:
    return json.dumps(patch_openapi(json.loads(body))).encode()
