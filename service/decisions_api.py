"""``GET /decisions/{application_id}``: an application's recorded decisions, newest first.

Records are personal data (income, age, gender), so this endpoint has its own credential:
``Authorization: Bearer <FAIRGATE_RECORD_READ_TOKEN>``, compared in constant time
(``hmac.compare_digest``). Without a configured token the endpoint does not exist (404 for
every call); a missing or wrong token is 401. Reads are synchronous driver calls, run in a
thread so the event loop keeps deciding meanwhile.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fairgate.probe_auth import token_matches
from record import RecordStore, RecordUnavailable
from record.store import store_errors
from service.error_response import error_response
from service.recording import unavailable_response

PATH: Final[str] = "/decisions"
# The most records one call returns (an application decided more often is unusual; the
# export command reads any number).
MAX_RECORDS: Final[int] = 1000


@dataclass(frozen=True)
class RecordReader:
    """What the endpoint needs from the worker: its store and the reader token."""

    store: RecordStore | None  # None: FAIRGATE_RECORD=off
    token: str | None


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None


def decisions_app(reader: Callable[[], RecordReader | None]) -> Starlette:
    """The mounted app; ``reader`` is asked per request (the worker configures it at start)."""

    async def decisions(request: Request) -> Response:
        found = reader()
        if found is None or found.token is None:
            off = "GET /decisions is off: FAIRGATE_RECORD_READ_TOKEN is not set"
            return error_response(404, "path", "not found", off)
        if not token_matches(_bearer(request), found.token):
            return error_response(
                401, "authorization", "unauthorized",
                "send Authorization: Bearer <the service's FAIRGATE_RECORD_READ_TOKEN>",
                headers={"WWW-Authenticate": 'Bearer realm="fairgate-record"'},
            )  # fmt: skip
        if found.store is None:
            off = "this service keeps no decision record (FAIRGATE_RECORD=off)"
            return error_response(404, "path", "not found", off)
        application_id = request.path_params["application_id"]
        try:
            rows = await asyncio.to_thread(found.store.decisions_for, application_id, MAX_RECORDS)
        except store_errors() as error:
            cause = f"the decision record store is unavailable ({type(error).__name__})"
            return unavailable_response(RecordUnavailable(cause, 1.0))
        if not rows:
            none = f"no recorded decision for application_id {application_id!r}"
            return error_response(404, "application_id", "not found", none)
        body: list[dict[str, Any]] = [row.as_dict() for row in rows]
        return Response(json.dumps(body), media_type="application/json")

    async def unmatched(request: Request, _: Exception) -> Response:
        # An id Starlette's path pattern refuses (a newline in it): the same JSON 404.
        return error_response(404, "application_id", "not found", "no such application id")

    async def refused(request: Request, _: Exception) -> Response:
        only = "only GET /decisions/{application_id}"
        return error_response(
            405, "method", "method not allowed", only, headers={"Allow": "GET, HEAD"}
        )

    return Starlette(
        routes=[Route("/{application_id:path}", decisions, methods=["GET"])],
        exception_handlers={404: unmatched, 405: refused},
    )


class DecisionsRoute:
    """ASGI middleware handing every ``/decisions/...`` request to the decisions app.

    Not a BentoML mount: a mount's path pattern does not match an id with a newline in it,
    and BentoML's router then answers a plain-text 404 that /docs.json cannot describe.
    """

    def __init__(self, app: Any, target: Any) -> None:
        self.app = app
        self.target = target

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(f"{PATH}/"):
            await self.app(scope, receive, send)
            return
        rest = path[len(PATH) :]
        inner = scope | {"path": rest, "raw_path": rest.encode(), "root_path": ""}
        await self.target(inner, receive, send)
