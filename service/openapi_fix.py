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
