"""ASGI middleware in front of the API: body size limit (413) and JSON content type (415).

BentoML reads a whole body into memory before validating it, so without a limit one
oversized request costs the worker its memory before the 400 for "too many applications"
could be sent. The largest valid request (1,000 applications) is about 0.5 MB. BentoML also
parses any content type as JSON; a client sending text/plain or a form is confused, and is
told so instead of being decided on a guess.

It also answers ``GET /policy`` in place (routing it to the mounted policy app's ``/policy/``):
Starlette's ``Mount`` only matches below its path, so the bare ``/policy`` would otherwise be
a 307 redirect with an empty body, which a plain ``curl`` prints as nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from starlette.responses import Response

from service.config import DEFAULT_MAX_BODY_BYTES
from service.error_response import error_response
from service.openapi_fix import patch_openapi_bytes

POLICY_PATH: Final[str] = "/policy"
Scope = dict[str, Any]


class RequestGuard:
    def __init__(
        self,
        app: Any,
        max_bytes: int | Callable[[], int] = DEFAULT_MAX_BODY_BYTES,
        json_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        # A callable is asked on each request: the service's limit is configured when its
        # worker starts, after this middleware was declared at import.
        self._max_bytes = max_bytes
        # Only the API's own POST routes: elsewhere routing answers first (405, 404).
        self.json_paths = frozenset(json_paths)

    @property
    def max_bytes(self) -> int:
        limit = self._max_bytes
        return limit() if callable(limit) else limit

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope.get("method") == "GET" and scope.get("path") == "/docs.json":
            await self._patched_openapi(scope, receive, send)
            return
        if scope.get("path") == POLICY_PATH:
            scope = scope | {"path": f"{POLICY_PATH}/", "raw_path": f"{POLICY_PATH}/".encode()}
        headers = dict(scope.get("headers") or [])
        if (
            scope.get("method") == "POST"
            and scope.get("path") in self.json_paths
            and not _is_json(headers.get(b"content-type", b""))
        ):
            got = headers.get(b"content-type", b"none").decode("latin-1")
            expected = f"expected Content-Type: application/json, got {got!r}"
            refused = error_response(415, "content-type", "unsupported media type", expected)
            await refused(scope, receive, send)
            return
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await self._refuse(int(length))(scope, receive, send)
            return
        if length is not None:
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked upload): count while reading, then replay.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(size)(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _patched_openapi(self, scope: Scope, receive: Any, send: Any) -> None:
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            body = patch_openapi_bytes(body)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": start.get("status", 500),
                    "headers": headers})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    def _refuse(self, size: int) -> Response:
        message = (
            f"request body is at least {size} bytes; the limit is {self.max_bytes} bytes "
            "(send at most 1000 applications per batch)"
        )
        return error_response(413, "body", "request body too large", message)


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")
