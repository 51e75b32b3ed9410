"""The one JSON error body of the service, in the shape of BentoML's own 400s.

``{"error": "...", "detail": [{"loc": ["field"], "msg": "...", "type": "..."}]}``: a client
reads every refusal (400, 401, 403, 404, 405, 413, 415, 503) the same way, and ``loc`` names
what to fix. The response is an ASGI app too, so the middlewares send it as it is:
``await error_response(413, "body", "request body too large", why)(scope, receive, send)``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from starlette.responses import Response


def error_response(
    status: int,
    loc: str,
    error: str,
    message: str,
    *,
    kind: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``status`` with the error body; ``kind`` (the ``type``) defaults to ``error`` with
    underscores for spaces."""
    detail = {"loc": [loc], "msg": message, "type": kind or error.replace(" ", "_")}
    body = json.dumps({"error": error, "detail": [detail]})
    return Response(body, status, headers=dict(headers or {}), media_type="application/json")
